"""The rivals: the forecasters the multi-scale network is judged against.

Rule 3 of the course: every model result sits beside naive baselines and simpler models. This
module holds them all; the naive rules need no training:

* :func:`past_log_returns`: the log return over ``[t - h, t]`` that has just ended at each decision
  time ``t``, from bars stamped at or before ``t`` only (the mirror image of
  :func:`msa_lib.data.make_targets`).
* :func:`last_sign_score`: *last sign*, the sign of that past return, repeated as the forecast of
  the next ``h`` (time-series momentum over the forecast's own horizon).
* :func:`majority_class_score`: *majority class*, the sign that was commoner in the training block.
* :func:`naive_predictions`: the three naive rules (zero return, last sign, majority class) in the
  format :func:`msa_lib.evaluate.results_table` reads.

The trained rivals (:class:`LSTMBaseline`, :class:`SingleScaleTransformer`, :class:`LinearBaseline`)
take the same ``forward(windows, masks=None, return_details=False)`` as
:class:`msa_lib.model.MultiScaleAttentionNet`, read their settings from the same
:class:`msa_lib.model.ModelConfig` and end in the same :class:`msa_lib.model.ForecastHeads`
(``"returns"`` and ``"direction_logits"``, ``[B, H]`` each), so the training loop, the checkpoints
and the evaluation treat every model alike. Build them by kind with
:func:`msa_lib.model.build_model` (``"lstm"``, ``"single_scale"``, ``"linear"``); with
``return_details`` they add only ``"fused"``, the representation the heads read.

Scores follow :mod:`msa_lib.evaluate`'s conventions: a *direction score* is a number whose sign is
the call (here +1.0 for up, -1.0 for down, 0.0 for "no move", which counts as "not up").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from msa_lib.data import as_timedelta, horizon_label, validate_ohlcv
from msa_lib.model import (
    Dropout,
    ForecastHeads,
    ModelConfig,
    ScaleEncoder,
    gather_inputs,
)

__all__ = [
    "LSTMBaseline",
    "LinearBaseline",
    "SingleScaleTransformer",
    "last_sign_score",
    "majority_class_score",
    "naive_predictions",
    "past_log_returns",
]


# --------------------------------------------------------------------------------------------------
# Naive rules
# --------------------------------------------------------------------------------------------------
def _decision_times(times: Any) -> pd.DatetimeIndex:
    if not isinstance(times, pd.DatetimeIndex):
        raise ValueError(f"times must be a DatetimeIndex of decision times, got {type(times).__name__}")
    if len(times) == 0:
        raise ValueError("times is empty")
    if times.hasnans:
        raise ValueError("times contains NaT (missing decision times)")
    if times.tz is None:
        raise ValueError("times have no time zone; decision times, like bars, are in UTC")
    return times


def past_log_returns(
    bars: pd.DataFrame,
    times: pd.DatetimeIndex,
    horizons: Sequence[int | str],
) -> pd.DataFrame:
    """The log return over ``[t - h, t]`` at each decision time ``t``, for each horizon ``h``.

    Timing rule, the same as :func:`msa_lib.data.make_targets` uses forwards: the price at a time
    ``u`` is the close of the last bar stamped at or before ``u`` (bars are stamped by their close,
    so that is the last price known at ``u``). The past return at ``t`` is
    ``log price(t) - log price(t - h)``; both prices come from bars stamped at or before ``t``, so
    nothing after the decision time is used. Over a gap in the bars (a weekend), ``price(t - h)`` is
    the last close before the gap.

    Parameters
    ----------
    bars : DataFrame
        Valid OHLCV bars labelled by close time (:func:`msa_lib.data.validate_ohlcv`).
    times : DatetimeIndex ``[N]``
        Decision times, in any order.
    horizons : sequence of int or str
        Look-back lengths (int = minutes, or strings such as ``"15min"``, ``"1h"``).

    Returns
    -------
    DataFrame ``[N, H]``
        Indexed by ``times``, one float64 column per horizon named by
        :func:`msa_lib.data.horizon_label` (the names of :func:`~msa_lib.data.make_targets`).

    Raises
    ------
    ValueError
        When a needed price is missing: ``t - h`` comes before the first bar, so no price was known
        then. The message names the first such decision time and horizon.
    """
    validate_ohlcv(bars)
    times = _decision_times(times)
    if isinstance(horizons, str | int):
        horizons = [horizons]
    if len(horizons) == 0:
        raise ValueError("past_log_returns needs at least one horizon")
    labels = [horizon_label(h) for h in horizons]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicated horizons: {labels}")
    stamps = bars.index
    log_close = np.log(bars["close"].to_numpy(dtype="float64"))  # [T]

    def price_rows(at: pd.DatetimeIndex, label: str | None) -> np.ndarray:
        rows = stamps.searchsorted(at, side="right") - 1  # last bar stamped at or before `at`
        if (rows < 0).any():
            i = int(np.flatnonzero(rows < 0)[0])
            where = (f"decision time {times[i]}" if label is None else
                     f"{at[i]} (t - {label} for decision time {times[i]})")
            raise ValueError(
                f"past_log_returns: no price is known at {where}: the bars start at "
                f"{stamps[0]}; drop earlier decision times"
            )
        return rows

    now = log_close[price_rows(times, None)]  # [N]
    columns = {}
    for label, h in zip(labels, horizons, strict=True):
        columns[label] = now - log_close[price_rows(times - as_timedelta(h), label)]  # [N]
    out = pd.DataFrame(columns, index=times)
    out.index.name = "time"
    return out


def last_sign_score(
    bars: pd.DataFrame,
    times: pd.DatetimeIndex,
    horizons: Sequence[int | str],
) -> np.ndarray:
    """Direction scores of *last sign*: the sign of the return over the horizon that just ended.

    For horizon ``h`` at decision time ``t`` the forecast of the return over ``[t, t + h]`` is the
    sign of the return over ``[t - h, t]`` (:func:`past_log_returns`, whose timing rule and errors
    apply).

    Returns
    -------
    ndarray ``[N, H]`` of +1.0, -1.0, or 0.0 where the past return is exactly zero ("not up").
    """
    return np.sign(past_log_returns(bars, times, horizons).to_numpy())


def majority_class_score(y_train: Any, n_rows: int) -> np.ndarray:
    """Direction scores of the majority-class forecaster: the training period's commoner sign.

    Parameters
    ----------
    y_train : array ``[N_train]`` or ``[N_train, H]``
        Training-period returns (never the test period's: that would peek).
    n_rows : int
        Number of rows to forecast.

    Returns
    -------
    array ``[n_rows]`` or ``[n_rows, H]`` of +1.0 (up was the majority) or -1.0.
    """
    if isinstance(y_train, pd.DataFrame | pd.Series):
        y_train = y_train.to_numpy()
    y = np.asarray(y_train, dtype=np.float64)
    if y.ndim not in (1, 2) or y.shape[0] == 0:
        raise ValueError(f"y_train must be a non-empty [N] or [N, H] array, got shape {y.shape}")
    if not np.isfinite(y).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(y))[0])
        raise ValueError(f"y_train holds NaN or inf (first at position {bad})")
    if isinstance(n_rows, bool) or int(n_rows) != n_rows or n_rows < 0:
        raise ValueError(f"n_rows must be a whole number >= 0, got {n_rows!r}")
    up_share = (y > 0).mean(axis=0)
    sign = np.where(up_share > 0.5, 1.0, -1.0)
    return np.broadcast_to(sign, (int(n_rows), *np.shape(sign))).copy()


def naive_predictions(
    bars: pd.DataFrame,
    times: pd.DatetimeIndex,
    horizons: Sequence[int | str],
    y_train: Any,
) -> dict[str, dict[str, np.ndarray | None]]:
    """The three naive forecasters at ``times``, ready for :func:`msa_lib.evaluate.results_table`.

    * ``"zero return"``: forecasts no change; makes no direction call (its ``"direction_score"``
      is ``None``). It is the yardstick of the error ratios.
    * ``"last sign"``: :func:`last_sign_score`.
    * ``"majority class"``: :func:`majority_class_score` of ``y_train``.

    Parameters
    ----------
    bars : DataFrame
        Valid OHLCV bars labelled by close time.
    times : DatetimeIndex ``[N]``
        The decision times to forecast (the test block's).
    horizons : sequence of int or str
        The ``H`` forecast horizons, in the order of the columns of the targets.
    y_train : array or DataFrame ``[N_train, H]``
        Training-block log returns, for the majority class.

    Returns
    -------
    dict of str to dict
        ``{"zero return": {"returns": zeros [N, H], "direction_score": None},
        "last sign": {"direction_score": [N, H]}, "majority class": {"direction_score": [N, H]}}``.
    """
    last_sign = last_sign_score(bars, times, horizons)  # [N, H]
    majority = majority_class_score(y_train, len(times))
    if majority.shape != last_sign.shape:
        raise ValueError(
            f"y_train has shape {np.shape(y_train)}: it needs one column per horizon "
            f"{[horizon_label(h) for h in horizons]}"
        )
    return {
        "zero return": {"returns": np.zeros(last_sign.shape), "direction_score": None},
        "last sign": {"direction_score": last_sign},
        "majority class": {"direction_score": majority},
    }


# --------------------------------------------------------------------------------------------------
# Trained rivals
# --------------------------------------------------------------------------------------------------

class LSTMBaseline(nn.Module):
    """One LSTM per scale, last hidden states concatenated and mixed, then the forecast heads.

    Hidden rows (mask False) are fed as zeros.

    Parameters
    ----------
    config : ModelConfig
        Uses the scales, ``d_model`` (the LSTMs' hidden size), ``dropout`` and ``horizons``.
    """

    kind = "lstm"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d, S = config.d_model, len(config.scales)
        self.lstms = nn.ModuleDict(
            {s.name: nn.LSTM(s.n_features, d, batch_first=True) for s in config.scales}
        )
        self.mix = nn.Sequential(nn.Linear(S * d, d), nn.GELU(), Dropout(config.dropout))
        self.heads = ForecastHeads(d, len(config.horizons))

    def forward(
        self,
        windows: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """See :meth:`msa_lib.model.MultiScaleAttentionNet.forward`."""
        xs, ms = gather_inputs(self.config, windows, masks, next(self.parameters()).device)
        finals = []
        for s, x, m in zip(self.config.scales, xs, ms, strict=True):
            if m is not None:
                x = x * m[..., None]
            _, (h_n, _) = self.lstms[s.name](x)  # h_n: [1, B, d]
            finals.append(h_n[-1])
        fused = self.mix(torch.cat(finals, dim=-1))  # [B, d]
        out = self.heads(fused)
        if return_details:
            out["fused"] = fused
        return out


class SingleScaleTransformer(nn.Module):
    """One :class:`msa_lib.model.ScaleEncoder` over a single scale, its last token -> the heads.

    The scale is ``config.single_scale`` (default: the first, finest one); the windows of other
    scales are ignored.

    Parameters
    ----------
    config : ModelConfig
    """

    kind = "single_scale"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.scale_name = config.single_scale or config.scales[0].name
        d = config.d_model
        sc = config.scale(self.scale_name)
        self.encoder = ScaleEncoder(sc, d, config.pos_encoding, config.dropout, config.ff_mult)
        self.heads = ForecastHeads(d, len(config.horizons))

    def forward(
        self,
        windows: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """See :meth:`msa_lib.model.MultiScaleAttentionNet.forward`."""
        device = next(self.parameters()).device
        (x,), (m,) = gather_inputs(self.config, windows, masks, device, [self.scale_name])
        fused = self.encoder(x, m)[:, -1]  # [B, d]
        out = self.heads(fused)
        if return_details:
            out["fused"] = fused
        return out


class LinearBaseline(nn.Module):
    """Every window of every scale flattened into one vector, then linear heads.

    Requires windows of exactly ``lookback`` rows per scale. Hidden rows are fed as zeros.

    Parameters
    ----------
    config : ModelConfig
    """

    kind = "linear"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        n_in = sum(s.lookback * s.n_features for s in config.scales)
        self.heads = ForecastHeads(n_in, len(config.horizons))

    def forward(
        self,
        windows: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """See :meth:`msa_lib.model.MultiScaleAttentionNet.forward`."""
        xs, ms = gather_inputs(self.config, windows, masks, next(self.parameters()).device)
        flat = []
        for s, x, m in zip(self.config.scales, xs, ms, strict=True):
            if x.shape[1] != s.lookback:
                raise ValueError(
                    f"LinearBaseline: windows[{s.name!r}] has {x.shape[1]} rows, needs exactly {s.lookback}"
                )
            if m is not None:
                x = x * m[..., None]
            flat.append(x.flatten(1))  # [B, L_s * F_s]
        z = torch.cat(flat, dim=1)  # [B, sum_s L_s * F_s]
        out = self.heads(z)
        if return_details:
            out["fused"] = z
        return out


# --------------------------------------------------------------------------------------------------
# The hand-made interaction feature (presumes knowing how the synthetic market was built)
# --------------------------------------------------------------------------------------------------
def interaction_features(
    bars: pd.DataFrame,
    times: Any,
    horizons: Sequence[int | str],
    *,
    delay: int | str = "30min",
    state_days: int = 5,
    burst_ratio: float = 25.0,
    volume_window: int = 60,
) -> pd.DataFrame:
    """The planted signal of :func:`msa_lib.datasets.simulate_market`, rebuilt by hand from bars.

    A feature nobody could write without knowing the market's recipe, which is the point: it shows
    how much of the oracle's edge a simple model gets *when told* the structure, beside the network
    that had to find it. For each decision time ``t`` and horizon ``h``:

    ``f_h(t) = sum over bursts b with t - delay < b <= t - delay + min(h, delay)`` of
    ``state(day of b) * sign(return of bar b)``,

    the jumps announced by bursts whose jump lands in ``(t, t + h]``. A *burst* is a 1-minute bar
    whose volume exceeds ``burst_ratio`` times the median volume of the ``volume_window`` bars
    before it; the *state* of a day is the sign of the log return over the ``state_days`` daily
    bars ending with the close of the day before yesterday. Only bars stamped at or before ``t``
    are read.

    Parameters
    ----------
    bars : pandas.DataFrame
        Valid 1-minute OHLCV bars labelled by close time.
    times : DatetimeIndex
        Decision times (bar times).
    horizons : sequence of int or str
        Forecast horizons (minutes or strings such as ``"15min"``).
    delay, state_days, burst_ratio, volume_window
        The recipe's constants (the market's defaults).

    Returns
    -------
    pandas.DataFrame
        ``[len(times), len(horizons)]``, columns named by :func:`msa_lib.data.horizon_label`.
    """
    validate_ohlcv(bars, name="bars")
    step = bars.index[1:] - bars.index[:-1]
    if len(bars) < 2 or (step != pd.Timedelta("1min")).any():
        raise ValueError("interaction_features: bars must be consecutive 1-minute bars")
    times = _decision_times(times)
    pos = bars.index.get_indexer(times)
    if (pos < 0).any():
        raise ValueError(f"interaction_features: decision time {times[np.flatnonzero(pos < 0)[0]]} is not a bar time")
    lag = int(as_timedelta(delay) / pd.Timedelta("1min"))
    if lag < 1:
        raise ValueError(f"interaction_features: delay must be at least one minute, got {delay!r}")
    volume = bars["volume"]
    typical = volume.shift(1).rolling(volume_window).median()
    burst = (volume > burst_ratio * typical).to_numpy()  # [n], False in the warm-up
    log_close = np.log(bars["close"].to_numpy())
    direction = np.sign(log_close - np.log(bars["open"].to_numpy()))  # [n]
    # daily closes (midnight UTC) and each day's state, from the days before yesterday
    daily = bars["close"].resample("1D", label="right", closed="right").last().dropna()
    daily_log = np.log(daily)  # labelled by close time: day D's close is labelled D + 1 day
    # the state of day D: closes of days D-2 and D-2-state_days, labelled D-1 and D-1-state_days
    state = np.sign(daily_log.shift(1) - daily_log.shift(1 + state_days))  # indexed by D
    minute_day = (bars.index - pd.Timedelta("1min")).floor("D")  # the UTC day of each bar
    bar_state = state.reindex(minute_day).to_numpy()  # NaN where the history is too short
    vote = np.where(burst, direction * np.nan_to_num(bar_state), 0.0)  # [n]
    csum = np.concatenate([[0.0], np.cumsum(vote)])
    out = {}
    for h in horizons:
        k = min(int(as_timedelta(h) / pd.Timedelta("1min")), lag)
        lo = np.clip(pos - lag + 1, 0, None)  # bursts b in (t - lag, t - lag + k]
        hi = np.clip(pos - lag + k + 1, 0, None)
        out[horizon_label(h)] = csum[hi] - csum[lo]
    return pd.DataFrame(out, index=times)


# --------------------------------------------------------------------------------------------------
# The line-up: every contender of the comparison, defined once for chapter 06 and `make evidence`
# --------------------------------------------------------------------------------------------------
def contenders(base: ModelConfig) -> dict[str, dict[str, tuple[str, ModelConfig]]]:
    """The trained networks of the comparison, grouped: ``{group: {label: (kind, config)}}``.

    Groups: ``"network"`` (the multi-scale network), ``"single_scale"`` (one Transformer per
    scale, each reading the network's own window of that scale), ``"rivals"`` (LSTM over all
    scales, N-HiTS- and PatchTST-style models) and ``"ablations"`` (the network without its finest
    scale, without its coarsest, and without cross-scale attention).

    Parameters
    ----------
    base : ModelConfig
        The network's configuration (scales finest first).
    """
    names = base.scale_names
    finest, coarsest = names[0], names[-1]

    def without(scale: str) -> ModelConfig:
        return base.replace(scales=tuple(c for c in base.scales if c.name != scale))

    return {
        "network": {"multi-scale net": ("multiscale", base)},
        "single_scale": {f"Transformer {s} only": ("single_scale", base.replace(single_scale=s))
                         for s in names},
        "rivals": {"LSTM": ("lstm", base), "N-HiTS-style": ("nhits", base),
                   "PatchTST-style": ("patchtst", base)},
        "ablations": {f"without {finest}": ("multiscale", without(finest)),
                      f"without {coarsest}": ("multiscale", without(coarsest)),
                      "without cross-attention": ("multiscale", base.replace(cross_attention=False))},
    }


#: Labels of the non-neural rivals (:func:`non_neural_rivals`).
NON_NEURAL = ("logistic on lags", "logistic on interaction", "LightGBM")


def roles(scale_names: Sequence[str]) -> dict[str, Any]:
    """Which label plays which part in the course's claims (the ``roles`` of ``evidence/results.json``)."""
    return {
        "network": "multi-scale net",
        "oracle": "oracle",
        "majority": "majority class",
        "single_scale": [f"Transformer {s} only" for s in scale_names],
        "naive": ["last sign", "majority class"],
        "rivals": ["LSTM", "N-HiTS-style", "PatchTST-style", *NON_NEURAL],
    }


def non_neural_rivals(experiment: Any, data: Any, bars: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """Fit the non-neural rivals on ``data``'s training block, tuned on its validation block.

    * *logistic on lags*: the one-bar log returns of every row of every scale's window;
    * *logistic on interaction*: :func:`interaction_features` (one number per horizon), the
      planted recipe written by hand;
    * *LightGBM*: every window of every scale, flattened (what the linear model reads).

    Returns
    -------
    dict
        label -> ``{"direction_prob": [N_test, H]}`` on the test block.
    """

    horizons = list(experiment.horizons)
    up = {part: getattr(data, part).up.numpy() for part in ("train", "val", "test")}
    out: dict[str, dict[str, np.ndarray]] = {}

    lags = {part: lag_features(getattr(data, part).windows) for part in ("train", "val", "test")}
    fit = fit_logistic(lags["train"], up["train"], lags["val"], up["val"])
    out["logistic on lags"] = fit.predict(lags["test"])

    feats = {part: interaction_features(bars, data.times[part], horizons).to_numpy()
             for part in ("train", "val", "test")}
    # one feature per horizon: each horizon's regression reads its own column
    probs = []
    for j in range(len(horizons)):
        fit_h = fit_logistic(feats["train"][:, [j]], up["train"][:, [j]], feats["val"][:, [j]],
                             up["val"][:, [j]])
        probs.append(fit_h.predict(feats["test"][:, [j]])["direction_prob"][:, 0])
    out["logistic on interaction"] = {"direction_prob": np.stack(probs, axis=1)}

    flat = {part: flat_windows(getattr(data, part).windows) for part in ("train", "val", "test")}
    fit = fit_lightgbm(flat["train"], up["train"], flat["val"], up["val"], seed=experiment.seed)
    out["LightGBM"] = fit.predict(flat["test"])
    return out
