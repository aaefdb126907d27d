"""default_network: training and inference samples per second of the default network (no target).

The course's :class:`msa_lib.model.MultiScaleAttentionNet` (the network of
:data:`msa_lib.experiment.COURSE`: its scales, lookbacks, horizons, width and dropout) on windows of
the synthetic market. Training is timed step by step as :func:`msa_lib.train.fit` takes them at
the course's batch size; inference is :func:`msa_lib.train.predict` over the whole data set at its
default batch (1024).
"""

from __future__ import annotations

import torch

from benchmarks.common import Result, fmt_seconds, median_seconds
from benchmarks.multiscale_vs_single import (
    build_datasets,
    build_models,
    make_frames,
    train_steps_per_second,
)
from msa_lib.experiment import COURSE

NAME = "default_network"
TARGET = None
DESCRIPTION = "training and inference samples/s of the default MultiScaleAttentionNet (no target)"

TRAIN_BATCH = COURSE.train.batch_size
PREDICT_BATCH = 1024  # msa_lib.train.predict's default


def run(quick: bool = False) -> Result:
    """Time training steps and full-data predictions."""
    from msa_lib.train import predict

    steps, predict_repeats = (3, 1) if quick else (10, 5)
    bars, frames = make_frames()
    # the single-scale windows are not used here: keep them short
    data, _, raw = build_datasets(bars, frames, single_lookback=2 * COURSE.lookbacks["1min"])
    model, _ = build_models(raw["multi"], raw["single"])
    train_sps, train_runs = train_steps_per_second(model, data, TRAIN_BATCH, steps, warmup=2)

    model.eval()
    out = predict(model, data, PREDICT_BATCH)
    assert out["returns"].shape == (len(data), len(model.config.horizons))
    assert bool(torch.isfinite(torch.from_numpy(out["returns"])).all()), "non-finite predictions"
    predict_s, predict_runs = median_seconds(lambda: predict(model, data, PREDICT_BATCH), predict_repeats)
    infer_sps = len(data) / predict_s
    n_params = sum(p.numel() for p in model.parameters())
    details = (
        f"training {train_sps:,.0f} samples/s (batch {TRAIN_BATCH}, median of {steps} steps), "
        f"inference {infer_sps:,.0f} samples/s (predict on {len(data):,} windows, batch "
        f"{PREDICT_BATCH}, median of {predict_repeats}: {fmt_seconds(predict_s)}); "
        f"{n_params:,} parameters"
    )
    return Result(
        name=NAME,
        ratio=None,
        target=TARGET,
        agreement="predictions have the expected shape and are finite",
        details=details,
        metrics={
            "train_samples_per_second": train_sps,
            "inference_samples_per_second": infer_sps,
            "train_step_seconds": train_runs,
            "predict_seconds": predict_runs,
            "train_batch_size": TRAIN_BATCH,
            "predict_batch_size": PREDICT_BATCH,
            "predict_samples": len(data),
            "parameters": n_params,
        },
    )
