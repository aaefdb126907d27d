"""Live forecasts from one new 1-minute bar at a time, re-encoding only the scales that changed.

The batch pipeline (:func:`msa_lib.prepare.experiment_windows`) rebuilds everything for every
decision time: resample the 1-minute history to every scale, compute the features, cut and scale
the windows, run the whole network. Live, one 1-minute bar arrives at a time, and most of that work
would be repeated for nothing: a daily bar closes once a day, so the daily window, and the daily
encoder's output, stay the same for 1,440 minutes.

:class:`StreamingPredictor` keeps, for every scale of an experiment:

* the bar being built from the 1-minute bars (the rule of :func:`msa_lib.data.resample_ohlcv`: the
  bar labelled ``T`` holds the minutes stamped in ``(T - length, T]``, bins anchored at midnight
  UTC, so it closes with the minute stamped ``T``);
* the last closed bars, as many as the newest feature row needs (:func:`feature_span`), whose
  features are computed by :func:`msa_lib.data.scale_features` itself, so they equal the batch
  path's;
* the last ``lookback`` feature rows, scaled with the experiment's fitted
  :class:`msa_lib.data.WindowScaler`;
* the encoder output of that window (:meth:`msa_lib.model.MultiScaleAttentionNet.encode_scale`).

On each new bar it re-encodes only the scales whose bar has just closed and runs
:meth:`~msa_lib.model.MultiScaleAttentionNet.combine` once. The forecasts equal the batch
pipeline's at the same times (``tests/test_streaming.py`` checks every minute of a stretch).

Example::

    predictor = StreamingPredictor(net.eval(), COURSE, prepared.scaler)
    predictor.warm_up(history)              # 1-minute bars up to now
    out = predictor.update(new_bar)         # a Series named by its close time
    out["returns"]                          # [H] scaled returns: prepared.unscale(...) for log returns
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from msa_lib.data import (
    OHLCV_COLUMNS,
    WindowScaler,
    as_timedelta,
    resample_ohlcv,
    scale_features,
    validate_ohlcv,
)
from msa_lib.experiment import Experiment, ScaleSpec

__all__ = [
    "BAR",
    "StreamingPredictor",
    "feature_span",
    "feature_warmup",
    "history_start",
]

BAR = pd.Timedelta("1min")
"""The length of the bars a :class:`StreamingPredictor` is fed."""

_BAR_NS = BAR.value


def _feature_windows(feature_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Every window of :func:`msa_lib.data.scale_features`: its defaults, updated by ``feature_kwargs``."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(scale_features).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "dropna"
    }
    unknown = sorted(set(feature_kwargs) - set(defaults))
    if unknown:
        raise ValueError(f"unknown feature windows {unknown}; scale_features takes {sorted(defaults)}")
    return {**defaults, **feature_kwargs}


def feature_warmup(feature_kwargs: Mapping[str, Any] | None = None) -> int:
    """Rows at the start of a scale that :func:`msa_lib.data.scale_features` drops (a window not full).

    ``ret_k`` needs ``k`` earlier bars, ``vol_w`` and ``rsi`` a one-bar difference and then ``w``
    of them, the moving averages ``w - 1`` earlier bars. (``volume_ratio`` is never NaN: with a
    partial window it reads 1.)

    Parameters
    ----------
    feature_kwargs : dict, optional
        Feature windows (as :meth:`msa_lib.experiment.ScaleSpec.feature_kwargs` gives them).
    """
    w = _feature_windows(feature_kwargs or {})
    return max(max(w["lags"]), max(w["vol_windows"]), max(w["ma_windows"]) - 1, w["rsi_window"])


def feature_span(feature_kwargs: Mapping[str, Any] | None = None) -> int:
    """Trailing bars of a scale that decide its newest feature row (the features of a bar use no more).

    ``feature_warmup + 1`` bars, or the volume window if that is longer (the volume ratio of a bar
    with fewer bars before it than its window reads 1).
    """
    w = _feature_windows(feature_kwargs or {})
    return max(feature_warmup(feature_kwargs) + 1, w["volume_window"])


def _specs(scales: Experiment | Sequence[ScaleSpec]) -> tuple[ScaleSpec, ...]:
    if isinstance(scales, Experiment):
        return scales.features.scales
    if isinstance(scales, str | Mapping) or not isinstance(scales, Sequence) or not scales:
        raise TypeError(f"expected an Experiment or a list of ScaleSpec, got {type(scales).__name__}")
    for s in scales:
        if not isinstance(s, ScaleSpec):
            raise TypeError(f"expected ScaleSpec items, got {type(s).__name__}")
    return tuple(scales)


def _step_ns(spec: ScaleSpec) -> int:
    """The bar length of a scale in ns; a whole number of minutes."""
    step = as_timedelta(spec.name, what=f"scale {spec.name!r}")
    if step.value % _BAR_NS:
        raise ValueError(f"scale {spec.name!r} is not a whole number of 1-minute bars")
    return step.value


def history_start(time: pd.Timestamp, scales: Experiment | Sequence[ScaleSpec]) -> pd.Timestamp:
    """The first 1-minute bar of the shortest history that gives every full window at ``time``.

    For each scale, the window at ``time`` holds the last ``lookback`` bars closed by then, and
    their features need :func:`feature_span` - 1 bars before the oldest of them; the history must
    start with the first minute of the oldest such bar, at every scale. Batch features of the bars
    from there to ``time`` (:func:`msa_lib.prepare.experiment_frames`) give the windows of the
    whole history at ``time``.

    Parameters
    ----------
    time : pandas.Timestamp
        A decision time (tz-aware).
    scales : Experiment or sequence of ScaleSpec
    """
    t = pd.Timestamp(time).value
    first = t
    for spec in _specs(scales):
        step = _step_ns(spec)
        newest = t - t % step  # label of the last bar closed at ``time``
        n_bars = spec.lookback + feature_span(spec.feature_kwargs()) - 1
        first = min(first, newest - n_bars * step + _BAR_NS)
    return pd.Timestamp(first, tz=pd.Timestamp(time).tz)


class _Scale:
    """What the predictor keeps for one scale (see the module docstring)."""

    def __init__(self, spec: ScaleSpec) -> None:
        self.name = spec.name
        self.lookback = spec.lookback
        self.kwargs = spec.feature_kwargs()
        self.step = _step_ns(spec)
        self.warmup = feature_warmup(self.kwargs)
        self.building: list[float] | None = None  # open, high, low, close, volume of the open bar
        self.building_label = 0  # its close time (ns)
        self.n_closed = 0  # closed bars since the first bar
        self.bars: deque[tuple[int, list[float]]] = deque(maxlen=feature_span(self.kwargs))
        self.rows: deque[np.ndarray] = deque(maxlen=self.lookback)  # float32 feature rows [F]
        self.tokens: Tensor | None = None  # [1, lookback, d], the encoding of ``rows``

    def add(self, t: int, bar: Sequence[float]) -> bool:
        """Add the minute stamped ``t`` (ns) to the open bar; True when this closes the bar."""
        label = t if t % self.step == 0 else t - t % self.step + self.step
        if self.building is None or label != self.building_label:
            self.building, self.building_label = list(bar), label
        else:
            b = self.building
            b[1], b[2], b[3], b[4] = max(b[1], bar[1]), min(b[2], bar[2]), bar[3], b[4] + bar[4]
        if t != label:
            return False
        self.bars.append((label, self.building))
        self.building = None
        self.n_closed += 1
        return True

    def feature_row(self, tz: Any) -> np.ndarray:
        """Features of the newest closed bar, from the bars kept (float32 ``[F]``)."""
        labels, values = zip(*self.bars, strict=True)
        index = pd.DatetimeIndex(np.array(labels, dtype="datetime64[ns]")).tz_localize("UTC").tz_convert(tz)
        frame = pd.DataFrame(np.array(values), index=index, columns=list(OHLCV_COLUMNS))
        row = scale_features(frame, dropna=False, **self.kwargs).to_numpy(dtype=np.float64)[-1]
        if not np.isfinite(row).all():
            raise ValueError(f"scale {self.name!r}: non-finite features for the bar closed at {index[-1]}")
        return row.astype(np.float32)

    @property
    def full(self) -> bool:
        return len(self.rows) == self.lookback


class StreamingPredictor:
    """Forecasts of a trained multi-scale network, fed one 1-minute bar at a time.

    Parameters
    ----------
    model : msa_lib.model.MultiScaleAttentionNet
        The trained network, in ``eval`` mode (dropout would make every forecast random and the
        cached encodings stale). It is not modified.
    scales : Experiment or sequence of ScaleSpec
        The experiment the network was trained with (its ``features.scales``: names, lookbacks and
        feature windows, in the network's order).
    scaler : msa_lib.data.WindowScaler
        Fitted on the training windows (``PreparedData.scaler``).

    Attributes
    ----------
    encode_counts : dict of str -> int
        How many times each scale's encoder has run.
    last_time : pandas.Timestamp or None
        The close time of the last bar received.

    Examples
    --------
    >>> predictor = StreamingPredictor(net.eval(), COURSE, prepared.scaler)  # doctest: +SKIP
    >>> predictor.warm_up(bars.loc[:"2024-03-01"])                            # doctest: +SKIP
    >>> predictor.update(bars.loc["2024-03-01 00:01"])                        # doctest: +SKIP
    {'time': Timestamp('2024-03-01 00:01:00+0000', tz='UTC'), 'returns': array([...]), ...}
    """

    def __init__(self, model: torch.nn.Module, scales: Experiment | Sequence[ScaleSpec],
                 scaler: WindowScaler) -> None:
        if not (hasattr(model, "encode_scale") and hasattr(model, "combine")):
            raise TypeError(
                f"model must be a MultiScaleAttentionNet (with encode_scale and combine), got "
                f"{type(model).__name__}"
            )
        specs = _specs(scales)
        names = [s.name for s in specs]
        if names != model.config.scale_names:
            raise ValueError(f"the scales {names} are not the network's {model.config.scale_names}")
        if not isinstance(scaler, WindowScaler) or scaler.mean_ is None:
            raise ValueError("scaler must be a fitted WindowScaler (PreparedData.scaler)")
        for spec in specs:
            sc = model.config.scale(spec.name)
            if spec.lookback > sc.lookback:
                raise ValueError(
                    f"scale {spec.name!r}: lookback {spec.lookback} is longer than the network's {sc.lookback}"
                )
            if spec.name not in scaler.mean_ or len(scaler.mean_[spec.name]) != sc.n_features:
                raise ValueError(
                    f"scale {spec.name!r}: the scaler was not fitted on {sc.n_features} features of this scale"
                )
        self.model = model
        self.horizons = tuple(model.config.horizons)
        self._scaler = scaler
        self._scales = [_Scale(s) for s in specs]
        self._device = next(model.parameters()).device
        self.encode_counts: dict[str, int] = dict.fromkeys(names, 0)
        self.last_time: pd.Timestamp | None = None

    # -- feeding bars --------------------------------------------------------------------------
    def warm_up(self, history: pd.DataFrame) -> dict[str, Any] | None:
        """Start from a history of consecutive 1-minute bars (computed in batch, not bar by bar).

        Parameters
        ----------
        history : pandas.DataFrame
            OHLCV bars labelled by close time, one every minute without gaps, on whole minutes.
            The predictor must be new (no bar received yet).

        Returns
        -------
        dict or None
            The forecast at the last bar of ``history`` (as :meth:`update`), None if some scale
            has no full window yet.
        """
        if self.last_time is not None:
            raise ValueError(f"warm_up needs a new predictor; this one has bars up to {self.last_time}")
        validate_ohlcv(history, name="history")
        stamps = history.index.as_unit("ns").asi8
        if stamps[0] % _BAR_NS:
            raise ValueError(f"history: bar at {history.index[0]} is not on a whole minute")
        gaps = np.flatnonzero(np.diff(stamps) != _BAR_NS)
        if len(gaps):
            i = int(gaps[0]) + 1
            raise ValueError(
                f"history: bar at {history.index[i]} is not one minute after the previous bar "
                f"({history.index[i - 1]}); the history must have no gaps"
            )
        last = history.index[-1]
        for s in self._scales:
            bars = resample_ohlcv(history, s.name)
            closed, open_bar = bars.loc[bars.index <= last], bars.loc[bars.index > last]
            if len(open_bar):
                s.building_label = int(open_bar.index.as_unit("ns").asi8[0])
                s.building = open_bar.iloc[0].tolist()
            s.n_closed = len(closed)
            labels = closed.index.as_unit("ns").asi8[-s.bars.maxlen:]
            s.bars.extend(zip(labels.tolist(), closed.iloc[-s.bars.maxlen:].to_numpy().tolist(), strict=True))
            if s.n_closed > s.warmup:
                rows = scale_features(closed, **s.kwargs)  # the batch path's features
                if len(rows) != s.n_closed - s.warmup:
                    raise ValueError(
                        f"scale {s.name!r}: {len(rows)} feature rows from {s.n_closed} bars, "
                        f"expected {s.n_closed - s.warmup}"
                    )
                s.rows.extend(rows.to_numpy(dtype=np.float32)[-s.lookback:])
        self.last_time = last
        return self._forecast(last, [s for s in self._scales])

    def update(self, bar: pd.Series | pd.DataFrame) -> dict[str, Any] | None:
        """Add the next 1-minute bar; return the forecast at its close time.

        Parameters
        ----------
        bar : pandas.Series or one-row pandas.DataFrame
            ``open, high, low, close, volume`` of the bar; a Series is named by its close time
            (``bars.iloc[i]``), a DataFrame indexed by it. It must come exactly one minute after
            the previous bar (a missing, repeated or late bar raises a ValueError naming both times).

        Returns
        -------
        dict or None
            None until every scale has a full window; then ``"time"``, ``"returns"`` ``[H]``
            (scaled returns, as the network predicts them), ``"direction_logits"`` ``[H]`` and
            ``"encoded"`` (the scales re-encoded for this bar, whose bar just closed).
        """
        frame = self._as_frame(bar)
        time = frame.index[0]
        t = int(time.value)
        if self.last_time is not None and t - self.last_time.value != _BAR_NS:
            raise ValueError(
                f"bar at {time} is not one minute after the previous bar ({self.last_time}): "
                "bars must arrive in order, every minute, without gaps or repeats"
            )
        values = frame.iloc[0].tolist()
        changed = []
        for s in self._scales:
            if s.add(t, values) and s.n_closed > s.warmup:
                s.rows.append(s.feature_row(time.tz))
                changed.append(s)
        self.last_time = time
        return self._forecast(time, changed)

    @staticmethod
    def _as_frame(bar: pd.Series | pd.DataFrame) -> pd.DataFrame:
        """The bar as a validated one-row frame indexed by its close time."""
        if isinstance(bar, pd.Series):
            if not isinstance(bar.name, pd.Timestamp):
                raise ValueError(f"a bar Series must be named by its close time, got name {bar.name!r}")
            missing = [c for c in OHLCV_COLUMNS if c not in bar.index]
            if missing:
                raise ValueError(f"bar at {bar.name}: missing field(s) {missing}")
            frame = pd.DataFrame(bar[list(OHLCV_COLUMNS)].to_numpy(dtype=np.float64)[None],
                                 index=pd.DatetimeIndex([bar.name]), columns=list(OHLCV_COLUMNS))
        elif isinstance(bar, pd.DataFrame):
            if len(bar) != 1:
                raise ValueError(f"update takes one bar at a time, got {len(bar)} rows")
            frame = bar
        else:
            raise TypeError(f"a bar is a pandas Series or one-row DataFrame, got {type(bar).__name__}")
        time = frame.index[0] if isinstance(frame.index, pd.DatetimeIndex) else None
        validate_ohlcv(frame, name=f"bar at {time}")
        if time.value % _BAR_NS:
            raise ValueError(f"bar at {time} is not on a whole minute")
        return frame.loc[:, list(OHLCV_COLUMNS)]

    # -- the network ---------------------------------------------------------------------------
    def _forecast(self, time: pd.Timestamp, changed: Sequence[_Scale]) -> dict[str, Any] | None:
        """Encode the changed scales (every scale the first time), then combine."""
        if not all(s.full for s in self._scales):
            return None
        if self.model.training:
            raise ValueError("the network is in training mode: call model.eval() before streaming")
        if any(s.tokens is None for s in self._scales):
            changed = self._scales  # the first forecast encodes every scale
        with torch.inference_mode():
            for s in changed:
                window = self._scaler.transform_scale(s.name, np.stack(s.rows))  # [L, F]
                x = torch.from_numpy(window).to(self._device)[None]  # [1, L, F]
                s.tokens = self.model.encode_scale(s.name, x)  # [1, L, d]
                self.encode_counts[s.name] += 1
            out = self.model.combine([s.tokens for s in self._scales])
        return {
            "time": time,
            "returns": out["returns"][0].cpu().numpy(),  # [H]
            "direction_logits": out["direction_logits"][0].cpu().numpy(),  # [H]
            "encoded": tuple(s.name for s in changed),
        }
