"""train_utilization: the default network's training FLOP/s as a share of the machine's matmul peak.

The course's :class:`msa_lib.model.MultiScaleAttentionNet` (the network of
:data:`msa_lib.experiment.COURSE`: its scales, lookbacks and model settings) takes training steps as
:func:`msa_lib.train.fit` takes them, at the course's batch size. Its work per step is counted with
:class:`torch.utils.flop_counter.FlopCounterMode` over one forward and backward pass; the machine's
peak is the float32 throughput of a 2048 x 2048 matmul. Both are measured in the same process, at
the same thread setting, in alternating rounds (a few matmuls, a few training steps, again), so
that a neighbour's load on a shared machine weighs on both alike::

    ratio = (FLOPs per step / median step seconds) / (2 * 2048^3 / median matmul seconds)

torch 2.13's counter has no formula for the CPU's fused attention kernels
(``_scaled_dot_product_flash_attention_for_cpu`` and its backward) and would count attention as
free. :data:`CPU_ATTENTION_FLOPS` adds them as the textbook formula costs: forward, the two products
``Q K^T`` and ``weights V``; backward, twice that (the gradients of both operands of both). The
kernel's recomputation of the scores in backward is not counted: it is the kernel's choice, not
work the network asks for, so the count is the same whichever attention path runs.

The windows are standard-normal noise of the default shapes (standardised features look like
that): neither the FLOP count nor the speed depends on the values. "Agreement": the counter's
FLOPs equal a count by hand from the network's shapes (:func:`flops_by_hand`), forward and
backward, exactly.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from benchmarks.common import Result, fmt_seconds
from benchmarks.multiscale_vs_single import HORIZONS, train_steps_per_second
from msa_lib.experiment import COURSE

NAME = "train_utilization"
TARGET = 0.2
DESCRIPTION = (
    "training FLOP/s of the default MultiScaleAttentionNet (batch 256) over the float32 matmul "
    "peak (2048 x 2048) of the same process"
)

TRAIN_BATCH = COURSE.train.batch_size
PEAK_SIZE = 2048


def n_features() -> dict[str, int]:
    """Features per bar of each default scale, as the course's feature pipeline makes them."""
    from benchmarks.multiscale_vs_single import make_frames

    _, frames = make_frames(days=2, scales=tuple(COURSE.lookbacks))  # only the columns matter
    return {scale: frame.shape[1] for scale, frame in frames.items()}


def make_inputs(n_rows: int, seed: int = 0, lookbacks: Mapping[str, int] = COURSE.lookbacks):
    """The default network (seeded) and a dataset of ``n_rows`` noise windows of its shapes."""
    from msa_lib.model import MultiScaleAttentionNet
    from msa_lib.prepare import WindowDataset

    rng = np.random.default_rng(seed)
    features = n_features()
    windows = {
        s: rng.standard_normal((n_rows, L, features[s]), dtype=np.float32) for s, L in lookbacks.items()
    }
    returns = rng.standard_normal((n_rows, len(HORIZONS)), dtype=np.float32)
    torch.manual_seed(seed)
    model = MultiScaleAttentionNet(COURSE.model_config(windows))
    return model, WindowDataset(windows, returns, horizons=list(HORIZONS))


def _attention_forward(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    b, h, n_q, d = query_shape  # [B, h, Q, d_head]
    n_k, d_v = key_shape[2], value_shape[3]
    return 2 * b * h * n_q * d * n_k + 2 * b * h * n_q * n_k * d_v  # Q K^T, then weights V


def _attention_backward(grad_shape, query_shape, key_shape, value_shape, *args, out_shape=None,
                        **kwargs) -> int:
    return 2 * _attention_forward(query_shape, key_shape, value_shape)


#: FLOP formulas for the CPU's fused attention kernels, which torch's counter does not know.
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_forward,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _attention_backward,
}


def flops_by_hand(config, batch: int) -> tuple[int, int]:
    """Forward and backward FLOPs of a :class:`MultiScaleAttentionNet`, from its shapes alone.

    Counts what :class:`~torch.utils.flop_counter.FlopCounterMode` counts: matrix products
    (``2 * m * n * k`` each) and attention (``4 * queries * keys * d`` for ``Q K^T`` and the
    weighted sum of ``V``). Backward: each product costs two products of the same size (gradients
    of both operands), attention included, except the input projections, whose inputs (the
    windows) need no gradient.
    Written for the default architecture: no convolution, no pyramid.

    Returns
    -------
    forward, backward : int
    """
    d, S, H, m = config.d_model, len(config.scales), len(config.horizons), config.ff_mult
    if config.pyramid_levels or any(s.conv_kernel for s in config.scales):
        raise ValueError("flops_by_hand counts the default architecture: no convolution, no pyramid")
    inputs = sum(2 * s.lookback * s.n_features * d for s in config.scales)  # input projections
    rest = 0
    for s in config.scales:
        L = s.lookback
        per_layer = 2 * L * d * 3 * d + 2 * L * d * d + 2 * 2 * L * d * m * d + 4 * L * L * d
        rest += s.n_layers * per_layer  # qkv, out, feed-forward, attention
    N = sum(s.lookback for s in config.scales)
    if config.cross_attention:
        rest += 2 * 2 * S * d * d + 2 * 2 * N * d * d + 4 * S * N * d  # q/out, k/v, attention
    if config.gates:
        rest += 2 * S * d * max(1, d // 4)  # the gates' first layer (an einsum, one bmm)
    rest += 2 * 2 * d * 2 * d + 2 * 2 * d * H  # fusion MLP, the two heads
    return batch * (inputs + rest), batch * (inputs + 2 * rest)


def count_flops(model: nn.Module, data, batch: int) -> tuple[int, int]:
    """Forward and backward FLOPs of one training step, counted by ``FlopCounterMode``.

    With :data:`CPU_ATTENTION_FLOPS` added to its formulas.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from msa_lib.train import multi_horizon_loss

    windows, y, direction = data[:batch]
    model.train()
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        loss, _ = multi_horizon_loss(model(windows), y, direction)
    forward = counter.get_total_flops()
    with FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS) as counter:
        loss.backward()
    model.zero_grad(set_to_none=True)
    return forward, counter.get_total_flops()


def check(model: nn.Module, data, batch: int) -> tuple[int, int]:
    """Assert the counter's FLOPs equal :func:`flops_by_hand`; return (forward, backward)."""
    counted = count_flops(model, data, batch)
    by_hand = flops_by_hand(model.config, batch)
    for what, c, h in zip(("forward", "backward"), counted, by_hand, strict=True):
        assert c == h, f"{what} FLOPs: FlopCounterMode counts {c:,}, the count by hand is {h:,}"
    return counted


def matmul_seconds(size: int = PEAK_SIZE, repeats: int = 3) -> list[float]:
    """Seconds of ``repeats`` float32 ``size x size`` matmuls, each timed alone (after one untimed)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        runs.append(time.perf_counter() - start)
    return runs


def run(quick: bool = False) -> Result:
    """Count the FLOPs, then alternate matmul and training-step timings; ratio of the medians."""
    rounds, steps, matmuls = (2, 2, 1) if quick else (6, 8, 3)
    model, data = make_inputs(n_rows=4 * TRAIN_BATCH)
    forward, backward = check(model, data, TRAIN_BATCH)
    step_runs: list[float] = []
    peak_runs: list[float] = []
    for _ in range(rounds):
        peak_runs += matmul_seconds(PEAK_SIZE, matmuls)
        step_runs += train_steps_per_second(model, data, TRAIN_BATCH, steps, warmup=1)[1]
    step_s, matmul_s = statistics.median(step_runs), statistics.median(peak_runs)
    train_flops = (forward + backward) / step_s
    peak_flops = 2 * PEAK_SIZE**3 / matmul_s
    threads = torch.get_num_threads()
    details = (
        f"training {train_flops / 1e9:.1f} GFLOP/s ({TRAIN_BATCH / step_s:,.0f} samples/s, batch "
        f"{TRAIN_BATCH}, {(forward + backward) / TRAIN_BATCH / 1e6:.2f} MFLOP a sample forward + "
        f"backward, median of {len(step_runs)} steps: {fmt_seconds(step_s)}) over a matmul peak of "
        f"{peak_flops / 1e9:.0f} GFLOP/s ({PEAK_SIZE}x{PEAK_SIZE} float32, median of "
        f"{len(peak_runs)}); {threads} torch thread{'s' if threads != 1 else ''}"
    )
    return Result(
        name=NAME,
        ratio=train_flops / peak_flops,
        target=TARGET,
        agreement="FlopCounterMode's forward and backward FLOPs equal the count by hand, exactly",
        details=details,
        metrics={
            "train_flops_per_second": train_flops,
            "peak_flops_per_second": peak_flops,
            "train_samples_per_second": TRAIN_BATCH / step_s,
            "forward_flops": forward,
            "backward_flops": backward,
            "batch_size": TRAIN_BATCH,
            "train_step_seconds": step_runs,
            "matmul_seconds": peak_runs,
            "torch_threads": threads,
        },
    )
