// Poolwarden dashboard: draws each chart from the JSON embedded in the page, and redraws it
// from its data-url when one of its own filters changes. A point whose customdata is a path
// ("/admin/dashboard/...") is a link. Plot elements carry data-state (new, loading, ready,
// error) and data-query (the filters shown) so that people and tests can tell what is drawn.
"use strict";

(function () {
  const CONFIG = { displaylogo: false, responsive: true };

  function draw(card, figure) {
    const plot = card.querySelector(".pw-plot");
    return Plotly.react(plot, figure.data, figure.layout, CONFIG).then(function () {
      if (!plot.dataset.linked) {
        plot.dataset.linked = "1";
        plot.on("plotly_click", function (event) {
          const target = linkOf(event.points);
          if (target) window.location.href = target;
        });
      }
      plot.dataset.state = "ready";
    });
  }

  // A point links to a page by its customdata ("/admin/dashboard/..."), or by its trace's
  // meta.link with "{y}" standing for the point's row (the heat map: one link per trace).
  // With unified hover a click reports every trace's point at that x: take the first link.
  function linkOf(points) {
    for (const point of points) {
      if (typeof point.customdata === "string" && point.customdata.startsWith("/")) {
        return point.customdata;
      }
      const meta = point.data && point.data.meta;
      if (meta && typeof meta.link === "string") {
        return meta.link.replace("{y}", encodeURIComponent(point.y));
      }
    }
    return null;
  }

  function showError(card, message) {
    const note = card.querySelector(".pw-error");
    note.textContent = message || "";
    note.hidden = !message;
    card.querySelector(".pw-plot").dataset.state = message ? "error" : "ready";
  }

  function query(form) {
    const params = new URLSearchParams();
    const range = form.elements.range ? form.elements.range.value : "";
    if (range) params.set("range", range);
    if (range === "custom") {
      params.set("start", form.elements.start.value);
      params.set("end", form.elements.end.value);
    }
    if (form.elements.pool && form.elements.pool.value) params.set("pool", form.elements.pool.value);
    return params.toString();
  }

  function reload(card, form) {
    const plot = card.querySelector(".pw-plot");
    const wanted = query(form);
    plot.dataset.state = "loading";
    fetch(card.dataset.url + "?" + wanted, { credentials: "same-origin" })
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) throw new Error(body.error || response.statusText);
          return body;
        });
      })
      .then(function (figure) {
        showError(card, "");
        plot.dataset.query = wanted;
        return draw(card, figure);
      })
      .catch(function (error) { showError(card, error.message); });
  }

  function wire(card) {
    const form = card.querySelector(".pw-filters");
    const custom = form.querySelector(".pw-custom");
    const embedded = card.querySelector("script[type='application/json']");
    const plot = card.querySelector(".pw-plot");
    plot.dataset.query = query(form);
    draw(card, JSON.parse(embedded.textContent));
    form.addEventListener("change", function (event) {
      const range = form.elements.range ? form.elements.range.value : "";
      if (custom) custom.hidden = range !== "custom";
      const name = event.target.name;
      // A custom range is applied with its Show button, once both ends are filled in.
      if (name === "start" || name === "end" || (name === "range" && range === "custom")) return;
      if (card.dataset.url) reload(card, form);
      else form.submit();  // a detail page: the filters are the page's
    });
    form.addEventListener("submit", function (event) {
      if (!card.dataset.url) return;
      event.preventDefault();
      reload(card, form);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".pw-chart").forEach(wire);
  });
})();
