"""Figures used across the chapters: matplotlib for static ones, plotly for interactive ones.

Colours: :data:`COLORS` and :func:`scale_color` give every scale one colour, :func:`strategy_color`
every strategy or model. Figures drawn in more than one place (the functions return the figure or
axes; the caller shows it, ``plt.show()`` or ``fig.show()``, so captions and book checks see it):

* :func:`accuracy_bars` (matplotlib): direction accuracy per model and horizon with its interval;
* :func:`equity_figure` (plotly) and :func:`equity_plot` (matplotlib): equity curves of backtests,
  optionally with their drawdowns;
* :func:`attention_heatmap` (plotly): attention weights over the tokens of every scale.

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
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from matplotlib.axes import Axes
from plotly.io._base_renderers import MimetypeRenderer
from plotly.subplots import make_subplots

__all__ = [
    "COLORS",
    "STRATEGY_COLORS",
    "BookRenderer",
    "accuracy_bars",
    "attention_heatmap",
    "equity_figure",
    "equity_plot",
    "scale_color",
    "strategy_color",
    "use_course_style",
]

#: One colour per scale, used by every chapter so a scale looks the same in every figure. Scale names
#: are pandas' offset aliases as the experiment spells them (``"1D"`` for the daily scale, not
#: ``"1d"``); :func:`scale_color` also colours scales outside this table.
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


def _stable_color(name: str) -> str:
    """A colour from :data:`_FALLBACK` chosen by a checksum of ``name`` (not Python's salted hash)."""
    return _FALLBACK[zlib.crc32(name.encode()) % len(_FALLBACK)]


def strategy_color(name: str) -> str:
    """The colour of strategy or model ``name``: fixed for the course's names, else stable per name.

    A name outside :data:`STRATEGY_COLORS` gets a colour from a palette chosen by a checksum of the
    name (not Python's salted ``hash``), so it too is the same in every panel, run and chapter.
    """
    if name in STRATEGY_COLORS:
        return STRATEGY_COLORS[name]
    return _stable_color(name)


def scale_color(name: str) -> str:
    """The colour of scale ``name``: :data:`COLORS` for the course's scales, else stable per name.

    Names are matched exactly: ``"1D"`` is the daily scale; ``"1d"`` is another name (and gets a
    colour of its own), so a misspelt scale shows up as a colour that differs from the legend.
    """
    if name in COLORS:
        return COLORS[name]
    return _stable_color(name)


# --------------------------------------------------------------------------------------------------
# Figures drawn in more than one place
# --------------------------------------------------------------------------------------------------
def accuracy_bars(
    table: pd.DataFrame,
    *,
    references: Mapping[str, float] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Direction accuracy per model as bars, one per horizon, with the interval as error bars.

    Parameters
    ----------
    table : DataFrame
        Columns ``accuracy``, ``acc_low`` and ``acc_high``, indexed by (``model``, ``horizon``)
        as :func:`msa_lib.evaluate.results_table` returns, or by model alone (one bar each).
        Models with no accuracy at any horizon (the zero-return forecast) are left out.
    references : dict of str to float, optional
        Further accuracies drawn as labelled dashed lines, for example ``{"oracle": 0.64}``. A
        dotted line at 0.5 (a coin flip) is always drawn.
    ax : matplotlib Axes, optional
        Where to draw; default a new 9 x 4 inch figure.

    Returns
    -------
    matplotlib.axes.Axes
        Call ``plt.show()`` to display it.
    """
    missing = {"accuracy", "acc_low", "acc_high"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks the columns {sorted(missing)}; it has {list(table.columns)}")
    references = dict(references or {})
    columns = ("accuracy", "acc_low", "acc_high")
    by_horizon = isinstance(table.index, pd.MultiIndex)
    if by_horizon:
        if table.index.nlevels != 2:
            raise ValueError(f"table's index must be (model, horizon), got {table.index.names}")
        models = list(table.index.get_level_values(0).unique())
        horizons = list(table.index.get_level_values(1).unique())
        wide = {c: table[c].unstack(1).loc[models, horizons] for c in columns}  # [M, H] each
    else:
        models, horizons = list(table.index), ["all"]
        wide = {c: table[c].to_frame("all") for c in columns}  # [M, 1] each
    order = [m for m in models if not wide["accuracy"].loc[m].isna().all()]
    if not order:
        raise ValueError("no model in table has an accuracy")
    acc, low, high = (wide[c].loc[order].to_numpy(dtype=float) for c in columns)  # [M, H] each
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(horizons)
    positions = np.arange(len(order))
    for j, horizon in enumerate(horizons):
        x = positions + (j - (len(horizons) - 1) / 2) * width
        ax.bar(x, acc[:, j], width, label=horizon if by_horizon else "_nolegend_")
        ax.errorbar(x, acc[:, j], yerr=[acc[:, j] - low[:, j], high[:, j] - acc[:, j]],
                    fmt="none", ecolor="black", lw=0.8)
    ax.axhline(0.5, ls=":", color="grey")
    for label, value in references.items():
        ax.axhline(value, ls="--", color="black", lw=1, label=label)
    ax.set_xticks(positions, order, rotation=30, ha="right")
    top = float(np.nanmax([*np.ravel(high), *references.values()]))
    ax.set_ylim(min(0.4, float(np.nanmin(low)) - 0.02), max(0.75, top + 0.02))
    ax.set_ylabel("direction accuracy")
    if by_horizon:
        ax.legend(title="horizon", ncols=len(horizons) + len(references))
    elif references:
        ax.legend()  # the reference lines only: one bar per model needs no key
    return ax


def equity_figure(
    results: Mapping[str, Any],
    *,
    drawdown: bool = False,
    log_y: bool = True,
    title: str | None = None,
    height: int | None = None,
) -> go.Figure:
    """Equity curves of backtests (plotly), each strategy in its :func:`strategy_color`.

    Parameters
    ----------
    results : dict of str to BacktestResult
        Strategy name -> :func:`msa_lib.backtest.run_backtest`'s result (its ``equity`` and
        ``drawdown`` are drawn), in legend order.
    drawdown : bool, default False
        Add a lower panel with each strategy's drawdown, in the same colour.
    log_y : bool, default True
        Logarithmic equity axis (equal ratios look equal).
    title : str, optional
    height : int, optional
        Pixels; default 520 with the drawdown panel, else 380.

    Returns
    -------
    plotly.graph_objects.Figure
        Call ``fig.show()`` to display it, or ``fig.write_html(...)``.
    """
    if len(results) == 0:
        raise ValueError("results is empty: no equity curve to draw")
    if drawdown:
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35],
                            vertical_spacing=0.05)
    else:
        fig = go.Figure()
    for name, result in results.items():
        colour = strategy_color(name)  # the same colour in both panels
        equity = result.equity
        panel = {"row": 1, "col": 1} if drawdown else {}
        fig.add_scatter(x=equity.index, y=equity.to_numpy(), name=name, mode="lines",
                        legendgroup=name, line_color=colour, **panel)
        if drawdown:
            dd = result.drawdown
            fig.add_scatter(x=dd.index, y=dd.to_numpy(), name=name, mode="lines",
                            legendgroup=name, line_color=colour, showlegend=False, row=2, col=1)
    fig.update_yaxes(type="log" if log_y else "linear", title_text="equity (start = 1)",
                     **({"row": 1, "col": 1} if drawdown else {}))
    if drawdown:
        fig.update_yaxes(title_text="drawdown", tickformat=".0%", row=2, col=1)
    fig.update_layout(height=height or (520 if drawdown else 380),
                      margin={"t": 40 if title else 30}, title=title,
                      legend={"orientation": "h", "y": -0.12 if drawdown else -0.15})
    return fig


def equity_plot(
    results: Mapping[str, Any],
    *,
    log_y: bool = False,
    title: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Equity curves of backtests (matplotlib), each strategy in its :func:`strategy_color`.

    The static twin of :func:`equity_figure`, for image files (``msa backtest`` writes one) and
    printed pages. Parameters as there; ``ax`` is where to draw (default a new 9 x 4 inch figure).

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.figure.savefig(...)`` or ``plt.show()``.
    """
    if len(results) == 0:
        raise ValueError("results is empty: no equity curve to draw")
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    for name, result in results.items():
        equity = result.equity
        ax.plot(equity.index, equity.to_numpy(), label=name, linewidth=1.2,
                color=strategy_color(name))
    if log_y:
        ax.set_yscale("log")
    ax.set_ylabel("equity (start = 1)")
    if title:
        ax.set_title(title)
    ax.legend()
    ax.figure.autofmt_xdate()
    return ax


def attention_heatmap(
    weights: Any,
    key_scales: Sequence[str],
    row_labels: Sequence[str],
    *,
    height: int | None = None,
) -> go.Figure:
    """Attention weights over the tokens of every scale, one row per query (plotly heatmap).

    Parameters
    ----------
    weights : array ``[R, N_keys]``
        Row ``r``: how query ``r`` spreads its attention over the keys (averaged over samples, or
        heads, as the caller chooses).
    key_scales : sequence of str, length ``N_keys``
        The scale of each key. Keys of one scale are consecutive, oldest to newest, as the
        network concatenates them; each key is labelled by its scale and age (``"1h now"``,
        ``"1h -3"``: three bars of that scale ago) and white lines separate the scales.
    row_labels : sequence of str, length ``R``
    height : int, optional
        Pixels; default grows with the number of rows.

    Returns
    -------
    plotly.graph_objects.Figure
        Call ``fig.show()`` to display it.
    """
    z = np.asarray(weights, dtype=float)  # [R, N_keys]
    if z.ndim != 2:
        raise ValueError(f"weights must be 2-D [rows, keys], got shape {z.shape}")
    scales = [str(s) for s in key_scales]
    if len(scales) != z.shape[1]:
        raise ValueError(f"{len(scales)} key scales for {z.shape[1]} key columns of weights")
    if len(row_labels) != z.shape[0]:
        raise ValueError(f"{len(row_labels)} row labels for {z.shape[0]} rows of weights")
    # runs of consecutive keys of one scale; the age counts back from the run's newest key
    starts = [0] + [i for i in range(1, len(scales)) if scales[i] != scales[i - 1]]
    ends = starts[1:] + [len(scales)]
    labels = []
    for start, end in zip(starts, ends, strict=True):
        for age in range(end - start - 1, -1, -1):
            labels.append(f"{scales[start]} {'now' if age == 0 else f'-{age}'}")
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=list(row_labels), colorscale="Viridis", colorbar={"title": "weight"},
        hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>"))
    for edge in starts[1:]:
        fig.add_vline(x=edge - 0.5, line_color="white", line_width=2)
    order = list(dict.fromkeys(scales[i] for i in starts))
    fig.update_layout(
        height=height or max(330, 90 + 22 * z.shape[0]), margin={"t": 30},
        yaxis_autorange="reversed",
        xaxis={"tickangle": -60, "nticks": 30,
               "title": f"keys: {' | '.join(order)} (oldest to newest within each)"})
    return fig


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
