"""Tests for msa_lib.datasets: the synthetic market, its oracle, and the bundled real data."""

from __future__ import annotations

import dataclasses
import re
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from msa_lib.data import decision_times, resample_ohlcv, validate_ohlcv
from msa_lib.datasets import DATASETS, MarketParams, load_dataset, simulate_market


@pytest.fixture(scope="module")
def market():
    return simulate_market(days=12, seed=3)


def test_bars_follow_the_conventions(market):
    bars = market.bars
    validate_ohlcv(bars)
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == "float64").all()
    assert bars.index.name == "time" and str(bars.index.tz) == "UTC"
    assert bars.index[0] == pd.Timestamp("2024-01-01 00:01", tz="UTC")  # close of the first minute
    assert len(bars) == 12 * 1440 and (np.diff(bars.index.asi8) == np.diff(bars.index.asi8)[0]).all()
    np.testing.assert_array_equal(bars["open"].to_numpy()[1:], bars["close"].to_numpy()[:-1])
    assert market.truth.index.equals(bars.index)
    assert np.allclose(np.log(bars["close"]).diff().to_numpy()[1:], market.truth["log_return"].to_numpy()[1:])


def test_same_seed_same_market_other_seed_other_market():
    a, b, c = (simulate_market(days=2, seed=s) for s in (5, 5, 6))
    pd.testing.assert_frame_equal(a.bars, b.bars)
    assert not np.allclose(a.bars["close"], c.bars["close"])


def test_trend_state_is_computed_from_completed_daily_bars(market):
    p = market.params
    daily = resample_ohlcv(market.bars, "1D")  # close-labelled: the bar at midnight D closes day D-1
    trend = market.truth["trend"]
    log_close = np.log(daily["close"])
    for day in range(p.trend_days + 2, 12):
        # day d uses the return over the trend_days daily bars ending with day d-2's close
        move = log_close.iloc[day - 2] - log_close.iloc[day - 2 - p.trend_days]
        in_day = trend[trend.index.floor("D") == trend.index[0].floor("D") + pd.Timedelta(days=day)]
        states = in_day.iloc[1:].unique()  # the first row (00:01) already belongs to day d
        assert list(states) == [1 if move >= 0 else -1]


def test_oracle_matches_a_plain_recursion(market):
    """expected_return(h) == the planted recursion iterated h times with zero noise (by a loop)."""
    p, truth = market.params, market.truth
    mu = p.trend_drift / 1440
    s = truth["trend"].to_numpy().astype(float)
    y = truth["log_return"].to_numpy() - s * mu
    lag, horizon = p.momentum_minutes, 45
    expected = market.expected_return(horizon).to_numpy()
    rng = np.random.default_rng(0)
    for u in rng.integers(lag, len(y) - horizon - 1, size=20):
        hist = list(y[u - lag + 1 : u + 1])
        total = 0.0
        for j in range(1, horizon + 1):
            sj = s[u + j]
            e = sj * p.beta(sj) * np.mean(hist[-lag:])
            hist.append(e)
            total += e + sj * mu
        assert np.isclose(expected[u], total, rtol=1e-9, atol=1e-14)
    assert np.isnan(expected[-horizon:]).all() and not np.isnan(expected[-horizon - 1])


def test_oracle_is_unbiased_and_beats_chance():
    m = simulate_market(days=20, seed=11)
    e, f = m.expected_return("1h"), m.forward_return("1h")
    ok = e.notna()
    slope = np.polyfit(e[ok], f[ok], 1)[0]
    assert 0.8 < slope < 1.2  # realised returns move one-for-one with the planted mean
    assert m.oracle_accuracy("1h") > 0.58
    flat = simulate_market(days=20, seed=11, signal_strength=0.0)  # only the small trend drift
    assert flat.oracle_accuracy("1h") < m.oracle_accuracy("1h") - 0.06


def test_signal_is_an_interaction_not_a_single_scale_rule():
    m = simulate_market(days=30, seed=1)
    t = decision_times(m.bars, "5min")
    fwd = np.sign(m.forward_return("1h").reindex(t))
    ok = fwd.notna() & (fwd != 0)
    truth, fwd = m.truth.reindex(t)[ok], fwd[ok]
    up = (truth["trend"] > 0).to_numpy()

    def hit(pred: pd.Series) -> float:
        """Direction accuracy with both trend states weighted equally (a balanced market)."""
        right = (np.sign(pred) == fwd).to_numpy()
        return 0.5 * (right[up].mean() + right[~up].mean())

    interaction = hit(truth["trend"] * truth["momentum"])
    assert interaction > 0.58
    assert abs(hit(truth["momentum"]) - 0.5) < 0.03  # continuation wins as often as it loses
    assert abs(hit(-truth["momentum"]) - 0.5) < 0.03


def test_params_are_frozen_and_checked():
    p = MarketParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.signal_strength = 0.1  # type: ignore[misc]
    with pytest.raises(ValueError, match="signal_strength"):
        MarketParams(signal_strength=1.2)
    with pytest.raises(ValueError, match="unstable"):
        MarketParams(signal_strength=0.9, reversal_ratio=40.0)
    with pytest.raises(ValueError, match="longer than one day"):
        simulate_market(days=3).expected_return("2D")
    with pytest.raises(ValueError, match="midnight"):
        simulate_market(days=1, start="2024-01-01 05:00")


# ---------------------------------------------------------------------------------------------
# bundled real data: what the cards promise
# ---------------------------------------------------------------------------------------------
CARDS = {
    "eurusd_1h": (6225, "2017-01-01 23:00", "2017-12-29 22:00"),
    "es_1min": (2264, "2013-09-01 22:01", "2013-09-03 18:52"),
    "spx_1d": (5031, "1999-01-04 21:00", "2018-12-31 21:00"),
}


@pytest.mark.parametrize("name", list(CARDS))
def test_loader_returns_what_its_card_says(name):
    rows, first, last = CARDS[name]
    bars = load_dataset(name)
    validate_ohlcv(bars)
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == "float64").all() and str(bars.index.tz) == "UTC"
    assert len(bars) == rows
    assert bars.index[0] == pd.Timestamp(first, tz="UTC")
    assert bars.index[-1] == pd.Timestamp(last, tz="UTC")
    card = resources.files("msa_lib").joinpath("bundled", f"{name}.md").read_text()
    assert f"{rows:,}" in card and first in card and last in card
    assert re.search(r"licen[cs]e", card, re.IGNORECASE)


def test_unknown_dataset_lists_known_names():
    with pytest.raises(ValueError, match="nope") as info:
        load_dataset("nope")
    assert all(name in str(info.value) for name in DATASETS)
