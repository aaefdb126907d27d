"""Trading the forecasts: positions, timing that cannot cheat, costs and trading metrics.

The pieces, in the order a backtest chapter uses them:

* :class:`SizingRule` and :func:`positions_from_probabilities`: turn a forecast probability that the
  next move is up into a position in ``[-max_position, max_position]``: a threshold decides long,
  short or flat, and the size is fixed, proportional to confidence, or a capped fraction of the
  Kelly bet (:func:`kelly_fraction`).
* :func:`run_backtest`: trades a signal against close prices and returns a :class:`BacktestResult`
  (equity curve, per-bar returns, positions held, costs, metrics).
* :func:`infer_periods_per_year`: how many bars make a year, read from the timestamps themselves.
* :func:`sharpe_standard_error` and :func:`probabilistic_sharpe_ratio`: how much of a Sharpe ratio
  could be luck.
* :func:`break_even_cost` and :func:`cost_sensitivity`: how large trading costs may get before the
  edge is gone.
* :func:`buy_and_hold_positions` and :func:`oracle_positions`: the two reference strategies; the
  oracle reads the future on purpose and is only a ceiling.

Timing convention (the one rule that keeps a backtest honest)
-------------------------------------------------------------
Prices are close prices labelled by their close time (see the course's rule 1). A signal is a
``pandas.Series`` whose index is the decision time: the value stamped ``t`` may use everything
known at ``t`` and nothing later. Writing the price timestamps ``p_0 < p_1 < ... < p_N``:

* the position decided at ``p_i`` is held over the bar ``(p_i, p_{i+1}]`` and earns the simple
  return ``close[p_{i+1}] / close[p_i] - 1``; that bar's return is stamped ``p_{i+1}``, when it is
  known;
* signals and prices are matched by timestamp, never by position in an array; every signal
  timestamp must be a price timestamp, and a signal at or after the last price (which has no later
  price to trade) is an error;
* a position stays in force until the next signal (signals may be sparser than prices), and the
  last one is held for one bar unless ``end`` says how long;
* ``delay=k`` executes every decision ``k`` bars late (a check on how much a strategy depends on
  instant execution); a negative delay would trade a return that ended before the decision and is
  refused.

Positions are fractions of equity (``1`` = fully long, ``-0.5`` = half short), re-based every bar;
the drift of the actual holding inside a bar is not charged. Costs are charged on turnover
``|w_i - w_{i-1}|`` when the trade happens, at the start of the bar, as a fraction of the equity
then: ``cost_bps / 10_000 * turnover`` plus, per trade, a fixed ``fee`` in the units of
``initial_capital``. The strategy starts flat, and by default closes its position at the end, so a
round trip is always paid in full.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "BacktestResult",
    "SizingRule",
    "break_even_cost",
    "buy_and_hold_positions",
    "cost_sensitivity",
    "infer_periods_per_year",
    "kelly_fraction",
    "oracle_positions",
    "positions_from_probabilities",
    "probabilistic_sharpe_ratio",
    "run_backtest",
    "sharpe_standard_error",
]

_YEAR = pd.Timedelta(days=365.25)  # mean calendar year, used to annualise
_DAY = pd.Timedelta(days=1)
# A market is treated as open around the clock when the bars actually observed per year reach
# this share of what the median spacing would give with no gaps at all.
_ROUND_THE_CLOCK_SHARE = 0.95


# --------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------
def _check_series(series: object, what: str) -> pd.Series:
    """Check that ``series`` is a numeric Series on a clean DatetimeIndex; return it unchanged."""
    if not isinstance(series, pd.Series):
        raise TypeError(
            f"{what} must be a pandas Series indexed by timestamps (DatetimeIndex), got "
            f"{type(series).__name__}: the backtest aligns {what} and prices by timestamp, never "
            "by position in an array"
        )
    if not isinstance(series.index, pd.DatetimeIndex):
        raise TypeError(f"{what} must have a DatetimeIndex, got {type(series.index).__name__}")
    if len(series) == 0:
        raise ValueError(f"{what} is empty")
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        raise TypeError(f"{what} must hold numbers, got dtype {series.dtype}")
    index = series.index
    if index.hasnans:
        raise ValueError(f"{what} has a missing timestamp (NaT) in its index")
    duplicated = index.duplicated()
    if duplicated.any():
        raise ValueError(f"{what} has a duplicated timestamp: {index[duplicated][0]}")
    if not index.is_monotonic_increasing:
        steps = np.flatnonzero(index[1:] < index[:-1])
        i = int(steps[0]) + 1
        raise ValueError(f"{what} timestamps are not sorted: {index[i]} comes after {index[i - 1]}")
    values = series.to_numpy(dtype=float, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{what} has a missing or infinite value at {index[np.argmax(bad)]}")
    return series


def _as_close(prices: pd.Series | pd.DataFrame) -> pd.Series:
    """Close prices as a Series: ``prices`` itself, or its ``close`` column."""
    if isinstance(prices, pd.DataFrame):
        if "close" not in prices.columns:
            raise KeyError(
                f"prices: a DataFrame needs a 'close' column, got columns {list(prices.columns)}"
            )
        prices = prices["close"]
    close = _check_series(prices, "prices")
    values = close.to_numpy(dtype=float)
    if (values <= 0).any():
        raise ValueError(
            f"prices: non-positive price {values[np.argmax(values <= 0)]} at "
            f"{close.index[np.argmax(values <= 0)]}"
        )
    if len(close) < 2:
        raise ValueError("prices: need at least two prices to form one return")
    return close


def _check_same_timezone(signal: pd.Series, close: pd.Series) -> None:
    tz_signal, tz_prices = signal.index.tz, close.index.tz
    if (tz_signal is None) != (tz_prices is None) or str(tz_signal) != str(tz_prices):
        raise ValueError(
            f"signal timestamps are in time zone {tz_signal} but prices are in {tz_prices}: "
            "convert both to UTC first (bars are labelled by their close time in UTC)"
        )


# --------------------------------------------------------------------------------------------------
# Positions from forecasts
# --------------------------------------------------------------------------------------------------
def kelly_fraction(prob_win: float | np.ndarray, win_loss_ratio: float = 1.0) -> float | np.ndarray:
    """Kelly's growth-optimal stake for a bet won with probability ``prob_win``.

    A bet that gains ``b`` per unit staked when it wins and loses the stake when it loses, won with
    probability ``q``, maximises the expected logarithm of wealth with the stake

    .. math:: f^* = q - \\frac{1 - q}{b}

    (Kelly, 1956). ``f*`` is negative when the bet has a negative edge: do not take it.

    Parameters
    ----------
    prob_win : float or ndarray
        Probability ``q`` in ``[0, 1]`` that the bet wins.
    win_loss_ratio : float, default 1.0
        ``b``: average gain of a winning bet divided by the average loss of a losing one
        (positive). With ``b = 1`` the formula is ``2q - 1``.

    Returns
    -------
    float or ndarray
        ``f*`` as a fraction of wealth, same shape as ``prob_win``.

    References
    ----------
    Kelly, J. L. (1956). A new interpretation of information rate. *Bell System Technical
    Journal*, 35(4), 917-926.
    """
    if not np.isfinite(win_loss_ratio) or win_loss_ratio <= 0:
        raise ValueError(f"win_loss_ratio must be a positive number, got {win_loss_ratio!r}")
    q = np.asarray(prob_win, dtype=float)
    if np.isnan(q).any() or (q < 0).any() or (q > 1).any():
        raise ValueError(f"prob_win must lie in [0, 1], got {prob_win!r}")
    f = q - (1.0 - q) / win_loss_ratio
    return float(f) if f.ndim == 0 else f


@dataclass(frozen=True)
class SizingRule:
    """How a forecast probability of an up move becomes a position.

    The direction with the larger probability is traded when its probability ``q = max(p, 1 - p)``
    reaches ``threshold`` (and is above one half); otherwise the position is flat. The size is then

    * ``"fixed"``: ``max_position``;
    * ``"confidence"``: ``max_position * (2q - 1)``, from 0 at a coin flip to ``max_position`` at
      certainty;
    * ``"kelly"``: ``kelly_fraction * f*`` with ``f* = q - (1 - q) / win_loss_ratio``
      (:func:`kelly_fraction`), capped at ``max_position``, flat when ``f* <= 0``. Fractional Kelly
      (for example half Kelly) gives up a little growth for much smaller drawdowns, and protects
      against a probability that is over-confident; the cap bounds the leverage.

    Parameters
    ----------
    method : {"fixed", "confidence", "kelly"}, default "fixed"
    threshold : float, default 0.5
        Smallest probability of the chosen direction that opens a position, in ``[0.5, 1]``.
    allow_short : bool, default True
        With ``False`` a down forecast gives a flat position instead of a short one (long only).
    max_position : float, default 1.0
        Largest absolute position, as a fraction of equity (1 = no leverage).
    kelly_fraction : float, default 0.5
        Share of the full Kelly stake (``"kelly"`` only), in ``(0, 1]``.
    win_loss_ratio : float, default 1.0
        Average win over average loss of one bar's trade (``"kelly"`` only). Estimate it on
        training data, never on the period you backtest.
    """

    method: Literal["fixed", "confidence", "kelly"] = "fixed"
    threshold: float = 0.5
    allow_short: bool = True
    max_position: float = 1.0
    kelly_fraction: float = 0.5
    win_loss_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ("fixed", "confidence", "kelly"):
            raise ValueError(
                f"SizingRule.method must be 'fixed', 'confidence' or 'kelly', got {self.method!r}"
            )
        if not 0.5 <= self.threshold <= 1.0:
            raise ValueError(f"SizingRule.threshold must lie in [0.5, 1], got {self.threshold!r}")
        if not (np.isfinite(self.max_position) and self.max_position > 0):
            raise ValueError(
                f"SizingRule.max_position must be a positive number, got {self.max_position!r}"
            )
        if not 0.0 < self.kelly_fraction <= 1.0:
            raise ValueError(
                f"SizingRule.kelly_fraction must lie in (0, 1], got {self.kelly_fraction!r}"
            )
        if not (np.isfinite(self.win_loss_ratio) and self.win_loss_ratio > 0):
            raise ValueError(
                f"SizingRule.win_loss_ratio must be a positive number, got {self.win_loss_ratio!r}"
            )


def positions_from_probabilities(
    prob_up: pd.Series, rule: SizingRule | None = None, **rule_options: object
) -> pd.Series:
    """Positions from forecast probabilities that the next bar's return is positive.

    Parameters
    ----------
    prob_up : pandas.Series
        Probability of an up move, in ``[0, 1]``, indexed by decision time (DatetimeIndex).
    rule : SizingRule, optional
        The sizing rule. Alternatively pass its fields as keyword arguments
        (``positions_from_probabilities(p, method="kelly", kelly_fraction=0.5)``), not both.
    **rule_options
        Fields of :class:`SizingRule`.

    Returns
    -------
    pandas.Series
        Positions in ``[-max_position, max_position]`` on the same index, named ``"position"``
        (positive long, negative short, 0 flat). ``prob_up`` is not modified.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    >>> p = pd.Series([0.7, 0.5, 0.2], index=idx)
    >>> positions_from_probabilities(p, method="confidence").round(2).tolist()
    [0.4, 0.0, -0.6]
    """
    if rule is not None and rule_options:
        raise TypeError("pass either a SizingRule or its fields as keywords, not both")
    if rule is None:
        rule = SizingRule(**rule_options)  # type: ignore[arg-type]
    _check_series(prob_up, "prob_up")
    p = prob_up.to_numpy(dtype=float)  # [T]
    outside = (p < 0) | (p > 1)
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f"prob_up must lie in [0, 1], got {p[i]} at {prob_up.index[i]}")

    sign = np.sign(p - 0.5)  # +1 up, -1 down, 0 coin flip
    q = np.maximum(p, 1.0 - p)  # probability of the chosen direction
    trade = (sign != 0) & (q >= rule.threshold)
    if not rule.allow_short:
        trade &= sign > 0

    if rule.method == "fixed":
        size = np.full_like(p, rule.max_position)
    elif rule.method == "confidence":
        size = rule.max_position * (2.0 * q - 1.0)
    else:  # kelly
        full = kelly_fraction(q, rule.win_loss_ratio)
        size = np.clip(rule.kelly_fraction * np.asarray(full), 0.0, rule.max_position)
    position = np.where(trade, sign * size, 0.0) + 0.0  # + 0.0 turns -0.0 into 0.0
    return pd.Series(position, index=prob_up.index.copy(), name="position")


def buy_and_hold_positions(
    prices: pd.Series | pd.DataFrame,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
) -> pd.Series:
    """A position of 1 at every price timestamp in ``[start, end]`` except the last price.

    The last price has no later price to trade, so it carries no position. Pass the result to
    :func:`run_backtest` with the same ``prices`` for the buy-and-hold reference.
    """
    close = _as_close(prices)
    index = close.index[:-1]
    if start is not None:
        index = index[index >= pd.Timestamp(start)]
    if end is not None:
        index = index[index <= pd.Timestamp(end)]
    if len(index) == 0:
        raise ValueError(f"buy_and_hold_positions: no price timestamp in [{start}, {end}]")
    return pd.Series(1.0, index=index, name="position")


def oracle_positions(
    prices: pd.Series | pd.DataFrame, index: pd.DatetimeIndex | None = None
) -> pd.Series:
    """The oracle: at each decision time, the sign of the return that is about to happen.

    This reads the future on purpose. It is a ceiling, the best a direction forecast could ever
    earn, never a strategy. The position stamped ``p_i`` is ``sign(close[p_{i+1}] - close[p_i])``.

    Parameters
    ----------
    prices : pandas.Series or DataFrame
        Close prices (or a frame with a ``close`` column) on a DatetimeIndex.
    index : DatetimeIndex, optional
        Decision times (price timestamps, not the last one). Default: every price but the last.
    """
    close = _as_close(prices)
    values = close.to_numpy(dtype=float)  # [N + 1]
    sign_next = pd.Series(np.sign(np.diff(values)) + 0.0, index=close.index[:-1], name="position")
    if index is None:
        return sign_next
    missing = ~index.isin(sign_next.index)
    if missing.any():
        raise ValueError(
            f"oracle_positions: decision time {index[missing][0]} is not a price timestamp "
            "before the last price"
        )
    return sign_next.loc[index]


# --------------------------------------------------------------------------------------------------
# Annualisation and the statistics of the Sharpe ratio
# --------------------------------------------------------------------------------------------------
def _periods_per_year(index: pd.DatetimeIndex) -> tuple[float, str]:
    """Bars per year and a sentence saying how the number was found."""
    if len(index) < 2:
        raise ValueError("need at least two timestamps to infer the bar frequency")
    spacing = pd.Series(index[1:] - index[:-1]).median()
    span = index[-1] - index[0]
    calendar = _YEAR / spacing  # bars per year if the market never closed
    observed = (len(index) - 1) / (span / _YEAR)  # bars per year actually present
    if observed >= _ROUND_THE_CLOCK_SHARE * calendar:
        return float(calendar), (
            f"median bar spacing {spacing} with no regular gaps (open around the clock): "
            f"{calendar:.6g} bars per 365.25-day year"
        )
    return float(observed), (
        f"median bar spacing {spacing}, but only {observed / calendar:.0%} of the bars a "
        f"round-the-clock market would have (closed nights, weekends or holidays): "
        f"{observed:.6g} bars per year, the number observed over {span / _DAY:.4g} days"
    )


def infer_periods_per_year(index: pd.DatetimeIndex | pd.Series | pd.DataFrame) -> float:
    """How many bars make one year, read from the timestamps (never assumed).

    Two estimates are compared:

    * the calendar rate ``365.25 days / median spacing``, exact for a market that trades around
      the clock (crypto: hourly bars give 8766 per year);
    * the observed rate ``(number of bars - 1) / span in years``, which counts only bars that
      exist, so it accounts for nights, weekends and holidays (business-day bars give about
      252-261 per year, FX hourly bars about 6200).

    When the observed rate reaches 95% of the calendar rate the market is taken as open around the
    clock and the calendar rate is returned; otherwise the observed rate is. The observed rate is
    only as good as the span: give a few weeks of timestamps or more, or pass
    ``periods_per_year`` to :func:`run_backtest` yourself.

    Parameters
    ----------
    index : DatetimeIndex, or a Series / DataFrame whose index is one
        Sorted timestamps of the bars.

    Returns
    -------
    float
        Bars per year.
    """
    if isinstance(index, pd.Series | pd.DataFrame):
        index = index.index
    if not isinstance(index, pd.DatetimeIndex):
        raise TypeError(f"expected a DatetimeIndex, got {type(index).__name__}")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError("timestamps must be sorted and unique to infer the bar frequency")
    return _periods_per_year(index)[0]


def _moments(returns: np.ndarray) -> tuple[float, float, float, float]:
    """Mean, sample standard deviation (ddof=1), skewness and (non-excess) kurtosis.

    Skewness and kurtosis use population (ddof=0) central moments, as in Bailey and Lopez de Prado.
    """
    r = np.asarray(returns, dtype=float)
    mean = float(r.mean())
    std = float(r.std(ddof=1)) if len(r) > 1 else math.nan
    centred = r - mean
    m2 = float(np.mean(centred**2))
    if m2 == 0:
        return mean, std, math.nan, math.nan
    skew = float(np.mean(centred**3)) / m2**1.5
    kurt = float(np.mean(centred**4)) / m2**2
    return mean, std, skew, kurt


def sharpe_standard_error(sharpe: float, n: int, skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """Standard error of an estimated per-period Sharpe ratio.

    For ``n`` independent returns with skewness ``skew`` and kurtosis ``kurtosis`` (3 for the
    normal distribution; this is *not* excess kurtosis) the estimated Sharpe ratio ``SR`` has
    asymptotic variance

    .. math:: \\operatorname{Var}(\\widehat{SR}) \\approx
              \\frac{1 + \\tfrac12 SR^2 - \\gamma_3 SR + \\tfrac{\\gamma_4 - 3}{4} SR^2}{n}

    (Mertens, 2002; Opdyke, 2007). With normal returns (``skew = 0``, ``kurtosis = 3``) it is
    Lo's (2002) ``(1 + SR^2 / 2) / n``. Negative skew and fat tails, common in trading returns,
    widen it. The result is per period: multiply by ``sqrt(periods_per_year)`` to annualise
    (valid for independent returns; Lo (2002) gives the correction for autocorrelated ones).

    Parameters
    ----------
    sharpe : float
        Estimated Sharpe ratio per period (not annualised).
    n : int
        Number of returns it was estimated from.
    skew, kurtosis : float
        Skewness and kurtosis of the returns.

    References
    ----------
    Lo, A. W. (2002). The statistics of Sharpe ratios. *Financial Analysts Journal*, 58(4), 36-52.
    Mertens, E. (2002). Comments on variance of the IID estimator in Lo (2002). Working paper,
    University of Basel.
    Opdyke, J. D. (2007). Comparing Sharpe ratios: so where are the p-values? *Journal of Asset
    Management*, 8(5), 308-336.
    """
    if n < 2:
        raise ValueError(f"need at least two returns for a Sharpe standard error, got n={n}")
    variance = (1.0 + 0.5 * sharpe**2 - skew * sharpe + (kurtosis - 3.0) / 4.0 * sharpe**2) / n
    return math.sqrt(variance) if variance > 0 else math.nan


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def probabilistic_sharpe_ratio(
    sharpe: float, n: int, skew: float = 0.0, kurtosis: float = 3.0, benchmark: float = 0.0
) -> float:
    """Probability that the true Sharpe ratio exceeds ``benchmark``, given the estimate.

    Bailey and Lopez de Prado (2012):

    .. math:: PSR(SR^*) = \\Phi\\left(\\frac{(\\widehat{SR} - SR^*)\\sqrt{n - 1}}
              {\\sqrt{1 - \\gamma_3 \\widehat{SR} + \\tfrac{\\gamma_4 - 1}{4}\\widehat{SR}^2}}\\right)

    with ``Phi`` the standard normal CDF. Both ratios are per period (divide an annual benchmark
    by ``sqrt(periods_per_year)``). A PSR of 0.95 says: if the true Sharpe ratio were the
    benchmark, an estimate this high would be a 1-in-20 fluke.

    Parameters
    ----------
    sharpe : float
        Estimated Sharpe ratio per period.
    n : int
        Number of returns.
    skew, kurtosis : float
        Skewness and (non-excess) kurtosis of the returns.
    benchmark : float, default 0.0
        ``SR*``, per period.

    References
    ----------
    Bailey, D. H. and Lopez de Prado, M. (2012). The Sharpe ratio efficient frontier. *Journal of
    Risk*, 15(2), 3-44.
    """
    if n < 2:
        raise ValueError(f"need at least two returns for a probabilistic Sharpe ratio, got n={n}")
    denominator = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if not denominator > 0:
        return math.nan
    return _normal_cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(denominator))


# --------------------------------------------------------------------------------------------------
# The backtest
# --------------------------------------------------------------------------------------------------
@dataclass
class BacktestResult:
    """What :func:`run_backtest` returns.

    Attributes
    ----------
    equity : pandas.Series
        Equity after each bar, starting with ``initial_capital`` at the first decision time;
        ``len(returns) + 1`` values.
    returns : pandas.Series
        Net return of each bar (after costs), stamped at the bar's close ``p_{i+1}``.
    positions : pandas.Series
        Position held over each bar, stamped at the bar's start ``p_i`` (when it was taken).
    metrics : dict[str, float]
        See :func:`run_backtest`; ``pd.Series(result.metrics)`` gives a table.
    gross_returns : pandas.Series
        ``position * price return`` per bar, before costs (same index as ``returns``).
    costs : pandas.Series
        Costs per bar as a fraction of the equity at the bar's start: ``gross_returns - returns``
        (except in the bar where equity reaches zero, after which both are 0).
    turnover : pandas.Series
        ``|change of position|`` traded in each bar (the exit at the end is in the last bar).
    periods_per_year : float
        Bars per year used to annualise.
    annualisation : str
        How ``periods_per_year`` was obtained.
    """

    equity: pd.Series
    returns: pd.Series
    positions: pd.Series
    metrics: dict[str, float]
    gross_returns: pd.Series
    costs: pd.Series
    turnover: pd.Series
    periods_per_year: float
    annualisation: str = field(default="")

    @property
    def drawdown(self) -> pd.Series:
        """Equity over its running peak, minus 1 (0 at a new high, -0.2 for 20% below it)."""
        return (self.equity / self.equity.cummax() - 1.0).rename("drawdown")


def _longest_drawdown(equity: np.ndarray) -> tuple[int, int]:
    """Start and end position of the longest stretch from a peak until equity regains it.

    A drawdown not recovered by the end lasts until the last value.
    """
    peak_value = np.maximum.accumulate(equity)
    at_peak = equity >= peak_value  # [T + 1]
    peak_position = np.maximum.accumulate(np.where(at_peak, np.arange(len(equity)), 0))
    best = (0, 0)
    for j in range(1, len(equity)):
        underwater_before = not at_peak[j - 1]
        recovered = at_peak[j] and underwater_before
        unfinished = j == len(equity) - 1 and not at_peak[j]
        if recovered or unfinished:
            start = int(peak_position[j - 1])
            if j - start > best[1] - best[0]:
                best = (start, j)
    return best


def _metrics(
    net: np.ndarray,
    positions: np.ndarray,
    turnover: np.ndarray,
    n_trades: int,
    equity: pd.Series,
    periods_per_year: float,
    risk_free: float,
    sharpe_benchmark: float,
    ruined: bool,
) -> dict[str, float]:
    n = len(net)
    sqrt_ppy = math.sqrt(periods_per_year)
    rf = (1.0 + risk_free) ** (1.0 / periods_per_year) - 1.0  # per period
    excess = net - rf

    growth = float(equity.iloc[-1] / equity.iloc[0])
    total_return = growth - 1.0
    annual_return = growth ** (periods_per_year / n) - 1.0 if growth > 0 else -1.0
    mean, std, skew, kurt = _moments(excess)
    if n > 1 and std > 0:
        sr = mean / std  # per period
        se = sharpe_standard_error(sr, n, skew, kurt)
        psr = probabilistic_sharpe_ratio(sr, n, skew, kurt, sharpe_benchmark / sqrt_ppy)
    else:
        sr = se = psr = math.nan
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    sortino = mean / downside * sqrt_ppy if downside > 0 else math.nan

    values = equity.to_numpy(dtype=float)
    drawdown = values / np.maximum.accumulate(values) - 1.0
    start, end = _longest_drawdown(values)
    duration = equity.index[end] - equity.index[start]

    active = positions != 0
    wins, losses = net[net > 0].sum(), -net[net < 0].sum()
    if losses > 0:
        profit_factor = float(wins / losses)
    else:
        profit_factor = math.inf if wins > 0 else math.nan
    span_years = (equity.index[-1] - equity.index[0]) / _YEAR
    return {
        "total_return": total_return,
        "annual_return": annual_return,
        "annual_volatility": std * sqrt_ppy,
        "sharpe": sr * sqrt_ppy,
        "sharpe_se": se * sqrt_ppy,
        "sharpe_ci_low": (sr - 1.959963984540054 * se) * sqrt_ppy,
        "sharpe_ci_high": (sr + 1.959963984540054 * se) * sqrt_ppy,
        "psr": psr,
        "sortino": sortino,
        "max_drawdown": float(drawdown.min()),
        "max_drawdown_duration_bars": float(end - start),
        "max_drawdown_duration_days": float(duration / _DAY),
        "win_rate": float((net[active] > 0).mean()) if active.any() else math.nan,
        "profit_factor": profit_factor,
        "turnover": float(turnover.sum()),
        "turnover_per_year": float(turnover.sum() / n * periods_per_year),
        "n_trades": float(n_trades),
        "exposure": float(active.mean()),
        "skewness": skew,
        "kurtosis": kurt,
        "n_periods": float(n),
        "span_years": float(span_years),
        "periods_per_year": float(periods_per_year),
        "ruined": float(ruined),
    }


def run_backtest(
    signal: pd.Series,
    prices: pd.Series | pd.DataFrame,
    *,
    sizing: SizingRule | None = None,
    cost_bps: float = 0.0,
    fee: float = 0.0,
    initial_capital: float = 1.0,
    delay: int = 0,
    end: pd.Timestamp | str | None = None,
    close_at_end: bool = True,
    periods_per_year: float | None = None,
    risk_free: float = 0.0,
    sharpe_benchmark: float = 0.0,
) -> BacktestResult:
    """Trade a signal against close prices, with costs, and measure the result.

    See the module docstring for the timing convention: the position decided at price timestamp
    ``p_i`` earns the return from ``p_i`` to the next price ``p_{i+1}``, matched by timestamp.

    Parameters
    ----------
    signal : pandas.Series
        Indexed by decision time (a DatetimeIndex whose every entry is a price timestamp before
        the last price). Without ``sizing``: target positions as fractions of equity (1 long, -1
        short, 0 flat, any size in between or beyond). With ``sizing``: forecast probabilities that
        the next return is positive, turned into positions by :func:`positions_from_probabilities`.
    prices : pandas.Series or DataFrame
        Close prices labelled by close time, or an OHLCV frame with a ``close`` column.
    sizing : SizingRule, optional
        Read ``signal`` as probabilities and size positions with this rule.
    cost_bps : float, default 0.0
        Proportional cost in basis points of the traded notional: a bar whose trade changes the
        position by ``d`` loses ``cost_bps / 10_000 * |d|`` of equity (commission, half spread,
        slippage).
    fee : float, default 0.0
        Fixed charge per trade (any bar whose position changes), in the units of
        ``initial_capital``.
    initial_capital : float, default 1.0
        Starting equity; the equity curve is in these units.
    delay : int, default 0
        Execute each decision this many price bars late (0: at the close it was decided on).
        Negative values are refused: they would trade a return that ended before the decision.
    end : Timestamp or str, optional
        A price timestamp after the last signal until which the last position is held. Default:
        the price right after the last signal (one bar).
    close_at_end : bool, default True
        Close the position at the end, paying the cost of the exit in the last bar.
    periods_per_year : float, optional
        Bars per year for annualising. Default: inferred from the price timestamps by
        :func:`infer_periods_per_year`.
    risk_free : float, default 0.0
        Annual risk-free rate subtracted before Sharpe and Sortino ratios.
    sharpe_benchmark : float, default 0.0
        Annualised Sharpe ratio that the probabilistic Sharpe ratio tests against.

    Returns
    -------
    BacktestResult
        Its ``metrics`` hold: ``total_return``, ``annual_return`` (compound), ``annual_volatility``,
        ``sharpe`` (annualised), ``sharpe_se`` with a 95% interval ``sharpe_ci_low`` /
        ``sharpe_ci_high`` (:func:`sharpe_standard_error`), ``psr``
        (:func:`probabilistic_sharpe_ratio`), ``sortino`` (mean excess return over the downside
        deviation ``sqrt(mean(min(r - rf, 0)^2))`` taken over all bars), ``max_drawdown`` (a
        fraction, <= 0), ``max_drawdown_duration_bars`` and ``_days`` (longest time from a peak to
        its recovery, or to the end), ``win_rate`` (share of bars in the market whose net return is
        positive), ``profit_factor`` (sum of gains over sum of losses, per bar), ``turnover``
        (total ``|change of position|``, in multiples of equity) and ``turnover_per_year``,
        ``n_trades`` (bars in which the position changed, entry and exit included), ``exposure``
        (share of bars in the market), ``skewness``, ``kurtosis``, ``n_periods``, ``span_years``,
        ``periods_per_year``, and ``ruined`` (1 if equity reached zero; losses are then limited to
        the equity and the strategy stops).

    Raises
    ------
    TypeError
        ``signal`` or ``prices`` is not a Series on a DatetimeIndex (an array cannot be aligned by
        time).
    ValueError
        Unsorted, duplicated or missing timestamps; missing values; non-positive prices; a signal
        stamped at a time that is not a price timestamp, or at or after the last price; a
        negative delay; time zones that differ.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    >>> close = pd.Series([100.0, 110.0, 99.0, 99.0], index=idx)
    >>> result = run_backtest(pd.Series([1.0, -1.0], index=idx[:2]), close)
    >>> result.returns.round(3).tolist()  # +10% long, then +10% short as the price falls 10%
    [0.1, 0.1]
    """
    close = _as_close(prices)
    if sizing is not None:
        positions_decided = positions_from_probabilities(signal, sizing)
    else:
        positions_decided = _check_series(signal, "signal")
    _check_same_timezone(positions_decided, close)
    if not isinstance(delay, int | np.integer) or isinstance(delay, bool):
        raise TypeError(f"delay must be an integer number of bars, got {delay!r}")
    if delay < 0:
        raise ValueError(
            f"delay={delay} would trade returns that ended before the decisions were made; "
            "a position decided at t can only earn returns after t"
        )
    for name, value in (("cost_bps", cost_bps), ("fee", fee)):
        if not (np.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    if not (np.isfinite(initial_capital) and initial_capital > 0):
        raise ValueError(f"initial_capital must be positive, got {initial_capital!r}")

    price_index = close.index
    last_price = price_index[-1]
    # Timestamp alignment: every decision must be a bar close that has a later bar to trade.
    known = price_index.isin(positions_decided.index)
    foreign = ~positions_decided.index.isin(price_index)
    if foreign.any():
        t = positions_decided.index[foreign][0]
        where = price_index.searchsorted(t)
        before = price_index[where - 1] if where > 0 else None
        after = price_index[where] if where < len(price_index) else None
        if t > last_price:
            raise ValueError(
                f"signal at {t} is after the last price ({last_price}): there is no return for it "
                "to trade (was the signal shifted into the future?)"
            )
        raise ValueError(
            f"signal at {t} is not a price timestamp (nearest prices: {before} and {after}); "
            "decisions must be stamped at the close of a bar"
        )
    if positions_decided.index[-1] == last_price:
        raise ValueError(
            f"signal at {last_price} is stamped at the last price: no later price exists for it to "
            "trade. A signal stamped at the end of the return it was meant to trade is looking "
            "ahead; drop this value if it is only an extra final decision"
        )

    first = int(np.argmax(known))  # price position of the first decision
    last_decision = int(np.flatnonzero(known)[-1])
    if end is None:
        stop = last_decision + 1  # price position where the last bar ends
    else:
        end_ts = pd.Timestamp(end)
        if end_ts not in price_index:
            raise ValueError(f"end={end_ts} is not a price timestamp")
        stop = int(price_index.get_loc(end_ts))
        if stop <= last_decision:
            raise ValueError(
                f"end={end_ts} must come after the last signal at {price_index[last_decision]}"
            )
    if stop + delay > len(price_index) - 1:
        raise ValueError(
            f"delay={delay} needs prices up to {delay} bars after {price_index[stop]}, but the "
            f"last price is {last_price}"
        )

    # Decided position in force at each price bar start p_first .. p_{stop-1} (forward-filled).
    decided = positions_decided.reindex(price_index[first:stop]).ffill().to_numpy(float)  # [n]
    n = len(decided)
    held = np.concatenate([np.zeros(delay), decided])  # [n + delay], executed `delay` bars late
    bar_start = price_index[first : stop + delay]  # [n + delay]
    values = close.to_numpy(dtype=float)
    price_return = values[first + 1 : stop + delay + 1] / values[first : stop + delay] - 1.0
    n += delay

    previous = np.concatenate([[0.0], held[:-1]])
    turnover = np.abs(held - previous)  # trade at each bar start
    traded = turnover > 0
    if close_at_end and held[-1] != 0:
        turnover[-1] += abs(held[-1])
        extra_trade = 1
    else:
        extra_trade = 0
    trades_per_bar = traded.astype(float)
    trades_per_bar[-1] += extra_trade

    gross = held * price_return  # [n]
    proportional = cost_bps / 10_000.0 * turnover  # [n]
    net = np.empty(n)
    costs = np.empty(n)
    equity = np.empty(n + 1)
    equity[0] = initial_capital
    ruined = False
    for i in range(n):  # sequential only because a fixed fee depends on the equity reached
        if ruined:
            net[i] = costs[i] = 0.0
        else:
            costs[i] = proportional[i] + fee * trades_per_bar[i] / equity[i]
            net[i] = gross[i] - costs[i]
            if net[i] <= -1.0:
                net[i], ruined = -1.0, True
        equity[i + 1] = equity[i] * (1.0 + net[i])

    bar_end = price_index[first + 1 : stop + delay + 1]
    equity_index = price_index[first : stop + delay + 1]
    if periods_per_year is None:
        ppy, note = _periods_per_year(price_index)
    else:
        if not (np.isfinite(periods_per_year) and periods_per_year > 0):
            raise ValueError(f"periods_per_year must be positive, got {periods_per_year!r}")
        ppy, note = float(periods_per_year), "given by the caller"

    equity_series = pd.Series(equity, index=equity_index, name="equity")
    metrics = _metrics(
        net,
        held,
        turnover,
        int(trades_per_bar.sum()),
        equity_series,
        ppy,
        risk_free,
        sharpe_benchmark,
        ruined,
    )
    return BacktestResult(
        equity=equity_series,
        returns=pd.Series(net, index=bar_end, name="returns"),
        positions=pd.Series(held, index=bar_start, name="position"),
        metrics=metrics,
        gross_returns=pd.Series(gross, index=bar_end, name="gross_returns"),
        costs=pd.Series(costs, index=bar_end, name="costs"),
        turnover=pd.Series(turnover, index=bar_end, name="turnover"),
        periods_per_year=ppy,
        annualisation=note,
    )


# --------------------------------------------------------------------------------------------------
# Cost sensitivity
# --------------------------------------------------------------------------------------------------
def break_even_cost(
    signal: pd.Series, prices: pd.Series | pd.DataFrame, **backtest_options: object
) -> float:
    """Proportional cost, in basis points of turnover, at which the strategy earns nothing.

    Costs lower every bar's return by ``cost * turnover`` exactly, so the mean net return is
    ``mean(gross) - cost * mean(turnover)`` and reaches zero at

    .. math:: c^* = \\frac{\\sum_i w_i r_i}{\\sum_i |w_i - w_{i-1}|}.

    At this cost the Sharpe ratio (with a zero risk-free rate) is zero; at any higher cost the
    strategy loses money on average. A negative value means it loses even without costs; ``inf``
    means it never trades.

    Parameters
    ----------
    signal, prices
        As for :func:`run_backtest`.
    **backtest_options
        Any other argument of :func:`run_backtest` (``sizing``, ``delay``, ``end``,
        ``close_at_end``) except ``cost_bps`` and ``fee``.

    Returns
    -------
    float
        Break-even cost in basis points.
    """
    for name in ("cost_bps", "fee"):
        if name in backtest_options:
            raise TypeError(f"break_even_cost: {name} is what it solves for; do not pass it")
    result = run_backtest(signal, prices, **backtest_options)  # type: ignore[arg-type]
    total_turnover = float(result.turnover.sum())
    if total_turnover == 0:
        return math.inf
    return float(result.gross_returns.sum()) / total_turnover * 10_000.0


def cost_sensitivity(
    signal: pd.Series,
    prices: pd.Series | pd.DataFrame,
    costs_bps: Iterable[float],
    **backtest_options: object,
) -> pd.DataFrame:
    """Metrics of the same strategy at several proportional costs (one row per cost).

    Parameters
    ----------
    signal, prices
        As for :func:`run_backtest`.
    costs_bps : iterable of float
        Costs in basis points of turnover.
    **backtest_options
        Any other argument of :func:`run_backtest` except ``cost_bps``.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``cost_bps``; columns ``total_return``, ``annual_return``, ``sharpe``,
        ``sharpe_se``, ``psr``, ``max_drawdown``.
    """
    if "cost_bps" in backtest_options:
        raise TypeError("cost_sensitivity: pass the costs as costs_bps, not cost_bps")
    costs = [float(c) for c in costs_bps]
    if not costs:
        raise ValueError("cost_sensitivity: costs_bps is empty")
    columns = ["total_return", "annual_return", "sharpe", "sharpe_se", "psr", "max_drawdown"]
    rows = []
    for cost in costs:
        metrics = run_backtest(signal, prices, cost_bps=cost, **backtest_options).metrics  # type: ignore[arg-type]
        rows.append([metrics[c] for c in columns])
    return pd.DataFrame(rows, index=pd.Index(costs, name="cost_bps"), columns=columns)
