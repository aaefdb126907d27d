"""checkpointing_memory: peak memory of a training step against lookback, with and without
gradient checkpointing of the encoder layers.

A training step keeps every intermediate result of the forward pass for the backward pass. In an
encoder layer over ``L`` bars that is about twenty ``[B, L, d]`` tensors (normalised inputs, the
query/key/value projections, the attention output, the feed-forward's hidden layer four times as
wide, dropout masks ...), so memory grows with the lookback and the depth.
``MultiScaleAttentionNet.enable_gradient_checkpointing()`` keeps only each layer's input and runs
the layer again during the backward pass: at most one layer's intermediates live at a time.

Each configuration runs in a fresh Python process (a process never gives back to the operating
system all the memory it once used). There the network and a batch are built and one step is run
to warm up; then the process's resident memory is read, its high-water mark reset
(``/proc/self/clear_refs``), one step (forward, loss, backward) run, and the peak read again. The
table reports the growth: the memory a step needs on top of the weights and the data. The device
has no allocator peak counter on the CPU, so this is the honest measure (on CUDA,
``torch.cuda.max_memory_allocated`` would be the one to read). glibc is told to map every large
block on its own (:data:`MALLOC_ENV`), so that freed tensors leave resident memory; without it the
peak counted heap memory no tensor held any more and the plain step looked only 1.4 times bigger.
Step times are measured in other processes, without that setting.

The target, 2, is set from a measurement on the course's 2-core CPU: 2.8 (278 MiB against 98 MiB
at batch 16), while the tensors kept for the backward pass shrink about 8 times; the peak comes
during the backward pass, when the recomputed layer's intermediates, the gradients and the
cross-scale attention's tensors are alive together. With L layers the plain step holds L layers'
intermediates and the checkpointed one a single layer's, so the ratio grows with depth.

The network is the course's (:data:`msa_lib.experiment.COURSE`) with the 1-minute lookback
stretched from 30 to 1,920 bars and four encoder layers per scale: with the course's single
layer there is nothing to save (the one layer's intermediates are needed for its own backward
either way), which the run also measures and prints. The agreement check: the loss and every
gradient are identical with and without checkpointing (dropout included: the recomputation
replays the same masks).
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import Result, fmt_bytes, fmt_seconds
from msa_lib.experiment import COURSE

NAME = "checkpointing_memory"
TARGET = 2.0
DESCRIPTION = "training-step peak memory at a 1,920-bar lookback (4 layers): plain / checkpointed"

LOOKBACKS = (30, 120, 480, 1920)
N_LAYERS = 4
BATCH = 16
ROOT = Path(__file__).resolve().parents[1]
#: glibc serves large blocks from the heap once one has been freed, and a freed block inside the
#: heap stays resident: the process's peak memory would then count memory no tensor holds. A
#: fixed threshold (which turns the adaptive one off) maps every block of 64 KiB or more on its own
#: and unmaps it when freed, so resident memory follows the tensors alive.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * 1024)}


def build(lookback: int, n_layers: int, batch: int, seed: int = 0):
    """The course's network with a 1-minute lookback of ``lookback`` bars and ``n_layers`` layers,
    a random batch of windows and targets, in training mode."""
    import pandas as pd

    from msa_lib.data import scale_features
    from msa_lib.model import MultiScaleAttentionNet

    experiment = COURSE.with_lookbacks({"1min": lookback}).replace(model={"n_layers": n_layers})
    dummy = pd.DataFrame(  # 40 flat bars: only the number of feature columns is read
        {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
        index=pd.date_range("2024-01-01 00:01", periods=40, freq="min", tz="UTC"),
    )
    g = torch.Generator().manual_seed(seed)
    windows = {
        s.name: torch.randn(batch, s.lookback, scale_features(dummy, dropna=False, **s.feature_kwargs()).shape[1],
                            generator=g)
        for s in experiment.features.scales
    }
    torch.manual_seed(seed)
    net = MultiScaleAttentionNet(experiment.model_config(windows)).train()
    y = torch.randn(batch, len(experiment.horizons), generator=g)  # [B, H]
    return net, windows, y


def step(net, windows, y) -> torch.Tensor:
    """One forward and backward pass (squared error on returns + cross-entropy on directions)."""
    out = net(windows)
    loss = torch.nn.functional.mse_loss(out["returns"], y) + torch.nn.functional.binary_cross_entropy_with_logits(
        out["direction_logits"], (y > 0).float()
    )
    loss.backward()
    return loss.detach()


def check(lookback: int = 120, n_layers: int = N_LAYERS, batch: int = 4) -> None:
    """Assert equal loss and gradients, and the same next random draw, with and without checkpointing."""
    net, windows, y = build(lookback, n_layers, batch)
    results = []
    for enabled in (False, True):
        net.enable_gradient_checkpointing(enabled)
        net.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        loss = step(net, windows, y)
        results.append((loss, [p.grad.clone() for p in net.parameters()], torch.rand(2)))
    (loss0, grads0, next0), (loss1, grads1, next1) = results
    assert torch.equal(loss0, loss1), f"losses differ: {loss0.item()} vs {loss1.item()}"
    for (name, _), a, b in zip(net.named_parameters(), grads0, grads1, strict=True):
        assert torch.equal(a, b), f"gradient of {name} differs with checkpointing"
    assert torch.equal(next0, next1), "checkpointing changed the random draws"


def _memory_kib() -> dict[str, int]:
    with open("/proc/self/status", encoding="ascii") as fh:
        return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in fh)
                if k in ("VmRSS", "VmHWM")}


def measure(lookback: int, checkpointing: bool, n_layers: int, batch: int, repeats: int) -> dict:
    """In THIS process: peak resident-memory growth of one step, and the median step time."""
    net, windows, y = build(lookback, n_layers, batch)
    net.enable_gradient_checkpointing(checkpointing)
    step(net, windows, y)  # warm-up: thread pools, lazy initialisation
    net.zero_grad(set_to_none=True)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap memory back, so RSS is what is live
    base = _memory_kib()["VmRSS"]
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # reset the high-water mark VmHWM to the current RSS
    step(net, windows, y)
    peak = _memory_kib()["VmHWM"]
    seconds = []
    for _ in range(repeats):
        net.zero_grad(set_to_none=True)
        start = time.perf_counter()
        step(net, windows, y)
        seconds.append(time.perf_counter() - start)
    return {"peak_growth_bytes": (peak - base) * 1024, "baseline_bytes": base * 1024, "step_seconds": seconds}


def measure_in_subprocess(lookback: int, checkpointing: bool, n_layers: int, batch: int, repeats: int) -> dict:
    """:func:`measure` in fresh interpreters with this process's thread count: the memory with
    :data:`MALLOC_ENV` (one more step), the time without it (mapping every block costs time)."""
    memory = _subprocess(lookback, checkpointing, n_layers, batch, 0, MALLOC_ENV)
    timing = _subprocess(lookback, checkpointing, n_layers, batch, repeats, {})
    return {**memory, "step_seconds": timing["step_seconds"]}


def _subprocess(lookback: int, checkpointing: bool, n_layers: int, batch: int, repeats: int,
                extra_env: dict[str, str]) -> dict:
    code = (
        f"import json, torch; torch.set_num_threads({torch.get_num_threads()}); "
        "from benchmarks.checkpointing_memory import measure; "
        f"print(json.dumps(measure({lookback}, {checkpointing}, {n_layers}, {batch}, {repeats})))"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               **extra_env)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, check=False, timeout=600)
    if done.returncode:
        raise RuntimeError(f"measuring lookback {lookback} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> Result:
    """Check equal gradients, then measure every lookback both ways (and one layer at the longest)."""
    check()
    lookbacks = (30, 240) if quick else LOOKBACKS
    batch, repeats = (8, 1) if quick else (BATCH, 3)
    rows = {}
    for lookback in lookbacks:
        rows[lookback] = {
            on: measure_in_subprocess(lookback, on, N_LAYERS, batch, repeats) for on in (False, True)
        }
    longest = lookbacks[-1]
    one_layer = {on: measure_in_subprocess(longest, on, 1, batch, repeats) for on in (False, True)}

    def ratio(pair):
        return pair[False]["peak_growth_bytes"] / pair[True]["peak_growth_bytes"]

    def overhead(pair):
        return statistics.median(pair[True]["step_seconds"]) / statistics.median(pair[False]["step_seconds"]) - 1

    print(f"\n{'lookback':>8}  {'plain':>10}  {'checkpointed':>12}  {'ratio':>5}  {'time +':>6}")
    for lookback, pair in rows.items():
        print(f"{lookback:>8}  {fmt_bytes(pair[False]['peak_growth_bytes']):>10}  "
              f"{fmt_bytes(pair[True]['peak_growth_bytes']):>12}  {ratio(pair):>5.1f}  {overhead(pair):>6.0%}")
    print(f"{longest:>8}  {fmt_bytes(one_layer[False]['peak_growth_bytes']):>10}  "
          f"{fmt_bytes(one_layer[True]['peak_growth_bytes']):>12}  {ratio(one_layer):>5.1f}  "
          f"{overhead(one_layer):>6.0%}  (one layer, the course's depth)\n")
    top = rows[longest]
    details = (
        f"peak memory growth of one training step at a 1-minute lookback of {longest} bars, batch "
        f"{batch}, {N_LAYERS} layers: {fmt_bytes(top[False]['peak_growth_bytes'])} plain vs "
        f"{fmt_bytes(top[True]['peak_growth_bytes'])} checkpointed, "
        f"time +{overhead(top):.0%} ({fmt_seconds(statistics.median(top[False]['step_seconds']))} vs "
        f"{fmt_seconds(statistics.median(top[True]['step_seconds']))}); ratio by lookback "
        + ", ".join(f"{lb}: {ratio(p):.1f}" for lb, p in rows.items())
        + f"; the course's one layer at {longest}: {ratio(one_layer):.1f} (nothing to save); "
        "RSS growth over a baseline, a fresh process per configuration"
    )
    return Result(
        name=NAME,
        ratio=ratio(top),
        target=TARGET,
        agreement="loss, every gradient and the next random draw identical with checkpointing (dropout 0.2)",
        details=details,
        metrics={
            "batch": batch,
            "n_layers": N_LAYERS,
            "by_lookback": {str(lb): {"plain": p[False], "checkpointed": p[True], "ratio": ratio(p),
                                      "time_overhead": overhead(p)} for lb, p in rows.items()},
            "one_layer_at_longest": {"plain": one_layer[False], "checkpointed": one_layer[True],
                                     "ratio": ratio(one_layer), "time_overhead": overhead(one_layer)},
        },
    )


if __name__ == "__main__":  # pragma: no cover - a quick look without the runner
    np.set_printoptions(precision=3)
    print(run(quick=True).line())
