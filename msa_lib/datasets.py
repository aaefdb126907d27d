"""Where the course's data come from: a synthetic market with known ground truth, and real bars.

* :func:`simulate_market` generates 1-minute OHLCV bars (24/7, UTC, labelled by close time) with a
  planted **cross-scale** signal, and returns them with the truth that generated them and an
  oracle (:meth:`SyntheticMarket.expected_return`): the exact conditional mean of every forward
  return given what was observable at the time. The oracle says how well any model could do.
* :func:`load_dataset` returns the real bars that ship inside the package (no internet needed).
* :func:`fetch_bybit_klines` downloads live bars (needs internet; not used by the book). It lives
  in :mod:`msa_lib.bybit` and is re-exported here.

The synthetic market
--------------------
Time runs in minutes ``u``; UTC day ``d`` holds 1,440 of them. Three planted parts, each visible at
one scale only, make a move whose direction needs two scales at once:

* **Slow state** ``s_d`` (+1 or -1, daily scale): the sign of the log return over the
  ``state_days`` daily bars that end with the close of day ``d - 2``. It uses completed daily bars
  only, is known a whole day before it applies, and no intraday window of the course (at most 12
  hours of hourly bars) overlaps the days that set it.
* **Bursts** (1-minute scale): each minute is a burst with probability ``event_rate``, except the
  minute right after a burst and a minute in which a jump lands. A burst bar trades
  ``event_volume`` times its usual volume and spikes by ``spike_size`` times that minute's noise
  scale, up or down at random; the next minute undoes the burst bar's whole move (the *reversal*),
  so 5-minute and coarser bars barely show which way it went. The burst's sign ``e`` (+1/-1) is
  the sign of the burst bar's return: its 1-minute bar shows it exactly.
* **Jumps**: ``reaction_delay`` minutes after a burst the price jumps by ``s * e * jump_size``, with
  ``jump_size = signal_strength * minute_vol`` and ``s`` the state of the burst's day. With ``s``
  and ``e`` balanced, neither the daily state alone nor the burst's sign alone says which way the
  jump goes; their product does.

The log return of minute ``u`` is

``r_u = sigma_u * eps_u + spike_u + reversal_u + jump_u``

* ``spike_u = +-spike_size * sigma_u`` on a burst minute (random sign), 0 elsewhere;
  ``reversal_u = -r_{u-1}`` on the minute after a burst, 0 elsewhere; ``jump_u = s * e *
  jump_size`` on the minute ``reaction_delay`` after a burst, 0 elsewhere.
* ``sigma_u = minute_vol * season(hour) * exp(h_u - vol_of_vol**2)``: an intraday cycle peaking at
  ``season_peak_hour`` UTC, times a log-AR(1) stochastic volatility ``h`` (volatility clustering).
* ``eps_u``: Student-t with ``tail_dof`` degrees of freedom scaled to unit variance (heavy tails).
* Volume: ``volume_base * season * (1 + volume_return_sensitivity * |r_u| / sigma_u)`` times
  log-normal noise, times ``event_volume`` on a burst minute.

The oracle, :meth:`SyntheticMarket.expected_return`, is the exact conditional mean of the log return
``H`` minutes ahead given everything observable at ``t``: the jumps already announced (by bursts at
or before ``t``) that land in ``(t, t + min(H, reaction_delay)]``, plus the reversal of a burst at
``t`` itself. Everything else (noise, future bursts and the jumps they will announce) has mean zero.
``SyntheticMarket.truth`` holds every planted part (``state``, ``event``, ``event_sign``, ``jump``,
``reversal``, ``sigma``, ``season``, ``log_return``).
"""

from __future__ import annotations

import dataclasses
import gzip
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from msa_lib.bybit import fetch_bybit_klines
from msa_lib.data import OHLCV_COLUMNS, as_timedelta, decision_times, horizon_label, validate_ohlcv

__all__ = [
    "DATASETS",
    "INSTRUMENT_LEVELS",
    "MarketParams",
    "SyntheticMarket",
    "fetch_bybit_klines",
    "load_dataset",
    "simulate_instruments",
    "simulate_market",
]

MINUTES_PER_DAY = 1440


# --------------------------------------------------------------------------------------------------
# the synthetic market
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MarketParams:
    """Every knob of :func:`simulate_market` (frozen: change one with ``dataclasses.replace``).

    Attributes
    ----------
    signal_strength : float
        Size of every planted jump, in units of ``minute_vol`` (0 plants no jumps; the bursts and
        their reversals remain). Chapter 01 measures the oracle's accuracy at the default.
    event_rate : float
        Probability that a minute is a volume burst (an *event*), in ``(0, 0.5]``.
    event_volume : float
        Volume of a burst bar, as a multiple of what the bar would otherwise trade.
    spike_size : float
        The burst's spike, in units of that minute's noise scale; the next minute undoes the burst
        bar's whole move, so coarser bars barely show it.
    reaction_delay : int
        Minutes from a burst to its jump (the finest scale's lookback in the course: a 1-minute
        window of that length never holds both a burst and its jump).
    state_days : int
        The slow state is the sign of the return over this many daily bars, ending with the close
        of the day before yesterday. The default, 1, makes the state a fresh coin flip most days:
        with a state that lasts for weeks (5 days measured) a network can pass its validation
        block by reading a proxy of the state (a recent return, a moving average) and then read
        it wrong on whole days of the test block.
    minute_vol : float
        Typical standard deviation of a one-minute log return.
    season_amplitude : float
        Intraday cycle: volatility and volume are multiplied by ``1 + a * cos(2 pi (h - peak)/24)``.
    season_peak_hour : float
        UTC hour of the busiest time of day.
    vol_half_life_minutes : float
        Half-life of the log-volatility AR(1) process (volatility clustering).
    vol_of_vol : float
        Stationary standard deviation of log-volatility.
    tail_dof : float
        Degrees of freedom of the Student-t innovations (> 2; smaller = heavier tails).
    volume_base : float
        Mean volume of a quiet minute.
    volume_return_sensitivity : float
        Volume grows by this factor per unit of ``|r_u| / sigma_u``.
    volume_noise : float
        Standard deviation of the log-normal noise on volume.
    substeps : int
        Points per minute of the finer path from which open/high/low are taken.
    start_price : float
        Price at the start of the first bar.
    burn_in_days : int
        Days simulated and thrown away before the start (so the state has history on day 1).
    """

    signal_strength: float = 8.0
    event_rate: float = 0.1
    event_volume: float = 20.0
    spike_size: float = 4.0
    reaction_delay: int = 30
    state_days: int = 1
    minute_vol: float = 6e-4
    season_amplitude: float = 0.4
    season_peak_hour: float = 14.0
    vol_half_life_minutes: float = 240.0
    vol_of_vol: float = 0.3
    tail_dof: float = 4.0
    volume_base: float = 100.0
    volume_return_sensitivity: float = 1.0
    volume_noise: float = 0.3
    substeps: int = 10
    start_price: float = 100.0
    burn_in_days: int = 10

    def __post_init__(self) -> None:
        checks = [
            (self.signal_strength >= 0, "signal_strength must be >= 0"),
            (0 < self.event_rate <= 0.5, "event_rate must be in (0, 0.5]"),
            (self.event_volume >= 1, "event_volume must be >= 1"),
            (self.spike_size >= 0, "spike_size must be >= 0"),
            (1 <= self.reaction_delay < MINUTES_PER_DAY, "reaction_delay must be in [1, 1440)"),
            (self.state_days >= 1, "state_days must be >= 1"),
            (self.minute_vol > 0, "minute_vol must be > 0"),
            (0 <= self.season_amplitude < 1, "season_amplitude must be in [0, 1)"),
            (self.vol_half_life_minutes > 0, "vol_half_life_minutes must be > 0"),
            (self.vol_of_vol >= 0, "vol_of_vol must be >= 0"),
            (self.tail_dof > 2, "tail_dof must be > 2 (finite variance)"),
            (self.volume_base > 0, "volume_base must be > 0"),
            (self.volume_return_sensitivity >= 0, "volume_return_sensitivity must be >= 0"),
            (self.volume_noise >= 0, "volume_noise must be >= 0"),
            (self.substeps >= 1, "substeps must be >= 1"),
            (self.start_price > 0, "start_price must be > 0"),
            (self.burn_in_days >= self.state_days + 2, "burn_in_days must be >= state_days + 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"MarketParams: {message}")

    @property
    def jump_size(self) -> float:
        """Absolute size of every planted jump, in log-return units."""
        return self.signal_strength * self.minute_vol


class SyntheticMarket:
    """The output of :func:`simulate_market`: bars, the planted truth, and the oracle.

    Attributes
    ----------
    bars : pandas.DataFrame
        1-minute bars, index ``time`` (UTC, bar close time), columns
        ``open, high, low, close, volume`` (float64).
    truth : pandas.DataFrame
        On the bar index: ``state`` (the slow state ``s`` of this bar's day, +1/-1), ``event``
        (this bar is a volume burst), ``event_sign`` (the sign ``e`` of a burst bar's return, 0
        elsewhere), ``jump`` (the planted jump that lands in this bar, 0 in most bars),
        ``reversal`` (the move that undoes the previous bar's burst, 0 elsewhere), ``sigma`` (noise
        scale of this bar), ``season`` (intraday factor) and ``log_return``.
    params : MarketParams
    seed : int
    """

    def __init__(self, bars: pd.DataFrame, truth: pd.DataFrame, params: MarketParams, seed: int) -> None:
        self.bars = bars
        self.truth = truth
        self.params = params
        self.seed = seed

    def __repr__(self) -> str:
        return (
            f"SyntheticMarket({len(self.bars):,} one-minute bars, {self.bars.index[0]} .. "
            f"{self.bars.index[-1]}, signal_strength={self.params.signal_strength}, "
            f"seed={self.seed})"
        )

    def _minutes(self, horizon: int | str) -> int:
        minutes = as_timedelta(horizon) / pd.Timedelta(minutes=1)
        if minutes != int(minutes) or minutes < 1:
            raise ValueError(f"horizon {horizon!r} is not a positive whole number of minutes")
        return int(minutes)

    def expected_return(self, horizon: int | str) -> pd.Series:
        """The oracle: planted conditional mean of the forward log return over ``horizon``.

        At bar time ``t`` returns ``E[log C_{t+H} - log C_t | everything observable at t]``,
        exactly: the sum of the jumps already announced (by bursts at or before ``t``) that land
        in ``(t, t + H]``. Everything else has mean zero: the noise, the moves of future bursts,
        and the jumps those bursts will announce (their sign ``s * e`` is a coin flip at ``t``).

        Parameters
        ----------
        horizon : int or str
            Minutes (int) or a string such as ``"15min"``, ``"1h"``.

        Returns
        -------
        pandas.Series
            On ``bars.index``; NaN where ``t + horizon`` is past the last bar.
        """
        steps = self._minutes(horizon)
        known = min(steps, self.params.reaction_delay)  # jumps announced by bursts at or before t
        jump = self.truth["jump"].to_numpy()
        n = len(jump)
        csum = np.concatenate([[0.0], np.cumsum(jump)])
        idx = np.arange(n)
        total = csum[np.minimum(idx + 1 + known, n)] - csum[idx + 1]
        # a burst at t is undone at t + 1 minute: known at t, inside every horizon
        total[:-1] += self.truth["reversal"].to_numpy()[1:]
        total[max(n - steps, 0) :] = np.nan  # a negative start would only blank the last rows
        return pd.Series(total, index=self.bars.index, name=f"expected_{horizon_label(horizon)}")

    def forward_return(self, horizon: int | str) -> pd.Series:
        """Realised log return from each bar's close to the close ``horizon`` later (NaN past the end)."""
        steps = self._minutes(horizon)
        log_close = np.log(self.bars["close"].to_numpy())
        out = np.full(len(log_close), np.nan)
        if steps < len(out):  # a horizon as long as the data leaves every value NaN
            out[: len(out) - steps] = log_close[steps:] - log_close[:-steps]
        return pd.Series(out, index=self.bars.index, name=f"forward_{horizon_label(horizon)}")

    def oracle_accuracy(
        self,
        horizon: int | str,
        times: pd.DatetimeIndex | None = None,
        *,
        every: int | str = "5min",
    ) -> float:
        """Share of decision times where the oracle calls the realised direction.

        The oracle says "up" when its expected return is above zero and "not up" otherwise (the
        convention of :func:`msa_lib.evaluate.direction_accuracy`), so a decision with nothing
        announced is a coin flip for it too.

        Parameters
        ----------
        horizon : int or str
            Forecast horizon.
        times : pandas.DatetimeIndex, optional
            Decision times (bar times). By default every bar time on a multiple of ``every``.
        every : int or str, default "5min"
            Spacing of the default decision times.

        Returns
        -------
        float
            Direction accuracy over the times whose horizon ends inside the data.
        """
        if times is None:
            times = decision_times(self.bars, every)
        expected = self.expected_return(horizon).reindex(times)
        realised = self.forward_return(horizon).reindex(times)
        ok = expected.notna() & realised.notna()
        if not ok.any():
            raise ValueError(f"no decision time has a full {horizon!r} horizon inside the data")
        return float(((expected[ok] > 0) == (realised[ok] > 0)).mean())


def simulate_market(
    days: int = 60,
    seed: int = 0,
    start: str | pd.Timestamp = "2024-01-01",
    *,
    signal_strength: float | None = None,
    params: MarketParams | None = None,
) -> SyntheticMarket:
    """Simulate ``days`` days of 1-minute bars with a planted cross-scale signal and its oracle.

    See the module docstring and the data card (``book/data_card.md``) for the model. 60 days
    (86,400 bars) take about a second.

    Parameters
    ----------
    days : int, default 60
        Number of whole UTC days of bars.
    seed : int, default 0
        Seed of the random generator; the same seed gives the same market.
    start : str or pandas.Timestamp, default "2024-01-01"
        Midnight (UTC) at which the first bar opens; its label (close time) is one minute later.
    signal_strength : float, optional
        Shortcut for ``params.signal_strength`` (the jump size in units of ``minute_vol``).
    params : MarketParams, optional
        All other settings (defaults: :class:`MarketParams()`).

    Returns
    -------
    SyntheticMarket
        ``.bars``, ``.truth``, ``.params``, ``.expected_return(h)``, ``.oracle_accuracy(h)``.
    """
    p = _market_params(params, signal_strength)
    start_ts = _check_days_and_start(days, start)
    # the draws below come in a fixed order (volatility, innovations, bursts and states, the path
    # inside each minute, volume): published results depend on it, so keep the order
    rng = np.random.default_rng(seed)
    n = (days + p.burn_in_days) * MINUTES_PER_DAY
    sigma, season = _volatility(p, n, rng.standard_normal(n), rng.standard_normal())
    eps = _unit_t(p.tail_dof, n, rng)
    return _market(p, sigma, season, sigma * eps, start_ts, rng, int(seed))


def _market_params(params: MarketParams | None, signal_strength: float | None) -> MarketParams:
    """``params`` (default ``MarketParams()``) with ``signal_strength`` put in when given."""
    p = params if params is not None else MarketParams()
    if signal_strength is not None:
        p = dataclasses.replace(p, signal_strength=float(signal_strength))
    return p


def _check_days_and_start(days: int, start: str | pd.Timestamp) -> pd.Timestamp:
    """Check ``days`` (a positive int) and return ``start`` as a UTC midnight."""
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 1:
        raise ValueError(f"days must be a positive int, got {days!r}")
    start_ts = pd.Timestamp(start)
    start_ts = start_ts.tz_localize("UTC") if start_ts.tz is None else start_ts.tz_convert("UTC")
    if start_ts != start_ts.normalize():
        raise ValueError(f"start must be a midnight (UTC), got {start_ts}")
    return start_ts


def _volatility(
    p: MarketParams, n: int, z: np.ndarray, z0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Noise scale ``sigma`` and intraday season ``season`` (both ``[n]``) from standard normals.

    ``z`` ``[n]`` drives the log-AR(1) volatility ``h`` and ``z0`` its start: the same ``z`` for
    several instruments gives them one volatility clock (:func:`simulate_instruments`).
    """
    n_days = n // MINUTES_PER_DAY
    # intraday season (same for every day), by the middle of each minute
    hour = (np.arange(MINUTES_PER_DAY) + 0.5) / 60.0
    season_day = 1.0 + p.season_amplitude * np.cos(2 * np.pi * (hour - p.season_peak_hour) / 24)
    season = np.tile(season_day, n_days)  # [n]

    # stochastic volatility: log-AR(1) with stationary std vol_of_vol
    phi = 0.5 ** (1.0 / p.vol_half_life_minutes)
    shocks = z * p.vol_of_vol * np.sqrt(1 - phi**2)
    h0 = z0 * p.vol_of_vol
    h = lfilter([1.0], [1.0, -phi], shocks, zi=[phi * h0])[0]
    sigma = p.minute_vol * season * np.exp(h - p.vol_of_vol**2)  # [n]; E[sigma^2] = (vol*season)^2
    return sigma, season


def _unit_t(dof: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` Student-t draws with ``dof`` degrees of freedom, scaled to unit variance."""
    return rng.standard_t(dof, size=n) / np.sqrt(dof / (dof - 2))


def _market(
    p: MarketParams,
    sigma: np.ndarray,
    season: np.ndarray,
    noise: np.ndarray,
    start_ts: pd.Timestamp,
    rng: np.random.Generator,
    seed: int,
) -> SyntheticMarket:
    """Plant bursts, states and jumps on the minute ``noise`` ``[n]``, then build bars and truth.

    ``n`` covers the burn-in days too; ``rng`` draws, in this order, the bursts, their signs, the
    burn-in states, the path inside each minute and the volume noise.
    """
    n = len(noise)
    n_days = n // MINUTES_PER_DAY
    delay = p.reaction_delay

    # bursts: a minute may burst unless the minute before burst (its reversal minute) or a jump
    # lands in it (a burst D minutes earlier); then the burst bar's sign is its own coin flip,
    # never something announced earlier. Walk forward, dropping candidates that break the rule.
    candidate = np.flatnonzero(rng.random(n) < p.event_rate)
    event = np.zeros(n, dtype=bool)
    for u in candidate:
        event[u] = u + 1 < n and not (u >= 1 and event[u - 1]) and not (u >= delay and event[u - delay])
    bursts_all = np.flatnonzero(event)
    spike_sign = rng.choice([-1.0, 1.0], size=len(bursts_all))
    r = noise.copy()
    r[bursts_all] += spike_sign * p.spike_size * sigma[bursts_all]  # the burst: a spike
    reversal = np.zeros(n)
    reversal[bursts_all + 1] = -r[bursts_all]  # undone in full the next minute
    r += reversal
    event_sign = np.zeros(n, dtype=np.int8)
    event_sign[bursts_all] = np.where(r[bursts_all] >= 0, 1, -1)  # the burst bar's direction e

    # the slow state of each day and the jumps, day by day: the state of day d needs the closes of
    # days d-2-state_days and d-2, which include the jumps landing in them
    jump = np.zeros(n)
    state_by_day = np.empty(n_days)
    day_close = np.empty(n_days)  # cumulative log return at each day's close
    level = 0.0
    for d in range(n_days):
        if d >= p.state_days + 2:
            s = 1.0 if day_close[d - 2] - day_close[d - 2 - p.state_days] >= 0 else -1.0
        else:  # burn-in days without enough history: a coin flip
            s = float(rng.choice([-1.0, 1.0]))
        state_by_day[d] = s
        lo, hi = d * MINUTES_PER_DAY, (d + 1) * MINUTES_PER_DAY
        bursts = bursts_all[(bursts_all >= lo) & (bursts_all < hi)]
        land = bursts + delay
        inside = land < n
        move = s * event_sign[bursts[inside]] * p.jump_size
        jump[land[inside]] += move
        r[land[inside]] += move
        level += r[lo:hi].sum()
        day_close[d] = level

    state = np.repeat(state_by_day, MINUTES_PER_DAY)  # [n]

    # keep the days after the burn-in
    keep = slice(p.burn_in_days * MINUTES_PER_DAY, n)
    r_k, sig_k, season_k = r[keep], sigma[keep], season[keep]
    m = len(r_k)
    log_close = np.log(p.start_price) + np.cumsum(r_k)  # [m]
    log_open = np.concatenate([[np.log(p.start_price)], log_close[:-1]])

    # a finer path through each minute: a Brownian bridge from open to close, `substeps` points
    k = p.substeps
    steps = rng.standard_normal((m, k)) * (sig_k / np.sqrt(k))[:, None]  # [m, k]
    walk = np.cumsum(steps, axis=1)
    frac = np.arange(1, k + 1) / k  # [k]
    bridge = walk - frac[None, :] * (walk[:, -1:] - r_k[:, None])  # ends exactly at r_k
    path = log_open[:, None] + bridge  # [m, k]; path[:, -1] == log_close
    high = np.maximum(path.max(axis=1), log_open)
    low = np.minimum(path.min(axis=1), log_open)

    # volume: intraday cycle, more on big moves, log-normal noise, event_volume times more in bursts
    vol_noise = np.exp(p.volume_noise * rng.standard_normal(m) - p.volume_noise**2 / 2)
    volume = (
        p.volume_base
        * season_k
        * (1.0 + p.volume_return_sensitivity * np.abs(r_k) / sig_k)
        * vol_noise
        * np.where(event[keep], p.event_volume, 1.0)
    )

    index = pd.date_range(
        start_ts + pd.Timedelta(minutes=1), periods=m, freq="min", name="time"
    )
    bars = pd.DataFrame(
        {
            "open": np.exp(log_open),
            "high": np.exp(high),
            "low": np.exp(low),
            "close": np.exp(log_close),
            "volume": volume,
        },
        index=index,
    )
    # exp() of the same log value is the same float, so open == previous close exactly; guard the
    # high/low ordering against rounding anyway
    bars["high"] = bars[["open", "high", "close"]].max(axis=1)
    bars["low"] = bars[["open", "low", "close"]].min(axis=1)
    truth = pd.DataFrame(
        {
            "state": state[keep].astype(np.int8),
            "event": event[keep],
            "event_sign": event_sign[keep],
            "jump": jump[keep],
            "reversal": reversal[keep],
            "sigma": sig_k,
            "season": season_k,
            "log_return": r_k,
        },
        index=index,
    )
    validate_ohlcv(bars, name="simulated bars")
    return SyntheticMarket(bars, truth, p, seed)


#: Price levels and volatility multipliers that :func:`simulate_instruments` gives the instruments
#: by default (cycled), so that they differ the way real instruments do.
INSTRUMENT_LEVELS: tuple[tuple[float, float], ...] = ((100.0, 1.0), (2500.0, 1.6), (0.8, 0.7))

#: Settings of the market-wide factor: every instrument of one call must share them.
_SHARED_FIELDS = ("vol_half_life_minutes", "vol_of_vol", "tail_dof", "burn_in_days")


def simulate_instruments(
    names: Sequence[str] = ("AAA", "BBB", "CCC"),
    days: int = 60,
    seed: int = 0,
    start: str | pd.Timestamp = "2024-01-01",
    *,
    correlation: float = 0.6,
    params: MarketParams | Mapping[str, MarketParams] | None = None,
) -> dict[str, SyntheticMarket]:
    """Simulate several instruments whose minute noise shares a common factor.

    Each instrument is a :func:`simulate_market` market, planted and checked the same way: its own
    bursts, its own slow state (from its own daily returns), its own jumps, hence its own exact
    oracle (``.expected_return``, ``.oracle_accuracy``). What they share is the market:

    * one volatility clock: the log-volatility AR(1) of every instrument is driven by the same
      shocks (each instrument scales it by its own ``minute_vol``);
    * correlated innovations: ``eps_i = sqrt(c) * z + sqrt(1 - c) * z_i`` with ``z`` common and
      ``z_i`` the instrument's own (unit-variance Student-t each), so the noise of two instruments
      has correlation ``c``. On a minute without a planted part in either instrument (burst,
      reversal, jump) the log returns are that noise: their correlation is ``c``. The planted parts
      are each instrument's own and carry most of the variance, so over all minutes the
      correlation is far lower (0.06 measured for ``c = 0.6``, 5 days, default settings).

    Parameters
    ----------
    names : sequence of str, default ("AAA", "BBB", "CCC")
        Instrument names, unique, at least one.
    days, seed, start
        As in :func:`simulate_market`. ``seed`` fixes all instruments together.
    correlation : float, default 0.6
        Correlation ``c`` of the minute noise, in ``[0, 1)``.
    params : MarketParams or mapping of name to MarketParams, optional
        One set of settings for all, or one per name. By default instrument ``k`` gets
        ``MarketParams(start_price=level, minute_vol=6e-4 * factor)`` with ``(level, factor)``
        from :data:`INSTRUMENT_LEVELS` (cycled): different price levels and volatilities, which is
        why each instrument needs its own normalisation. The fields of the common factor
        (``vol_half_life_minutes``, ``vol_of_vol``, ``tail_dof``, ``burn_in_days``) must agree.

    Returns
    -------
    dict of str to SyntheticMarket
        In the order of ``names``; each ``.seed`` is ``seed``.

    Raises
    ------
    ValueError
        No names, duplicated names, a correlation outside ``[0, 1)``, params missing a name or
        disagreeing on a shared field.
    """
    names = _check_names(names)
    if isinstance(correlation, bool) or not isinstance(correlation, int | float | np.floating) or not (
        0 <= correlation < 1
    ):
        raise ValueError(f"correlation must be a number in [0, 1), got {correlation!r}")
    by_name = _instrument_params(names, params)
    start_ts = _check_days_and_start(days, start)
    first = by_name[names[0]]
    n = (days + first.burn_in_days) * MINUTES_PER_DAY
    # one generator for the common factor, one per instrument (its own bursts, states, paths)
    common_seq, *own_seqs = np.random.SeedSequence(seed).spawn(len(names) + 1)
    common = np.random.default_rng(common_seq)
    z_vol, z0 = common.standard_normal(n), common.standard_normal()  # the volatility clock
    z_noise = _unit_t(first.tail_dof, n, common)  # the common factor of the innovations [n]
    markets = {}
    for name, seq in zip(names, own_seqs, strict=True):
        p, rng = by_name[name], np.random.default_rng(seq)
        sigma, season = _volatility(p, n, z_vol, z0)
        eps = np.sqrt(correlation) * z_noise + np.sqrt(1 - correlation) * _unit_t(p.tail_dof, n, rng)
        markets[name] = _market(p, sigma, season, sigma * eps, start_ts, rng, int(seed))
    return markets


def _check_names(names: Sequence[str]) -> list[str]:
    """Instrument names as a list: strings, unique, at least one."""
    if isinstance(names, str):
        raise ValueError(f"names must be a sequence of instrument names, got the string {names!r}")
    names = list(names)
    if not names:
        raise ValueError("names: give at least one instrument name")
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise ValueError(f"names must be non-empty strings, got {bad}")
    seen = {n for n in names if names.count(n) > 1}
    if seen:
        raise ValueError(f"names: duplicated instrument name(s) {sorted(seen)}")
    return names


def _instrument_params(
    names: list[str], params: MarketParams | Mapping[str, MarketParams] | None
) -> dict[str, MarketParams]:
    """Settings per instrument (see :func:`simulate_instruments`), checked for the shared fields."""
    if params is None:
        by_name = {}
        for k, name in enumerate(names):
            level, factor = INSTRUMENT_LEVELS[k % len(INSTRUMENT_LEVELS)]
            base = MarketParams()
            by_name[name] = dataclasses.replace(
                base, start_price=level, minute_vol=base.minute_vol * factor
            )
    elif isinstance(params, MarketParams):
        by_name = dict.fromkeys(names, params)
    else:
        missing = [n for n in names if n not in params]
        if missing:
            raise ValueError(f"params has no MarketParams for instrument(s) {missing}")
        by_name = {n: params[n] for n in names}
    first = by_name[names[0]]
    for name in names[1:]:
        for field in _SHARED_FIELDS:
            if getattr(by_name[name], field) != getattr(first, field):
                raise ValueError(
                    f"params: {field} of {name!r} ({getattr(by_name[name], field)}) differs from "
                    f"{names[0]!r}'s ({getattr(first, field)}); the common factor needs one value"
                )
    return by_name


# --------------------------------------------------------------------------------------------------
# real data shipped with the package
# --------------------------------------------------------------------------------------------------
DATASETS: dict[str, str] = {
    "eurusd_1h": "EUR/USD hourly ask bars, 2017 (gym-anytrading, MIT)",
    "es_1min": "E-mini S&P 500 futures 1-minute bars from ticks, 2013-09-01..03 (mlfinpy, MIT)",
    "spx_1d": "S&P 500 index daily bars, 1999-2018 (arch, NCSA)",
}
"""Names accepted by :func:`load_dataset`, with a one-line description (cards in ``bundled/``)."""


def load_dataset(name: str) -> pd.DataFrame:
    """Load a real dataset that ships with ``msa_lib`` (no internet needed).

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`: ``"eurusd_1h"``, ``"es_1min"``, ``"spx_1d"``. Each has a data card
        ``msa_lib/bundled/<name>.md`` (source, licence, columns, gaps, how it was made).

    Returns
    -------
    pandas.DataFrame
        Validated OHLCV bars (float64), index ``time`` in UTC labelled by bar **close** time.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the known names.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    raw = resources.files("msa_lib").joinpath("bundled", f"{name}.csv.gz").read_bytes()
    with gzip.open(io.BytesIO(raw), "rt") as fh:
        frame = pd.read_csv(fh)
    index = pd.DatetimeIndex(pd.to_datetime(frame.pop("time"), utc=True), name="time")
    bars = frame.astype("float64").set_index(index)
    return validate_ohlcv(bars.loc[:, list(OHLCV_COLUMNS)], name=f"dataset {name!r}")
