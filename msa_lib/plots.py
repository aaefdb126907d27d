"""Figures used across the chapters: matplotlib for static ones, plotly for interactive ones.

Importing this module selects the plotly renderer ``"msa_book"``. It emits two representations of
each figure:

* ``application/vnd.plotly.v1+json``, which JupyterLab draws with plotly's own extension, and
* ``text/html`` that calls ``Plotly.newPlot`` *without* embedding or downloading plotly.js.

The HTML book serves plotly.js itself (``book/_ext/plotly_offline.py`` copies it from the installed
plotly package into the site and adds it only to pages that draw a figure), so figures draw with no
internet connection, and MathJax is never pulled from a CDN by a figure.
"""

from __future__ import annotations

import json
import zlib

import matplotlib.pyplot as plt
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

__all__ = ["BookRenderer", "COLORS", "strategy_color", "use_course_style"]

#: One colour per scale, used by every chapter so a scale looks the same in every figure.
COLORS = {
    "1min": "#1f77b4",
    "5min": "#ff7f0e",
    "1h": "#2ca02c",
    "1D": "#d62728",
}

#: Fixed colours for the strategies and models the chapters trade and compare, so that a name has
#: the same colour in every panel of a figure and in every chapter.
STRATEGY_COLORS = {
    "oracle": "#2ca02c",
    "buy and hold": "#7f7f7f",
    "P(up) fixed": "#1f77b4",
    "P(up) confidence": "#17becf",
    "P(up) half Kelly": "#9467bd",
    "5min head, sign": "#ff7f0e",
    "15min head, sign": "#e377c2",
    "1h head, sign": "#bcbd22",
    "multi-scale net": "#1f77b4",
    "last sign": "#393b79",
    "majority": "#8c564b",
}
_FALLBACK = ["#d62728", "#ff7f0e", "#e377c2", "#8c564b", "#bcbd22", "#393b79", "#637939",
             "#843c39", "#7b4173", "#3182bd"]


def strategy_color(name: str) -> str:
    """The colour of strategy or model ``name``: fixed for the course's names, else stable per name.

    A name outside :data:`STRATEGY_COLORS` gets a colour from a palette chosen by a checksum of the
    name (not Python's salted ``hash``), so it too is the same in every panel, run and chapter.
    """
    if name in STRATEGY_COLORS:
        return STRATEGY_COLORS[name]
    return _FALLBACK[zlib.crc32(name.encode()) % len(_FALLBACK)]


_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


class BookRenderer(MimetypeRenderer):
    """Plotly renderer that draws both in JupyterLab and in the offline HTML book."""

    def __init__(self, height: int = 450):
        self.height = height

    def to_mimebundle(self, fig_dict: dict) -> dict:
        fig_json = json.loads(pio.to_json(fig_dict, validate=False, remove_uids=False))
        html = pio.to_html(
            fig_dict,
            config=_PLOTLY_CONFIG,
            include_plotlyjs=False,  # the book serves plotly.js from its own _static folder
            include_mathjax=False,  # never reach for a CDN
            full_html=False,
            default_width="100%",
            default_height=self.height,
            validate=False,
        )
        return {"application/vnd.plotly.v1+json": {**fig_json, "config": _PLOTLY_CONFIG},
                "text/html": html}


def use_course_style() -> None:
    """Apply the course's figure defaults (called on import; call again after changing them)."""
    pio.renderers["msa_book"] = BookRenderer()
    pio.renderers.default = "msa_book"
    pio.templates.default = "plotly_white"
    plt.rcParams.update({
        "figure.figsize": (9, 3.6),
        "figure.dpi": 100,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "axes.titlesize": "medium",
        "legend.frameon": False,
    })


use_course_style()
