"""Tests for msa_lib.backtest: timing, costs, sizing and metrics against hand computations.

Every expected value here is computed in the test from the definitions (the price returns, the
formulas of the papers), never by calling the function under test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from msa_lib import backtest as bt

DAY = pd.Timedelta(days=1)


def daily(values, start="2024-01-01"):
    """A Series on consecutive calendar days (a market open every day), in UTC."""
    index = pd.date_range(start, periods=len(values), freq="D", tz="UTC")
    return pd.Series(np.asarray(values, dtype=float), index=index)


@pytest.fixture
def case():
    """Six daily prices whose returns are +10%, -10%, 0, +10%, -10%; five positions."""
    close = daily([100.0, 110.0, 99.0, 99.0, 108.9, 98.01])
    positions = pd.Series([1.0, -1.0, 0.0, 1.0, 1.0], index=close.index[:-1])
    return close, positions


# --------------------------------------------------------------------------------------------------
# Metrics against hand computations
# --------------------------------------------------------------------------------------------------
def test_returns_equity_and_trading_counts_by_hand(case):
    close, positions = case
    result = bt.run_backtest(positions, close)
    # position x next return: 1 x 10%, -1 x -10%, 0 x 0, 1 x 10%, 1 x -10%
    expected = [0.1, 0.1, 0.0, 0.1, -0.1]
    np.testing.assert_allclose(result.returns.to_numpy(), expected, atol=1e-12)
    # each return is stamped at the close of its bar, each position at the bar's start
    assert list(result.returns.index) == list(close.index[1:])
    assert list(result.positions.index) == list(close.index[:-1])
    np.testing.assert_allclose(
        result.equity.to_numpy(), [1.0, 1.1, 1.21, 1.21, 1.331, 1.331 * 0.9], rtol=1e-12
    )
    m = result.metrics
    assert m["total_return"] == pytest.approx(1.1**3 * 0.9 - 1)
    # trades: enter long (1), flip to short (2), to flat (1), to long (1), hold (0), exit (1)
    assert m["turnover"] == pytest.approx(6.0)
    assert m["n_trades"] == 5
    assert m["exposure"] == pytest.approx(4 / 5)
    assert m["win_rate"] == pytest.approx(3 / 4)  # bars in the market: +,+,+,-
    assert m["profit_factor"] == pytest.approx(0.3 / 0.1)
    assert m["max_drawdown"] == pytest.approx(-0.1)
    assert m["max_drawdown_duration_bars"] == 1
    assert m["max_drawdown_duration_days"] == pytest.approx(1.0)


def test_ratio_metrics_by_hand(case):
    close, positions = case
    m = bt.run_backtest(positions, close).metrics
    r = [0.1, 0.1, 0.0, 0.1, -0.1]
    n = len(r)
    ppy = 365.25  # daily bars with no gaps: a round-the-clock market
    mean = sum(r) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in r) / (n - 1))
    m2 = sum((x - mean) ** 2 for x in r) / n
    skew = sum((x - mean) ** 3 for x in r) / n / m2**1.5
    kurt = sum((x - mean) ** 4 for x in r) / n / m2**2
    sr = mean / std
    assert m["periods_per_year"] == pytest.approx(ppy)
    assert m["annual_volatility"] == pytest.approx(std * math.sqrt(ppy))
    assert m["annual_return"] == pytest.approx((1.1**3 * 0.9) ** (ppy / n) - 1)
    assert m["sharpe"] == pytest.approx(sr * math.sqrt(ppy))
    assert m["skewness"] == pytest.approx(skew)
    assert m["kurtosis"] == pytest.approx(kurt)
    # Mertens (2002): Var = (1 + SR^2/2 - skew SR + (kurt - 3)/4 SR^2) / n
    se = math.sqrt((1 + sr**2 / 2 - skew * sr + (kurt - 3) / 4 * sr**2) / n)
    assert m["sharpe_se"] == pytest.approx(se * math.sqrt(ppy))
    assert m["sharpe_ci_low"] == pytest.approx((sr - 1.959964 * se) * math.sqrt(ppy), rel=1e-5)
    # Bailey & Lopez de Prado (2012) against SR* = 0
    z = sr * math.sqrt(n - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    assert m["psr"] == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))))
    # Sortino: downside deviation over all bars, not the std of the losing bars only
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / n)
    assert m["sortino"] == pytest.approx(mean / downside * math.sqrt(ppy))


def test_drawdown_duration_counts_until_recovery():
    close = daily([100.0, 90.0, 95.0, 101.0, 99.0])
    result = bt.run_backtest(pd.Series(1.0, index=close.index[:-1]), close)
    # equity 1, .90, .95, 1.01, .99: under water from day 0 to day 3, then 1 unrecovered day
    assert result.metrics["max_drawdown"] == pytest.approx(-0.1)
    assert result.metrics["max_drawdown_duration_bars"] == 3
    assert result.metrics["max_drawdown_duration_days"] == pytest.approx(3.0)
    np.testing.assert_allclose(result.drawdown.to_numpy()[-1], 0.99 / 1.01 - 1)


def test_sparse_signal_is_held_until_the_next_decision():
    close = daily([100.0, 101.0, 103.0, 102.0, 104.0, 105.0])
    signal = pd.Series([1.0, -1.0], index=close.index[[0, 2]])
    result = bt.run_backtest(signal, close, end=close.index[4])
    assert result.positions.tolist() == [1.0, 1.0, -1.0, -1.0]
    values = close.to_numpy()
    expected = [
        values[1] / values[0] - 1,
        values[2] / values[1] - 1,
        -(values[3] / values[2] - 1),
        -(values[4] / values[3] - 1),
    ]
    np.testing.assert_allclose(result.returns.to_numpy(), expected)


# --------------------------------------------------------------------------------------------------
# Timing that cannot cheat
# --------------------------------------------------------------------------------------------------
def test_signal_stamped_after_the_return_it_trades_is_refused():
    rng = np.random.default_rng(3)
    close = daily(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 30))))
    values = close.to_numpy()
    sign_of_return = np.sign(np.diff(values))  # sign of return i -> i+1
    honest = pd.Series(sign_of_return, index=close.index[:-1])  # the oracle, at decision time
    # The same values stamped one bar later: each now sits at the END of the return it knows.
    late = pd.Series(sign_of_return, index=close.index[1:])
    with pytest.raises(ValueError, match="last price"):
        bt.run_backtest(late, close)
    shifted_past_the_end = honest.shift(2, freq="D")
    with pytest.raises(ValueError, match="after the last price"):
        bt.run_backtest(shifted_past_the_end, close)
    # Even with its final value dropped, the late signal is only credited with the NEXT return:
    # it earns what sign(r_i) x r_{i+1} earns, not the oracle's sum of |r_i|.
    result = bt.run_backtest(late.iloc[:-1], close)
    returns = values[1:] / values[:-1] - 1
    np.testing.assert_allclose(result.returns.to_numpy(), sign_of_return[:-1] * returns[1:])
    oracle = bt.run_backtest(honest, close)
    np.testing.assert_allclose(oracle.returns.to_numpy(), np.abs(returns))
    assert result.metrics["total_return"] < oracle.metrics["total_return"]


def test_arrays_are_refused_because_they_cannot_be_aligned_by_time(case):
    close, positions = case
    with pytest.raises(TypeError, match="by timestamp"):
        bt.run_backtest(positions.to_numpy(), close)
    with pytest.raises(TypeError, match="DatetimeIndex"):
        bt.run_backtest(positions.reset_index(drop=True), close)


def test_signal_between_price_timestamps_is_refused(case):
    close, positions = case
    off_grid = positions.copy()
    off_grid.index = off_grid.index + pd.Timedelta(hours=1)
    with pytest.raises(ValueError, match="2024-01-01 01:00:00"):
        bt.run_backtest(off_grid, close)


def test_negative_delay_is_refused_and_positive_delay_trades_later(case):
    close, positions = case
    with pytest.raises(ValueError, match="before the decisions"):
        bt.run_backtest(positions.iloc[:3], close, delay=-1)
    late = bt.run_backtest(positions.iloc[:3], close, delay=1)
    values = close.to_numpy()
    returns = values[1:] / values[:-1] - 1
    held = [0.0, 1.0, -1.0, 0.0]  # each decision executed one bar late
    np.testing.assert_allclose(late.returns.to_numpy(), np.multiply(held, returns[:4]))


def test_later_prices_do_not_change_earlier_results(case):
    close, positions = case
    before = bt.run_backtest(positions.iloc[:2], close)
    changed = close.copy()
    changed.iloc[3:] = changed.iloc[3:] * 5.0  # rewrite the future after the second bar
    after = bt.run_backtest(positions.iloc[:2], changed)
    pd.testing.assert_series_equal(before.returns, after.returns)


# --------------------------------------------------------------------------------------------------
# Costs
# --------------------------------------------------------------------------------------------------
def test_costs_reduce_each_return_by_exactly_turnover_times_cost(case):
    close, positions = case
    free = bt.run_backtest(positions, close)
    costly = bt.run_backtest(positions, close, cost_bps=7.0)
    w = positions.to_numpy()
    turnover = np.abs(np.diff(np.concatenate([[0.0], w])))
    turnover[-1] += abs(w[-1])  # closing the position at the end
    np.testing.assert_allclose(
        free.returns.to_numpy() - costly.returns.to_numpy(), 7e-4 * turnover, rtol=0, atol=1e-15
    )
    np.testing.assert_allclose(costly.costs.to_numpy(), 7e-4 * turnover, atol=1e-15)
    np.testing.assert_allclose(costly.gross_returns.to_numpy(), free.returns.to_numpy())


def test_fixed_fee_is_charged_per_trade_on_current_equity():
    close = daily([100.0, 110.0, 121.0])
    positions = pd.Series([1.0, 0.5], index=close.index[:2])
    result = bt.run_backtest(positions, close, fee=2.0, initial_capital=100.0)
    equity1 = 100.0 * (1 + 0.1 - 2.0 / 100.0)  # entry trade
    equity2 = equity1 * (1 + 0.5 * 0.1 - 2 * 2.0 / equity1)  # resize + exit at the end
    np.testing.assert_allclose(result.equity.to_numpy(), [100.0, equity1, equity2])


def test_break_even_cost_zeroes_the_mean_return(case):
    close, positions = case
    cost = bt.break_even_cost(positions, close)
    assert cost == pytest.approx((0.1 + 0.1 + 0.0 + 0.1 - 0.1) / 6.0 * 1e4)
    at_break_even = bt.run_backtest(positions, close, cost_bps=cost)
    assert abs(at_break_even.returns.mean()) < 1e-15
    assert abs(at_break_even.metrics["sharpe"]) < 1e-9
    table = bt.cost_sensitivity(positions, close, [0.0, cost / 2, 2 * cost])
    assert table["sharpe"].is_monotonic_decreasing
    assert table.loc[2 * cost, "sharpe"] < 0 < table.loc[0.0, "sharpe"]


def test_no_trading_has_infinite_break_even_and_no_costs(case):
    close, _ = case
    flat = pd.Series(0.0, index=close.index[:-1])
    assert bt.break_even_cost(flat, close) == math.inf
    assert bt.run_backtest(flat, close, cost_bps=50).metrics["total_return"] == 0.0


# --------------------------------------------------------------------------------------------------
# Positions from probabilities, Kelly sizing
# --------------------------------------------------------------------------------------------------
def test_kelly_fraction_matches_its_formula():
    # f* = q - (1 - q) / b
    assert bt.kelly_fraction(0.7, 2.0) == pytest.approx(0.7 - 0.3 / 2.0)
    assert bt.kelly_fraction(0.6) == pytest.approx(0.2)  # b = 1: 2q - 1
    assert bt.kelly_fraction(0.55, 0.5) < 0  # negative edge


def test_kelly_positions_are_fractional_capped_and_flat_without_edge():
    index = pd.date_range("2024-01-01", periods=5, freq="h", tz="UTC")
    prob = pd.Series([0.7, 0.3, 0.95, 0.52, 0.5], index=index)
    pos = bt.positions_from_probabilities(
        prob, method="kelly", kelly_fraction=0.5, win_loss_ratio=2.0, max_position=0.4
    )
    expected = [
        0.5 * (0.7 - 0.3 / 2.0),  # long, half Kelly
        -0.5 * (0.7 - 0.3 / 2.0),  # short: the down move has probability 0.7
        0.4,  # half Kelly would be 0.45: capped
        0.5 * (0.52 - 0.48 / 2.0),  # a small edge still gets a (small) bet
        0.0,  # coin flip
    ]
    np.testing.assert_allclose(pos.to_numpy(), expected)
    poor_payoff = bt.positions_from_probabilities(prob, method="kelly", win_loss_ratio=0.5)
    assert poor_payoff.iloc[3] == 0.0  # f* = 0.52 - 0.48 / 0.5 < 0: no bet


def test_threshold_confidence_and_long_only():
    index = pd.date_range("2024-01-01", periods=4, freq="h", tz="UTC")
    prob = pd.Series([0.8, 0.58, 0.1, 0.45], index=index)
    fixed = bt.positions_from_probabilities(prob, threshold=0.6)
    assert fixed.tolist() == [1.0, 0.0, -1.0, 0.0]
    confidence = bt.positions_from_probabilities(prob, method="confidence")
    np.testing.assert_allclose(confidence.to_numpy(), [0.6, 0.16, -0.8, -0.1])
    long_only = bt.positions_from_probabilities(prob, threshold=0.6, allow_short=False)
    assert long_only.tolist() == [1.0, 0.0, 0.0, 0.0]


def test_run_backtest_with_probabilities_uses_the_rule(case):
    close, _ = case
    prob = pd.Series([0.9, 0.2, 0.5, 0.6, 0.7], index=close.index[:-1])
    rule = bt.SizingRule(method="confidence")
    via_rule = bt.run_backtest(prob, close, sizing=rule)
    np.testing.assert_allclose(via_rule.positions.to_numpy(), [0.8, -0.6, 0.0, 0.2, 0.4])


# --------------------------------------------------------------------------------------------------
# Annualisation
# --------------------------------------------------------------------------------------------------
def test_periods_per_year_round_the_clock_and_business_days():
    hourly = pd.date_range("2024-01-01", periods=24 * 60, freq="h", tz="UTC")
    assert bt.infer_periods_per_year(hourly) == pytest.approx(365.25 * 24)
    business = pd.bdate_range("2021-01-01", "2023-12-29", tz="UTC")
    span_years = (business[-1] - business[0]) / pd.Timedelta(days=365.25)
    assert bt.infer_periods_per_year(business) == pytest.approx((len(business) - 1) / span_years)
    assert 250 < bt.infer_periods_per_year(business) < 263
    fx = pd.date_range("2023-01-01", "2023-12-31", freq="h", tz="UTC")
    fx = fx[fx.day_of_week < 5]  # closed at weekends
    assert 6000 < bt.infer_periods_per_year(fx) < 6400


def test_metrics_follow_the_given_periods_per_year(case):
    close, positions = case
    inferred = bt.run_backtest(positions, close).metrics
    given = bt.run_backtest(positions, close, periods_per_year=252).metrics
    assert given["sharpe"] == pytest.approx(inferred["sharpe"] * math.sqrt(252 / 365.25))


# --------------------------------------------------------------------------------------------------
# Sharpe statistics
# --------------------------------------------------------------------------------------------------
def test_sharpe_statistics_reduce_to_the_normal_case():
    sr, n = 0.1, 400
    assert bt.sharpe_standard_error(sr, n) == pytest.approx(math.sqrt((1 + sr**2 / 2) / n))
    assert bt.probabilistic_sharpe_ratio(sr, n, benchmark=sr) == pytest.approx(0.5)
    # fat left tail: more uncertain, so less probability of a positive true Sharpe ratio
    assert bt.sharpe_standard_error(sr, n, skew=-1, kurtosis=6) > bt.sharpe_standard_error(sr, n)
    assert bt.probabilistic_sharpe_ratio(sr, n, -1, 6) < bt.probabilistic_sharpe_ratio(sr, n)


def test_ruin_stops_the_strategy():
    close = daily([100.0, 160.0, 170.0, 150.0])
    result = bt.run_backtest(pd.Series(-2.0, index=close.index[:3]), close)
    # short twice the equity while the price rises 60%: the loss (120%) exceeds the equity
    assert result.metrics["ruined"] == 1.0
    assert result.equity.iloc[1:].tolist() == [0.0, 0.0, 0.0]
    assert result.metrics["total_return"] == -1.0


# --------------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------------
def test_bad_inputs_raise_and_name_the_place(case):
    close, positions = case
    with pytest.raises(ValueError, match="2024-01-03"):
        bt.run_backtest(positions.where(positions.index != close.index[2]), close)  # NaN
    with pytest.raises(ValueError, match="duplicated timestamp: 2024-01-02"):
        bt.run_backtest(pd.concat([positions.iloc[:2], positions.iloc[1:3]]), close)
    with pytest.raises(ValueError, match="not sorted"):
        bt.run_backtest(positions.iloc[::-1], close)
    bad_price = close.copy()
    bad_price.iloc[2] = -1.0
    with pytest.raises(ValueError, match="non-positive price -1.0 at 2024-01-03"):
        bt.run_backtest(positions, bad_price)
    with pytest.raises(ValueError, match="time zone"):
        bt.run_backtest(positions.tz_localize(None), close)
    with pytest.raises(KeyError, match="close"):
        bt.run_backtest(positions, close.to_frame("price"))
    with pytest.raises(ValueError, match="cost_bps"):
        bt.run_backtest(positions, close, cost_bps=-1)
    with pytest.raises(ValueError, match="at 2024-01-02"):
        bt.positions_from_probabilities(pd.Series([0.5, 1.2], index=close.index[:2]))
    with pytest.raises(ValueError, match="threshold"):
        bt.SizingRule(threshold=0.4)
    with pytest.raises(ValueError, match="kelly_fraction"):
        bt.SizingRule(method="kelly", kelly_fraction=1.5)
    with pytest.raises(ValueError, match="win_loss_ratio"):
        bt.kelly_fraction(0.6, 0.0)


def test_inputs_are_not_modified(case):
    close, positions = case
    frame = close.to_frame("close")
    copies = (positions.copy(), frame.copy())
    bt.run_backtest(positions, frame, cost_bps=5, fee=0.001, delay=0)
    bt.positions_from_probabilities(positions.abs() / 2, method="kelly")
    pd.testing.assert_series_equal(positions, copies[0])
    pd.testing.assert_frame_equal(frame, copies[1])


def test_reference_strategies():
    close = daily([100.0, 102.0, 101.0, 101.0, 104.0])
    hold = bt.run_backtest(bt.buy_and_hold_positions(close), close)
    assert hold.metrics["total_return"] == pytest.approx(104.0 / 100.0 - 1)
    assert bt.oracle_positions(close).tolist() == [1.0, -1.0, 0.0, 1.0]
