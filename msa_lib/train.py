"""Fitting a multi-horizon forecaster: data holder, loss, training loop, checkpoints, prediction.

The pieces, in the order a training chapter uses them:

* :func:`seed_everything` (re-exported from :mod:`msa_lib`): one call fixes every random generator.
* :class:`WindowDataset`: the windows of every scale plus the targets, kept as tensors that share
  memory with the NumPy arrays they came from (no copies).
* :class:`LossWeights` and :func:`multi_horizon_loss`: mean squared error on scaled returns, one term
  per horizon, plus binary cross-entropy on the direction, computed from logits.
* :func:`fit`: AdamW, cosine annealing with warm restarts, gradient clipping, early stopping that
  restores the best weights, an optional checkpoint file, a plain-text progress bar and a time budget.
* :func:`predict`: the model's outputs for a whole dataset as NumPy arrays.
* :func:`save_checkpoint` / :func:`load_weights`: the best weights on disk, loadable on a machine
  without a GPU.

The model is any ``nn.Module`` whose ``forward(windows)`` takes a ``dict`` scale -> tensor
``[B, L_scale, F]`` and returns a ``dict`` with ``"returns"`` ``[B, H]`` (scaled return forecasts)
and ``"direction_logits"`` ``[B, H]`` (log-odds that the return is positive).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.std import tqdm

from msa_lib import seed_everything

__all__ = [
    "CachedFit",
    "History",
    "LossWeights",
    "PreparedData",
    "WindowDataset",
    "fit",
    "fit_cached",
    "load_weights",
    "multi_horizon_loss",
    "predict",
    "prepare_datasets",
    "prepare_experiment",
    "resolve_device",
    "save_checkpoint",
    "seed_everything",
]

Batch = tuple[dict[str, Tensor], Tensor, Tensor]


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------
def _as_float32_tensor(array: Any, what: str) -> Tensor:
    """A float32 tensor that shares memory with ``array`` when it already is float32 and contiguous.

    Never writes to ``array``: conversions (dtype, layout) make a new buffer.
    """
    if isinstance(array, Tensor):
        tensor = array.detach()
        if tensor.dtype != torch.float32:
            tensor = tensor.to(torch.float32)
        return tensor.cpu()
    arr = np.asarray(array)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{what}: expected a numeric array, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)  # no copy when already float32 + contiguous
    if not arr.flags.writeable:  # torch.from_numpy warns on read-only arrays; copy those
        arr = arr.copy()
    return torch.from_numpy(arr)


def _check_finite(tensor: Tensor, what: str) -> None:
    """Raise naming ``what`` and the first row that holds NaN or inf."""
    if not torch.isfinite(tensor).all():
        bad = int(torch.nonzero(~torch.isfinite(tensor))[0, 0])
        raise ValueError(f"{what} holds NaN or inf (first at row {bad})")


class WindowDataset(torch.utils.data.Dataset):
    """Multi-scale input windows and their multi-horizon targets, aligned by row.

    Parameters
    ----------
    windows : mapping of str to array
        Scale name -> array ``[N, L_scale, F_scale]`` (as built by ``msa_lib.data.make_windows``).
        Every scale must have the same number of rows ``N``: row ``i`` of each is the same decision
        time.
    returns : array ``[N, H]`` (or ``[N]`` for a single horizon)
        Target returns, already scaled (divided by a scale fitted on the training period), one
        column per horizon. A pandas DataFrame is accepted; its column names become ``horizons``.
    direction : array ``[N, H]``, optional
        Direction labels, 1.0 when the (unscaled) return is positive, else 0.0. When omitted they
        are computed as ``returns > 0``, which is right only if the scaling did not shift the
        returns (dividing by a standard deviation is fine; subtracting a mean is not).
    horizons : sequence of str, optional
        Names of the ``H`` target columns, kept for tables and plots.

    Notes
    -----
    float32, C-contiguous NumPy arrays are wrapped with :func:`torch.from_numpy`: the dataset then
    shares their memory, so building it costs no copy. Inputs are never modified.
    """

    def __init__(
        self,
        windows: Mapping[str, Any],
        returns: Any,
        direction: Any | None = None,
        *,
        horizons: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        if not isinstance(windows, Mapping) or len(windows) == 0:
            raise ValueError("windows must be a non-empty dict of scale name -> array [N, L, F]")
        if isinstance(returns, pd.DataFrame):
            if horizons is None:
                horizons = [str(c) for c in returns.columns]
            returns = returns.to_numpy(dtype=np.float32)
        elif isinstance(returns, pd.Series):
            returns = returns.to_numpy(dtype=np.float32)
        if isinstance(direction, pd.DataFrame | pd.Series):
            direction = direction.to_numpy(dtype=np.float32)

        self.windows: dict[str, Tensor] = {}
        n_rows: int | None = None
        first_scale = ""
        for scale, array in windows.items():
            tensor = _as_float32_tensor(array, f"windows[{scale!r}]")
            if tensor.ndim != 3:
                raise ValueError(
                    f"windows[{scale!r}] must have shape [N, L, F], got {tuple(tensor.shape)}"
                )
            if n_rows is None:
                n_rows, first_scale = tensor.shape[0], scale
            elif tensor.shape[0] != n_rows:
                raise ValueError(
                    f"windows[{scale!r}] has {tensor.shape[0]} rows but windows[{first_scale!r}] "
                    f"has {n_rows}: every scale needs one window per decision time"
                )
            _check_finite(tensor, f"windows[{scale!r}]")
            self.windows[str(scale)] = tensor  # [N, L_scale, F]
        assert n_rows is not None

        target = _as_float32_tensor(returns, "returns")
        if target.ndim == 1:
            target = target[:, None]
        if target.ndim != 2 or target.shape[0] != n_rows:
            raise ValueError(
                f"returns must have shape [N, H] with N = {n_rows} (the number of windows), "
                f"got {tuple(target.shape)}"
            )
        _check_finite(target, "returns")
        self.returns: Tensor = target  # [N, H]

        if direction is None:
            labels = (target > 0).to(torch.float32)
        else:
            labels = _as_float32_tensor(direction, "direction")
            if labels.ndim == 1:
                labels = labels[:, None]
            if tuple(labels.shape) != tuple(target.shape):
                raise ValueError(
                    f"direction has shape {tuple(labels.shape)}, returns has "
                    f"{tuple(target.shape)}: they must match"
                )
            if not bool(((labels == 0) | (labels == 1)).all()):
                raise ValueError("direction labels must be 0 or 1")
        self.direction: Tensor = labels  # [N, H]

        n_h = target.shape[1]
        if horizons is None:
            horizons = [f"h{j}" for j in range(n_h)]
        if len(horizons) != n_h:
            raise ValueError(f"{len(horizons)} horizon names given for {n_h} target columns")
        self.horizons: list[str] = [str(h) for h in horizons]

    def __len__(self) -> int:
        return self.returns.shape[0]

    def __getitem__(self, index: Any) -> Batch:
        """Rows ``index`` (an int, slice or index tensor) as ``(windows, returns, direction)``."""
        return (
            {scale: w[index] for scale, w in self.windows.items()},
            self.returns[index],
            self.direction[index],
        )

    @property
    def scales(self) -> list[str]:
        """Scale names, in the order given."""
        return list(self.windows)

    def batches(self, batch_size: int, *, shuffle: bool = False) -> Iterator[Batch]:
        """Yield mini-batches by tensor indexing (much faster than a per-row ``DataLoader``).

        Shuffling draws from torch's global generator, so :func:`seed_everything` fixes the order.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = len(self)
        order = torch.randperm(n) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                yield self[start : start + batch_size]  # slices are views: no copy
            else:
                yield self[order[start : start + batch_size]]


def _move(batch: Batch, device: torch.device) -> Batch:
    windows, returns, direction = batch
    non_blocking = device.type == "cuda"
    return (
        {k: v.to(device, non_blocking=non_blocking) for k, v in windows.items()},
        returns.to(device, non_blocking=non_blocking),
        direction.to(device, non_blocking=non_blocking),
    )


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: the one asked for, else CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} was requested but CUDA is not available here")
    return device


# --------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LossWeights:
    """Weights of the two parts of the training loss.

    ``total = returns * mean_h MSE_h + direction * mean_h BCE_h``

    Attributes
    ----------
    returns : float, default 1.0
        Weight of the mean squared error on scaled returns. Scaled returns have a variance near 1,
        so a forecast of zero scores an MSE near 1.
    direction : float, default 1.0
        Weight of the binary cross-entropy on the direction. A coin-flip forecast scores
        ``ln 2 ~ 0.69``, so with weight 1 both terms start on the same footing; the direction term
        keeps pushing on the sign even when the squared error is dominated by a few large returns.
    horizons : tuple of float, optional
        Relative weight of each horizon (normalised to mean 1). Equal when omitted.
    """

    returns: float = 1.0
    direction: float = 1.0
    horizons: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.returns < 0 or self.direction < 0 or self.returns + self.direction == 0:
            raise ValueError(
                f"loss weights must be >= 0 and not both 0, got returns={self.returns}, "
                f"direction={self.direction}"
            )
        if self.horizons is not None and (
            len(self.horizons) == 0 or min(self.horizons) < 0 or sum(self.horizons) == 0
        ):
            raise ValueError(f"horizon weights must be >= 0 and not all 0, got {self.horizons}")

    @classmethod
    def coerce(cls, value: LossWeights | Mapping[str, Any] | None) -> LossWeights:
        """Accept a :class:`LossWeights`, a dict of its fields, or ``None`` (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - {"returns", "direction", "horizons"}
            if unknown:
                raise ValueError(f"unknown loss weight keys {sorted(unknown)}")
            kwargs = dict(value)
            if kwargs.get("horizons") is not None:
                kwargs["horizons"] = tuple(float(w) for w in kwargs["horizons"])
            return cls(**kwargs)
        raise TypeError(f"loss_weights must be LossWeights, a dict or None, got {type(value)}")


def multi_horizon_loss(
    outputs: Mapping[str, Tensor],
    returns: Tensor,
    direction: Tensor,
    weights: LossWeights | Mapping[str, Any] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Training loss of a multi-horizon forecaster.

    Parameters
    ----------
    outputs : dict
        The model's output: ``"returns"`` ``[B, H]`` and ``"direction_logits"`` ``[B, H]``.
    returns : Tensor ``[B, H]``
        Scaled target returns.
    direction : Tensor ``[B, H]``
        1.0 where the return is positive, else 0.0.
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
        if tuple(outputs[key].shape) != tuple(returns.shape):
            raise ValueError(
                f"model output {key!r} has shape {tuple(outputs[key].shape)}, "
                f"targets have {tuple(returns.shape)}"
            )
    mse_h = ((outputs["returns"] - returns) ** 2).mean(dim=0)  # [H]
    bce_h = F.binary_cross_entropy_with_logits(
        outputs["direction_logits"], direction, reduction="none"
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
# History and checkpoints
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

    def to_frame(self) -> pd.DataFrame:
        """One row per epoch (index ``epoch`` from 1), one column per logged quantity."""
        n = self.num_epochs
        data = {
            k: v if len(v) == n else [math.nan] * n
            for k, v in asdict(self).items()
            if isinstance(v, list)
        }
        frame = pd.DataFrame(data, index=pd.RangeIndex(1, n + 1, name="epoch"))
        frame["best"] = frame.index == self.best_epoch + 1
        return frame


def _is_library_model(model: nn.Module) -> bool:
    """True for models built by :mod:`msa_lib.model` (they carry ``.kind`` and ``.config``)."""
    from msa_lib import model as model_module

    return getattr(model, "kind", None) in model_module.MODEL_KINDS and isinstance(
        getattr(model, "config", None), model_module.ModelConfig
    )


def save_checkpoint(model: nn.Module, path: str | Path, **extra: Any) -> Path:
    """Write ``model``'s weights (moved to the CPU) and ``extra`` metadata to ``path``.

    A model built by :mod:`msa_lib.model` is saved with :func:`msa_lib.model.save_checkpoint`
    (weights, kind and config), so that :func:`msa_lib.model.load_checkpoint` can rebuild it from
    the file alone; any other module is saved as weights plus metadata. Either kind of file loads
    with :func:`load_weights`. ``extra`` values must be plain (None, bool, int, float, str,
    lists and dicts of those). Parent folders are created. Returns the path.
    """
    path = Path(path)
    if _is_library_model(model):
        from msa_lib import model as model_module

        return model_module.save_checkpoint(model, path, **extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "model_class": type(model).__name__, "extra": extra}, path)
    return path


def load_weights(
    model: nn.Module, path: str | Path, *, map_location: str | torch.device | None = None
) -> dict[str, Any]:
    """Load weights saved by :func:`save_checkpoint` (or :func:`fit`) into an existing ``model``.

    To rebuild a network of :mod:`msa_lib.model` from the file alone (its config is stored with
    the weights), use :func:`msa_lib.model.load_checkpoint` instead.

    Parameters
    ----------
    model : nn.Module
        A model of the same architecture; its parameters are overwritten.
    path : str or Path
    map_location : device, optional
        Where to put the loaded tensors; defaults to the device of ``model``'s first parameter
        (the CPU for a model without parameters), so a checkpoint written on a GPU loads on a laptop.

    Returns
    -------
    dict
        The metadata stored beside the weights (``epoch``, ``val_loss``, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if map_location is None:
        first = next(model.parameters(), None)
        map_location = first.device if first is not None else torch.device("cpu")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"{path} is not a checkpoint written by msa_lib (no 'state_dict')")
    saved = payload.get("model_class") or payload.get("kind")
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise RuntimeError(
            f"checkpoint {path} (saved from {saved}) does not fit {type(model).__name__}: {err}"
        ) from err
    return dict(payload.get("extra") or {})


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def _evaluate(
    model: nn.Module,
    data: WindowDataset,
    batch_size: int,
    weights: LossWeights,
    device: torch.device,
) -> dict[str, float]:
    """Mean loss, its parts and direction accuracy of ``model`` on ``data`` (eval mode)."""
    was_training = model.training
    model.eval()
    sums = {"loss": 0.0, "mse": 0.0, "bce": 0.0, "correct": 0.0}
    for batch in data.batches(batch_size):
        windows, returns, direction = _move(batch, device)
        out = model(windows)
        loss, parts = multi_horizon_loss(out, returns, direction, weights)
        n = returns.shape[0]
        sums["loss"] += float(loss) * n
        sums["mse"] += parts["mse"] * n
        sums["bce"] += parts["bce"] * n
        hits = (out["direction_logits"] > 0).to(direction.dtype) == direction  # [B, H]
        sums["correct"] += float(hits.float().mean(dim=1).sum())
    model.train(was_training)
    n_all = len(data)
    return {
        "loss": sums["loss"] / n_all,
        "mse": sums["mse"] / n_all,
        "bce": sums["bce"] / n_all,
        "accuracy": sums["correct"] / n_all,
    }


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
) -> History:
    """Train ``model`` on ``train``, keep the weights that score best on ``val``.

    Each epoch shuffles the training rows (torch's global generator: call :func:`seed_everything`
    first for a reproducible run), takes AdamW steps on mini-batches with the gradient norm clipped,
    then scores the validation set. The weights of the epoch with the lowest validation loss are
    kept; when ``patience`` epochs pass without improvement, training stops. On return the model
    holds the best weights, not the last ones.

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
        When given, every new best is also written there (see :func:`load_weights`).
    progress : bool, default True
        Show a plain-text ``tqdm`` bar (one tick per batch) with the latest losses.
    max_seconds : float, optional
        Wall-clock budget. When it runs out, the current epoch ends early, is validated, and
        training stops. A budget makes results depend on the machine's speed: use it for class
        demos, not for numbers you want to reproduce elsewhere.

    Returns
    -------
    History
    """
    if num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1, got {num_epochs}")
    if len(train) == 0:
        raise ValueError("the training set is empty")
    if val is not None and len(val) == 0:
        raise ValueError("the validation set is empty")
    if val is not None and val.scales != train.scales:
        raise ValueError(f"val has scales {val.scales}, train has {train.scales}")
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience}")
    if scheduler not in ("cosine_restarts", None):
        raise ValueError(f"scheduler must be 'cosine_restarts' or None, got {scheduler!r}")
    weights = LossWeights.coerce(loss_weights)
    dev = resolve_device(device)
    model.to(dev)

    # fused: one kernel per parameter instead of ~10 small ops (a step of the default net: 1.7 -> 0.3 ms)
    fused = True if dev.type in ("cpu", "cuda") else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)
    sched = None
    if scheduler == "cosine_restarts":
        sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=restart_epochs or num_epochs, T_mult=restart_mult, eta_min=min_lr
        )
    n_batches = math.ceil(len(train) / batch_size)
    history = History()
    best_loss = math.inf
    best_state: dict[str, Tensor] | None = None
    since_best = 0
    start = time.perf_counter()

    bar = tqdm(
        total=num_epochs * n_batches, disable=not progress, unit="batch", mininterval=1.0
    )  # plain text (not a widget), redrawn at most once a second
    try:
        for epoch in range(num_epochs):
            t0 = time.perf_counter()
            model.train()
            total, seen, out_of_time = 0.0, 0, False
            for i, batch in enumerate(train.batches(batch_size, shuffle=True)):
                windows, returns, direction = _move(batch, dev)
                outputs = model(windows)
                loss, _ = multi_horizon_loss(outputs, returns, direction, weights)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip is not None:
                    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                if sched is not None and (epoch, i) != (0, 0):
                    # the rate for this step: the cosine at the fractional epoch reached so far
                    sched.step(epoch + i / n_batches)
                optimizer.step()
                total += float(loss.detach()) * returns.shape[0]
                seen += returns.shape[0]
                bar.update(1)
                if max_seconds is not None and time.perf_counter() - start > max_seconds:
                    out_of_time = True
                    break
            history.train_loss.append(total / seen)
            history.lr.append(optimizer.param_groups[0]["lr"])

            if val is not None:
                scores = _evaluate(model, val, max(batch_size, 1024), weights, dev)
                history.val_loss.append(scores["loss"])
                history.val_mse.append(scores["mse"])
                history.val_bce.append(scores["bce"])
                history.val_accuracy.append(scores["accuracy"])
                current = scores["loss"]
            else:
                current = -float(epoch)  # without validation the latest epoch is the best
            history.seconds.append(time.perf_counter() - t0)

            if current < best_loss:
                best_loss, since_best = current, 0
                history.best_epoch = epoch
                best_state = {
                    k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                }
                if checkpoint_path is not None:
                    save_checkpoint(
                        model,
                        checkpoint_path,
                        epoch=epoch,
                        val_loss=None if val is None else current,
                    )
            else:
                since_best += 1
            bar.set_postfix(
                epoch=epoch + 1,
                train=f"{history.train_loss[-1]:.4f}",
                val="-" if val is None else f"{history.val_loss[-1]:.4f}",
                refresh=False,
            )
            if out_of_time:
                history.stop_reason = "time_budget"
                break
            if val is not None and patience is not None and since_best >= patience:
                history.stop_reason = "early_stopping"
                break
    finally:
        bar.close()

    if best_state is not None:
        model.load_state_dict(best_state)  # restore the best epoch's weights
    return history


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


# --------------------------------------------------------------------------------------------------
# From bars to datasets
# --------------------------------------------------------------------------------------------------
@dataclass
class PreparedData:
    """Train / validation / test datasets built from one set of windows and targets.

    Attributes
    ----------
    train, val, test : WindowDataset
        Windows standardised with statistics of the training windows; returns divided by
        ``target_scale``; direction labels from the sign of the unscaled returns.
    times : dict of str to DatetimeIndex
        Decision times of each split.
    returns : dict of str to DataFrame
        Unscaled forward log returns of each split (one column per horizon).
    target_scale : ndarray ``[H]``
        Standard deviation of each horizon's training returns (the divisor).
    scaler : msa_lib.data.WindowScaler
        Fitted on the training windows only.
    horizons : list of str
    """

    train: WindowDataset
    val: WindowDataset
    test: WindowDataset
    times: dict[str, pd.DatetimeIndex]
    returns: dict[str, pd.DataFrame]
    target_scale: np.ndarray
    scaler: Any
    horizons: list[str]

    def unscale(self, scaled_returns: np.ndarray) -> np.ndarray:
        """Turn scaled return forecasts ``[N, H]`` back into log returns."""
        return np.asarray(scaled_returns) * self.target_scale


def prepare_datasets(
    windows: Mapping[str, np.ndarray],
    window_times: pd.DatetimeIndex,
    targets: pd.DataFrame,
    splits: Mapping[str, pd.DatetimeIndex],
) -> PreparedData:
    """Align windows with targets, split them, and scale both with training statistics only.

    Parameters
    ----------
    windows : dict of str to array ``[N, L, F]``
        From :func:`msa_lib.data.make_windows`; row ``i`` belongs to ``window_times[i]``.
    window_times : DatetimeIndex ``[N]``
        The decision times of the windows (``make_windows``' second output).
    targets : DataFrame
        Forward returns (:func:`msa_lib.data.make_targets`), indexed by decision time.
    splits : dict with keys ``"train"``, ``"val"``, ``"test"``
        Decision times of each block (:func:`msa_lib.data.chronological_split`). Every time must
        have a window and a target.

    Returns
    -------
    PreparedData
    """
    from msa_lib.data import WindowScaler

    missing_keys = {"train", "val", "test"} - set(splits)
    if missing_keys:
        raise ValueError(f"splits lacks {sorted(missing_keys)}")
    n = len(window_times)
    for scale, w in windows.items():
        if np.shape(w)[0] != n:
            raise ValueError(f"windows[{scale!r}] has {np.shape(w)[0]} rows for {n} window times")
    rows: dict[str, np.ndarray] = {}
    for name in ("train", "val", "test"):
        times = splits[name]
        for what, index in (("windows", window_times), ("targets", targets.index)):
            pos = index.get_indexer(times)
            if (pos < 0).any():
                first = times[int(np.flatnonzero(pos < 0)[0])]
                raise ValueError(f"{name} decision time {first} has no {what}")
            if what == "windows":
                rows[name] = pos
    train_windows = {s: np.asarray(w)[rows["train"]] for s, w in windows.items()}
    scaler = WindowScaler().fit(train_windows)
    horizons = [str(c) for c in targets.columns]
    returns = {name: targets.loc[splits[name]] for name in ("train", "val", "test")}
    target_scale = returns["train"].to_numpy(dtype=np.float64).std(axis=0)
    if (target_scale == 0).any():
        raise ValueError(f"a horizon's training returns are constant: std {target_scale}")
    datasets = {}
    for name in ("train", "val", "test"):
        part = (
            train_windows
            if name == "train"
            else {s: np.asarray(w)[rows[name]] for s, w in windows.items()}
        )
        y = returns[name].to_numpy(dtype=np.float64)  # [N_split, H]
        datasets[name] = WindowDataset(
            scaler.transform(part),
            (y / target_scale).astype(np.float32),
            (y > 0).astype(np.float32),
            horizons=horizons,
        )
    return PreparedData(
        train=datasets["train"],
        val=datasets["val"],
        test=datasets["test"],
        times={name: pd.DatetimeIndex(splits[name]) for name in ("train", "val", "test")},
        returns=returns,
        target_scale=target_scale,
        scaler=scaler,
        horizons=horizons,
    )


def prepare_experiment(
    bars: pd.DataFrame,
    lookbacks: Mapping[str, int],
    horizons: Sequence[str],
    *,
    every: str = "5min",
    val_frac: float = 0.2,
    test_frac: float = 0.2,
    feature_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> PreparedData:
    """The whole pipeline from 1-minute bars to scaled train / val / test datasets.

    Resamples ``bars`` to every scale of ``lookbacks``, computes causal features per scale
    (:func:`msa_lib.data.scale_features`, with per-scale options), cuts windows at decision times
    every ``every``, computes forward returns for ``horizons``, splits chronologically with a purge
    gap equal to the longest horizon, and scales (see :func:`prepare_datasets`).

    Parameters
    ----------
    bars : DataFrame
        1-minute OHLCV bars labelled by close time.
    lookbacks : dict of str to int
        Scale (a bar length such as ``"1min"``, ``"1h"``, ``"1d"``) -> window length in bars.
    horizons : sequence of str
        Forecast horizons, e.g. ``("15min", "1h", "4h")``.
    every : str, default "5min"
        Spacing of decision times.
    val_frac, test_frac : float
        Shares of the decision times for validation and test (the latest ones).
    feature_kwargs : dict of str to dict, optional
        Options of :func:`msa_lib.data.scale_features` per scale (e.g. shorter windows for daily
        bars, whose warm-up would otherwise eat weeks of data).

    Returns
    -------
    PreparedData
    """
    from msa_lib import data as data_module

    feature_kwargs = feature_kwargs or {}
    unknown = set(feature_kwargs) - set(lookbacks)
    if unknown:
        raise ValueError(f"feature_kwargs names scales {sorted(unknown)} not in lookbacks")
    frames = {
        scale: data_module.scale_features(
            data_module.resample_ohlcv(bars, scale), **dict(feature_kwargs.get(scale, {}))
        )
        for scale in lookbacks
    }
    times = data_module.decision_times(bars, every)
    windows, kept = data_module.make_windows(frames, dict(lookbacks), times)
    targets = data_module.make_targets(bars, kept, list(horizons))
    longest = max(data_module.as_timedelta(h) for h in horizons)
    splits = data_module.chronological_split(targets.index, val_frac, test_frac, purge=longest)
    return prepare_datasets(windows, kept, targets, splits)


# --------------------------------------------------------------------------------------------------
# Training with a cache
# --------------------------------------------------------------------------------------------------
def _fingerprint(data: WindowDataset | None) -> str:
    """A short hash of a dataset's contents (windows, returns, labels)."""
    if data is None:
        return "none"
    digest = hashlib.blake2b(digest_size=12)
    for scale, tensor in data.windows.items():
        digest.update(scale.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    digest.update(data.returns.contiguous().numpy().tobytes())
    digest.update(data.direction.contiguous().numpy().tobytes())
    return digest.hexdigest()


_NOT_HASHED = {"progress", "device"}  # fit options that do not change the trained weights


#: The modules a trained network depends on (data pipeline, market, model, training loop).
_TRAINING_MODULES = ("__init__.py", "baselines.py", "data.py", "datasets.py", "model.py", "train.py")


def _library_fingerprint() -> str:
    """A hash of the source of :data:`_TRAINING_MODULES`: edit one and cached networks retrain."""
    digest = hashlib.blake2b(digest_size=8)
    for name in _TRAINING_MODULES:
        digest.update(name.encode() + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def default_cache_dir(start: str | Path | None = None) -> Path:
    """Where trained networks are cached: ``_build/cache`` of the course repository.

    The repository is the first folder at or above ``start`` (default: the working directory)
    holding both ``_toc.yml`` and ``msa_lib/``, so a chapter finds the same cache whether it runs
    from ``notebooks/``, from a student copy in ``_build/student/`` or from the book build. Outside
    the repository the cache is ``$MSA_CACHE_DIR/models`` (default ``~/.cache/msa_lib/models``).
    """
    import os

    here = Path(start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / "_toc.yml").is_file() and (folder / "msa_lib").is_dir():
            return folder / "_build" / "cache"
    return Path(os.environ.get("MSA_CACHE_DIR", Path.home() / ".cache" / "msa_lib")) / "models"


def _history_to_plain(history: History) -> dict[str, Any]:
    return asdict(history)


class CachedFit(NamedTuple):
    """What :func:`fit_cached` returns."""

    model: nn.Module
    """The model holding the best weights, in eval mode."""
    history: History
    """History of the run that produced the weights (read from the file when loaded)."""
    from_cache: bool
    """True when the weights came from the cache."""
    path: Path | None
    """The checkpoint file (None without a cache)."""


def fit_cached(
    build: Callable[[], nn.Module],
    train: WindowDataset,
    val: WindowDataset | None = None,
    *,
    name: str,
    cache_dir: str | Path | None,
    seed: int = 0,
    key: Mapping[str, Any] | None = None,
    **fit_kwargs: Any,
) -> CachedFit:
    """Build, seed and :func:`fit` a model, or load it from a cache of checkpoints.

    The checkpoint's file name is ``{name}-{hash}.pt``, where the hash covers ``name``, ``seed``,
    ``key``, every ``fit_kwargs`` value but ``progress`` and ``device``, the contents of
    ``train`` and ``val``, the model's class, parameter shapes and ``config`` (models of
    :mod:`msa_lib.model` carry one), the torch version and the source of the library modules
    that training depends on (``data``, ``datasets``, ``model``, ``baselines``, ``train``):
    change any of them and the model is trained afresh. Training with the cache and without it gives the same weights (both seed with
    :func:`seed_everything` before building), except under a ``max_seconds`` budget, which depends
    on the machine.

    Parameters
    ----------
    build : callable
        ``build() -> nn.Module``, called right after seeding.
    train, val : WindowDataset
    name : str
        A readable name for the file (letters, digits, ``-`` and ``_``).
    cache_dir : str or Path or None
        Folder of the checkpoints (created when missing); ``"auto"`` for
        :func:`default_cache_dir`; ``None`` disables the cache.
    seed : int, default 0
    key : dict, optional
        Anything else the result depends on (for example the data settings), JSON-serialisable.
    **fit_kwargs
        Passed to :func:`fit` (``checkpoint_path`` is managed here).

    Returns
    -------
    CachedFit
        ``(model, history, from_cache, path)``.
    """
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"name must be letters, digits, '-' or '_', got {name!r}")
    if "checkpoint_path" in fit_kwargs:
        raise ValueError("fit_cached manages checkpoint_path itself; do not pass it")
    seed_everything(seed)
    model = build()
    path = None
    if isinstance(cache_dir, str) and cache_dir == "auto":
        cache_dir = default_cache_dir()
    if cache_dir is not None:
        shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
        config = getattr(model, "config", None)
        config = config.to_dict() if hasattr(config, "to_dict") else None
        described = {
            "name": name,
            "seed": seed,
            "key": key or {},
            "fit": {k: repr(v) for k, v in sorted(fit_kwargs.items()) if k not in _NOT_HASHED},
            "train": _fingerprint(train),
            "val": _fingerprint(val),
            "model": type(model).__name__,
            "config": config,
            "shapes": shapes,
            "torch": torch.__version__.split("+")[0],
            "library": _library_fingerprint(),
        }
        blob = json.dumps(described, sort_keys=True, default=repr).encode()
        digest = hashlib.blake2b(blob, digest_size=8).hexdigest()
        path = Path(cache_dir) / f"{name}-{digest}.pt"
        if path.is_file():
            extra = load_weights(model, path, map_location="cpu")
            model.to(resolve_device(fit_kwargs.get("device")))
            history = History(**extra["history"]) if "history" in extra else History()
            return CachedFit(model.eval(), history, True, path)
    history = fit(model, train, val, **fit_kwargs)
    if path is not None:
        save_checkpoint(model, path, history=_history_to_plain(history))
    return CachedFit(model.eval(), history, False, path)
