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

The trained rivals (:class:`LSTMBaseline`, :class:`SingleScaleTransformer`, :class:`LinearBaseline`,
and the two published multi-rate designs :class:`NHiTSStyle` and :class:`PatchTSTStyle`) take the
same ``forward(windows, masks=None, return_details=False)`` as
:class:`msa_lib.model.MultiScaleAttentionNet`, read their settings from the same
:class:`msa_lib.model.ModelConfig` and end in the same :class:`msa_lib.model.ForecastHeads`
(``"returns"`` and ``"direction_logits"``, ``[B, H]`` each), so the training loop, the checkpoints
and the evaluation treat every model alike. Build them by kind with
:func:`msa_lib.model.build_model` (``"lstm"``, ``"single_scale"``, ``"linear"``, ``"nhits"``,
``"patchtst"``); with ``return_details`` they add ``"fused"``, the representation the heads read.

The non-neural rivals are fitted by scikit-learn and LightGBM on a feature matrix: every window
flattened (:func:`flat_windows`, what :class:`LinearBaseline` sees) or the lagged one-bar returns of
every scale (:func:`lag_features`). :func:`fit_logistic` and :func:`fit_lightgbm` each try exactly
:data:`TUNING_BUDGET` settings on the validation block and return a :class:`RivalFit`, whose
``predict`` gives ``"direction_prob"`` in the format :func:`msa_lib.evaluate.results_table` reads.

Scores follow :mod:`msa_lib.evaluate`'s conventions: a *direction score* is a number whose sign is
the call (here +1.0 for up, -1.0 for down, 0.0 for "no move", which counts as "not up").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from msa_lib.data import as_timedelta, horizon_label, validate_ohlcv
from msa_lib.model import (
    Dropout,
    EncoderLayer,
    ForecastHeads,
    ModelConfig,
    ScaleConfig,
    ScaleEncoder,
    gather_inputs,
)

__all__ = [
    "NON_NEURAL",
    "TUNING_BUDGET",
    "LSTMBaseline",
    "LinearBaseline",
    "NHiTSStyle",
    "PatchTSTStyle",
    "RivalFit",
    "SingleScaleTransformer",
    "column_index",
    "contenders",
    "fit_lightgbm",
    "fit_logistic",
    "flat_windows",
    "interaction_features",
    "lag_features",
    "last_sign_score",
    "majority_class_score",
    "max_pool_time",
    "naive_predictions",
    "non_neural_rivals",
    "past_log_returns",
    "patch_length",
    "roles",
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

def _check_whole_window(model: str, scale: ScaleConfig, x: Tensor) -> None:
    """Raise unless ``x`` [B, L, F] has exactly the scale's lookback rows (MLP inputs are fixed)."""
    if x.shape[1] != scale.lookback:
        raise ValueError(
            f"{model}: windows[{scale.name!r}] has {x.shape[1]} rows, needs exactly {scale.lookback}"
        )


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
            _check_whole_window("LinearBaseline", s, x)
            if m is not None:
                x = x * m[..., None]
            flat.append(x.flatten(1))  # [B, L_s * F_s]
        z = torch.cat(flat, dim=1)  # [B, sum_s L_s * F_s]
        out = self.heads(z)
        if return_details:
            out["fused"] = z
        return out


# --------------------------------------------------------------------------------------------------
# N-HiTS-style: one MLP block per input rate, doubly residual stacking
# --------------------------------------------------------------------------------------------------
def max_pool_time(x: Tensor, mask: Tensor | None, kernel: int) -> Tensor:
    """Max over groups of ``kernel`` consecutive rows, counted back from the most recent row.

    Groups are anchored at the newest row, so the most recent ``kernel`` bars always form a whole
    group and only the oldest group may be short (N-HiTS pools its input read newest-first, with
    ``ceil_mode``, to the same effect). Rows hidden by the mask take no part in a maximum; a group
    whose rows are all hidden gives 0, so nothing a mask hides reaches the output.

    Parameters
    ----------
    x : Tensor [B, L, F]
        Windows, oldest row first (values are finite: checked where data enters).
    mask : bool Tensor [B, L] or None
        True = a real bar.
    kernel : int
        Group size (and stride), >= 1. 1 only zeroes the hidden rows.

    Returns
    -------
    Tensor [B, ceil(L / kernel), F]
    """
    if mask is not None:
        x = x.masked_fill(~mask[..., None], float("-inf"))
    if kernel > 1:
        B, L, n_feat = x.shape
        n_groups = math.ceil(L / kernel)
        x = F.pad(x, (0, 0, n_groups * kernel - L, 0), value=float("-inf"))  # pad the oldest end
        x = x.view(B, n_groups, kernel, n_feat).amax(dim=2)  # [B, n_groups, F]
    if mask is None and kernel == 1:
        return x
    return x.masked_fill(torch.isneginf(x), 0.0)


class NHiTSBlock(nn.Module):
    """One block: an MLP from (this scale's pooled window, running residual) to (backcast, forecast).

    Two hidden ReLU layers, as in N-HiTS, then one linear map whose output is split in two halves
    of width ``d``: the backcast (what this block explains of the residual) and its forecast
    contribution.
    """

    def __init__(self, n_in: int, hidden: int, d: int, dropout: float) -> None:
        super().__init__()
        self.d = d
        self.mlp = nn.Sequential(
            nn.Linear(n_in, hidden), nn.ReLU(), Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), Dropout(dropout),
            nn.Linear(hidden, 2 * d),
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` [B, n_in] -> ``(backcast [B, d], forecast [B, d])``."""
        backcast, forecast = self.mlp(x).split(self.d, dim=-1)
        return backcast, forecast


class NHiTSStyle(nn.Module):
    """A compact N-HiTS-style rival: one MLP block per time scale, doubly residual stacking.

    N-HiTS (Challu et al., AAAI 2023, :cite:p:`challu2023nhits`) builds on N-BEATS (Oreshkin et al.,
    ICLR 2020, :cite:p:`oreshkin2020nbeats`): a stack of MLP blocks, each of which reads the running
    *residual* of the input, subtracts its *backcast* from it and adds its *forecast* to the running
    sum. Its own idea is multi-rate input: each block max-pools the input with its own kernel (the
    first blocks the most), so different blocks see the series at different sampling rates, and each
    block forecasts a few knots that are interpolated to the horizon.

    Our scales already are such multi-rate samplings (one-minute bars, five-minute bars, hours,
    days), so here block ``i`` reads the window of scale ``i``, flattened after an optional max-pool
    over time (:func:`max_pool_time` with ``ScaleConfig.pool_kernel``, default 1: none), together
    with the running residual. The blocks run coarsest scale first, as N-HiTS runs its most pooled
    (lowest-frequency) blocks first::

        r_0 = lift(all pooled windows, concatenated)              # [B, d]
        for each scale s, coarsest first:
            b_s, f_s = block_s([pooled window of s, r_{s-1}])     # [B, d], [B, d]
            r_s = r_{s-1} - b_s                                   # doubly residual stacking
        fused = sum_s f_s  -> ForecastHeads                        # "returns", "direction_logits"

    Differences from the paper, and why:

    * The residual lives in a learned width-``d`` space, started by a linear lift of the whole
      pooled input, rather than in the input space itself: our scales' windows have different
      lengths and features, so no single input-shaped residual is shared by all blocks.
    * No interpolation of forecast knots: N-HiTS forecasts long horizons (96 to 720 steps) from a
      few knots; we forecast 2-4 horizons, so each block's forecast is a width-``d`` vector and the
      shared linear :class:`~msa_lib.model.ForecastHeads` map the sum to ``[B, H]`` (a linear map
      of the sum equals the sum of the blocks' own linear forecasts, so the forecasts still add up
      block by block).
    * Exogenous, static and future inputs are absent: every feature of a window is an input.

    Checked against the reference implementation (``neuralforecast/models/nhits.py`` of
    Nixtla/neuralforecast): ReLU MLPs (512-unit hidden layers by default there), ``residuals =
    (residuals - backcast) * mask`` and ``forecast = forecast + block_forecast``, MaxPool1d with
    ``ceil_mode`` on the newest-first series, the largest pooling kernels in the first stacks.

    Requires windows of exactly ``lookback`` rows per scale (the MLPs' input sizes are fixed).
    Hidden rows (mask False) take no part (see :func:`max_pool_time`).

    Parameters
    ----------
    config : ModelConfig
        Uses the scales (``lookback``, ``n_features``, ``pool_kernel``), ``d_model`` (width of the
        residual and forecasts), ``ff_mult`` (hidden width ``ff_mult * d_model``), ``dropout`` and
        ``horizons``.
    """

    kind = "nhits"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        sizes = {s.name: math.ceil(s.lookback / s.pool_kernel) * s.n_features for s in config.scales}
        self.lift = nn.Linear(sum(sizes.values()), d)
        self.order = [s.name for s in reversed(config.scales)]  # coarsest first
        self.blocks = nn.ModuleDict(
            {name: NHiTSBlock(sizes[name] + d, config.ff_mult * d, d, config.dropout) for name in self.order}
        )
        self.heads = ForecastHeads(d, len(config.horizons))

    def forward(
        self,
        windows: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """See :meth:`msa_lib.model.MultiScaleAttentionNet.forward`.

        With ``return_details`` also ``"fused"`` [B, d] (the summed forecast the heads read) and
        ``"block_forecasts"`` [B, S, d] (each block's contribution, in the config's scale order).
        """
        cfg = self.config
        xs, ms = gather_inputs(cfg, windows, masks, next(self.parameters()).device)
        pooled = {}
        for s, x, m in zip(cfg.scales, xs, ms, strict=True):
            _check_whole_window("NHiTSStyle", s, x)
            pooled[s.name] = max_pool_time(x, m, s.pool_kernel).flatten(1)  # [B, ceil(L/k) * F]
        residual = self.lift(torch.cat([pooled[s.name] for s in cfg.scales], dim=1))  # [B, d]
        parts = {}
        for name in self.order:
            backcast, parts[name] = self.blocks[name](torch.cat([pooled[name], residual], dim=1))
            residual = residual - backcast  # [B, d]
        block_forecasts = torch.stack([parts[s.name] for s in cfg.scales], dim=1)  # [B, S, d]
        fused = block_forecasts.sum(dim=1)  # [B, d]
        out = self.heads(fused)
        if return_details:
            out.update(fused=fused, block_forecasts=block_forecasts)
        return out


# --------------------------------------------------------------------------------------------------
# PatchTST-style: patches of every scale as tokens of one Transformer encoder
# --------------------------------------------------------------------------------------------------
def patch_length(scale: ScaleConfig) -> int:
    """Rows per patch of ``scale`` in :class:`PatchTSTStyle`: ``min(lookback, patch_len)``."""
    return min(scale.lookback, scale.patch_len)


class PatchTSTStyle(nn.Module):
    """A compact PatchTST-style rival: patches of every scale as tokens of one Transformer encoder.

    PatchTST (Nie et al., ICLR 2023, :cite:p:`nie2023patchtst`) cuts a series into patches of ``P``
    consecutive steps, embeds each flattened patch linearly, adds a learnable position embedding and
    runs a Transformer encoder over the patch tokens: fewer, richer tokens than one per step.

    Here each scale's window ``[B, L, F]`` is cut into patches of ``P = min(lookback, patch_len)``
    rows (``ScaleConfig.patch_len``, default 5). When ``L`` is not a multiple of ``P`` the *oldest*
    patch is padded with zero rows, which the mask hides, so the newest patch always ends with the
    newest bar. Each patch ``[P, F]`` is flattened and embedded by a linear map of its scale,
    plus a learnable position embedding (by patch age: 0 = the most recent patch, shared by the
    scales) and a learnable scale embedding. One pre-LayerNorm Transformer encoder
    (:class:`msa_lib.model.EncoderLayer`) runs over the patch tokens of all scales together; the
    visible tokens are mean-pooled and fed to the :class:`~msa_lib.model.ForecastHeads`.

    Differences from the paper, and why:

    * **Channel mixing is kept.** PatchTST treats each channel (variable) as its own univariate
      series with shared weights (channel independence), which helps on datasets of many loosely
      related series to forecast. We forecast one target from a handful of features per bar
      (returns, volatility, volume...) that only mean something together, so a patch holds all
      features of its rows, and the scales meet in one encoder.
    * Non-overlapping patches (stride ``P``; the paper's stride is ``P / 2``), pre-LayerNorm layers
      instead of post-BatchNorm, no RevIN instance normalisation (windows are already standardised
      with training statistics), and a mean-pool head instead of the paper's flatten-and-project
      head (which ties the head to one number of patches).

    Checked against the reference implementation (``PatchTST_self_supervised/src/models/
    patchTST.py`` of yuqinie98/PatchTST): patch embedding ``W_P = Linear(patch_len, d_model)``,
    learnable position table over patches, encoder over the patch tokens.

    Windows may be shorter than ``lookback`` (fewer patches). Hidden rows are zeroed; a patch whose
    rows are all hidden is never attended to nor pooled.

    Parameters
    ----------
    config : ModelConfig
        Uses the scales (``lookback``, ``n_features``, ``patch_len``, ``n_layers``: the encoder has
        the most of any scale), ``d_model``, ``n_cross_heads`` (heads of the encoder over all
        scales), ``ff_mult``, ``dropout`` and ``horizons``.
    """

    kind = "patchtst"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.patch_lens = {s.name: patch_length(s) for s in config.scales}
        self.embed = nn.ModuleDict(
            {s.name: nn.Linear(self.patch_lens[s.name] * s.n_features, d) for s in config.scales}
        )
        max_patches = max(math.ceil(s.lookback / self.patch_lens[s.name]) for s in config.scales)
        self.position = nn.Parameter(torch.randn(max_patches, d) * 0.02)  # [n_patches, d], age order
        self.scale_embedding = nn.Parameter(torch.randn(len(config.scales), d) * 0.02)  # [S, d]
        n_layers = max(s.n_layers for s in config.scales)
        self.layers = nn.ModuleList(
            EncoderLayer(d, config.n_cross_heads, config.ff_mult, config.dropout) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d)
        self.heads = ForecastHeads(d, len(config.horizons))

    def patch_tokens(self, index: int, x: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Tokens of scale number ``index``: ``x`` [B, L, F] -> ([B, n, d], visible [B, n]).

        ``n = ceil(L / P)`` patches; the oldest is padded at its start when ``P`` does not divide
        ``L``.
        """
        s = self.config.scales[index]
        P = self.patch_lens[s.name]
        B, L, n_feat = x.shape
        if L > s.lookback:
            raise ValueError(f"PatchTSTStyle: windows[{s.name!r}] has {L} rows, more than its lookback {s.lookback}")
        visible = torch.ones(B, L, dtype=torch.bool, device=x.device) if mask is None else mask
        x = x * visible[..., None]  # hidden rows are read as zeros
        pad = -L % P
        x = F.pad(x, (0, 0, pad, 0))  # [B, n * P, F], zero rows before the oldest bar
        visible = F.pad(visible, (pad, 0), value=False)  # [B, n * P]
        n = (L + pad) // P
        patches = x.reshape(B, n, P * n_feat)  # patch j: rows j*P .. j*P+P-1, row after row
        tokens = self.embed[s.name](patches)  # [B, n, d]
        tokens = tokens + self.position[:n].flip(0) + self.scale_embedding[index]  # newest: age 0
        return tokens, visible.view(B, n, P).any(dim=-1)  # a patch is visible if any row is

    def forward(
        self,
        windows: Mapping[str, Any],
        masks: Mapping[str, Any] | None = None,
        return_details: bool = False,
    ) -> dict[str, Tensor]:
        """See :meth:`msa_lib.model.MultiScaleAttentionNet.forward`.

        With ``return_details`` also ``"fused"`` [B, d] (the pooled tokens the heads read) and
        ``"token_scale"`` [N] (the index of the scale of each patch token).
        """
        cfg = self.config
        xs, ms = gather_inputs(cfg, windows, masks, next(self.parameters()).device)
        parts = [self.patch_tokens(i, x, m) for i, (x, m) in enumerate(zip(xs, ms, strict=True))]
        h = torch.cat([t for t, _ in parts], dim=1)  # [B, N, d], N = patches of all scales
        visible = torch.cat([v for _, v in parts], dim=1)  # [B, N]
        for layer in self.layers:
            h = layer(h, visible)
        h = self.norm(h)
        weights = visible.to(h.dtype)[..., None]  # [B, N, 1]
        fused = (h * weights).sum(dim=1) / weights.sum(dim=1)  # [B, d], mean over visible tokens
        out = self.heads(fused)
        if return_details:
            out["fused"] = fused
            out["token_scale"] = torch.cat(
                [torch.full((t.shape[1],), i, dtype=torch.long, device=t.device) for i, (t, _) in enumerate(parts)]
            )
        return out


# --------------------------------------------------------------------------------------------------
# Non-neural rivals: features, one fit per horizon, the same tuning budget
# --------------------------------------------------------------------------------------------------
#: How many settings every rival family may try on the validation block: the course's "same tuning
#: budget" rule. A family that tried more settings would be picked partly for its luck on the
#: validation block (the best of many noisy scores is biased upwards), so comparisons between
#: families are fair only when each gets the same number of tries. :func:`fit_logistic` and
#: :func:`fit_lightgbm` take a grid of exactly this many candidates and raise otherwise.
TUNING_BUDGET = 3


def _windows_arrays(windows: Mapping[str, Any], scales: Sequence[str] | None) -> dict[str, np.ndarray]:
    """The windows of ``scales`` (default: every key, in order) as NumPy arrays, checked 3-D, one N."""
    if not isinstance(windows, Mapping) or len(windows) == 0:
        raise ValueError("windows must be a non-empty dict of scale name -> array [N, L, F]")
    names = list(windows) if scales is None else list(scales)
    if not names:
        raise ValueError("scales is empty: name at least one scale")
    arrays: dict[str, np.ndarray] = {}
    for name in names:
        if name not in windows:
            raise ValueError(f"windows has no scale {name!r} (keys: {list(windows)})")
        w = windows[name]
        w = w.detach().cpu().numpy() if isinstance(w, Tensor) else np.asarray(w)
        if w.ndim != 3:
            raise ValueError(f"windows[{name!r}] must be [N, L, F], got shape {w.shape}")
        first = next(iter(arrays.items()), None)
        if first is not None and w.shape[0] != first[1].shape[0]:
            raise ValueError(
                f"windows[{name!r}] has {w.shape[0]} rows but windows[{first[0]!r}] has "
                f"{first[1].shape[0]}: every scale needs one window per decision time"
            )
        arrays[name] = w
    return arrays


def flat_windows(windows: Mapping[str, Any], scales: Sequence[str] | None = None) -> np.ndarray:
    """Every window of every scale flattened into one row: what :class:`LinearBaseline` sees.

    Parameters
    ----------
    windows : dict of str -> array or Tensor [N, L_s, F_s]
        As in :class:`msa_lib.prepare.WindowDataset` (``data.train.windows``).
    scales : sequence of str, optional
        Scales to use, in order (default: every key of ``windows``, in its order).

    Returns
    -------
    ndarray [N, sum_s L_s * F_s]
        Scale after scale; within a scale, row after row (oldest first), each row's features in
        order. The dtype of the windows (float32 for the course's).
    """
    arrays = _windows_arrays(windows, scales)
    return np.concatenate([w.reshape(w.shape[0], -1) for w in arrays.values()], axis=1)


def column_index(frames: Mapping[str, pd.DataFrame], column: str = "ret_1") -> dict[str, int]:
    """Position of ``column`` among the features of every scale, for :func:`lag_features`.

    Windows carry no feature names: their last axis is in the column order of the feature frames
    they were cut from (:func:`msa_lib.data.make_windows` keeps it). Pass those frames, as built
    by :func:`msa_lib.prepare.experiment_frames` (``experiment_frames(bars, experiment)``) or
    :func:`msa_lib.data.multi_scale_features`.

    Raises
    ------
    ValueError
        Naming the scale whose frame has no such column and the columns it has.
    """
    out = {}
    for name, frame in frames.items():
        columns = list(frame.columns)
        if column not in columns:
            raise ValueError(f"frames[{name!r}] has no column {column!r}; its columns are {columns}")
        out[name] = columns.index(column)
    return out


def lag_features(
    windows: Mapping[str, Any],
    feature_index: Mapping[str, int] | None = None,
    *,
    scales: Sequence[str] | None = None,
    n_lags: int | Mapping[str, int] | None = None,
) -> np.ndarray:
    """The lagged one-bar returns of every scale: the ``ret_1`` column of each window.

    Parameters
    ----------
    windows : dict of str -> array or Tensor [N, L_s, F_s]
    feature_index : dict of str -> int, optional
        Column of ``ret_1`` in each scale's windows. Get it with :func:`column_index` from the
        feature frames the windows were cut from. Default: column 0 at every scale, which is
        ``ret_1`` whenever a scale's ``lags`` start with 1 (the library's default ``(1, 5, 10, 20)``
        and :data:`msa_lib.experiment.SHORT_FEATURE_WINDOWS` do), because
        :func:`msa_lib.data.scale_features` puts the ``ret_<k>`` columns first, in ``lags`` order.
    scales : sequence of str, optional
        Scales to use, in order (default: every key of ``windows``).
    n_lags : int or dict of str -> int, optional
        How many of the most recent rows to keep per scale (default: the whole window).

    Returns
    -------
    ndarray [N, sum_s n_lags_s]
        Scale after scale, oldest lag first (the last column of each scale is its newest bar).
    """
    arrays = _windows_arrays(windows, scales)
    columns = []
    for name, w in arrays.items():
        if feature_index is None:
            j = 0
        elif name not in feature_index:
            raise ValueError(f"feature_index has no entry for scale {name!r} (keys: {list(feature_index)})")
        else:
            j = feature_index[name]
        if isinstance(j, bool) or not isinstance(j, int | np.integer) or not 0 <= j < w.shape[2]:
            raise ValueError(
                f"feature_index[{name!r}] = {j!r} is not a column of windows[{name!r}] "
                f"({w.shape[2]} features)"
            )
        if isinstance(n_lags, Mapping):
            k = n_lags.get(name, w.shape[1])
        else:
            k = w.shape[1] if n_lags is None else n_lags
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= w.shape[1]:
            raise ValueError(f"n_lags for scale {name!r} must be an int in [1, {w.shape[1]}], got {k!r}")
        columns.append(w[:, -k:, j])  # [N, k], oldest first
    return np.concatenate(columns, axis=1)


def _feature_matrix(X: Any, name: str) -> np.ndarray:
    """``X`` as a finite, numeric [N, D] array (no copy when it already is one)."""
    X = X.detach().cpu().numpy() if isinstance(X, Tensor) else np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}")
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty [N, D] array, got shape {X.shape}")
    if X.dtype.kind == "f" and not np.isfinite(X).all():
        row, col = (int(i) for i in np.argwhere(~np.isfinite(X))[0])
        raise ValueError(f"{name} holds NaN or inf (first at row {row}, column {col})")
    return X


def _labels(up: Any, name: str, n_rows: int, x_name: str) -> np.ndarray:
    """``up`` as a 0/1 int array [N, H] with ``n_rows`` rows."""
    up = up.detach().cpu().numpy() if isinstance(up, Tensor) else np.asarray(up)
    if up.ndim == 1:
        up = up[:, None]
    if up.ndim != 2 or up.shape[1] == 0:
        raise ValueError(f"{name} must be [N] or [N, H] 0/1 labels, got shape {up.shape}")
    if up.shape[0] != n_rows:
        raise ValueError(f"{name} has {up.shape[0]} rows but {x_name} has {n_rows}")
    if up.dtype.kind not in "fiub" or not np.isin(up, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0 and 1 (1 = the return was positive)")
    return up.astype(np.int64)


def _check_fit_inputs(
    X_train: Any, up_train: Any, X_val: Any, up_val: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    X_train = _feature_matrix(X_train, "X_train")
    X_val = _feature_matrix(X_val, "X_val")
    if X_val.shape[1] != X_train.shape[1]:
        raise ValueError(f"X_val has {X_val.shape[1]} columns but X_train has {X_train.shape[1]}")
    up_train = _labels(up_train, "up_train", X_train.shape[0], "X_train")
    up_val = _labels(up_val, "up_val", X_val.shape[0], "X_val")
    if up_val.shape[1] != up_train.shape[1]:
        raise ValueError(f"up_val has {up_val.shape[1]} horizons but up_train has {up_train.shape[1]}")
    for j in range(up_train.shape[1]):
        if np.unique(up_train[:, j]).size < 2:
            raise ValueError(
                f"up_train column {j} holds only {int(up_train[0, j])}s: a classifier needs both classes"
            )
    return X_train, up_train, X_val, up_val


def _check_grid(grid: Sequence[Any], name: str = "grid") -> list[Any]:
    grid = list(grid)
    if len(grid) != TUNING_BUDGET:
        raise ValueError(
            f"{name} has {len(grid)} settings; every rival family tries exactly "
            f"TUNING_BUDGET = {TUNING_BUDGET} on the validation block"
        )
    if any(grid[i] == grid[j] for i in range(len(grid)) for j in range(i)):
        raise ValueError(f"{name} repeats a setting: {grid}")
    return grid


def _accuracy(prob: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Direction accuracy per column of calling "up" where ``prob > 0.5`` (as ``results_table``)."""
    return ((prob > 0.5) == (up == 1)).mean(axis=0)


@dataclass
class RivalFit:
    """A non-neural rival, fitted and tuned: one classifier per horizon and the setting chosen.

    Attributes
    ----------
    name : str
        Its name in results tables.
    settings : dict
        The setting chosen on the validation block (one of :data:`TUNING_BUDGET` candidates).
    val_accuracy : ndarray [H]
        Validation direction accuracy of the chosen setting, per horizon.
    tuning : DataFrame
        One row per candidate tried, in the order tried: its settings and ``val_accuracy`` (mean
        over horizons, the score the choice maximised).
    models : list
        The fitted classifiers, one per horizon.
    n_features : int
        Columns of the feature matrix it was fitted on.
    features : callable, optional
        Turns a windows dict into that feature matrix (:func:`flat_windows`, ...), so that
        :meth:`predict` also takes windows.
    """

    name: str
    settings: dict[str, Any]
    val_accuracy: np.ndarray
    tuning: pd.DataFrame
    models: list[Any] = field(repr=False)
    n_features: int = 0
    features: Callable[[Mapping[str, Any]], np.ndarray] | None = field(default=None, repr=False)

    def predict(self, X: Any) -> dict[str, np.ndarray]:
        """Probability of "up" per horizon, for :func:`msa_lib.evaluate.results_table`.

        Parameters
        ----------
        X : array [N, D] or dict of str -> array [N, L_s, F_s]
            A feature matrix like the one it was fitted on, or windows (only when the fit was given
            ``features``).

        Returns
        -------
        dict
            ``{"direction_prob": ndarray [N, H]}`` (float64).
        """
        if isinstance(X, Mapping):
            if self.features is None:
                raise ValueError(
                    f"{self.name} was fitted on a feature matrix without `features`: pass the "
                    "matrix, or fit with features=flat_windows (or lag_features)"
                )
            X = self.features(X)
        X = _feature_matrix(X, "X")
        if X.shape[1] != self.n_features:
            raise ValueError(f"X has {X.shape[1]} columns; {self.name} was fitted on {self.n_features}")
        prob = np.column_stack([m.predict_proba(X)[:, 1] for m in self.models])  # [N, H]
        return {"direction_prob": prob.astype(np.float64)}


def _tune(
    name: str,
    candidates: list[dict[str, Any]],
    fit_one: Callable[[dict[str, Any], np.ndarray, np.ndarray], Any],
    X_train: np.ndarray,
    up_train: np.ndarray,
    X_val: np.ndarray,
    up_val: np.ndarray,
    features: Callable[[Mapping[str, Any]], np.ndarray] | None,
) -> RivalFit:
    """Fit every candidate (one model per horizon), keep the best mean validation accuracy.

    Ties go to the earlier candidate (grids list the simpler settings first).
    """
    rows, best = [], None
    for settings in candidates:
        models = [fit_one(settings, up_train[:, j], up_val[:, j]) for j in range(up_train.shape[1])]
        prob = np.column_stack([m.predict_proba(X_val)[:, 1] for m in models])  # [N_val, H]
        acc = _accuracy(prob, up_val)  # [H]
        rows.append({**settings, "val_accuracy": float(acc.mean())})
        if best is None or acc.mean() > best[2].mean():
            best = (settings, models, acc)
    assert best is not None
    settings, models, acc = best
    return RivalFit(name=name, settings=dict(settings), val_accuracy=acc, tuning=pd.DataFrame(rows),
                    models=models, n_features=X_train.shape[1], features=features)


def fit_logistic(
    X_train: Any,
    up_train: Any,
    X_val: Any,
    up_val: Any,
    *,
    grid: Sequence[float] = (0.01, 0.1, 1.0),
    features: Callable[[Mapping[str, Any]], np.ndarray] | None = None,
    name: str = "logistic",
) -> RivalFit:
    """Logistic regression per horizon on standardised features, ``C`` chosen on validation.

    One scikit-learn (Pedregosa et al., 2011, :cite:p:`pedregosa2011sklearn`) ``LogisticRegression``
    (L2 penalty) per horizon, after a ``StandardScaler`` fitted on the training rows. The
    ``newton-cholesky`` solver is exact and deterministic, and on the course's flat windows (18,655
    rows, 765 columns) it fits in under a second where ``lbfgs`` took 4-7 s (measured on a
    shared 2-core CPU). The inverse regularisation strength ``C`` is the same for every horizon
    and is chosen, among the :data:`TUNING_BUDGET` values of ``grid``, by the mean over horizons of
    the validation direction accuracy. The classifiers stay fitted on the training block only, like
    the networks.

    A linear model of the features: it can learn "up when x is high", never "up when x and y have
    the same sign" unless someone builds the product feature by hand.

    Parameters
    ----------
    X_train, X_val : array [N, D]
        Features (:func:`flat_windows`, :func:`lag_features`...) of the training and validation
        blocks.
    up_train, up_val : array [N, H] or [N]
        0/1 labels, 1 where the return over the horizon was positive (``data.train.up``).
    grid : sequence of float, default (0.01, 0.1, 1.0)
        Exactly :data:`TUNING_BUDGET` distinct values of ``C`` > 0.
    features : callable, optional
        Windows -> feature matrix, kept so that :meth:`RivalFit.predict` takes windows too.
    name : str, default "logistic"

    Returns
    -------
    RivalFit

    Raises
    ------
    ValueError
        Naming the argument: rows that do not match, NaN or inf, labels other than 0/1, a horizon
        with one class only, a grid of the wrong size.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_train, up_train, X_val, up_val = _check_fit_inputs(X_train, up_train, X_val, up_val)
    grid = _check_grid(grid)
    if any(isinstance(c, bool) or not isinstance(c, int | float | np.number) or not c > 0 for c in grid):
        raise ValueError(f"grid: every C must be a number > 0, got {grid}")

    def fit_one(settings: dict[str, Any], y: np.ndarray, _y_val: np.ndarray) -> Any:
        logistic = LogisticRegression(C=settings["C"], solver="newton-cholesky", max_iter=200)
        return make_pipeline(StandardScaler(), logistic).fit(X_train, y)

    candidates = [{"C": float(c)} for c in grid]
    return _tune(name, candidates, fit_one, X_train, up_train, X_val, up_val, features)


#: LightGBM parameters every candidate shares (a grid may not change them).
LIGHTGBM_FIXED = ("objective", "n_estimators", "n_jobs", "deterministic", "force_row_wise",
                  "random_state", "verbose")


def fit_lightgbm(
    X_train: Any,
    up_train: Any,
    X_val: Any,
    up_val: Any,
    *,
    seed: int,
    grid: Sequence[Mapping[str, Any]] = (
        {"num_leaves": 7, "learning_rate": 0.1},
        {"num_leaves": 15, "learning_rate": 0.05},
        {"num_leaves": 31, "learning_rate": 0.05},
    ),
    max_rounds: int = 500,
    early_stopping: int = 20,
    features: Callable[[Mapping[str, Any]], np.ndarray] | None = None,
    name: str = "lightgbm",
) -> RivalFit:
    """Gradient-boosted trees per horizon (LightGBM), settings chosen on validation.

    One LightGBM (Ke et al., NIPS 2017, :cite:p:`ke2017lightgbm`) ``LGBMClassifier`` (binary
    objective) per horizon, with at most ``max_rounds`` trees, stopped early when the validation
    block's log loss has not improved for ``early_stopping`` rounds. Among the :data:`TUNING_BUDGET`
    candidates of ``grid`` the one with the best mean validation direction accuracy is kept. Runs on
    one thread, deterministically (``deterministic=True``, ``force_row_wise=True``,
    ``random_state=seed``): the same inputs and seed give the same trees.

    Trees split on one feature after another, so they can learn interactions ("up when x and y have
    the same sign") that a linear model cannot.

    Parameters
    ----------
    X_train, up_train, X_val, up_val
        As in :func:`fit_logistic`.
    seed : int
        LightGBM's ``random_state``.
    grid : sequence of dict
        Exactly :data:`TUNING_BUDGET` distinct candidates, each a dict of ``LGBMClassifier``
        parameters (default: three ``num_leaves`` / ``learning_rate`` pairs, smallest trees first).
        The parameters in :data:`LIGHTGBM_FIXED` cannot be set.
    max_rounds : int, default 500
        Most trees per classifier.
    early_stopping : int, default 20
        Rounds without improvement of the validation log loss before stopping.
    features : callable, optional
        Windows -> feature matrix, kept so that :meth:`RivalFit.predict` takes windows too.
    name : str, default "lightgbm"

    Returns
    -------
    RivalFit
        Each of its ``models`` records where early stopping stopped in ``best_iteration_``.
    """
    import lightgbm as lgb

    X_train, up_train, X_val, up_val = _check_fit_inputs(X_train, up_train, X_val, up_val)
    grid = _check_grid(grid)
    for candidate in grid:
        if not isinstance(candidate, Mapping):
            raise ValueError(f"grid: each candidate must be a dict of LightGBM parameters, got {candidate!r}")
        fixed = sorted(set(candidate) & set(LIGHTGBM_FIXED))
        if fixed:
            raise ValueError(f"grid: {fixed} are fixed for every candidate and cannot be tuned")
    for value, what, least in ((max_rounds, "max_rounds", 1), (early_stopping, "early_stopping", 1),
                               (seed, "seed", 0)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise ValueError(f"{what} must be a whole number >= {least}, got {value!r}")

    def fit_one(settings: dict[str, Any], y: np.ndarray, y_val: np.ndarray) -> Any:
        model = lgb.LGBMClassifier(
            objective="binary", n_estimators=max_rounds, n_jobs=1, deterministic=True,
            force_row_wise=True, random_state=seed, verbose=-1, **settings,
        )
        return model.fit(X_train, y, eval_X=X_val, eval_y=y_val,
                         callbacks=[lgb.early_stopping(early_stopping, verbose=False)])

    return _tune(name, [dict(c) for c in grid], fit_one, X_train, up_train, X_val, up_val, features)


# --------------------------------------------------------------------------------------------------
# The hand-made interaction feature (presumes knowing how the synthetic market was built)
# --------------------------------------------------------------------------------------------------
def interaction_features(
    bars: pd.DataFrame,
    times: Any,
    horizons: Sequence[int | str],
    *,
    delay: int | str = "30min",
    state_days: int = 1,
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


def non_neural_rivals(
    experiment: Any,
    data: Any,
    bars: pd.DataFrame,
    which: Sequence[str] = NON_NEURAL,
) -> dict[str, dict[str, np.ndarray]]:
    """Fit the non-neural rivals on ``data``'s training block, tuned on its validation block.

    * *logistic on lags*: the one-bar log returns of every row of every scale's window;
    * *logistic on interaction*: :func:`interaction_features` (one number per horizon), the
      planted recipe written by hand (1-minute bars of the synthetic market only);
    * *LightGBM*: every window of every scale, flattened (what the linear model reads). The
      slowest of the three by far (about a minute on one core for the course's experiment).

    Each tries :data:`TUNING_BUDGET` settings and keeps the one with the best validation accuracy.

    Parameters
    ----------
    experiment : Experiment
        Its ``horizons`` and ``seed``.
    data : PreparedData
    bars : pandas.DataFrame
        The bars ``data`` was prepared from (the interaction feature reads them).
    which : sequence of str, default all of :data:`NON_NEURAL`

    Returns
    -------
    dict
        label -> ``{"direction_prob": [N_test, H]}`` on the test block, in the order of ``which``.
    """
    unknown = [w for w in which if w not in NON_NEURAL]
    if unknown:
        raise ValueError(f"unknown non-neural rivals {unknown}; choose among {list(NON_NEURAL)}")
    parts = ("train", "val", "test")
    up = {part: getattr(data, part).up.numpy() for part in parts}
    out: dict[str, dict[str, np.ndarray]] = {}
    for label in which:
        if label == "logistic on lags":
            X = {part: lag_features(getattr(data, part).windows) for part in parts}
            out[label] = fit_logistic(X["train"], up["train"], X["val"], up["val"]).predict(X["test"])
        elif label == "logistic on interaction":
            X = {part: interaction_features(bars, data.times[part], experiment.horizons).to_numpy()
                 for part in parts}
            probs = []  # one feature per horizon: each horizon's regression reads its own column
            for j in range(X["train"].shape[1]):
                fit = fit_logistic(X["train"][:, [j]], up["train"][:, [j]], X["val"][:, [j]],
                                   up["val"][:, [j]])
                probs.append(fit.predict(X["test"][:, [j]])["direction_prob"][:, 0])
            out[label] = {"direction_prob": np.stack(probs, axis=1)}
        else:
            X = {part: flat_windows(getattr(data, part).windows) for part in parts}
            fit = fit_lightgbm(X["train"], up["train"], X["val"], up["val"], seed=experiment.seed)
            out[label] = fit.predict(X["test"])
    return out
