"""The ops pages: a worker's own (``index.html``, served by the worker at /) and the fleet's
(``fleet.html``, served by ``fraud-streamer dashboard``).

Both share their style and the code that renders cards and alerts; :func:`page` puts those in
at the markers, so each page stays one self-contained response with nothing else to serve.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["page"]

_INCLUDES = {"/* style.css */": "style.css", "// common.js": "common.js"}


def page(name: str) -> str:
    """The HTML of page ``name`` (``index.html`` or ``fleet.html``), shared parts included."""
    files = resources.files("streamer.dashboard")
    html = files.joinpath(name).read_text("utf-8")
    for marker, part in _INCLUDES.items():
        html = html.replace(marker, files.joinpath(part).read_text("utf-8"))
    return html
