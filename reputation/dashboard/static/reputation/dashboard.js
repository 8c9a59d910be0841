// Poolwarden dashboard. Loaded (deferred) before plotly.js: each dashboard card starts fetching
// its figure from data-url at once, and draws it as soon as both the figure and plotly.js are
// there, so cards draw independently and the page shows before any of them. A detail page's
// card draws the figure embedded in the page.
//
// State in the URL: each card's filters as "<chart>.range", "<chart>.pool", … (a reload, the
// back button or a shared link shows the same charts), and "refresh=<seconds>" while
// auto-refresh is on. The time zone is a cookie (pw_tz) that the server applies to every time.
//
// A point whose customdata is a path ("/admin/dashboard/...") is a link. Plot elements carry
// data-state (new, loading, ready, error) and data-query (the filters shown) so that people and
// tests can tell what is drawn; the first chart drawn sets the performance mark
// "pw-first-chart" and data-pw-first-chart (milliseconds) on <html>.
"use strict";

(function () {
  const CONFIG = { displaylogo: false, responsive: true };
  const FILTER_KEYS = ["range", "start", "end", "pool", "page"];
  const DEFAULT_REFRESH = 60;

  const plotlyReady = new Promise(function (resolve) {
    // Deferred scripts run in order, all before DOMContentLoaded: plotly.js is there by then.
    if (window.Plotly) resolve();
    else document.addEventListener("DOMContentLoaded", resolve);
  });

  function markFirstChart() {
    const root = document.documentElement;
    if (root.dataset.pwFirstChart) return;
    performance.mark("pw-first-chart");
    root.dataset.pwFirstChart = String(Math.round(performance.now()));
  }

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
      showPage(card, figure.page);
      plot.dataset.state = "ready";
      markFirstChart();
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

  function showPage(card, page) {
    const pager = card.querySelector(".pw-pager");
    if (!pager) return;
    pager.hidden = !page || page.pages < 2;
    if (!page) return;
    card.querySelector(".pw-filters").elements.page.value = page.number;
    pager.querySelector(".pw-page-text").textContent =
      `page ${page.number} of ${page.pages} (${page.total} listings)`;
    pager.querySelector("[data-step='-1']").disabled = page.number <= 1;
    pager.querySelector("[data-step='1']").disabled = page.number >= page.pages;
  }

  function showError(card, message) {
    const note = card.querySelector(".pw-error");
    note.textContent = message || "";
    note.hidden = !message;
    card.querySelector(".pw-plot").dataset.state = message ? "error" : "ready";
  }

  function query(form) {
    const params = new URLSearchParams();
    const elements = form.elements;
    const range = elements.range ? elements.range.value : "";
    if (range) params.set("range", range);
    if (range === "custom") {
      params.set("start", elements.start.value);
      params.set("end", elements.end.value);
    }
    if (elements.pool && elements.pool.value) params.set("pool", elements.pool.value);
    if (elements.page && elements.page.value > 1) params.set("page", elements.page.value);
    return params.toString();
  }

  // At most two figures asked for at once, in page order: the server computes the first
  // card's alone instead of all seven side by side, so the top of the page draws first.
  const MAX_FETCHES = 2;
  const waiting = [];
  let fetching = 0;

  function pump() {
    while (fetching < MAX_FETCHES && waiting.length) {
      fetching += 1;
      waiting.shift()().finally(function () {
        fetching -= 1;
        pump();
      });
    }
  }

  function fetchFigure(card, wanted) {
    return new Promise(function (resolve, reject) {
      waiting.push(function () {
        const asked = fetch(card.dataset.url + "?" + wanted, { credentials: "same-origin" });
        const figure = asked.then(function (response) {
          return response.json().then(function (body) {
            if (!response.ok) throw new Error(body.error || response.statusText);
            return body;
          });
        });
        figure.then(resolve, reject);
        return figure.catch(function () {});
      });
      pump();
    });
  }

  // Fetch and draw the card's figure for `wanted`; a newer request for the card wins.
  function load(card, wanted, quiet) {
    const plot = card.querySelector(".pw-plot");
    card.dataset.query = wanted;
    if (!quiet) plot.dataset.state = "loading";
    const figure = fetchFigure(card, wanted);
    return Promise.all([figure, plotlyReady])
      .then(function (results) {
        if (card.dataset.query !== wanted) return null;
        showError(card, "");
        plot.dataset.query = wanted;
        return draw(card, results[0]);
      })
      .catch(function (error) {
        if (card.dataset.query === wanted) showError(card, error.message);
      });
  }

  // --- the URL ---------------------------------------------------------------------------

  // The card's filters in the page's query string: its own "<chart>.<key>", else "<key>".
  function queryFromLocation(card) {
    const here = new URLSearchParams(window.location.search);
    const params = new URLSearchParams();
    for (const key of FILTER_KEYS) {
      const own = here.get(`${card.dataset.chart}.${key}`);
      const value = own !== null ? own : here.get(key);
      if (value) params.set(key, value);
    }
    return params.toString();
  }

  function keepInUrl(card, wanted) {
    const here = new URLSearchParams(window.location.search);
    const params = new URLSearchParams(wanted);
    const name = card.dataset.chart;
    for (const key of FILTER_KEYS) {
      here.delete(`${name}.${key}`);
      if (params.has(key)) here.set(`${name}.${key}`, params.get(key));
      // A page-wide filter ("?range=1y") applies to the card until it has its own.
      else if (here.has(key)) here.set(`${name}.${key}`, "");
    }
    const search = here.toString();
    history.pushState(null, "", search ? "?" + search : window.location.pathname);
  }

  function setForm(form, wanted) {
    const params = new URLSearchParams(wanted);
    const elements = form.elements;
    if (elements.range) elements.range.value = params.get("range") || elements.range.dataset.default;
    if (elements.start && params.get("start")) elements.start.value = params.get("start");
    if (elements.end && params.get("end")) elements.end.value = params.get("end");
    if (elements.pool) elements.pool.value = params.get("pool") || "";
    if (elements.page) elements.page.value = params.get("page") || "1";
    const custom = form.querySelector(".pw-custom");
    if (custom) custom.hidden = !elements.range || elements.range.value !== "custom";
  }

  // --- cards -------------------------------------------------------------------------------

  function wire(card) {
    const form = card.querySelector(".pw-filters");
    const custom = form.querySelector(".pw-custom");
    const plot = card.querySelector(".pw-plot");
    if (form.elements.range) form.elements.range.dataset.default = "7d";
    if (!card.dataset.url) {
      const embedded = document.getElementById("pw-figure-detail");
      plot.dataset.query = query(form);
      plotlyReady.then(function () { draw(card, JSON.parse(embedded.textContent)); });
    } else {
      load(card, card.dataset.query || "");
    }
    function changed() {
      const wanted = query(form);
      keepInUrl(card, wanted);
      load(card, wanted);
    }
    form.addEventListener("change", function (event) {
      const range = form.elements.range ? form.elements.range.value : "";
      if (custom) custom.hidden = range !== "custom";
      const name = event.target.name;
      // A custom range is applied with its Show button, once both ends are filled in.
      if (name === "start" || name === "end" || (name === "range" && range === "custom")) return;
      if (form.elements.page) form.elements.page.value = "1";
      if (card.dataset.url) changed();
      else form.submit(); // a detail page: the filters are the page's
    });
    form.addEventListener("submit", function (event) {
      if (!card.dataset.url) return;
      event.preventDefault();
      if (form.elements.page) form.elements.page.value = "1";
      changed();
    });
    card.querySelectorAll(".pw-pager button").forEach(function (button) {
      button.addEventListener("click", function () {
        const page = form.elements.page;
        page.value = Math.max(1, Number(page.value) + Number(button.dataset.step));
        changed();
      });
    });
  }

  function dashboardCards() {
    return Array.from(document.querySelectorAll(".pw-chart[data-url]"));
  }

  window.addEventListener("popstate", function () {
    for (const card of dashboardCards()) {
      const wanted = queryFromLocation(card);
      if (wanted === card.dataset.query) continue;
      setForm(card.querySelector(".pw-filters"), wanted);
      load(card, wanted);
    }
    syncRefresh();
  });

  // --- auto-refresh ------------------------------------------------------------------------

  let refreshTimer = null;

  function refreshSeconds() {
    const value = Number(new URLSearchParams(window.location.search).get("refresh"));
    return Number.isFinite(value) && value >= 5 ? value : 0;
  }

  function syncRefresh() {
    const seconds = refreshSeconds();
    const toggle = document.getElementById("pw-refresh");
    if (toggle) toggle.checked = seconds > 0;
    clearInterval(refreshTimer);
    refreshTimer = null;
    if (!seconds) return;
    refreshTimer = setInterval(function () {
      if (document.visibilityState !== "visible") return;
      for (const card of dashboardCards()) {
        const plot = card.querySelector(".pw-plot");
        if (plot.dataset.state === "loading") continue;
        load(card, card.dataset.query || "", true).then(function () {
          plot.dataset.refreshed = String(Date.now());
        });
      }
    }, seconds * 1000);
  }

  function wireRefresh() {
    const toggle = document.getElementById("pw-refresh");
    if (!toggle) return;
    toggle.addEventListener("change", function () {
      const here = new URLSearchParams(window.location.search);
      if (toggle.checked) here.set("refresh", String(refreshSeconds() || DEFAULT_REFRESH));
      else here.delete("refresh");
      const search = here.toString();
      history.replaceState(null, "", search ? "?" + search : window.location.pathname);
      syncRefresh();
    });
    syncRefresh();
  }

  // --- time zone ---------------------------------------------------------------------------

  function wireZone() {
    const select = document.getElementById("pw-tz");
    if (!select) return;
    const browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (browser && !Array.from(select.options).some((o) => o.value === browser)) {
      select.add(new Option(`${browser} (this browser)`, browser));
    }
    select.addEventListener("change", function () {
      const zone = encodeURIComponent(select.value);
      const age = select.value ? 365 * 86400 : 0;
      document.cookie = `pw_tz=${zone}; path=/; max-age=${age}; SameSite=Lax`;
      window.location.reload();
    });
  }

  document.querySelectorAll(".pw-chart").forEach(wire);
  wireRefresh();
  wireZone();
})();
