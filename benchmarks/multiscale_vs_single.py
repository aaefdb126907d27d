"""multiscale_vs_single: training speed of the default multi-scale net against one long sequence.

The course's :class:`msa_lib.model.MultiScaleAttentionNet` (the network of
:data:`msa_lib.experiment.COURSE`) reads four short windows (its scales 1min/5min/1h/1D and
lookbacks) and lets them meet in cross-scale attention. The straightforward alternative is one
:class:`msa_lib.baselines.SingleScaleTransformer` of the same width and depth fed the last 24 hours at
1-minute resolution: 1,440 tokens, whose self-attention costs about (1440 / L)^2 times that of the
course's 1-minute encoder of L bars. Both are trained the way :func:`msa_lib.train.fit` trains
(AdamW with the course's learning rate and weight decay, the multi-horizon loss, gradient clipping
at 1), on the same batch size, and compared in training samples per second.

"Agreement" here is not equal outputs (they are different models) but a fair comparison: both are
built from the same features and decision times, the single-scale window ends with exactly the
bars of the multi-scale net's 1-minute window and covers the 24 hours before it, both networks
have the same width, depth, heads, feed-forward size and dropout, and both produce outputs and a
finite loss of the same shapes on the same batch.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from benchmarks.common import Result, fmt_seconds
from msa_lib.experiment import COURSE

NAME = "multiscale_vs_single"
TARGET = 10.0
DESCRIPTION = (
    "training samples/s of the default MultiScaleAttentionNet against a SingleScaleTransformer "
    "of the same width and depth fed 1,440 one-minute tokens"
)

SINGLE_LOOKBACK = 1440  # 24 hours of 1-minute bars
HORIZONS = COURSE.horizons
LEARNING_RATE, WEIGHT_DECAY = COURSE.train.lr, COURSE.train.weight_decay
GRAD_CLIP = 1.0  # msa_lib.train.fit's default


def make_frames(
    days: int = 40, seed: int = 0, scales: Sequence[str] = tuple(COURSE.lookbacks)
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Synthetic 1-minute bars and their features at ``scales`` (the first must be ``"1min"``)."""
    from msa_lib.data import multi_scale_features
    from msa_lib.datasets import simulate_market

    bars = simulate_market(days=days, seed=seed).bars
    return bars, multi_scale_features(bars, scales=list(scales))


def build_datasets(
    bars: pd.DataFrame,
    frames: Mapping[str, pd.DataFrame],
    lookbacks: Mapping[str, int] = COURSE.lookbacks,
    single_lookback: int = SINGLE_LOOKBACK,
    every: str = "5min",
):
    """Standardised windows for both networks at the same decision times, with the same targets.

    Returns
    -------
    multi, single : msa_lib.prepare.WindowDataset
        Row ``i`` of both is the same decision time.
    raw : dict
        The unscaled windows (``"multi"``, ``"single"``) and ``"times"``, for :func:`check_inputs`.
    """
    from msa_lib.data import WindowScaler, decision_times, make_targets, make_windows
    from msa_lib.prepare import WindowDataset

    finest = next(iter(lookbacks))
    _, kept = make_windows(frames, lookbacks, decision_times(bars, every))
    targets = make_targets(bars, kept, list(HORIZONS))  # drops times whose horizon runs out
    times = targets.index
    multi, _ = make_windows(frames, lookbacks, times)
    single, kept_single = make_windows({finest: frames[finest]}, {finest: single_lookback}, times)
    if not kept_single.equals(times):
        raise ValueError(f"some decision times lack {single_lookback} rows of {finest!r} history")
    y = targets.to_numpy(dtype=np.float64)
    y_scaled = (y / y.std(axis=0)).astype(np.float32)  # [N, H]
    up = (y > 0).astype(np.float32)  # [N, H], the direction labels
    datasets = [
        WindowDataset(WindowScaler().fit_transform(w), y_scaled, up, horizons=list(HORIZONS))
        for w in (multi, single)
    ]
    return datasets[0], datasets[1], {"multi": multi, "single": single, "times": times}


def build_models(multi_windows: Mapping[str, np.ndarray], single_windows: Mapping[str, np.ndarray],
                 seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """The course's multi-scale net and the single-scale Transformer with the same other settings."""
    from msa_lib.baselines import SingleScaleTransformer
    from msa_lib.model import MultiScaleAttentionNet

    torch.manual_seed(seed)
    multi = MultiScaleAttentionNet(COURSE.model_config(multi_windows))
    torch.manual_seed(seed)
    single = SingleScaleTransformer(COURSE.model_config(single_windows))
    return multi, single


def check_inputs(
    raw: Mapping[str, object], frame_1min: pd.DataFrame, single_lookback: int = SINGLE_LOOKBACK
) -> None:
    """Assert the single-scale windows extend the multi-scale 1-minute windows back in time.

    They must hold ``single_lookback`` rows, end with exactly the rows of the multi-scale
    1-minute windows, and cover ``single_lookback`` consecutive minutes (24 hours by default).
    """
    finest = next(iter(raw["multi"]))
    multi, single, times = raw["multi"][finest], raw["single"][finest], raw["times"]
    lookback = multi.shape[1]
    assert single.shape[1] == single_lookback, f"single-scale windows have {single.shape[1]} rows"
    assert np.array_equal(single[:, -lookback:], multi), (
        "the newest bars of the single-scale windows differ from the multi-scale 1-minute windows"
    )
    stamps = frame_1min.index
    end = np.searchsorted(stamps.asi8, times.as_unit(stamps.unit).asi8, side="right") - 1
    spans = stamps[end] - stamps[end - single_lookback + 1]
    assert (spans == pd.Timedelta(minutes=single_lookback - 1)).all(), (
        f"a single-scale window does not cover {single_lookback} consecutive minutes"
    )


def check_models(multi: nn.Module, single: nn.Module, multi_data, single_data,
                 single_lookback: int = SINGLE_LOOKBACK) -> None:
    """Assert same width/depth/heads/feed-forward/dropout, and same output and loss shapes."""
    from msa_lib.train import multi_horizon_loss

    a, b = multi.config, single.config
    for key in ("d_model", "dropout", "ff_mult", "pos_encoding", "horizons"):
        assert getattr(a, key) == getattr(b, key), f"{key} differs: {getattr(a, key)} vs {getattr(b, key)}"
    depth = {s.n_layers for s in a.scales}
    heads = {s.n_heads for s in a.scales}
    (sb,) = b.scales
    assert depth == {sb.n_layers}, f"depth differs: {depth} vs {sb.n_layers}"
    assert heads == {sb.n_heads}, f"heads differ: {heads} vs {sb.n_heads}"
    assert sb.lookback == single_lookback, f"single-scale lookback is {sb.lookback}"
    with torch.no_grad():
        outs = [m.eval()(data[:4][0]) for m, data in ((multi, multi_data), (single, single_data))]
    for key in ("returns", "direction_logits"):
        assert outs[0][key].shape == outs[1][key].shape, f"{key} shapes differ"
    _, scaled_returns, up = multi_data[:4]
    for out in outs:
        loss, _ = multi_horizon_loss(out, scaled_returns, up)
        assert torch.isfinite(loss), "a network gives a non-finite loss"


def train_steps_per_second(model: nn.Module, data, batch_size: int, steps: int, warmup: int = 1
                           ) -> tuple[float, list[float]]:
    """Median samples per second of training steps as :func:`msa_lib.train.fit` takes them.

    Each step: zero the gradients, forward, multi-horizon loss, backward, clip the gradient norm,
    fused AdamW step. Batches are consecutive slices of ``data``, cycling when it runs out.

    Returns
    -------
    samples_per_second : float
        ``batch_size / median step time``.
    step_seconds : list of float
        Every timed step.
    """
    from msa_lib.train import multi_horizon_loss

    model.train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY, fused=True
    )  # fused, as fit builds it on the CPU
    n = len(data)
    if n < batch_size:
        raise ValueError(f"need at least {batch_size} samples, got {n}")
    starts = [(i * batch_size) % (n - batch_size + 1) for i in range(warmup + steps)]
    runs = []
    for i, start in enumerate(starts):
        windows, scaled_returns, up = data[start : start + batch_size]
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, _ = multi_horizon_loss(model(windows), scaled_returns, up)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        if i >= warmup:
            runs.append(time.perf_counter() - t0)
    return batch_size / statistics.median(runs), runs


def run(quick: bool = False) -> Result:
    """Build both networks on the same data, check the comparison is fair, time training steps."""
    # Small batches, as when attention dropout sent the 1,440-token encoder to PyTorch's plain
    # attention kernel ([batch, 4 heads, 1440, 1440] weights, ~130 MB a sample). The encoders no
    # longer drop attention weights, so both networks run the fused kernel; the batch stays 16 so
    # that the ratios of successive runs compare.
    batch_size = 16
    steps_multi, steps_single = (10, 1) if quick else (20, 3)
    bars, frames = make_frames()
    multi_data, single_data, raw = build_datasets(bars, frames)
    check_inputs(raw, frames["1min"])
    multi, single = build_models(raw["multi"], raw["single"])
    check_models(multi, single, multi_data, single_data)

    multi_sps, multi_runs = train_steps_per_second(multi, multi_data, batch_size, steps_multi)
    single_sps, single_runs = train_steps_per_second(single, single_data, batch_size, steps_single)
    details = (
        f"{multi_sps:,.0f} vs {single_sps:,.1f} training samples/s, batch {batch_size}, medians of "
        f"{steps_multi}/{steps_single} steps ({fmt_seconds(statistics.median(multi_runs))} vs "
        f"{fmt_seconds(statistics.median(single_runs))} per step); "
        f"{sum(s.lookback for s in multi.config.scales)} tokens in {len(multi.config.scales)} "
        f"scales vs 1,440 one-minute tokens; d_model {multi.config.d_model}, 1 layer, 4 heads, "
        f"dropout {multi.config.dropout:g}"
    )
    return Result(
        name=NAME,
        ratio=multi_sps / single_sps,
        target=TARGET,
        agreement=(
            "same features and decision times; the 1,440-bar windows end with the multi-scale "
            "1-minute windows (exactly equal) and span 24 h; same width/depth/heads/dropout; same "
            "output shapes, finite losses"
        ),
        details=details,
        metrics={
            "multi_samples_per_second": multi_sps,
            "single_samples_per_second": single_sps,
            "multi_step_seconds": multi_runs,
            "single_step_seconds": single_runs,
            "batch_size": batch_size,
            "multi_parameters": sum(p.numel() for p in multi.parameters()),
            "single_parameters": sum(p.numel() for p in single.parameters()),
        },
    )
