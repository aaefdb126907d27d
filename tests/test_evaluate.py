"""Tests for msa_lib.evaluate: scores against values worked out by hand, bootstrap on built cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from msa_lib import evaluate as ev


def _frozen(*arrays: np.ndarray) -> None:
    """Make arrays read-only: any in-place write by the code under test raises."""
    for a in arrays:
        a.flags.writeable = False


# -- point scores ---------------------------------------------------------------------------------
def test_mse_ratio_and_r2_by_hand() -> None:
    y = np.array([1.0, -2.0, 3.0])
    pred = np.array([0.5, -1.0, 1.0])
    _frozen(y, pred)
    # squared errors 0.25 + 1 + 4 = 5.25; zero forecast: 1 + 4 + 9 = 14
    assert ev.mse_ratio(y, pred) == pytest.approx(5.25 / 14)
    assert ev.r2_oos(y, pred) == pytest.approx(1 - 5.25 / 14)
    # against the mean 2/3: (1/3)^2 + (8/3)^2 + (7/3)^2 = 114/9
    assert ev.r2_oos(y, pred, benchmark=2 / 3) == pytest.approx(1 - 5.25 / (114 / 9))


def test_zero_forecast_scores_ratio_one_and_r2_zero() -> None:
    y = np.array([0.3, -0.1, 0.2, -0.4])
    assert ev.mse_ratio(y, np.zeros(4)) == pytest.approx(1.0)
    assert ev.r2_oos(y, np.zeros(4)) == pytest.approx(0.0)
    assert ev.r2_oos(y, y) == pytest.approx(1.0)


def test_scores_are_per_column_for_2d() -> None:
    y = np.array([[1.0, 2.0], [-1.0, 2.0]])
    pred = np.array([[1.0, 0.0], [0.0, 2.0]])
    # column 0: errors 0 + 1 over 2 -> 0.5; column 1: errors 4 + 0 over 8 -> 0.5
    np.testing.assert_allclose(ev.mse_ratio(y, pred), [0.5, 0.5])
    # column 0: calls up/not-up match both times; column 1: the forecast 0 is "not up", wrong once
    np.testing.assert_allclose(ev.direction_accuracy(y, pred), [1.0, 0.5])


def test_direction_accuracy_by_hand_zero_is_not_up() -> None:
    y = np.array([0.1, -0.2, 0.0, 0.3])
    score = np.array([1.0, 1.0, -1.0, -1.0])  # right, wrong, right (0 is "not up"), wrong
    assert ev.direction_accuracy(y, score) == pytest.approx(0.5)
    prob = np.array([0.9, 0.1, 0.2, 0.7])  # all right at threshold 0.5
    assert ev.direction_accuracy(y, prob, threshold=0.5) == pytest.approx(1.0)


def test_bad_inputs_raise_with_location() -> None:
    with pytest.raises(ValueError, match="shape"):
        ev.mse_ratio(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match=r"NaN.*\(1,\)"):
        ev.direction_accuracy(np.array([1.0, np.nan]), np.ones(2))
    with pytest.raises(ValueError, match="zero"):
        ev.mse_ratio(np.zeros(3), np.ones(3))


# -- Wilson interval ------------------------------------------------------------------------------
def test_wilson_8_of_10_by_hand() -> None:
    z = 1.959963984540054  # standard normal 97.5% quantile
    n, p = 10, 0.8
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    low, high = ev.wilson_interval(8, 10)
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-9)
    # the textbook value, to four decimals
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)


def test_wilson_edges_and_confidence() -> None:
    low0, high0 = ev.wilson_interval(0, 20)
    assert low0 == 0.0 and 0 < high0 < 0.2
    lown, highn = ev.wilson_interval(20, 20)
    assert highn == 1.0 and 0.8 < lown < 1
    w90 = np.diff(ev.wilson_interval(30, 50, confidence=0.90))[0]
    w99 = np.diff(ev.wilson_interval(30, 50, confidence=0.99))[0]
    assert w90 < w99
    with pytest.raises(ValueError, match=r"\[0, 10\]"):
        ev.wilson_interval(11, 10)
    with pytest.raises(ValueError, match="positive"):
        ev.wilson_interval(0, 0)


# -- bootstrap ------------------------------------------------------------------------------------
def test_identical_forecasters_give_zero_interval() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    s = rng.normal(size=300)
    res = ev.bootstrap_accuracy_difference(y, s, s.copy(), block_length=5, n_boot=500)
    assert (res.estimate, res.low, res.high) == (0.0, 0.0, 0.0)
    assert not res.excludes_zero


def test_always_right_beats_coin_flip() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=400)
    coin = rng.normal(size=400)
    res = ev.bootstrap_accuracy_difference(y, y, coin, block_length=10, n_boot=1000)
    assert res.low > 0 and res.excludes_zero
    assert res.estimate == pytest.approx(1 - ev.direction_accuracy(y, coin))
    swapped = ev.bootstrap_accuracy_difference(y, coin, y, block_length=10, n_boot=1000)
    assert swapped.high < 0
    assert swapped.low == pytest.approx(-res.high) and swapped.high == pytest.approx(-res.low)


@pytest.mark.parametrize("method", ["circular", "moving"])
def test_block_sums_equal_explicit_resampling(method: str) -> None:
    """The prefix-sum shortcut must equal gluing the blocks together index by index."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=53)  # not a multiple of the block length: the last block is cut
    b, n_boot, seed = 7, 300, 11
    res = ev.block_bootstrap_mean(x, block_length=b, n_boot=n_boot, method=method, seed=seed)

    n = len(x)
    n_blocks = math.ceil(n / b)
    n_starts = n if method == "circular" else n - b + 1
    starts = np.random.default_rng(seed).integers(0, n_starts, size=(n_boot, n_blocks))
    means = []
    for row in starts:
        idx = np.concatenate([(s + np.arange(b)) % n for s in row])[:n]
        means.append(x[idx].mean())
    low, high = np.quantile(means, [0.025, 0.975])
    assert res.low == pytest.approx(low) and res.high == pytest.approx(high)
    assert res.estimate == pytest.approx(x.mean())


def test_bootstrap_width_matches_iid_theory() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=2000)
    res = ev.block_bootstrap_mean(x, block_length=1, n_boot=2000)
    expected = 2 * 1.96 * x.std() / math.sqrt(len(x))
    assert res.high - res.low == pytest.approx(expected, rel=0.15)
    assert res.low < x.mean() < res.high


def test_bootstrap_constant_series_and_bad_block() -> None:
    res = ev.block_bootstrap_mean(np.full(50, 0.25), block_length=5, n_boot=100)
    assert res.low == pytest.approx(0.25) and res.high == pytest.approx(0.25)
    with pytest.raises(ValueError, match="block_length"):
        ev.block_bootstrap_mean(np.ones(10), block_length=11)
    with pytest.raises(ValueError, match="method"):
        ev.block_bootstrap_mean(np.ones(10), method="stationary")


# -- tables ---------------------------------------------------------------------------------------
def test_results_table_matches_the_functions() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=(200, 2))
    model = 0.5 * y + rng.normal(size=(200, 2))
    logits = rng.normal(size=(200, 2))
    _frozen(y, model, logits)
    table = ev.results_table(
        pd.DataFrame(y, columns=["15min", "1h"]),
        {
            "zero": {"returns": np.zeros((200, 2)), "direction_score": None},
            "majority": {"direction_score": np.ones((200, 2))},
            "model": model,
            "net": {"returns": model, "direction_logits": logits},
        },
    )
    assert list(table.index.get_level_values("model").unique()) == [
        "zero",
        "majority",
        "model",
        "net",
    ]
    assert list(table.index.get_level_values("horizon").unique()) == ["15min", "1h"]
    assert table.loc[("zero", "1h"), "mse_ratio"] == pytest.approx(1.0)
    assert math.isnan(table.loc[("zero", "1h"), "accuracy"])
    assert math.isnan(table.loc[("majority", "15min"), "mse_ratio"])
    assert table.loc[("majority", "15min"), "accuracy"] == pytest.approx((y[:, 0] > 0).mean())
    assert table.loc[("model", "1h"), "r2_oos"] == pytest.approx(ev.r2_oos(y[:, 1], model[:, 1]))
    # the net's direction comes from its logits, not from the sign of its return forecast
    assert table.loc[("net", "1h"), "accuracy"] == pytest.approx(
        ev.direction_accuracy(y[:, 1], logits[:, 1])
    )
    # the old, ambiguous key is refused rather than silently read as a return forecast
    with pytest.raises(ValueError, match=r"predictions\['m'\] has unknown keys \['direction'\]"):
        ev.results_table(y, {"m": {"direction": np.ones((200, 2))}})
    k = int(round(table.loc[("net", "1h"), "accuracy"] * 200))
    assert (table.loc[("net", "1h"), "acc_low"], table.loc[("net", "1h"), "acc_high"]) == (
        pytest.approx(ev.wilson_interval(k, 200))
    )


def test_accuracy_comparison_perfect_reference() -> None:
    rng = np.random.default_rng(6)
    y = rng.normal(size=(120, 2))
    table = ev.accuracy_comparison(
        y,
        {"oracle": y, "contrarian": -y, "coin": rng.normal(size=(120, 2))},
        "oracle",
        block_length=4,
        n_boot=300,
    )
    assert set(table.index.get_level_values("model")) == {"contrarian", "coin"}
    row = table.loc[("contrarian", "h0")]
    assert row["difference"] == 1.0 and row["low"] == 1.0 and row["above_zero"]
    assert table["above_zero"].all()
    with pytest.raises(KeyError, match="nobody"):
        ev.accuracy_comparison(y, {"a": y}, "nobody")


def test_edge_captured() -> None:
    assert ev.edge_captured(0.6, 0.7, 0.5) == pytest.approx(0.5)
    assert ev.edge_captured(0.5, 0.7, 0.5) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="no edge"):
        ev.edge_captured(0.6, 0.5, 0.5)


# -- reading predictions --------------------------------------------------------------------------
def test_direction_score_reads_each_kind_of_prediction() -> None:
    forecast = np.array([[0.2, -0.1], [-0.3, 0.4]])
    logits = np.array([[-1.0, 2.0], [3.0, -4.0]])
    signs = np.array([[1.0, -1.0], [-1.0, 1.0]])
    prob = np.array([[0.7, 0.2], [0.4, 0.9]])
    _frozen(forecast, logits, signs, prob)
    np.testing.assert_array_equal(ev.direction_score(forecast), forecast)  # a return forecast
    np.testing.assert_array_equal(ev.direction_score({"returns": forecast}), forecast)
    # a dict's explicit score wins over its logits, logits over the return forecast
    np.testing.assert_array_equal(
        ev.direction_score({"direction_score": signs, "direction_logits": logits}), signs
    )
    np.testing.assert_array_equal(
        ev.direction_score({"returns": forecast, "direction_logits": logits}), logits
    )
    np.testing.assert_allclose(ev.direction_score({"direction_prob": prob}), prob - 0.5)
    # the zero-return forecast makes no call
    assert ev.direction_score({"returns": np.zeros((2, 2)), "direction_score": None}) is None
    with pytest.raises(ValueError, match="neither returns nor a direction score"):
        ev.direction_score({"direction_score": None})


def test_direction_hits_by_hand() -> None:
    y = np.array([0.5, -0.2, 0.0, 0.1])
    score = np.array([1.0, 1.0, -1.0, 0.0])  # right, wrong, right (zero is not up), wrong
    _frozen(y, score)
    np.testing.assert_array_equal(ev.direction_hits(y, score), [True, False, True, False])
    assert ev.direction_hits(y, score).mean() == ev.direction_accuracy(y, score)
    np.testing.assert_array_equal(
        ev.direction_hits(y, np.array([0.9, 0.4, 0.6, 0.5]), threshold=0.5),
        [True, True, False, False],
    )
    with pytest.raises(ValueError, match="score has shape"):
        ev.direction_hits(y, score[:3])


# -- intervals for overlapping targets ------------------------------------------------------------
def _hits_in_runs(n_runs: int, run: int, p: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``y`` and a score whose hits come in runs of ``run`` equal values (like targets
    that overlap for ``run`` decision times), each run a hit with probability ``p``."""
    rng = np.random.default_rng(seed)
    y = rng.choice([-1.0, 1.0], size=n_runs * run)
    hits = np.repeat(rng.random(n_runs) < p, run)  # [n_runs * run]
    return y, np.where(hits, y, -y)


def test_overlap_block_length() -> None:
    # 1-hour targets decided every 5 minutes overlap over 12 decisions; blocks 4 times that
    assert ev.overlap_block_length("5min", "1h") == 48
    assert ev.overlap_block_length(5, 60, multiple=1, minimum=1) == 12  # ints count minutes
    assert ev.overlap_block_length("5min", ["15min", "1h", "30min"]) == 48  # the longest decides
    assert ev.overlap_block_length("1h", "1D", multiple=2) == 48
    assert ev.overlap_block_length("5min", "7min", multiple=1, minimum=1) == 2  # partial overlap
    assert ev.overlap_block_length("5min", "5min") == 10  # no overlap: the floor
    with pytest.raises(ValueError, match="multiple"):
        ev.overlap_block_length("5min", "1h", multiple=0.5)
    with pytest.raises(ValueError, match="minimum"):
        ev.overlap_block_length("5min", "1h", minimum=0)
    with pytest.raises(ValueError, match="every"):
        ev.overlap_block_length("0min", "1h")


def test_block_interval_wider_than_wilson_on_runs_of_hits() -> None:
    y, score = _hits_in_runs(n_runs=200, run=12, p=0.55, seed=7)
    _frozen(y, score)
    wilson = ev.results_table(y, {"m": score})
    block = ev.results_table(y, {"m": score}, block_length=48, n_boot=2000)
    assert wilson.loc[("m", "h0"), "interval"] == "wilson"
    assert block.loc[("m", "h0"), "interval"] == "block bootstrap (L=48)"
    assert block.loc[("m", "h0"), "accuracy"] == wilson.loc[("m", "h0"), "accuracy"]
    w_wilson = wilson.loc[("m", "h0"), "acc_high"] - wilson.loc[("m", "h0"), "acc_low"]
    w_block = block.loc[("m", "h0"), "acc_high"] - block.loc[("m", "h0"), "acc_low"]
    # 2400 hits but only 200 independent runs: the honest width is about sqrt(12) ~ 3.5 times
    assert w_block > 2.5 * w_wilson
    # the interval is block_bootstrap_mean of the hits, nothing else
    boot = ev.block_bootstrap_mean(ev.direction_hits(y, score), block_length=48, n_boot=2000)
    assert (block.loc[("m", "h0"), "acc_low"], block.loc[("m", "h0"), "acc_high"]) == (
        pytest.approx((boot.low, boot.high))
    )


def test_block_interval_about_wilson_on_independent_hits() -> None:
    y, score = _hits_in_runs(n_runs=4800, run=1, p=0.55, seed=8)
    wilson = ev.results_table(y, {"m": score}).iloc[0]
    block = ev.results_table(y, {"m": score}, block_length=48, n_boot=2000).iloc[0]
    ratio = (block["acc_high"] - block["acc_low"]) / (wilson["acc_high"] - wilson["acc_low"])
    assert ratio == pytest.approx(1.0, abs=0.15)


def test_results_table_interval_column_and_bad_block_length() -> None:
    y = np.array([[0.1, -0.2], [0.3, 0.1], [-0.1, 0.2]])
    table = ev.results_table(
        y,
        {"zero": {"returns": np.zeros((3, 2)), "direction_score": None}, "m": y},
        block_length=2,
        n_boot=50,
    )
    assert table["interval"].isna()[("zero", "h1")]
    assert (table.xs("m", level="model")["interval"] == "block bootstrap (L=2)").all()
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="block_length"):
            ev.results_table(y, {"m": y}, block_length=bad)
    with pytest.raises(ValueError, match=r"block_length must lie in \[1, N\] = \[1, 3\]"):
        ev.results_table(y, {"m": y}, block_length=4)
    with pytest.raises(ValueError, match="block_length"):
        ev.accuracy_comparison(y, {"a": y, "b": -y}, "a", block_length=0)


# -- p-values and Holm ----------------------------------------------------------------------------
def test_holm_by_hand() -> None:
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to 0.06
    np.testing.assert_allclose(ev.holm_adjust([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(ev.holm_adjust([0.7, 0.8]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(ev.holm_adjust([0.02]), [0.02])  # one test: nothing to adjust
    assert ev.holm_adjust([]).shape == (0,)


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ([0.1, 1.2], r"p_values\[1\] = 1.2"),
        ([-0.1], r"p_values\[0\]"),
        ([0.5, math.nan], r"p_values\[1\] = nan"),
    ],
)
def test_holm_refuses_bad_p_values(bad: list[float], where: str) -> None:
    with pytest.raises(ValueError, match=where):
        ev.holm_adjust(bad)


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=30))
def test_holm_properties(p: list[float]) -> None:
    raw = np.array(p)
    adj = ev.holm_adjust(raw)
    assert ((adj >= raw) & (adj <= 1.0)).all()
    assert (adj <= np.minimum(1.0, len(p) * raw) + 1e-12).all()  # never stricter than Bonferroni
    order = np.argsort(raw, kind="stable")
    assert (np.diff(adj[order]) >= 0).all()  # monotone: a smaller p never gets a larger adjusted p
    perm = np.random.default_rng(len(p)).permutation(len(p))
    np.testing.assert_array_equal(ev.holm_adjust(raw[perm]), adj[perm])  # order does not matter


def test_bootstrap_p_value_resolution() -> None:
    # every resampled mean is 1: the observed sample counts once, p = 2 / (n_boot + 1)
    res = ev.block_bootstrap_mean(np.ones(40), block_length=4, n_boot=99)
    assert res.p_value == pytest.approx(2 / 100)
    assert ev.block_bootstrap_mean(np.zeros(40), block_length=4, n_boot=99).p_value == 1.0


def _planted(seed: int, n: int, edge: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Returns for 2 horizons; a reference right with probability 0.5 + edge, two coin flips."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, 2))
    ref = np.where(rng.random((n, 2)) < 0.5 + edge, y, -y)
    return y, {"ref": ref, "coin": rng.normal(size=(n, 2)), "coin 2": rng.normal(size=(n, 2))}


def test_holm_comparison_finds_a_planted_difference() -> None:
    y, preds = _planted(seed=0, n=1500, edge=0.15)
    table = ev.accuracy_comparison(y, preds, "ref", block_length=5, n_boot=999, holm=True)
    assert list(table.columns) == ["difference", "low", "high", "p_value", "p_holm", "above_zero"]
    assert (table["p_holm"] < 0.05).all() and table["above_zero"].all()
    np.testing.assert_allclose(table["p_holm"], ev.holm_adjust(table["p_value"].to_numpy()))
    plain = ev.accuracy_comparison(y, preds, "ref", block_length=5, n_boot=999)
    assert "p_value" not in plain.columns  # old callers see the old table
    pd.testing.assert_frame_equal(
        plain[["difference", "low", "high"]], table[["difference", "low", "high"]]
    )


def test_holm_comparison_rarely_claims_when_there_is_no_difference() -> None:
    claims = 0
    for seed in range(20):
        y, preds = _planted(seed=seed, n=600, edge=0.0)
        table = ev.accuracy_comparison(y, preds, "ref", block_length=5, n_boot=499, holm=True)
        claims += bool(table["above_zero"].any())
        assert table["p_holm"].min() >= table["p_value"].min()
    assert claims <= 3  # family-wise error at most 5%: about 1 of 20 expected


def test_holm_refuses_too_few_resamples() -> None:
    y, preds = _planted(seed=1, n=100, edge=0.1)
    # 4 comparisons: the smallest adjusted p is 2 * 4 / (n_boot + 1); 0.05 needs n_boot >= 160
    with pytest.raises(ValueError, match=r"n_boot=99 .* use n_boot >= 160"):
        ev.accuracy_comparison(y, preds, "ref", block_length=5, n_boot=99, holm=True)


# -- seeds ----------------------------------------------------------------------------------------
def test_seed_summary_by_hand() -> None:
    values = [0.52, 0.55, 0.54, 0.51]
    mean, low, high = ev.seed_summary(values)
    s = np.std(values, ddof=1)
    t3 = 3.182446305284263  # Student t, 3 degrees of freedom, 97.5% quantile
    assert mean == pytest.approx(0.53)
    assert (low, high) == pytest.approx((0.53 - t3 * s / 2, 0.53 + t3 * s / 2))
    low90, high90 = ev.seed_summary(values, confidence=0.90)[1:]
    assert low < low90 < high90 < high
    with pytest.raises(ValueError, match="at least 2 seeds"):
        ev.seed_summary([0.5])
    with pytest.raises(ValueError, match=r"NaN.*seed position 1"):
        ev.seed_summary([0.5, math.nan, 0.4])


def test_paired_seed_difference_by_hand() -> None:
    a = np.array([0.56, 0.58, 0.55, 0.57, 0.60])
    b = np.array([0.54, 0.55, 0.55, 0.54, 0.56])
    d = a - b  # 0.02, 0.03, 0, 0.03, 0.04: mean 0.024
    res = ev.paired_seed_difference(a, b)
    t_stat = d.mean() / (d.std(ddof=1) / math.sqrt(5))  # 0.024 / (0.015166 / sqrt 5)
    assert res.difference == pytest.approx(0.024)
    assert t_stat == pytest.approx(3.5386, abs=1e-4)
    assert res.p_value == pytest.approx(0.01202, abs=1e-5)  # P(T_4 >= 3.5386)
    assert (res.low, res.high) == pytest.approx(tuple(ev.seed_summary(d)[1:]))
    assert res.p_value < 0.05 and res.low > 0 and res.n_seeds == 5
    # the other way round: "b is better" is not supported
    assert ev.paired_seed_difference(b, a).p_value > 0.95
    with pytest.raises(ValueError, match="a_by_seed has 5 seeds, b_by_seed has 4"):
        ev.paired_seed_difference(a, b[:4])


def test_paired_seed_difference_without_spread() -> None:
    res = ev.paired_seed_difference([0.6, 0.7, 0.65], [0.5, 0.6, 0.55])  # always 0.1 better
    assert (res.difference, res.low, res.high) == pytest.approx((0.1, 0.1, 0.1))
    assert res.p_value == 0.0
    assert ev.paired_seed_difference([0.5, 0.6], [0.5, 0.6]).p_value == 1.0
