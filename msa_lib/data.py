"""Turning 1-minute bars into leakage-free multi-scale inputs.

The one rule this module enforces: **a timestamp is when the data became known.** Bars are labelled
by their *close* time, in UTC. A coarse bar labelled 10:05 aggregates the 1-minute bars labelled
10:01 ... 10:05, so it exists only from 10:05 on. A window for decision time ``t`` holds only rows
stamped at or before ``t`` at every scale.

Pipeline (each step is a function, each is tested):

``validate_ohlcv``  ->  ``resample_ohlcv``  ->  ``scale_features``  ->  ``make_windows``
(+ ``make_targets`` for the labels, ``chronological_split`` for train/val/test with a purge gap,
``walk_forward_splits`` for walk-forward folds purged the same way, and ``WindowScaler`` fitted on
the training windows only).

Nothing here modifies its inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "OHLCV_COLUMNS",
    "OHLCVError",
    "WindowScaler",
    "as_timedelta",
    "chronological_split",
    "decision_times",
    "horizon_label",
    "make_targets",
    "make_windows",
    "multi_scale_features",
    "resample_ohlcv",
    "scale_features",
    "validate_ohlcv",
    "walk_forward_splits",
]

OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""The columns every bar frame carries, in this order."""

_PRICE_COLUMNS = ("open", "high", "low", "close")


class OHLCVError(ValueError):
    """Bars that break one of the rules checked by :func:`validate_ohlcv`."""


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------
def as_timedelta(value: int | str | pd.Timedelta, *, what: str = "horizon") -> pd.Timedelta:
    """Read a duration: an ``int`` counts minutes, a string is a pandas offset like ``"15min"``.

    Parameters
    ----------
    value : int, str or pandas.Timedelta
        ``15``, ``"15min"``, ``"1h"``, ``"1D"`` or a ``Timedelta``.
    what : str
        Name used in the error message (``"horizon"``, ``"purge"``, ...).

    Returns
    -------
    pandas.Timedelta
        A strictly positive duration.

    Raises
    ------
    ValueError
        If the value cannot be read as a duration or is not positive.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be minutes (int) or a duration string, got {value!r}")
    if isinstance(value, int | np.integer):
        td = pd.Timedelta(minutes=int(value))
    elif isinstance(value, str | pd.Timedelta):
        try:
            td = pd.Timedelta(value)
        except ValueError as err:
            raise ValueError(
                f"{what} {value!r} is not a fixed duration (try '15min', '1h', '1D')"
            ) from err
    else:
        raise ValueError(f"{what} must be minutes (int) or a duration string, got {value!r}")
    if td <= pd.Timedelta(0):
        raise ValueError(f"{what} must be positive, got {value!r}")
    return td


def horizon_label(value: int | str | pd.Timedelta) -> str:
    """Column name for a horizon: strings are kept as written, minutes become ``"<n>min"``.

    >>> horizon_label(15), horizon_label("1h")
    ('15min', '1h')
    """
    if isinstance(value, str):
        as_timedelta(value)  # validate
        return value
    td = as_timedelta(value)
    minutes = td / pd.Timedelta(minutes=1)
    if minutes == int(minutes):
        return f"{int(minutes)}min"
    return str(td)


def _ns(index: pd.DatetimeIndex) -> np.ndarray:
    """Timestamps as int64 nanoseconds (pandas 3 may store microseconds or seconds)."""
    return index.as_unit("ns").asi8


def _first(index: pd.Index, mask: np.ndarray) -> object:
    """The first index label where ``mask`` is true."""
    return index[int(np.flatnonzero(mask)[0])]


def _check_time_index(index: pd.Index, name: str) -> None:
    """Raise :class:`OHLCVError` unless ``index`` is a sorted, unique, tz-aware DatetimeIndex."""
    if not isinstance(index, pd.DatetimeIndex):
        raise OHLCVError(
            f"{name}: the index must be a DatetimeIndex of bar close times, "
            f"got {type(index).__name__}"
        )
    if index.tz is None:
        raise OHLCVError(
            f"{name}: the index has no time zone; bars are stored in UTC "
            "(use .tz_localize('UTC') if the times are UTC already)"
        )
    if index.hasnans:
        raise OHLCVError(f"{name}: the index contains NaT (missing timestamps)")
    values = index.asi8
    if len(values) > 1:
        step = np.diff(values)
        if (step == 0).any():
            where = index[int(np.flatnonzero(step == 0)[0]) + 1]
            raise OHLCVError(f"{name}: duplicated timestamp {where}")
        if (step < 0).any():
            where = index[int(np.flatnonzero(step < 0)[0]) + 1]
            raise OHLCVError(f"{name}: index not sorted: {where} comes after a later time")


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------
def validate_ohlcv(bars: pd.DataFrame, *, name: str = "bars") -> pd.DataFrame:
    """Check that ``bars`` are usable OHLCV bars; raise :class:`OHLCVError` naming the first problem.

    Checked, in this order: a DataFrame with columns ``open, high, low, close, volume`` (extra
    columns are allowed), numeric values, a tz-aware :class:`~pandas.DatetimeIndex` without
    duplicates, sorted increasingly; no NaN or infinite values; prices strictly positive;
    ``high >= max(open, close, low)`` and ``low <= min(open, close)``; volume not negative.

    Parameters
    ----------
    bars : pandas.DataFrame
        Bars labelled by their close time.
    name : str, default "bars"
        What to call the frame in error messages (for example ``"bars at scale 1h"``).

    Returns
    -------
    pandas.DataFrame
        ``bars`` itself (unchanged), so calls can be chained.

    Raises
    ------
    OHLCVError
        With the problem and the first offending timestamp (and column).
    """
    if not isinstance(bars, pd.DataFrame):
        raise OHLCVError(f"{name}: expected a pandas DataFrame, got {type(bars).__name__}")
    missing = [c for c in OHLCV_COLUMNS if c not in bars.columns]
    if missing:
        raise OHLCVError(f"{name}: missing column(s) {missing}; need {list(OHLCV_COLUMNS)}")
    if len(bars) == 0:
        raise OHLCVError(f"{name}: no rows")
    for col in OHLCV_COLUMNS:
        if not pd.api.types.is_numeric_dtype(bars[col]) or pd.api.types.is_bool_dtype(bars[col]):
            raise OHLCVError(f"{name}: column {col!r} is not numeric (dtype {bars[col].dtype})")
    _check_time_index(bars.index, name)

    index = bars.index
    values = {c: bars[c].to_numpy(dtype="float64", na_value=np.nan) for c in OHLCV_COLUMNS}
    for col, v in values.items():
        bad = np.isnan(v)
        if bad.any():
            raise OHLCVError(f"{name}: NaN in column {col!r} at {_first(index, bad)}")
        bad = np.isinf(v)
        if bad.any():
            raise OHLCVError(f"{name}: infinite value in column {col!r} at {_first(index, bad)}")
    for col in _PRICE_COLUMNS:
        bad = values[col] <= 0
        if bad.any():
            raise OHLCVError(f"{name}: non-positive price in {col!r} at {_first(index, bad)}")
    o, h, low, c = (values[k] for k in _PRICE_COLUMNS)
    for col, other in (("low", low), ("open", o), ("close", c)):
        bad = h < other
        if bad.any():
            raise OHLCVError(f"{name}: high below {col} at {_first(index, bad)}")
    for col, other in (("open", o), ("close", c)):
        bad = low > other
        if bad.any():
            raise OHLCVError(f"{name}: low above {col} at {_first(index, bad)}")
    bad = values["volume"] < 0
    if bad.any():
        raise OHLCVError(f"{name}: negative volume at {_first(index, bad)}")
    return bars


# --------------------------------------------------------------------------------------------------
# resampling
# --------------------------------------------------------------------------------------------------
def resample_ohlcv(bars: pd.DataFrame, rule: str | pd.Timedelta) -> pd.DataFrame:
    """Aggregate close-labelled bars into coarser bars, labelled by their **close** time.

    A coarse bar with label ``T`` and length ``rule`` collects the input bars stamped in
    ``(T - rule, T]`` (pandas ``closed="right", label="right"``): for 1-minute input and
    ``rule="5min"``, the bar labelled 10:05 holds the minutes labelled 10:01 ... 10:05, which cover
    10:00 to 10:05. Bins are anchored at the Unix epoch (midnight UTC), so daily bars close at
    midnight UTC and the bins do not depend on where the data start. Open is the first open, high
    the maximum, low the minimum, close the last close, volume the sum; bins without any input bar
    are dropped (no forward filling), so volume is conserved exactly.

    Parameters
    ----------
    bars : pandas.DataFrame
        Valid OHLCV bars (see :func:`validate_ohlcv`) labelled by close time.
    rule : str or pandas.Timedelta
        A fixed bar length: ``"5min"``, ``"1h"``, ``"1D"`` ... (calendar rules such as month ends
        are refused: their length varies).

    Returns
    -------
    pandas.DataFrame
        Columns ``open, high, low, close, volume`` (float64), index named ``"time"``.
    """
    validate_ohlcv(bars)
    step = as_timedelta(rule, what="rule")
    src = bars.loc[:, list(OHLCV_COLUMNS)].astype("float64")
    grouped = src.resample(step, closed="right", label="right", origin="epoch")
    out = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
        }
    )
    count = grouped["close"].count()
    out = out.loc[count.to_numpy() > 0]
    out.index.name = "time"
    return out


# --------------------------------------------------------------------------------------------------
# features
# --------------------------------------------------------------------------------------------------
def scale_features(
    bars: pd.DataFrame,
    *,
    lags: Sequence[int] = (1, 5, 10, 20),
    vol_windows: Sequence[int] = (5, 20),
    ma_windows: Sequence[int] = (5, 10, 20),
    volume_window: int = 20,
    rsi_window: int = 14,
    dropna: bool = True,
) -> pd.DataFrame:
    """Per-scale features, each computed from the current and earlier bars of ``bars`` only.

    ===================  ============================================================
    ``ret_<k>``          log return over the last ``k`` bars, ``log(C_t / C_{t-k})``
    ``vol_<w>``          realised volatility: std of the last ``w`` one-bar log returns
    ``volume_ratio``     volume / mean volume of the last ``volume_window`` bars (incl. this)
    ``range``            ``(high - low) / close``
    ``close_pos``        where the close sits in the bar's range: 0 = low, 1 = high
                         (0.5 when ``high == low``)
    ``ma_ratio_<w>``     ``close / mean(last w closes) - 1``
    ``rsi``              Wilder-style RSI from simple means of gains and losses over
                         ``rsi_window`` bars, rescaled from [0, 100] to [-1, 1]
    ===================  ============================================================

    Every feature at row ``t`` uses rows ``<= t`` only (rolling windows end at ``t``; nothing is
    centred or shifted backwards), so these features are causal at their own scale.

    Parameters
    ----------
    bars : pandas.DataFrame
        Valid OHLCV bars labelled by close time (one scale).
    lags, vol_windows, ma_windows, volume_window, rsi_window
        Window lengths, in bars of this scale.
    dropna : bool, default True
        Drop the warm-up rows at the start, where a window is not yet full (the first
        ``max(windows)`` rows). With ``False`` they are kept as NaN.

    Returns
    -------
    pandas.DataFrame
        float64 features on (a suffix of) ``bars.index``.
    """
    validate_ohlcv(bars)
    close = bars["close"].astype("float64")
    log_close = np.log(close)
    r1 = log_close.diff()
    feats: dict[str, pd.Series] = {}
    for k in lags:
        feats[f"ret_{k}"] = log_close - log_close.shift(k)
    for w in vol_windows:
        feats[f"vol_{w}"] = r1.rolling(w).std()
    volume = bars["volume"].astype("float64")
    mean_volume = volume.rolling(volume_window).mean()
    # a run of zero volume gives 0/0: report a ratio of 1 (this bar is as quiet as its neighbours)
    feats["volume_ratio"] = (volume / mean_volume).where(mean_volume > 0, 1.0)
    high, low = bars["high"].astype("float64"), bars["low"].astype("float64")
    span = high - low
    feats["range"] = span / close
    feats["close_pos"] = ((close - low) / span).where(span > 0, 0.5)
    for w in ma_windows:
        feats[f"ma_ratio_{w}"] = close / close.rolling(w).mean() - 1.0
    delta = close.diff()
    gain = delta.clip(lower=0).rolling(rsi_window).mean()
    loss = (-delta).clip(lower=0).rolling(rsi_window).mean()
    total = gain + loss
    # RSI = 100 * gain / (gain + loss); flat markets (no moves at all) sit at the neutral 50
    rsi = (100.0 * gain / total).where(total > 0, 50.0)
    feats["rsi"] = rsi.where(gain.notna()) / 50.0 - 1.0
    out = pd.DataFrame(feats, index=bars.index)
    out.index.name = "time"
    if dropna:
        out = out.dropna()
    return out


def multi_scale_features(
    bars: pd.DataFrame, scales: Iterable[str] = ("1min", "5min", "1h", "1D"), **feature_kwargs
) -> dict[str, pd.DataFrame]:
    """Resample ``bars`` to every scale and compute :func:`scale_features` on each.

    Parameters
    ----------
    bars : pandas.DataFrame
        The finest bars (for example 1-minute), labelled by close time.
    scales : iterable of str
        Bar lengths, finest first (``"1min"`` on 1-minute bars returns the bars unchanged).
    **feature_kwargs
        Passed to :func:`scale_features`.

    Returns
    -------
    dict[str, pandas.DataFrame]
        ``{scale: features}`` in the order given.
    """
    return {s: scale_features(resample_ohlcv(bars, s), **feature_kwargs) for s in scales}


# --------------------------------------------------------------------------------------------------
# decision times, windows, targets
# --------------------------------------------------------------------------------------------------
def decision_times(bars: pd.DataFrame | pd.DatetimeIndex, every: int | str = "5min") -> pd.DatetimeIndex:
    """The bar times that fall on a whole multiple of ``every`` (counted from midnight UTC).

    For 1-minute bars and ``every="5min"`` these are the closes at :00, :05, :10, ...

    Parameters
    ----------
    bars : pandas.DataFrame or pandas.DatetimeIndex
        Bars (or their index) labelled by close time.
    every : int or str
        Spacing (int = minutes).
    """
    index = bars.index if isinstance(bars, pd.DataFrame) else bars
    _check_time_index(index, "decision times source")
    step = as_timedelta(every, what="every").value
    return index[(_ns(index) % step) == 0]


def _check_times(times: pd.Index, name: str = "times") -> pd.DatetimeIndex:
    if not isinstance(times, pd.DatetimeIndex):
        raise ValueError(f"{name} must be a DatetimeIndex, got {type(times).__name__}")
    _check_time_index(times, name)
    return times


def make_windows(
    frames: Mapping[str, pd.DataFrame],
    lookbacks: Mapping[str, int],
    times: pd.DatetimeIndex,
) -> tuple[dict[str, np.ndarray], pd.DatetimeIndex]:
    """Cut, for every decision time, the last ``lookback`` rows stamped at or before it, per scale.

    For scale ``s`` and decision time ``t`` the window is the ``lookbacks[s]`` consecutive rows of
    ``frames[s]`` ending with the last row whose timestamp is ``<= t``. Because rows are stamped by
    the time they became known (bar close), the window uses nothing from after ``t``. Decision
    times without a full window at *every* scale are dropped (never padded); ``kept_times`` says
    which remain. Implemented with :func:`numpy.searchsorted` and a strided view: no loop over
    decision times.

    Parameters
    ----------
    frames : Mapping[str, pandas.DataFrame]
        ``{scale: features}``, each with a sorted, unique, tz-aware DatetimeIndex and finite values.
    lookbacks : Mapping[str, int]
        ``{scale: window length in rows}``, same keys as ``frames``.
    times : pandas.DatetimeIndex
        Decision times, sorted, unique, in the frames' time zone.

    Returns
    -------
    windows : dict[str, numpy.ndarray]
        ``windows[s]`` has shape ``[len(kept_times), lookbacks[s], n_features_s]``, float32, the
        last row being the newest.
    kept_times : pandas.DatetimeIndex
        The decision times that got a full window at every scale (a subset of ``times``, in order).

    Raises
    ------
    ValueError
        Naming the scale (mismatched keys, bad lookback, NaN in a frame, bad index) or the times.
    """
    if set(frames) != set(lookbacks):
        raise ValueError(
            f"frames and lookbacks must have the same scales: frames has {list(frames)}, "
            f"lookbacks has {list(lookbacks)}"
        )
    if not frames:
        raise ValueError("make_windows needs at least one scale")
    times = _check_times(times)
    keep = np.ones(len(times), dtype=bool)
    ends: dict[str, np.ndarray] = {}
    for scale, frame in frames.items():
        lookback = lookbacks[scale]
        if isinstance(lookback, bool) or not isinstance(lookback, int | np.integer) or lookback < 1:
            raise ValueError(f"lookback for scale {scale!r} must be a positive int, got {lookback!r}")
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"frame for scale {scale!r} is not a DataFrame")
        _check_time_index(frame.index, f"frame for scale {scale!r}")
        if not np.isfinite(frame.to_numpy(dtype="float64")).all():
            row = frame.index[int(np.flatnonzero(~np.isfinite(frame.to_numpy(dtype="float64")).all(axis=1))[0])]
            raise ValueError(f"frame for scale {scale!r} has NaN or infinite values at {row}")
        if (frame.index.tz is None) != (times.tz is None) or str(frame.index.tz) != str(times.tz):
            raise ValueError(
                f"time zone of scale {scale!r} ({frame.index.tz}) differs from the decision "
                f"times' ({times.tz})"
            )
        # position of the last row stamped <= t, for every decision time t at once
        end = np.searchsorted(_ns(frame.index), _ns(times), side="right") - 1  # [n_times]
        keep &= end - lookback + 1 >= 0
        ends[scale] = end
    kept_times = times[keep]
    windows: dict[str, np.ndarray] = {}
    for scale, frame in frames.items():
        lookback = int(lookbacks[scale])
        values = frame.to_numpy(dtype=np.float32)  # [n_rows, n_features]
        if len(values) < lookback:
            windows[scale] = np.empty((0, lookback, values.shape[1]), dtype=np.float32)
            continue
        # view[i] = rows i .. i+lookback-1, shape [n_rows - lookback + 1, n_features, lookback]
        view = np.lib.stride_tricks.sliding_window_view(values, lookback, axis=0)
        start = ends[scale][keep] - lookback + 1  # [n_kept]
        windows[scale] = np.ascontiguousarray(view[start].transpose(0, 2, 1))  # [n_kept, L, F]
    return windows, kept_times


def make_targets(
    bars: pd.DataFrame,
    times: pd.DatetimeIndex,
    horizons: Sequence[int | str],
) -> pd.DataFrame:
    """Forward log returns from each decision time ``t`` to ``t + horizon``.

    The price at a time is the close of the last bar stamped at or before it. Decision times before
    the first bar, or whose longest horizon runs past the last bar, are dropped, so the result has
    no NaN.

    Parameters
    ----------
    bars : pandas.DataFrame
        Valid OHLCV bars labelled by close time.
    times : pandas.DatetimeIndex
        Decision times (sorted, unique).
    horizons : sequence of int or str
        Horizons (int = minutes, or strings such as ``"15min"``, ``"1h"``).

    Returns
    -------
    pandas.DataFrame
        One float64 column per horizon, named by :func:`horizon_label`, indexed by the kept times.
    """
    validate_ohlcv(bars)
    times = _check_times(times)
    if isinstance(horizons, str | int):
        horizons = [horizons]
    if len(horizons) == 0:
        raise ValueError("make_targets needs at least one horizon")
    labels = [horizon_label(h) for h in horizons]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicated horizons: {labels}")
    steps = [as_timedelta(h) for h in horizons]
    stamps = _ns(bars.index)
    log_close = np.log(bars["close"].to_numpy(dtype="float64"))
    t = _ns(times)
    keep = (t >= stamps[0]) & (t + max(steps).value <= stamps[-1])
    t = t[keep]
    now = log_close[np.searchsorted(stamps, t, side="right") - 1]
    cols = {}
    for label, step in zip(labels, steps, strict=True):
        later = log_close[np.searchsorted(stamps, t + step.value, side="right") - 1]
        cols[label] = later - now
    out = pd.DataFrame(cols, index=times[keep])
    out.index.name = "time"
    return out


# --------------------------------------------------------------------------------------------------
# splits and scaling
# --------------------------------------------------------------------------------------------------
def chronological_split(
    times: pd.DatetimeIndex,
    val_frac: float = 0.2,
    test_frac: float = 0.2,
    *,
    purge: int | str | pd.Timedelta,
) -> dict[str, pd.DatetimeIndex]:
    """Split decision times into consecutive train / val / test blocks with a purge gap.

    The first ``1 - val_frac - test_frac`` of the times go to train, the next ``val_frac`` to val,
    the rest to test. Then, at each boundary, the times of the later block that come less than
    ``purge`` after the last time of the earlier block are dropped: a target at time ``t`` looks
    ``horizon`` ahead, so with ``purge >= horizon`` no training target reaches into the prices that
    validation or test decisions are scored on.

    Parameters
    ----------
    times : pandas.DatetimeIndex
        Sorted, unique decision times.
    val_frac, test_frac : float
        Shares of ``times`` (before purging); ``test_frac`` may be 0 (then no test block).
    purge : int, str or pandas.Timedelta
        The gap; use at least the longest forecast horizon.

    Returns
    -------
    dict[str, pandas.DatetimeIndex]
        Keys ``"train"``, ``"val"``, ``"test"`` (``"test"`` empty when ``test_frac == 0``).
    """
    times = _check_times(times)
    for name, frac in (("val_frac", val_frac), ("test_frac", test_frac)):
        if not 0 <= frac < 1:
            raise ValueError(f"{name} must be in [0, 1), got {frac!r}")
    if val_frac <= 0 or val_frac + test_frac >= 1:
        raise ValueError(
            f"need val_frac > 0 and val_frac + test_frac < 1, got {val_frac!r} + {test_frac!r}"
        )
    gap = as_timedelta(purge, what="purge")
    n = len(times)
    n_test = int(round(n * test_frac))
    n_val = int(round(n * val_frac))
    n_train = n - n_val - n_test
    blocks = {
        "train": times[:n_train],
        "val": times[n_train : n_train + n_val],
        "test": times[n_train + n_val :],
    }
    for before, after in (("train", "val"), ("val", "test")):
        if len(blocks[before]) and len(blocks[after]):
            blocks[after] = blocks[after][blocks[after] >= blocks[before][-1] + gap]
    for name in ("train", "val") + (("test",) if test_frac > 0 else ()):
        if len(blocks[name]) == 0:
            raise ValueError(
                f"the {name} block is empty after purging {gap} from {n} decision times; "
                "use more data, larger fractions or a shorter purge"
            )
    return blocks


def walk_forward_splits(
    times: pd.DatetimeIndex,
    n_folds: int,
    test_share: float,
    val_frac: float,
    *,
    purge: int | str | pd.Timedelta,
) -> list[dict[str, pd.DatetimeIndex]]:
    """Expanding-window walk-forward folds: train / val / test decision times, purged.

    The last ``test_share`` of ``times`` is cut into ``n_folds`` consecutive test blocks of (nearly)
    equal size. Fold ``k`` tests on block ``k`` and learns from every earlier time whose target
    ends before the block starts (``t + purge <= first test time``), split by
    :func:`chronological_split` into train and the latest ``val_frac`` for validation, purged at
    that boundary too. So no training or validation target reaches the prices a fold is scored on,
    and every forecast comes from a model that saw only the past (Lopez de Prado, 2018, ch. 7).

    Parameters
    ----------
    times : pandas.DatetimeIndex
        Sorted, unique decision times (those that have a target).
    n_folds : int
        Number of folds, at least 1.
    test_share : float
        Share of ``times``, in ``(0, 1)``, covered by the test blocks together.
    val_frac : float
        Share of each fold's purged past held out for validation, in ``(0, 1)``.
    purge : int, str or pandas.Timedelta
        The gap; use at least the longest forecast horizon.

    Returns
    -------
    list of dict
        One dict per fold, in time order, with keys ``"train"``, ``"val"``, ``"test"``.

    Raises
    ------
    ValueError
        When a fold would have an empty test, train or validation block (too few times for the
        number of folds, shares and purge); the message names the fold.
    """
    times = _check_times(times)
    if isinstance(n_folds, bool) or not isinstance(n_folds, int | np.integer) or n_folds < 1:
        raise ValueError(f"n_folds must be an integer >= 1, got {n_folds!r}")
    if not 0 < test_share < 1:
        raise ValueError(f"test_share must lie in (0, 1), got {test_share!r}")
    gap = as_timedelta(purge, what="purge")
    n = len(times)
    edges = np.linspace(round(n * (1 - test_share)), n, n_folds + 1).round().astype(int)
    folds = []
    for k in range(n_folds):
        test = times[edges[k] : edges[k + 1]]
        if len(test) == 0:
            raise ValueError(
                f"fold {k + 1} of {n_folds} has an empty test block: {n} decision times with "
                f"test_share={test_share} are too few; use fewer folds or more data"
            )
        past = times[times + gap <= test[0]]  # targets end before the test block starts
        try:
            blocks = chronological_split(past, val_frac, 0.0, purge=gap)
        except ValueError as err:
            raise ValueError(
                f"fold {k + 1} of {n_folds} (test from {test[0]}): {len(past)} earlier decision "
                f"times whose targets end before it; {err}"
            ) from err
        folds.append({"train": blocks["train"], "val": blocks["val"], "test": test})
    return folds


class WindowScaler:
    """Standardise windows per scale and per feature, with statistics from the training windows only.

    ``fit`` stores the mean and standard deviation of each feature at each scale, over all training
    samples and window positions; ``transform`` returns new arrays ``(x - mean) / std`` (a feature
    that is constant in training gets ``std = 1``). Inputs are never modified.

    Examples
    --------
    >>> scaler = WindowScaler().fit({s: w[train_idx] for s, w in windows.items()})  # doctest: +SKIP
    >>> scaled = scaler.transform(windows)                                           # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.mean_: dict[str, np.ndarray] | None = None
        self.std_: dict[str, np.ndarray] | None = None

    def fit(self, windows: Mapping[str, np.ndarray]) -> WindowScaler:
        """Learn per-scale, per-feature mean and std from ``windows[s]`` of shape ``[N, L, F]``."""
        mean, std = {}, {}
        for scale, w in windows.items():
            w = np.asarray(w)
            if w.ndim != 3 or w.shape[0] == 0:
                raise ValueError(
                    f"windows for scale {scale!r} must be a non-empty [N, L, F] array, "
                    f"got shape {w.shape}"
                )
            flat = w.reshape(-1, w.shape[-1]).astype(np.float64)  # [N*L, F]
            mean[scale] = flat.mean(axis=0)
            s = flat.std(axis=0)
            std[scale] = np.where(s > 0, s, 1.0)
        self.mean_, self.std_ = mean, std
        return self

    def transform(self, windows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Return standardised float32 copies of ``windows`` (same keys, same shapes)."""
        if self.mean_ is None or self.std_ is None:
            raise ValueError("WindowScaler is not fitted: call .fit(train_windows) first")
        if set(windows) != set(self.mean_):
            raise ValueError(
                f"scales differ from the fitted ones: got {list(windows)}, fitted {list(self.mean_)}"
            )
        return {scale: self.transform_scale(scale, w) for scale, w in windows.items()}

    def transform_scale(self, scale: str, windows: np.ndarray) -> np.ndarray:
        """Standardised float32 copy of the windows ``[N, L, F]`` (or rows ``[L, F]``) of one scale.

        What :meth:`transform` does to each scale; a live predictor scales only the scale that has
        a new bar.
        """
        if self.mean_ is None or self.std_ is None:
            raise ValueError("WindowScaler is not fitted: call .fit(train_windows) first")
        if scale not in self.mean_:
            raise ValueError(f"scale {scale!r} was not fitted; fitted scales are {list(self.mean_)}")
        w = np.asarray(windows)
        if w.ndim not in (2, 3) or w.shape[-1] != len(self.mean_[scale]):
            raise ValueError(
                f"windows for scale {scale!r} have shape {w.shape}; expected [N, L, "
                f"{len(self.mean_[scale])}]"
            )
        return ((w - self.mean_[scale]) / self.std_[scale]).astype(np.float32)

    def fit_transform(self, windows: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``fit(windows)`` then ``transform(windows)``."""
        return self.fit(windows).transform(windows)
