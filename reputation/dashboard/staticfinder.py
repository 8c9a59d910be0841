"""Serves plotly.js from the installed plotly package as the static file
`plotly/plotly.min.js`: the dashboard works offline, and the browser's copy always matches
the package's version (no CDN, no copy in the repository)."""

from __future__ import annotations

from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage

PATH = "plotly/plotly.min.js"


def package_data() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data"


class PlotlyFinder(BaseFinder):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=package_data())
        self.storage.prefix = "plotly"

    def check(self, **kwargs) -> list:
        return []

    def find(self, path: str, find_all: bool = False, **kwargs):
        if path != PATH:
            return [] if find_all else None
        found = str(package_data() / "plotly.min.js")
        return [found] if find_all else found

    def list(self, ignore_patterns):
        yield "plotly.min.js", self.storage
