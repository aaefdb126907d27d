"""Checkpoints: one file format for trained weights, written by :func:`save_checkpoint` and read by
:func:`load_checkpoint`.

A checkpoint is a ``torch.save`` file holding a plain dict (so it loads with
``weights_only=True``, which runs no code from the file)::

    {"format": 1,
     "kind": "multiscale" | "lstm" | ... | None,   # msa_lib.model's name of the network
     "config": {...} | None,                      # its ModelConfig.to_dict()
     "model_class": "MultiScaleAttentionNet",     # the class, for error messages
     "state_dict": {name: tensor on the CPU},
     "extra": {...}}                              # epoch, val_loss, history, seed ...

A network built by :mod:`msa_lib.model` stores its kind and config, so :func:`load_checkpoint`
rebuilds it from the file alone; any other ``nn.Module`` is loaded into a model you build
(``load_checkpoint(path, model=net)``).

Beside a run's checkpoint, :func:`msa_lib.train.fit` keeps the *training state* after every epoch
(:func:`save_training_state`): the weights, the optimizer's moments, the schedule, the early
stopping record, the history so far, every process's random generators and the settings. From it
:func:`load_training_state` puts a run back where it was, so an interrupted run continues with
exactly the steps it would have taken.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from msa_lib.model import ModelConfig, build_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "load_checkpoint",
    "load_training_state",
    "save_checkpoint",
    "save_training_state",
]

CHECKPOINT_FORMAT = 1


def _plain(value: Any, where: str) -> Any:
    """``value`` with tuples as lists and NumPy scalars as Python ones; TypeError names ``where``
    when something is not one of the types ``torch.load(weights_only=True)`` accepts."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str | Tensor):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: key {k!r} must be str or int")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    raise TypeError(
        f"{where} is a {type(value).__name__}; checkpoints hold only None/bool/int/float/str, "
        "tensors, lists and dicts (convert it first)"
    )


def save_checkpoint(model: nn.Module, path: str | Path, **extra: Any) -> Path:
    """Write ``model``'s weights (moved to the CPU), what rebuilds it, and ``extra`` to ``path``.

    Parameters
    ----------
    model : nn.Module
        A network of :mod:`msa_lib.model` (its ``kind`` and ``config`` are stored too) or any
        other module (weights only).
    path : str or Path
        Parent folders are created.
    **extra
        Anything else to keep (epoch, metrics, history...), as plain values: None, bool, int,
        float, str, tensors, lists and dicts of those (checked; TypeError names the key).

    Returns
    -------
    Path
        The path written.
    """
    config = getattr(model, "config", None)
    built_here = isinstance(config, ModelConfig) and isinstance(getattr(model, "kind", None), str)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": model.kind if built_here else None,
        "config": config.to_dict() if built_here else None,
        "model_class": type(model).__name__,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": _plain(extra, "extra"),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def load_checkpoint(
    path: str | Path,
    expected_config: ModelConfig | Mapping[str, Any] | None = None,
    *,
    expected_kind: str | None = None,
    model: nn.Module | None = None,
    map_location: str | torch.device | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: rebuild its network, or fill ``model``.

    Parameters
    ----------
    path : str or Path
    expected_config : ModelConfig or dict, optional
        If given, the stored config must equal it; otherwise a ValueError lists every differing
        field with both values.
    expected_kind : str, optional
        If given, the stored model kind must equal it.
    model : nn.Module, optional
        Load the weights into this model (same architecture) instead of rebuilding one; its
        training mode is left as it was.
    map_location : str or torch.device, optional
        Where the weights go. Default: the device of ``model``'s first parameter, or the CPU, so
        a checkpoint written on a GPU loads on a laptop.

    Returns
    -------
    model : nn.Module
        The rebuilt network (in eval mode) or ``model`` itself.
    extra : dict
        The ``**extra`` values passed to :func:`save_checkpoint`.

    Raises
    ------
    FileNotFoundError, ValueError, RuntimeError
        No file; not a checkpoint of this format; another kind or config than expected; weights
        that do not fit ``model`` (naming both classes).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if map_location is None:
        first = None if model is None else next(model.parameters(), None)
        map_location = first.device if first is not None else torch.device("cpu")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a msa_lib checkpoint (format {CHECKPOINT_FORMAT})")
    kind, stored = payload["kind"], payload["config"]
    saved_from = payload.get("model_class") or kind
    if expected_kind is not None and kind != expected_kind:
        raise ValueError(f"{path}: checkpoint holds a {kind!r} model, expected {expected_kind!r}")
    if expected_config is not None:
        expected = (
            expected_config if isinstance(expected_config, ModelConfig)
            else ModelConfig.from_dict(expected_config)
        ).to_dict()
        stored_dict = stored or {}
        differences = [
            f"{key}: checkpoint {stored_dict.get(key)!r} vs expected {expected.get(key)!r}"
            for key in sorted(set(stored_dict) | set(expected))
            if stored_dict.get(key) != expected.get(key)
        ]
        if differences:
            raise ValueError(
                f"{path}: checkpoint config does not match the expected config:\n  "
                + "\n  ".join(differences)
            )
    if model is None:
        if kind is None or stored is None:
            raise ValueError(
                f"{path} holds a {saved_from} without a stored network config: build the model "
                "and pass it as model=... to load the weights into it"
            )
        model = build_model(kind, ModelConfig.from_dict(stored)).to(map_location).eval()
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise RuntimeError(
            f"checkpoint {path} (saved from {saved_from}) does not fit {type(model).__name__}: {err}"
        ) from err
    return model, dict(payload["extra"] or {})


# --------------------------------------------------------------------------------------------------
# The training state, for resuming a run
# --------------------------------------------------------------------------------------------------
def _describe_model(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    return {
        "model_class": type(model).__name__,
        "kind": getattr(model, "kind", None),
        "config": config.to_dict() if isinstance(config, ModelConfig) else None,
    }


def save_training_state(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    stopper: Any,
    history: Any,
    settings: Mapping[str, Any],
    epoch: int,
    rng_states: list[dict[str, Tensor]],
) -> Path:
    """Write everything :func:`msa_lib.train.fit` needs to continue after epoch ``epoch``.

    The file is written to a temporary name and renamed, so a run killed while writing leaves the
    previous state intact.

    Parameters
    ----------
    stopper : msa_lib.train.EarlyStopping
    history : msa_lib.train.History
    settings : dict
        The training settings (learning rate, batch size...) a resumed run must share.
    rng_states : list of dict
        Every process's random generators, in rank order.
    """
    from dataclasses import asdict

    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": _describe_model(model),
        "settings": _plain(dict(settings), "settings"),
        "epoch": int(epoch),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
        "stopper": {
            "best_loss": float(stopper.best_loss), "best_epoch": int(stopper.best_epoch),
            "epochs_seen": int(stopper.epochs_seen), "since_best": int(stopper.since_best),
            "best_state": stopper.best_state,
        },
        "history": _plain(asdict(history), "history"),
        "rng_states": list(rng_states),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    partial.replace(path)
    return path


def load_training_state(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    stopper: Any,
    history: Any,
    settings: Mapping[str, Any],
    rank: int = 0,
) -> int:
    """Put a run back in the state :func:`save_training_state` wrote; return the next epoch.

    Raises
    ------
    ValueError
        The state was written for another network (class, kind or config) or with other training
        settings: the message names both, field by field.
    """
    path = Path(path)
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a msa_lib training state (format {CHECKPOINT_FORMAT})")
    stored, here = payload["model"], _describe_model(model)
    if stored != here:
        raise ValueError(
            f"{path} was written by another model, so the run cannot resume from it; differing: "
            + _differences(stored.get("config") or {}, here.get("config") or {})
            + f"\n  checkpoint: {stored['model_class']} {stored['kind']!r} config {stored['config']}"
            f"\n  this run:   {here['model_class']} {here['kind']!r} config {here['config']}"
        )
    wanted = _plain(dict(settings), "settings")
    if payload["settings"] != wanted:
        raise ValueError(
            f"{path} was written with other training settings, so the run cannot resume from it; "
            "differing: " + _differences(payload["settings"], wanted)
            + f"\n  checkpoint: {payload['settings']}\n  this run:   {wanted}"
        )
    model.load_state_dict(payload["state_dict"])
    optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None and payload["scheduler"] is not None:
        scheduler.load_state_dict(payload["scheduler"])
    for key, value in payload["stopper"].items():
        setattr(stopper, key, value)
    for key, value in payload["history"].items():
        setattr(history, key, value)
    states = payload["rng_states"]
    state = states[rank % len(states)]  # another number of processes: ranks reuse the states
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
    return int(payload["epoch"]) + 1


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys) or "(class or kind)"
