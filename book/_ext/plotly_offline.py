"""Serve plotly.js from the book itself, so interactive figures draw with no internet.

Figures rendered by ``msa_lib.plots`` call ``Plotly.newPlot`` without embedding plotly.js. This
extension copies ``plotly.min.js`` from the installed plotly package (so the library and the book
always use the same version) into ``_static/`` and adds it, in the page head, to the pages that
draw at least one figure.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import plotly

SCRIPT = "plotly.min.js"
# Figures are laid out while the page is still being built, sometimes wider than the column they
# end up in; once everything has loaded, fit each one to its container.
RESIZE = ("window.addEventListener('load', function () {"
          " document.querySelectorAll('.plotly-graph-div').forEach(function (gd) {"
          " Plotly.Plots.resize(gd); }); });")


def _copy_plotly(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        source = Path(plotly.__file__).parent / "package_data" / SCRIPT
        shutil.copyfile(source, Path(app.outdir) / "_static" / SCRIPT)


def _add_to_pages_with_figures(app, pagename, templatename, context, doctree) -> None:
    if "Plotly.newPlot" in context.get("body", ""):
        # Loaded synchronously in <head>: the figure's inline script needs `Plotly` defined.
        app.add_js_file(SCRIPT, priority=100)
        app.add_js_file(None, body=RESIZE, priority=101)


def setup(app):
    app.connect("html-page-context", _add_to_pages_with_figures)
    app.connect("build-finished", _copy_plotly)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
