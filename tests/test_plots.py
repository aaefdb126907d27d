"""Tests for msa_lib.plots: the shared figures draw exactly the numbers they are given."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported (by msa_lib.plots): no window in tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from msa_lib import plots  # noqa: E402
from msa_lib.backtest import run_backtest  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_scale_colors_are_fixed_and_exact() -> None:
    assert plots.scale_color("1D") == plots.COLORS["1D"] == "#d62728"
    assert plots.scale_color("1min") == plots.COLORS["1min"]
    # a misspelt daily scale is not silently the daily colour; other scales get a stable colour
    assert plots.scale_color("1d") != plots.COLORS["1D"]
    assert plots.scale_color("4h") == plots.scale_color("4h")
    assert plots.strategy_color("last sign") == plots.STRATEGY_COLORS["last sign"]


def _table() -> pd.DataFrame:
    rows = []
    for model, accs in {"zero return": [np.nan, np.nan], "net": [0.6, 0.55],
                        "last sign": [0.5, 0.45]}.items():
        for horizon, acc in zip(["5min", "1h"], accs, strict=True):
            rows.append({"model": model, "horizon": horizon, "accuracy": acc,
                         "acc_low": acc - 0.02, "acc_high": acc + 0.03})
    return pd.DataFrame(rows).set_index(["model", "horizon"])


def test_accuracy_bars_draws_each_accuracy_with_its_interval() -> None:
    table = _table()
    ax = plots.accuracy_bars(table, references={"oracle": 0.7})
    heights = [p.get_height() for p in ax.patches]
    # models in table order, the one without an accuracy left out; first every 5min bar, then 1h
    np.testing.assert_allclose(heights, [0.6, 0.5, 0.55, 0.45])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["net", "last sign"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["oracle", "5min", "1h"]
    # error bars run from acc_low to acc_high
    segments = np.concatenate([c.get_segments() for c in ax.collections])  # [bars, 2, 2]
    spans = sorted((round(s[0][1], 6), round(s[1][1], 6)) for s in segments)
    assert spans == sorted((round(a - 0.02, 6), round(a + 0.03, 6)) for a in heights)
    lines = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines()}
    assert lines["oracle"] == 0.7
    assert ax.get_ylim()[1] >= 0.75


def test_accuracy_bars_one_horizon_and_errors() -> None:
    table = pd.DataFrame({"accuracy": [0.8, 0.52], "acc_low": [0.78, 0.5],
                          "acc_high": [0.82, 0.54]}, index=["leaky", "causal"])
    ax = plots.accuracy_bars(table, references={"oracle": 0.6})
    np.testing.assert_allclose([p.get_height() for p in ax.patches], [0.8, 0.52])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["oracle"]
    assert ax.get_ylim()[1] == pytest.approx(0.84)
    with pytest.raises(ValueError, match=r"lacks the columns \['acc_high', 'acc_low'\]"):
        plots.accuracy_bars(table[["accuracy"]])
    with pytest.raises(ValueError, match="no model in table has an accuracy"):
        plots.accuracy_bars(table.assign(accuracy=np.nan))


def _results() -> dict:
    times = pd.date_range("2024-01-01", periods=30, freq="h", tz="UTC")
    close = pd.Series(100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.01, 30))),
                      index=times)
    long = pd.Series(1.0, index=times[:-1])
    return {"buy and hold": run_backtest(long, close),
            "last sign": run_backtest(np.sign(close.diff().fillna(1.0)).iloc[:-1], close)}


def test_equity_figure_draws_every_curve_in_its_colour() -> None:
    results = _results()
    fig = plots.equity_figure(results)
    assert [t.name for t in fig.data] == ["buy and hold", "last sign"]
    np.testing.assert_allclose(fig.data[1].y, results["last sign"].equity.to_numpy())
    assert fig.data[1].line.color == plots.strategy_color("last sign")
    assert fig.layout.yaxis.type == "log"
    both = plots.equity_figure(results, drawdown=True, log_y=False)
    assert len(both.data) == 4
    np.testing.assert_allclose(both.data[3].y, results["last sign"].drawdown.to_numpy())
    assert both.data[3].line.color == both.data[2].line.color  # same colour in both panels
    assert both.data[3].showlegend is False and both.layout.yaxis.type == "linear"
    with pytest.raises(ValueError, match="results is empty"):
        plots.equity_figure({})


def test_equity_plot_matches_the_interactive_one() -> None:
    results = _results()
    ax = plots.equity_plot(results, title="t")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == list(results)
    np.testing.assert_allclose(lines[0].get_ydata(), results["buy and hold"].equity.to_numpy())
    assert lines[1].get_color() == plots.strategy_color("last sign")
    assert ax.get_title() == "t"


def test_attention_heatmap_labels_keys_by_scale_and_age() -> None:
    weights = np.arange(2 * 5, dtype=float).reshape(2, 5) / 10  # [2 queries, 5 keys]
    fig = plots.attention_heatmap(weights, ["1min", "1min", "1min", "1D", "1D"],
                                  ["query 1min", "query 1D"])
    heat = fig.data[0]
    assert list(heat.x) == ["1min -2", "1min -1", "1min now", "1D -1", "1D now"]
    assert list(heat.y) == ["query 1min", "query 1D"]
    np.testing.assert_array_equal(np.asarray(heat.z), weights)
    assert [shape.x0 for shape in fig.layout.shapes] == [2.5]  # one line between the scales
    assert "1min | 1D" in fig.layout.xaxis.title.text
    with pytest.raises(ValueError, match="4 key scales for 5 key columns"):
        plots.attention_heatmap(weights, ["1min"] * 4, ["a", "b"])
    with pytest.raises(ValueError, match="1 row labels for 2 rows"):
        plots.attention_heatmap(weights, ["1min"] * 5, ["a"])
