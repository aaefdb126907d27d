"""Tests for msa_lib.datasets: the synthetic market, its oracle, and the bundled real data.

The market plants three parts (see the module docstring): a slow daily state ``s``, 1-minute volume
bursts whose sign ``e`` a reversal hides from coarser bars, and a jump of ``s * e * jump_size``
``reaction_delay`` minutes after each burst. Each test below recomputes one documented rule from
the bars or the truth table, independently of the code that planted it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from msa_lib.data import resample_ohlcv, validate_ohlcv
from msa_lib.datasets import (
    DATASETS,
    MarketParams,
    load_dataset,
    simulate_instruments,
    simulate_market,
)

DAYS = 12


@pytest.fixture(scope="module")
def market():
    return simulate_market(days=DAYS, seed=3)


@pytest.fixture(scope="module")
def big_market():
    """Enough bursts (about 2,400) for statistical claims; both states occur."""
    return simulate_market(days=20, seed=11)


def _bursts(market) -> np.ndarray:
    """Positions of the burst bars."""
    return np.flatnonzero(market.truth["event"].to_numpy())


# ---------------------------------------------------------------------------------------------
# bars and reproducibility
# ---------------------------------------------------------------------------------------------
def test_bars_follow_the_conventions(market):
    bars, truth = market.bars, market.truth
    validate_ohlcv(bars)
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == "float64").all()
    assert bars.index.name == "time" and str(bars.index.tz) == "UTC"
    assert bars.index[0] == pd.Timestamp("2024-01-01 00:01", tz="UTC")  # close of the first minute
    assert len(bars) == DAYS * 1440
    assert (bars.index[1:] - bars.index[:-1] == pd.Timedelta("1min")).all()
    np.testing.assert_array_equal(bars["open"].to_numpy()[1:], bars["close"].to_numpy()[:-1])
    assert np.isclose(bars["open"].iloc[0], market.params.start_price, rtol=1e-12)
    assert truth.index.equals(bars.index)
    assert list(truth.columns) == ["state", "event", "event_sign", "jump", "reversal", "sigma",
                                   "season", "log_return"]
    # every bar's log return, the first one included, is the truth's
    log_return = np.log(bars["close"].to_numpy() / bars["open"].to_numpy())
    np.testing.assert_allclose(log_return, truth["log_return"].to_numpy(), rtol=0, atol=1e-12)


def test_same_seed_same_market_other_seed_other_market():
    a, b, c = (simulate_market(days=2, seed=s) for s in (5, 5, 6))
    pd.testing.assert_frame_equal(a.bars, b.bars)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert not np.allclose(a.bars["close"], c.bars["close"])
    assert not a.truth["event"].equals(c.truth["event"])


# ---------------------------------------------------------------------------------------------
# the planted parts, recomputed
# ---------------------------------------------------------------------------------------------
def test_state_is_the_sign_of_completed_daily_bars_ending_the_day_before_yesterday(market):
    p = market.params
    daily = resample_ohlcv(market.bars, "1D")  # close-labelled: the bar stamped midnight D closes day D-1
    assert len(daily) == DAYS
    # log_close[j + 1] closes data day j; log_close[0] is the price when day 0 opens
    log_close = np.log(np.r_[market.bars["open"].iloc[0], daily["close"].to_numpy()])
    state = market.truth["state"]
    day_of_bar = (state.index - pd.Timedelta("1min")).floor("D")  # 24:00 belongs to the day it ends
    days = day_of_bar.unique()
    checked = 0
    for k in range(p.state_days + 1, DAYS):  # day k needs the close of day k - 2 - state_days >= -1
        move = log_close[k - 1] - log_close[k - 1 - p.state_days]  # closes of days k-2-state_days, k-2
        in_day = state[day_of_bar == days[k]]
        assert len(in_day) == 1440 and in_day.nunique() == 1, f"state changes within day {k}"
        assert in_day.iloc[0] == (1 if move >= 0 else -1), f"day {k}"
        checked += 1
    assert checked == DAYS - p.state_days - 1
    assert set(state.unique()) == {-1, 1}


def test_bursts_follow_their_rules_and_trade_event_volume_times_the_usual(market):
    p = dataclasses.replace(MarketParams(), volume_noise=0.0)  # volume is then a formula
    quiet = simulate_market(days=3, seed=4, params=p)
    truth, volume = quiet.truth, quiet.bars["volume"].to_numpy()
    event = truth["event"].to_numpy()
    usual = p.volume_base * truth["season"] * (1 + p.volume_return_sensitivity
                                               * np.abs(truth["log_return"]) / truth["sigma"])
    np.testing.assert_allclose(volume[event] / usual.to_numpy()[event], p.event_volume, rtol=1e-12)
    np.testing.assert_allclose(volume[~event] / usual.to_numpy()[~event], 1.0, rtol=1e-12)

    event = market.truth["event"].to_numpy()
    delay = market.params.reaction_delay
    assert 0.07 < event.mean() < market.params.event_rate  # the rules drop some candidates
    assert not (event[1:] & event[:-1]).any(), "a burst right after a burst"
    assert not (event[delay:] & event[:-delay]).any(), "a burst in a minute where a jump lands"


def test_burst_sign_is_the_burst_bars_direction_and_a_coin_flip(market):
    bars, truth = market.bars, market.truth
    b = _bursts(market)
    e = truth["event_sign"].to_numpy()
    one_minute = np.sign(bars["close"].to_numpy() - bars["open"].to_numpy())
    np.testing.assert_array_equal(e[b], one_minute[b])  # the 1-minute bar shows e exactly
    assert set(np.unique(e[b])) == {-1, 1}
    assert (e[~truth["event"].to_numpy()] == 0).all()
    assert abs(e[b].mean()) < 0.1  # up as often as down (about 1,400 bursts)
    spike = np.abs(truth["log_return"].to_numpy()[b]) / truth["sigma"].to_numpy()[b]
    assert 3.0 < np.median(spike) < 5.0  # spike_size = 4 noise scales, give or take the noise


def test_reversal_undoes_the_burst_bars_whole_move(market):
    bars, truth = market.bars, market.truth
    b = _bursts(market)
    b = b[b + 1 < len(bars)]
    reversal, log_return = truth["reversal"].to_numpy(), truth["log_return"].to_numpy()
    np.testing.assert_array_equal(reversal[b + 1], -log_return[b])
    others = np.ones(len(bars), dtype=bool)
    others[b + 1] = False
    others[0] = False  # may undo a burst of the burn-in
    assert (reversal[others] == 0).all()
    # from the bars: over the burst bar and the next one, the spike is gone; only noise is left
    log_open, log_close = np.log(bars["open"].to_numpy()), np.log(bars["close"].to_numpy())
    sigma = truth["sigma"].to_numpy()
    no_jump = truth["jump"].to_numpy()[b + 1] == 0
    two_bars = (log_close[b + 1] - log_open[b])[no_jump] / sigma[b + 1][no_jump]
    one_bar = (log_close[b] - log_open[b]) / sigma[b]
    assert np.median(np.abs(one_bar)) > 3.0
    assert np.median(np.abs(two_bars)) < 1.0  # |t_4| noise has a median of about 0.53


def test_jumps_land_reaction_delay_after_bursts_with_sign_state_times_burst_sign(market):
    p, truth = market.params, market.truth
    delay, n = p.reaction_delay, len(truth)
    b = _bursts(market)
    b = b[b + delay < n]
    jump = truth["jump"].to_numpy()
    state, e = truth["state"].to_numpy(), truth["event_sign"].to_numpy()
    # the state of the burst's day, even when the jump lands on the next day
    np.testing.assert_allclose(jump[b + delay], state[b] * e[b] * p.jump_size, rtol=1e-15)
    assert p.jump_size == p.signal_strength * p.minute_vol
    crosses = state[b] != state[b + delay]
    assert crosses.any(), "no burst whose jump lands on a day with the other state: pick a seed"
    landed = np.flatnonzero(jump)
    # no jump anywhere else (the first `delay` minutes may hold jumps of burn-in bursts)
    np.testing.assert_array_equal(landed[landed >= delay], b + delay)


# ---------------------------------------------------------------------------------------------
# the oracle
# ---------------------------------------------------------------------------------------------
def _brute_force_expected(truth: pd.DataFrame, params: MarketParams, t: int, horizon: int) -> float:
    """E[log C_{t+H} - log C_t | observable at t], one minute at a time from the documented rules.

    A minute ``u`` in ``(t, t + H]`` has a known mean when a burst at ``u - delay <= t`` announced
    its jump, or when ``u = t + 1`` undoes a burst at ``t``. Everything else averages zero.
    """
    event, e = truth["event"].to_numpy(), truth["event_sign"].to_numpy()
    state, log_return = truth["state"].to_numpy(), truth["log_return"].to_numpy()
    delay, total = params.reaction_delay, 0.0
    for u in range(t + 1, t + horizon + 1):
        burst = u - delay
        if burst <= t and event[burst]:
            total += state[burst] * e[burst] * params.jump_size
        if u == t + 1 and event[t]:
            total -= log_return[t]
    return total


@pytest.mark.parametrize("horizon", [1, 5, 30, 45, 90])  # 45 and 90 minutes: beyond the delay
def test_oracle_equals_a_brute_force_conditional_mean(market, horizon):
    p, truth = market.params, market.truth
    expected = market.expected_return(horizon).to_numpy()
    n = len(expected)
    rng = np.random.default_rng(horizon)
    b = _bursts(market)
    b = b[(b >= p.reaction_delay) & (b < n - horizon - p.reaction_delay)]  # all bursts are known
    candidates = np.r_[rng.integers(p.reaction_delay, n - horizon, size=60),  # anywhere
                       b[:20],                                                # a burst at t
                       b[20:40] + 5]                                          # a jump pending
    nonzero = 0
    for t in candidates:
        brute = _brute_force_expected(truth, p, int(t), horizon)
        assert np.isclose(expected[t], brute, rtol=1e-9, atol=1e-12), (t, expected[t], brute)
        nonzero += brute != 0
    assert nonzero >= 20  # the comparison is not all zeros
    assert np.isnan(expected[n - horizon:]).all() and not np.isnan(expected[n - horizon - 1])


def test_oracle_is_unbiased_and_far_better_than_chance(big_market):
    m = big_market
    e, f = m.expected_return("30min"), m.forward_return("30min")
    ok = e.notna() & f.notna()
    slope = np.polyfit(e[ok], f[ok], 1)[0]
    assert 0.9 < slope < 1.1  # realised returns move one-for-one with the planted mean
    for horizon, floor in [("5min", 0.62), ("15min", 0.72), ("30min", 0.78)]:
        assert m.oracle_accuracy(horizon) > floor, horizon


def test_direction_needs_both_the_state_and_the_burst_sign(big_market):
    """After each burst (once its reversal is done), the next 30 minutes go the way s * e says;
    s alone and e alone are coin flips when both states weigh the same."""
    m = big_market
    b = m.truth.index[m.truth["event"].to_numpy()]
    forward = m.forward_return("30min").reindex(b + pd.Timedelta("1min")).to_numpy()  # holds the jump
    ok = ~np.isnan(forward)
    s = m.truth["state"].reindex(b).to_numpy()[ok]
    e = m.truth["event_sign"].reindex(b).to_numpy()[ok]
    up = forward[ok] > 0
    assert (s > 0).sum() > 300 and (s < 0).sum() > 300

    def balanced_hit(rule: np.ndarray) -> float:
        """Hit rate of ``rule > 0`` for "up", both states weighted equally."""
        right = (rule > 0) == up
        return 0.5 * (right[s > 0].mean() + right[s < 0].mean())

    assert balanced_hit(s * e) > 0.65
    assert abs(balanced_hit(e) - 0.5) < 0.04  # the burst's sign alone
    assert abs(balanced_hit(s) - 0.5) < 0.04  # the state alone


def test_without_signal_only_the_reversal_is_predictable():
    flat = simulate_market(days=10, seed=11, signal_strength=0.0)
    truth = flat.truth
    assert (truth["jump"] == 0).all()
    reversal_next = np.r_[truth["reversal"].to_numpy()[1:], 0.0]
    for horizon in ("5min", "30min"):
        expected = flat.expected_return(horizon).to_numpy()
        ok = ~np.isnan(expected)
        np.testing.assert_array_equal(expected[ok], reversal_next[ok])
        assert flat.oracle_accuracy(horizon) < 0.56
    at_bursts = truth.index[truth["event"].to_numpy()]
    assert flat.oracle_accuracy("5min", at_bursts) > 0.8  # the reversal itself is known


def test_horizon_longer_than_the_data_gives_nan_not_garbage():
    one_day = simulate_market(days=1, seed=0)
    for horizon in (1440, 2000, 3000):  # 2000: once returned numbers and crashed forward_return
        assert one_day.expected_return(horizon).isna().all()
        assert one_day.forward_return(horizon).isna().all()
        with pytest.raises(ValueError, match="no decision time has a full"):
            one_day.oracle_accuracy(horizon)
    assert one_day.forward_return(1439).notna().sum() == 1


# ---------------------------------------------------------------------------------------------
# settings are checked
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [("signal_strength", -1.0), ("event_rate", 0.0), ("event_rate", 0.6), ("event_volume", 0.5),
     ("spike_size", -1.0), ("reaction_delay", 0), ("reaction_delay", 1440), ("state_days", 0),
     ("minute_vol", 0.0), ("season_amplitude", 1.0), ("vol_half_life_minutes", 0.0),
     ("vol_of_vol", -0.1), ("tail_dof", 2.0), ("volume_base", 0.0),
     ("volume_return_sensitivity", -1.0), ("volume_noise", -0.1), ("substeps", 0),
     ("start_price", 0.0), ("burn_in_days", 2)],  # state_days + 2 = 3 days are needed
)
def test_bad_params_raise_and_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"MarketParams: {field} must"):
        MarketParams(**{field: value})


def test_params_are_frozen_and_calls_are_checked():
    p = MarketParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.signal_strength = 0.1  # type: ignore[misc]
    with pytest.raises(ValueError, match="signal_strength"):
        simulate_market(days=1, signal_strength=-2.0)
    with pytest.raises(ValueError, match="days must be a positive int"):
        simulate_market(days=0)
    with pytest.raises(ValueError, match="midnight"):
        simulate_market(days=1, start="2024-01-01 05:00")
    with pytest.raises(ValueError, match="not a positive whole number of minutes"):
        simulate_market(days=1).expected_return("90s")


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


# ---------------------------------------------------------------------------------------------
# simulate_market's draws must not change: published evidence depends on them
# ---------------------------------------------------------------------------------------------
def test_simulate_market_bars_are_bit_identical_to_the_published_ones():
    """Regression guard, not a derivation: these SHA-256 digests of the bars (values, then the int64
    nanosecond index) were computed with simulate_market BEFORE it was split into helpers for
    simulate_instruments. Any change to its random draws or their order changes them."""
    expected = {
        (0, None): "1890a6f1d234dbc827415cbb9641ea53e30706c46a828ad2091ede912db20888",
        (1, 2.0): "3b184b491399cf2519245a8d705429087ea176dc182957ec818d596f0b1bd25e",
    }
    for (seed, strength), digest in expected.items():
        bars = simulate_market(days=3, seed=seed, signal_strength=strength).bars
        data = np.ascontiguousarray(bars.to_numpy()).tobytes() + bars.index.as_unit("ns").asi8.tobytes()
        assert hashlib.sha256(data).hexdigest() == digest, (seed, strength)


# ---------------------------------------------------------------------------------------------
# several correlated instruments
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def instruments():
    return simulate_instruments(("AAA", "BBB", "CCC"), days=6, seed=5, correlation=0.6)


def _quiet_returns(markets) -> dict[str, np.ndarray]:
    """Minute log returns (from the bars) on minutes without a planted part in any instrument."""
    quiet = None
    returns = {}
    for name, m in markets.items():
        returns[name] = np.diff(np.log(m.bars["close"].to_numpy()))
        t = m.truth.iloc[1:]
        mine = ~t["event"].to_numpy() & (t["reversal"].to_numpy() == 0) & (t["jump"].to_numpy() == 0)
        quiet = mine if quiet is None else quiet & mine
    return {name: r[quiet] for name, r in returns.items()}


@pytest.mark.parametrize("correlation", [0.0, 0.3, 0.8])
def test_minute_returns_have_the_requested_correlation(correlation):
    markets = simulate_instruments(("AAA", "BBB"), days=4, seed=1, correlation=correlation)
    quiet = _quiet_returns(markets)
    assert len(quiet["AAA"]) > 2000
    realised = np.corrcoef(quiet["AAA"], quiet["BBB"])[0, 1]
    assert abs(realised - correlation) < 0.06, realised


def test_each_instrument_keeps_its_own_planted_structure_and_oracle(instruments):
    truths = [m.truth for m in instruments.values()]
    # own bursts and own states: not copies of each other
    assert (truths[0]["event"] != truths[1]["event"]).mean() > 0.1
    for m in instruments.values():
        b = np.flatnonzero(m.truth["event"].to_numpy())
        b = b[b + m.params.reaction_delay < len(m.truth)]
        jumps = m.truth["jump"].to_numpy()[b + m.params.reaction_delay]
        planted = m.truth["state"].to_numpy()[b] * m.truth["event_sign"].to_numpy()[b] * m.params.jump_size
        np.testing.assert_allclose(jumps, planted, rtol=1e-12)
        for horizon, floor in [("5min", 0.62), ("15min", 0.72), ("30min", 0.78)]:
            assert m.oracle_accuracy(horizon) > floor, (m, horizon)
        e, f = m.expected_return("30min"), m.forward_return("30min")
        ok = e.notna() & f.notna()
        assert 0.85 < np.polyfit(e[ok], f[ok], 1)[0] < 1.15  # the oracle is the conditional mean


def test_instruments_differ_in_level_and_volatility_and_are_reproducible(instruments):
    levels = [m.bars["close"].median() for m in instruments.values()]
    vols = [np.diff(np.log(m.bars["close"].to_numpy())).std() for m in instruments.values()]
    assert max(levels) / min(levels) > 100 and max(vols) / min(vols) > 1.5
    again = simulate_instruments(("AAA", "BBB", "CCC"), days=6, seed=5, correlation=0.6)
    for name, m in instruments.items():
        pd.testing.assert_frame_equal(m.bars, again[name].bars)
        validate_ohlcv(m.bars)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"correlation": 1.0}, r"correlation must be a number in \[0, 1\)"),
     ({"correlation": -0.1}, r"correlation must be a number in \[0, 1\)"),
     ({"names": ("AAA", "AAA")}, r"duplicated instrument name\(s\) \['AAA'\]"),
     ({"names": ()}, "at least one instrument name"),
     ({"names": "AAA"}, "got the string"),
     ({"params": {"AAA": MarketParams()}, "names": ("AAA", "BBB")}, r"no MarketParams .*\['BBB'\]"),
     ({"params": {"AAA": MarketParams(), "BBB": MarketParams(tail_dof=5.0)}, "names": ("AAA", "BBB")},
      "tail_dof of 'BBB'")],
)
def test_bad_instrument_settings_raise_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_instruments(**{"days": 1, **kwargs})
