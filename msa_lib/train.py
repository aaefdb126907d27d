"""Fitting a multi-horizon forecaster: the loss, one epoch, early stopping, the loop, prediction.

The pieces, in the order :func:`fit` uses them:

* :func:`multi_horizon_loss`: mean squared error on scaled returns, one term per horizon, plus
  binary cross-entropy on the direction, computed from logits (weights: :class:`LossWeights`).
* :func:`fit_epoch`: one pass over the shuffled training rows: AdamW steps with the gradient norm
  clipped and the cosine schedule stepped after every batch.
* :func:`evaluate_loss`: loss, its parts and direction accuracy on validation data.
* :class:`EarlyStopping`: remembers the best epoch's weights and says when to stop.
* :func:`fit`: the loop, built from the three above, with a plain-text progress bar, an optional
  checkpoint of every new best (:func:`msa_lib.checkpoints.save_checkpoint`) and a time budget.
* :func:`predict`: the model's outputs for a whole dataset as NumPy arrays.

The loop runs unchanged under ``torchrun --nproc_per_node=N`` (:mod:`msa_lib.distributed`): each
process computes its slice of every global mini-batch, :class:`DistributedDataParallel` averages
the gradients, validation sums are added over processes so that every process takes the same
early-stopping decision, and only rank 0 shows the progress bar and writes checkpoints. With
``resume=True`` a run that was interrupted continues from the training state written after its
last complete epoch (:func:`msa_lib.checkpoints.save_training_state`). On a GPU the forward pass
runs under bf16 autocast (``precision="auto"``); on the CPU everything stays float32.

The model is any ``nn.Module`` whose ``forward(windows)`` takes a ``dict`` scale -> tensor
``[B, L_scale, F]`` and returns a ``dict`` with ``"returns"`` ``[B, H]`` (scaled return forecasts)
and ``"direction_logits"`` ``[B, H]`` (log-odds that the return is positive). The data come as
:class:`msa_lib.prepare.WindowDataset`; the network cache is :mod:`msa_lib.cache`.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.std import tqdm

from msa_lib import distributed
from msa_lib.checkpoints import load_training_state, save_checkpoint, save_training_state
from msa_lib.experiment import LossWeights
from msa_lib.prepare import Batch, WindowDataset, _as_float32_tensor, _check_finite

__all__ = [
    "EarlyStopping",
    "History",
    "LossWeights",
    "evaluate_loss",
    "fit",
    "fit_epoch",
    "multi_horizon_loss",
    "predict",
    "resolve_device",
    "training_state_path",
]


# --------------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------------
def _move(batch: Batch, device: torch.device) -> Batch:
    windows, scaled_returns, up = batch
    non_blocking = device.type == "cuda"
    return (
        {k: v.to(device, non_blocking=non_blocking) for k, v in windows.items()},
        scaled_returns.to(device, non_blocking=non_blocking),
        up.to(device, non_blocking=non_blocking),
    )


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: the one asked for, else CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} was requested but CUDA is not available here")
    return device


PRECISIONS = ("auto", "bf16", "fp32")


def _autocast(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the context the forward pass runs in: bf16 autocast on a GPU, nothing on the CPU.

    ``"auto"`` means bf16 on a CUDA device that supports it and float32 elsewhere; ``"bf16"``
    insists (an error off the GPU: on this course's CPUs bf16 is slower, not faster); ``"fp32"``
    never casts. The loss is always computed in float32.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    on_gpu = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if precision == "bf16" and not on_gpu:
        raise ValueError(f"precision='bf16' needs a CUDA device with bf16 support; training on {device}")
    if precision == "fp32" or not on_gpu:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)



# --------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------
def multi_horizon_loss(
    outputs: Mapping[str, Tensor],
    scaled_returns: Tensor,
    up: Tensor,
    weights: LossWeights | Mapping[str, Any] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Training loss of a multi-horizon forecaster.

    Parameters
    ----------
    outputs : dict
        The model's output: ``"returns"`` ``[B, H]`` and ``"direction_logits"`` ``[B, H]``.
    scaled_returns : Tensor ``[B, H]``
        Target returns, scaled (a batch's ``scaled_returns``).
    up : Tensor ``[B, H]``
        The direction labels: 1.0 where the return is positive, else 0.0.
    weights : LossWeights or dict, optional

    Returns
    -------
    total : Tensor (scalar, differentiable)
    parts : dict of float
        ``"mse"`` and ``"bce"``, each averaged over horizons (for logging).
    """
    w = LossWeights.coerce(weights)
    for key in ("returns", "direction_logits"):
        if key not in outputs:
            raise KeyError(f"model output lacks {key!r}; it has {sorted(outputs)}")
        if tuple(outputs[key].shape) != tuple(scaled_returns.shape):
            raise ValueError(
                f"model output {key!r} has shape {tuple(outputs[key].shape)}, "
                f"targets have {tuple(scaled_returns.shape)}"
            )
    mse_h = ((outputs["returns"] - scaled_returns) ** 2).mean(dim=0)  # [H]
    bce_h = F.binary_cross_entropy_with_logits(
        outputs["direction_logits"], up, reduction="none"
    ).mean(dim=0)  # [H]
    if w.horizons is None:
        hw = torch.full_like(mse_h, 1.0 / mse_h.shape[0])
    else:
        if len(w.horizons) != mse_h.shape[0]:
            raise ValueError(f"{len(w.horizons)} horizon weights for {mse_h.shape[0]} horizons")
        hw = torch.tensor(w.horizons, dtype=mse_h.dtype, device=mse_h.device)
        hw = hw / hw.sum()
    mse, bce = (hw * mse_h).sum(), (hw * bce_h).sum()
    total = w.returns * mse + w.direction * bce
    return total, {"mse": float(mse.detach()), "bce": float(bce.detach())}


# --------------------------------------------------------------------------------------------------
# The parts of the loop: history, one epoch, validation, early stopping
# --------------------------------------------------------------------------------------------------
@dataclass
class History:
    """What happened during :func:`fit`, one entry per epoch.

    Attributes
    ----------
    train_loss, val_loss : list of float
        Mean loss per sample over the epoch (validation: in eval mode, after the epoch).
    val_mse, val_bce : list of float
        The two parts of the validation loss.
    val_accuracy : list of float
        Validation direction accuracy, averaged over horizons (logit > 0 means "up").
    lr : list of float
        Learning rate of the last step of each epoch.
    seconds : list of float
        Wall-clock time of each epoch (training and validation).
    step_loss : list of float
        Training loss of every mini-batch (mean over the whole global batch, also when it was
        computed by several processes); not a column of :meth:`to_frame`.
    best_epoch : int
        Index (from 0) of the epoch whose weights the model holds after :func:`fit`.
    stop_reason : str
        ``"completed"``, ``"early_stopping"`` or ``"time_budget"``.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_mse: list[float] = field(default_factory=list)
    val_bce: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stop_reason: str = "completed"

    @property
    def num_epochs(self) -> int:
        """Number of epochs run."""
        return len(self.train_loss)

    @property
    def best_val_loss(self) -> float:
        """Validation loss of the best epoch (NaN without validation data)."""
        if self.best_epoch < 0 or not self.val_loss:
            return math.nan
        return self.val_loss[self.best_epoch]

    def log_validation(self, scores: Mapping[str, float]) -> None:
        """Append one epoch's validation scores (as returned by :func:`evaluate_loss`)."""
        self.val_loss.append(scores["loss"])
        self.val_mse.append(scores["mse"])
        self.val_bce.append(scores["bce"])
        self.val_accuracy.append(scores["accuracy"])

    def to_frame(self) -> pd.DataFrame:
        """One row per epoch (index ``epoch`` from 1), one column per logged quantity."""
        n = self.num_epochs
        data = {
            k: v if len(v) == n else [math.nan] * n
            for k, v in asdict(self).items()
            if isinstance(v, list) and k != "step_loss"
        }
        frame = pd.DataFrame(data, index=pd.RangeIndex(1, n + 1, name="epoch"))
        frame["best"] = frame.index == self.best_epoch + 1
        return frame


def _num_batches(data: Any, batch_size: int) -> int:
    """Gradient steps per epoch: the global batches of ``data`` (the same number on every rank)."""
    _, world = distributed.world()
    if world > 1 and not isinstance(data, WindowDataset):
        return data.num_batches(batch_size // world)
    return math.ceil(len(data) / batch_size)


def _local_batches(data: Any, batch_size: int) -> Iterator[tuple[Batch, float, int]]:
    """This process's part of every shuffled global mini-batch: ``(batch, share, global_rows)``.

    * One process: the batches of ``data.batches(batch_size, shuffle=True)``, share 1.
    * Several processes, a :class:`WindowDataset`: every rank draws the shuffled order (so torch's
      generator advances alike everywhere), rank 0's order is broadcast, and each rank takes its
      contiguous slice of each global batch (:func:`msa_lib.distributed.rank_rows`); ``share`` is
      the slice's fraction of the batch. A rank whose slice is empty (a last batch with fewer rows
      than ranks) gets the batch's first row with share 0: it joins the gradient averaging and
      adds nothing to it.
    * Several processes, a dataset that splits itself by rank (such as
      :class:`msa_lib.shards.ShardWindowDataset`): its own batches of ``batch_size // world``
      rows, share ``1 / world``.
    """
    rank, world = distributed.world()
    if world == 1:
        for batch in data.batches(batch_size, shuffle=True):
            yield batch, 1.0, int(batch[1].shape[0])
        return
    if not isinstance(data, WindowDataset):
        for batch in data.batches(batch_size // world, shuffle=True):
            yield batch, 1.0 / world, int(batch[1].shape[0]) * world
        return
    order = distributed.broadcast_order(torch.randperm(len(data)))
    for start in range(0, len(data), batch_size):
        rows = order[start : start + batch_size]
        lo, hi = distributed.rank_rows(len(rows), rank, world)
        if hi > lo:
            yield data[rows[lo:hi]], (hi - lo) / len(rows), len(rows)
        else:
            yield data[rows[:1]], 0.0, len(rows)


def _as_float(outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The two forecast outputs in float32 (bf16 under autocast; float32 tensors are returned as is)."""
    return {k: outputs[k].float() for k in ("returns", "direction_logits") if k in outputs}


def fit_epoch(
    model: nn.Module,
    train: WindowDataset,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None,
    *,
    epoch: int,
    batch_size: int,
    weights: LossWeights,
    grad_clip: float | None,
    device: torch.device,
    deadline: float | None = None,
    on_batch: Callable[[], Any] | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    step_losses: list[float] | None = None,
) -> tuple[float, bool]:
    """One pass over the shuffled rows of ``train``: a gradient step per mini-batch.

    The schedule is stepped before every step but the very first of training, at the fractional
    epoch reached so far (``epoch + i / n_batches``), so the learning rate glides smoothly.

    Under ``torchrun`` ``model`` is the :class:`~torch.nn.parallel.DistributedDataParallel`
    wrapper and ``batch_size`` the global batch: each process scales its mean loss by
    ``share * world_size`` (its share of the batch's rows), so the averaged gradient is the
    gradient of the mean loss over the whole global batch, as in one process.

    Parameters
    ----------
    epoch : int
        Index of this epoch (from 0), for the schedule.
    deadline : float, optional
        A ``time.perf_counter()`` value: the epoch ends after the batch that passes it (under
        ``torchrun``: after the batch where any process passes it, on every process).
    on_batch : callable, optional
        Called after every batch (the progress bar's tick).
    autocast : callable, optional
        Returns the context the forward pass runs in (bf16 autocast on a GPU).
    step_losses : list, optional
        Each step's loss over the global batch is appended to it.

    Returns
    -------
    mean_loss : float
        Training loss per sample over the rows seen (by all processes).
    out_of_time : bool
        True when the deadline cut the epoch short.
    """
    model.train()
    _, world = distributed.world()
    n_batches = _num_batches(train, batch_size)
    total, seen = 0.0, 0
    parts: list[float] = []  # several processes: this rank's share of each step's loss
    rows: list[int] = []  # rows of each global batch
    out_of_time = False
    for i, (batch, share, global_rows) in enumerate(_local_batches(train, batch_size)):
        windows, scaled_returns, up = _move(batch, device)
        with autocast():
            outputs = model(windows)
        loss, _ = multi_horizon_loss(_as_float(outputs), scaled_returns, up, weights)
        optimizer.zero_grad(set_to_none=True)
        (loss if world == 1 else loss * (share * world)).backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scheduler is not None and (epoch, i) != (0, 0):
            # the rate for this step: the cosine at the fractional epoch reached so far
            scheduler.step(epoch + i / n_batches)
        optimizer.step()
        if world == 1:
            total += float(loss.detach()) * scaled_returns.shape[0]
            seen += scaled_returns.shape[0]
            if step_losses is not None:
                step_losses.append(float(loss.detach()))
        else:
            parts.append(float(loss.detach()) * share)
            rows.append(global_rows)
        if on_batch is not None:
            on_batch()
        if deadline is not None:
            late = time.perf_counter() > deadline
            if world > 1:  # every process stops after the same batch
                late = distributed.all_reduce_sum([float(late)])[0] > 0
            if late:
                out_of_time = True
                break
    if world == 1:
        return total / seen, out_of_time
    losses = distributed.all_reduce_sum(parts)  # each step's mean loss over its global batch
    if step_losses is not None:
        step_losses.extend(losses)
    return sum(v * n for v, n in zip(losses, rows, strict=True)) / sum(rows), out_of_time


def _eval_batches(data: Any, batch_size: int) -> Iterator[Batch]:
    """This process's rows of ``data`` in order: all of them in one process, a contiguous part
    (or the dataset's own part, for one that splits itself by rank) under ``torchrun``."""
    rank, world = distributed.world()
    if world == 1:
        yield from data.batches(batch_size)
        return
    if not isinstance(data, WindowDataset):
        yield from data.batches(batch_size, drop_last=False)
        return
    lo, hi = distributed.rank_rows(len(data), rank, world)
    for start in range(lo, hi, batch_size):
        yield data[start : min(start + batch_size, hi)]


@torch.no_grad()
def evaluate_loss(
    model: nn.Module,
    data: WindowDataset,
    batch_size: int,
    weights: LossWeights,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """Mean loss, its parts and direction accuracy of ``model`` on ``data`` (in eval mode).

    Under ``torchrun`` every process scores its part of ``data`` and the sums are added over
    processes, so every process gets the same numbers (and takes the same early-stopping decision).

    Returns
    -------
    dict
        ``"loss"``, ``"mse"``, ``"bce"`` (per sample) and ``"accuracy"`` (averaged over horizons).
    """
    was_training = model.training
    model.eval()
    sums = {"loss": 0.0, "mse": 0.0, "bce": 0.0, "correct": 0.0, "n": 0.0}
    for batch in _eval_batches(data, batch_size):
        windows, scaled_returns, up = _move(batch, device)
        with autocast():
            out = _as_float(model(windows))
        loss, parts = multi_horizon_loss(out, scaled_returns, up, weights)
        n = scaled_returns.shape[0]
        sums["loss"] += float(loss) * n
        sums["mse"] += parts["mse"] * n
        sums["bce"] += parts["bce"] * n
        hits = (out["direction_logits"] > 0).to(up.dtype) == up  # [B, H]
        sums["correct"] += float(hits.float().mean(dim=1).sum())
        sums["n"] += n
    model.train(was_training)
    if distributed.world()[1] > 1:
        sums = dict(zip(sums, distributed.all_reduce_sum(list(sums.values())), strict=True))
    n_all = sums["n"]
    return {
        "loss": sums["loss"] / n_all,
        "mse": sums["mse"] / n_all,
        "bce": sums["bce"] / n_all,
        "accuracy": sums["correct"] / n_all,
    }


class EarlyStopping:
    """Keep the weights of the epoch with the lowest loss; stop after ``patience`` worse epochs.

    Parameters
    ----------
    patience : int or None
        Epochs in a row without a new best before :attr:`should_stop` turns True; ``None`` never
        stops.

    Examples
    --------
    >>> stopper = EarlyStopping(patience=2)
    >>> model = torch.nn.Linear(1, 1)
    >>> [stopper.update(loss, model) for loss in (3.0, 2.0, 2.5, 2.0)]
    [True, True, False, False]
    >>> stopper.best_epoch, stopper.should_stop
    (1, True)
    """

    def __init__(self, patience: int | None) -> None:
        if patience is not None and patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {patience}")
        self.patience = patience
        self.best_loss = math.inf
        self.best_epoch = -1
        self.best_state: dict[str, Tensor] | None = None
        self.epochs_seen = 0
        self.since_best = 0

    def update(self, loss: float, model: nn.Module) -> bool:
        """Record one epoch's loss; keep a CPU copy of ``model``'s weights when it is a new best.

        Returns
        -------
        bool
            True when this epoch is the new best (an equal loss is not an improvement).
        """
        epoch = self.epochs_seen
        self.epochs_seen += 1
        if loss < self.best_loss:
            self.best_loss, self.best_epoch, self.since_best = loss, epoch, 0
            self.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
            }
            return True
        self.since_best += 1
        return False

    @property
    def should_stop(self) -> bool:
        """True once ``patience`` epochs in a row brought no new best."""
        return self.patience is not None and self.since_best >= self.patience

    def restore_best(self, model: nn.Module) -> None:
        """Put the best epoch's weights back into ``model`` (nothing happens before any update)."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------
def _check_fit_arguments(
    train: WindowDataset, val: WindowDataset | None, num_epochs: int, scheduler: str | None
) -> None:
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
    if len(train) == 0:
        raise ValueError("the training set is empty")
    if val is not None and len(val) == 0:
        raise ValueError("the validation set is empty")
    if val is not None and val.scales != train.scales:
        raise ValueError(f"val has scales {val.scales}, train has {train.scales}")
    if scheduler not in ("cosine_restarts", None):
        raise ValueError(f"scheduler must be 'cosine_restarts' or None, got {scheduler!r}")


def fit(
    model: nn.Module,
    train: WindowDataset,
    val: WindowDataset | None = None,
    *,
    num_epochs: int = 20,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    loss_weights: LossWeights | Mapping[str, Any] | None = None,
    grad_clip: float | None = 1.0,
    patience: int | None = 5,
    scheduler: str | None = "cosine_restarts",
    restart_epochs: int | None = None,
    restart_mult: int = 1,
    min_lr: float = 0.0,
    device: str | torch.device | None = None,
    checkpoint_path: str | Path | None = None,
    progress: bool = True,
    max_seconds: float | None = None,
    resume: bool = False,
    precision: str = "auto",
) -> History:
    """Train ``model`` on ``train``, keep the weights that score best on ``val``.

    Each epoch shuffles the training rows (torch's global generator: call
    :func:`msa_lib.seed_everything` first for a reproducible run), takes AdamW steps on
    mini-batches with the gradient norm clipped (:func:`fit_epoch`), then scores the validation
    set (:func:`evaluate_loss`). The weights of the epoch with the lowest validation loss are kept;
    when ``patience`` epochs pass without improvement, training stops (:class:`EarlyStopping`). On
    return the model holds the best weights, not the last ones.

    Parameters
    ----------
    model : nn.Module
        ``forward(windows: dict[str, Tensor [B, L, F]]) -> {"returns": [B, H],
        "direction_logits": [B, H]}``. Moved to ``device`` and left there.
    train, val : WindowDataset
        Training and validation data. Without ``val`` there is no early stopping and the last
        epoch counts as the best.
    num_epochs : int, default 20
        Maximum number of passes over ``train``.
    batch_size : int, default 256
    lr : float, default 1e-3
        Peak learning rate of AdamW.
    weight_decay : float, default 1e-2
        AdamW's decoupled weight decay.
    loss_weights : LossWeights or dict, optional
        See :class:`LossWeights`; equal weights by default.
    grad_clip : float or None, default 1.0
        Largest allowed global L2 norm of the gradient; ``None`` disables clipping.
    patience : int or None, default 5
        Epochs without a new best validation loss before stopping; ``None`` never stops early.
    scheduler : {"cosine_restarts", None}, default "cosine_restarts"
        ``"cosine_restarts"``: :class:`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts`,
        stepped after every batch with a fractional epoch count, so the rate glides from ``lr`` to
        ``min_lr`` over ``restart_epochs`` epochs, then jumps back up. ``None``: constant rate.
    restart_epochs : int, optional
        Length of the first cosine cycle in epochs (``T_0``). Defaults to ``num_epochs``: a single
        cycle, no restart.
    restart_mult : int, default 1
        Each cycle is this many times longer than the previous one (``T_mult``).
    min_lr : float, default 0.0
        Lowest learning rate of a cycle (``eta_min``).
    device : str or torch.device, optional
        Defaults to CUDA when available, else the CPU. Batches are moved to it one at a time.
    checkpoint_path : str or Path, optional
        When given, every new best is also written there
        (:func:`msa_lib.checkpoints.load_checkpoint` reads it), and after every epoch the whole
        training state (weights, optimizer, schedule, early stopping, history, random generators)
        goes to :func:`training_state_path` of it, for ``resume``.
    progress : bool, default True
        Show a plain-text ``tqdm`` bar (one tick per batch) with the latest losses.
    max_seconds : float, optional
        Wall-clock budget. When it runs out, the current epoch ends early, is validated, and
        training stops. A budget makes results depend on the machine's speed: use it for class
        demos, not for numbers you want to reproduce elsewhere.
    resume : bool, default False
        Continue from the training state beside ``checkpoint_path`` when there is one (else start
        afresh): the same call resumes a run that was interrupted. The resumed run takes the same
        steps as an uninterrupted one. A state written for another network config or other
        training settings raises a ValueError naming both. A run that had finished (all epochs, or
        early stopping) is not trained further; one stopped by ``max_seconds`` continues.
    precision : {"auto", "bf16", "fp32"}, default "auto"
        ``"auto"``: bf16 autocast for the forward pass on a GPU that supports it, float32 on the
        CPU. ``"bf16"`` requires such a GPU; ``"fp32"`` never casts.

    Under ``torchrun --nproc_per_node=N`` (see :mod:`msa_lib.distributed`) the same call trains
    with N processes: ``batch_size`` is the global batch and must be divisible by N; the model is
    wrapped in :class:`~torch.nn.parallel.DistributedDataParallel` inside ``fit`` and returned
    unwrapped; only rank 0 shows progress and writes files.

    Returns
    -------
    History
    """
    _check_fit_arguments(train, val, num_epochs, scheduler)
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs checkpoint_path: the training state is kept beside it")
    distributed.init_from_env()
    rank, world = distributed.world()
    if world > 1 and batch_size % world:
        raise ValueError(
            f"batch_size {batch_size} is not divisible by the world size {world}: every process "
            f"needs an equal share of each global batch (try {batch_size - batch_size % world} or "
            f"{batch_size + world - batch_size % world})"
        )
    for name, data in (("train", train), ("val", val)):
        if world > 1 and data is not None and not isinstance(data, WindowDataset) and (
            getattr(data, "world_size", 1) != world
        ):
            raise ValueError(
                f"{name} was built for {getattr(data, 'world_size', 1)} process(es) but this run has "
                f"{world}: build it after joining the process group "
                "(msa_lib.distributed.init_from_env()) or pass rank= and world_size="
            )
    stopper = EarlyStopping(patience)  # without val every epoch is a new best: it never stops
    weights = LossWeights.coerce(loss_weights)
    dev = resolve_device(device)
    if world > 1 and dev.type == "cuda" and dev.index is None:  # one GPU per process
        dev = torch.device("cuda", _local_rank())
        torch.cuda.set_device(dev)
    autocast = _autocast(precision, dev)
    model.to(dev)

    # fused: one kernel per parameter instead of ~10 small ops (a step of the default net: 1.7 -> 0.3 ms)
    fused = True if dev.type in ("cpu", "cuda") else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)
    sched = None
    if scheduler == "cosine_restarts":
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=restart_epochs or num_epochs, T_mult=restart_mult, eta_min=min_lr
        )
    history = History()
    settings = {"num_epochs": num_epochs, "batch_size": batch_size, "lr": lr,
                "weight_decay": weight_decay, "loss_weights": weights.to_dict(),
                "grad_clip": grad_clip, "patience": patience, "scheduler": scheduler,
                "restart_epochs": restart_epochs, "restart_mult": restart_mult, "min_lr": min_lr}
    state_path = None if checkpoint_path is None else training_state_path(checkpoint_path)
    start_epoch = 0
    if resume and state_path is not None and state_path.is_file():
        start_epoch = load_training_state(
            state_path, model=model, optimizer=optimizer, scheduler=sched, stopper=stopper,
            history=history, settings=settings, rank=rank,
        )
        finished = history.stop_reason == "early_stopping" or (
            history.stop_reason == "completed" and start_epoch >= num_epochs
        )
        if finished:
            stopper.restore_best(model)
            return history
        history.stop_reason = "completed"
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None,
            forward_sync_buffers=False,  # no batch-norm: buffers never change, no need to resend
        )
    deadline = None if max_seconds is None else time.perf_counter() + max_seconds
    n_batches = _num_batches(train, batch_size)
    # plain text (not a widget), redrawn at most once a second; one bar, on rank 0
    with tqdm(total=num_epochs * n_batches, initial=start_epoch * n_batches,
              disable=not progress or rank != 0, unit="batch", mininterval=1.0) as bar:
        for epoch in range(start_epoch, num_epochs):
            t0 = time.perf_counter()
            train_loss, out_of_time = fit_epoch(
                net, train, optimizer, sched, epoch=epoch, batch_size=batch_size,
                weights=weights, grad_clip=grad_clip, device=dev, deadline=deadline,
                on_batch=bar.update, autocast=autocast, step_losses=history.step_loss,
            )
            history.train_loss.append(train_loss)
            history.lr.append(optimizer.param_groups[0]["lr"])
            if val is not None:
                scores = evaluate_loss(model, val, max(batch_size, 1024), weights, dev, autocast)
                history.log_validation(scores)
                current = scores["loss"]
            else:
                current = -float(epoch)  # without validation the latest epoch is the best
            history.seconds.append(time.perf_counter() - t0)

            if stopper.update(current, model):
                history.best_epoch = epoch
                if checkpoint_path is not None and rank == 0:
                    save_checkpoint(model, checkpoint_path, epoch=epoch,
                                    val_loss=None if val is None else current)
            bar.set_postfix(epoch=epoch + 1, train=f"{train_loss:.4f}",
                            val="-" if val is None else f"{current:.4f}", refresh=False)
            if out_of_time:
                history.stop_reason = "time_budget"
            elif stopper.should_stop:
                history.stop_reason = "early_stopping"
            if state_path is not None:
                rng = distributed.all_gather(_rng_state())  # every rank's generators, for resume
                if rank == 0:
                    save_training_state(state_path, model=model, optimizer=optimizer,
                                        scheduler=sched, stopper=stopper, history=history,
                                        settings=settings, epoch=epoch, rng_states=rng)
            if out_of_time or stopper.should_stop:
                break
    stopper.restore_best(model)  # the best epoch's weights, not the last ones
    return history


def training_state_path(checkpoint_path: str | Path) -> Path:
    """Where :func:`fit` keeps the training state of a run checkpointed at ``checkpoint_path``
    (``model.pt`` -> ``model.state.pt``)."""
    path = Path(checkpoint_path)
    return path.with_name(path.stem + ".state.pt")


def _local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def _rng_state() -> dict[str, Tensor]:
    """The generators a training step draws from: torch's CPU one (shuffle, CPU dropout) and CUDA's."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


# --------------------------------------------------------------------------------------------------
# Prediction
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def predict(
    model: nn.Module,
    data: WindowDataset | Mapping[str, Any],
    batch_size: int = 1024,
    *,
    device: str | torch.device | None = None,
) -> dict[str, np.ndarray]:
    """The model's outputs for every row of ``data``, as NumPy arrays.

    Parameters
    ----------
    model : nn.Module
    data : WindowDataset or dict of scale -> array ``[N, L, F]``
    batch_size : int, default 1024
    device : optional
        Defaults to the device the model's parameters are on.

    Returns
    -------
    dict of np.ndarray
        ``"returns"`` ``[N, H]`` (scaled return forecasts), ``"direction_logits"`` ``[N, H]`` and
        ``"direction_prob"`` ``[N, H]`` (the sigmoid of the logits), all float32. Any other tensor
        output of shape ``[B, ...]`` is concatenated and returned under its own key.
    """
    if isinstance(data, WindowDataset):
        windows = data.windows
    elif isinstance(data, Mapping):  # data enters here: checked once (models do not scan values)
        windows = {str(k): _as_float32_tensor(v, f"windows[{k!r}]") for k, v in data.items()}
        for k, tensor in windows.items():
            _check_finite(tensor, f"windows[{k!r}]")
    else:
        raise TypeError(f"data must be a WindowDataset or a dict of arrays, got {type(data)}")
    if device is None:
        first = next(model.parameters(), None)
        dev = first.device if first is not None else torch.device("cpu")
    else:
        dev = resolve_device(device)
    n = next(iter(windows.values())).shape[0]
    was_training = model.training
    model.eval()
    chunks: dict[str, list[np.ndarray]] = {}
    try:
        for startrow in range(0, n, batch_size):
            batch = {k: v[startrow : startrow + batch_size].to(dev) for k, v in windows.items()}
            out = model(batch)
            for key, value in out.items():
                if (
                    isinstance(value, Tensor)
                    and value.ndim >= 1
                    and value.shape[0] == len(next(iter(batch.values())))
                ):
                    chunks.setdefault(key, []).append(value.detach().float().cpu().numpy())
            if "direction_logits" in out:
                prob = torch.sigmoid(out["direction_logits"].detach().float())
                chunks.setdefault("direction_prob", []).append(prob.cpu().numpy())
    finally:
        model.train(was_training)
    return {k: np.concatenate(v, axis=0) for k, v in chunks.items()}
