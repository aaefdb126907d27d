"""The network cache: train a model once, and load it again while nothing it depends on has changed.

* :func:`fit_experiment`: the network an :class:`~msa_lib.experiment.Experiment` describes, trained
  on prepared data or loaded from the cache. Chapters call this one; the cache key is computed from
  the experiment object, so two chapters with the same experiment share one network.
* :func:`fit_experiments`: several of them on the same data, trained side by side in worker
  processes (chapter 06's contenders and ablations).
* :func:`fit_cached`: the general form, for any ``build()`` and any :func:`msa_lib.train.fit`
  arguments.
* :func:`network_cache_dir`: where the files go (``_build/cache`` of the course repository).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from msa_lib import seed_everything, user_cache_dir
from msa_lib.checkpoints import load_checkpoint, save_checkpoint
from msa_lib.experiment import Experiment
from msa_lib.model import ModelConfig, build_model
from msa_lib.prepare import PreparedData, WindowDataset
from msa_lib.train import History, fit, resolve_device

__all__ = ["CachedFit", "fit_cached", "fit_experiment", "fit_experiments", "network_cache_dir"]


def network_cache_dir(start: str | Path | None = None) -> Path:
    """Where trained networks are cached: ``_build/cache`` of the course repository.

    The repository is the first folder at or above ``start`` (default: the working directory)
    holding both ``_toc.yml`` and ``msa_lib/``, so a chapter finds the same cache whether it runs
    from ``notebooks/``, from a student copy in ``_build/student/`` or from the book build. Outside
    the repository the cache is ``models/`` in :func:`msa_lib.user_cache_dir`.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / "_toc.yml").is_file() and (folder / "msa_lib").is_dir():
            return folder / "_build" / "cache"
    return user_cache_dir() / "models"


def _fingerprint(data: WindowDataset | None) -> str:
    """A short hash of a dataset's contents (windows, scaled returns, up labels)."""
    if data is None:
        return "none"
    digest = hashlib.blake2b(digest_size=12)
    for scale, tensor in data.windows.items():
        digest.update(scale.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    digest.update(data.scaled_returns.contiguous().numpy().tobytes())
    digest.update(data.up.contiguous().numpy().tobytes())
    return digest.hexdigest()


_NOT_HASHED = {"progress", "device"}  # fit options that do not change the trained weights


#: The modules a trained network depends on: the market, the data pipeline, the experiment's
#: defaults, the network, the loop, the checkpoint format and this module's seeding.
_TRAINING_MODULES = ("__init__.py", "data.py", "datasets.py", "experiment.py", "prepare.py", "baselines.py",
                     "model.py", "train.py", "checkpoints.py", "cache.py")


def _library_fingerprint() -> str:
    """A hash of the source of :data:`_TRAINING_MODULES`: edit one and cached networks retrain."""
    digest = hashlib.blake2b(digest_size=8)
    for name in _TRAINING_MODULES:
        digest.update(name.encode() + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


class CachedFit(NamedTuple):
    """What :func:`fit_cached` and :func:`fit_experiment` return."""

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
    only_cached: bool = False,
    **fit_kwargs: Any,
) -> CachedFit | None:
    """Build, seed and :func:`~msa_lib.train.fit` a model, or load it from a cache of checkpoints.

    The checkpoint's file name is ``{name}-{hash}.pt``, where the hash covers ``name``, ``seed``,
    ``key``, every ``fit_kwargs`` value but ``progress`` and ``device``, the contents of
    ``train`` and ``val``, the model's class, parameter shapes and ``config`` (models of
    :mod:`msa_lib.model` carry one), the torch version and the source of the library modules
    that training depends on (:data:`_TRAINING_MODULES`): change any of them and the model is
    trained afresh. Training with the cache and without it gives the same weights (both seed with
    :func:`~msa_lib.seed_everything` before building), except under a ``max_seconds`` budget, which
    depends on the machine.

    Parameters
    ----------
    build : callable
        ``build() -> nn.Module``, called right after seeding.
    train, val : WindowDataset
    name : str
        A readable name for the file (letters, digits, ``-`` and ``_``).
    cache_dir : str or Path or None
        Folder of the checkpoints (created when missing); ``"auto"`` for
        :func:`network_cache_dir`; ``None`` disables the cache.
    seed : int, default 0
    key : dict, optional
        Anything else the result depends on (for example the data settings), JSON-serialisable.
    only_cached : bool, default False
        Return ``None`` instead of training when the model is not in the cache.
    **fit_kwargs
        Passed to :func:`~msa_lib.train.fit` (``checkpoint_path`` is managed here).

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
        cache_dir = network_cache_dir()
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
            _, extra = load_checkpoint(path, model=model, map_location="cpu")
            model.to(resolve_device(fit_kwargs.get("device")))
            history = History(**extra["history"]) if "history" in extra else History()
            return CachedFit(model.eval(), history, True, path)
    if only_cached:
        return None
    history = fit(model, train, val, **fit_kwargs)
    if path is not None:
        save_checkpoint(model, path, history=asdict(history))
    return CachedFit(model.eval(), history, False, path)


def fit_experiment(
    experiment: Experiment,
    data: PreparedData,
    *,
    kind: str | None = None,
    config: ModelConfig | None = None,
    name: str | None = None,
    cache_dir: str | Path | None = "auto",
    progress: bool = False,
    device: str | torch.device | None = None,
    only_cached: bool = False,
) -> CachedFit | None:
    """The network ``experiment`` describes, trained on ``data`` (or loaded from the cache).

    Seeds with ``experiment.seed``, builds ``experiment.model.kind`` with
    :meth:`Experiment.model_config <msa_lib.experiment.Experiment.model_config>` and trains it with
    ``experiment.train``'s settings on ``data.train``, stopping early on ``data.val``. The cache
    key holds :meth:`Experiment.cache_key <msa_lib.experiment.Experiment.cache_key>` (every setting
    but the backtest, the output and how fast it runs) besides everything :func:`fit_cached`
    hashes, so every chapter that asks for the same experiment gets the same network.

    Parameters
    ----------
    experiment : Experiment
    data : PreparedData
        From :func:`msa_lib.prepare.prepare_experiment` (or :func:`~msa_lib.prepare.
        prepare_datasets` for one fold of a walk-forward).
    kind : str, optional
        Another kind of network on the same data (``"lstm"``, ``"linear"``...). Default
        ``experiment.model.kind``.
    config : ModelConfig, optional
        Another network config (an ablation). Default: the experiment's, for ``data``'s windows.
    name : str, optional
        Readable part of the file name. Default: the kind, with the scale for a single-scale one.
    cache_dir : str or Path or None, default "auto"
        See :func:`fit_cached`.
    progress : bool, default False
        Show the training progress bar.
    device : optional
        Where to train. Default ``experiment.train.device`` (None: CUDA when available).
    only_cached : bool, default False
        Return ``None`` instead of training when the network is not in the cache.

    Returns
    -------
    CachedFit
    """
    kind = kind or experiment.model.kind
    if config is None:
        config = experiment.model_config(data.train.windows)
    if name is None:
        name = kind if config.single_scale is None else f"{kind}-{config.single_scale}"
    return fit_cached(
        lambda: build_model(kind, config), data.train, data.val, name=name, cache_dir=cache_dir,
        seed=experiment.seed, key=experiment.cache_key(), progress=progress,
        device=device if device is not None else experiment.train.device,
        only_cached=only_cached, **experiment.fit_kwargs(),
    )


def _fit_in_worker(experiment: Experiment, data: PreparedData, kind: str, config: ModelConfig,
                   cache_dir: str | Path) -> float:
    """One job of :func:`fit_experiments`, in a worker process: train into the cache."""
    import time

    torch.set_num_threads(1)
    start = time.perf_counter()
    fit_experiment(experiment, data, kind=kind, config=config, cache_dir=cache_dir)
    return time.perf_counter() - start


def _cost(kind: str, config: ModelConfig) -> int:
    """A rough training cost, to start the longest jobs first: tokens the model reads."""
    scales = [config.scale(config.single_scale)] if kind == "single_scale" and config.single_scale else config.scales
    return sum(s.lookback for s in scales)


def fit_experiments(
    experiment: Experiment,
    data: PreparedData,
    jobs: Mapping[str, tuple[str, ModelConfig]],
    *,
    workers: int = 2,
    cache_dir: str | Path = "auto",
) -> dict[str, CachedFit]:
    """Several networks on the same data, trained side by side in ``workers`` processes.

    Each job is what :func:`fit_experiment` would train (``kind``, ``config``). Jobs are handed to
    a pool of worker processes (one thread each, the longest first), which train them into the
    network cache; then every network is loaded from the cache here. The result is the same as
    calling :func:`fit_experiment` for each job in turn (same seeds, same weights), only sooner on a
    machine with several cores. Cached jobs cost a load.

    Parameters
    ----------
    experiment : Experiment
    data : PreparedData
    jobs : dict of str to (kind, ModelConfig)
        Label -> what to train.
    workers : int, default 2
        Processes; 1 trains in this process, one job after the other.
    cache_dir : str or Path, default "auto"
        The network cache (needed: it is how workers hand their networks back).

    Returns
    -------
    dict of str to CachedFit
        In the order of ``jobs``; ``from_cache`` is False for the ones trained by this call.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if cache_dir is None:
        raise ValueError("fit_experiments needs a cache_dir: the workers hand networks back through it")
    if isinstance(cache_dir, str) and cache_dir == "auto":
        cache_dir = network_cache_dir()
    trained: set[str] = set()
    if workers > 1 and len(jobs) > 1:
        # which jobs are missing: building a model and hashing is cheap, training is not
        missing = {}
        for label, (kind, config) in jobs.items():
            probe = fit_experiment(experiment, data, kind=kind, config=config,
                                   cache_dir=cache_dir, only_cached=True)
            if probe is None:
                missing[label] = (kind, config)
        order = sorted(missing, key=lambda k: -_cost(*missing[k]))
        if len(order) > 1:
            with ProcessPoolExecutor(max_workers=min(workers, len(order)),
                                     mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(_fit_in_worker, experiment, data, *missing[label], cache_dir)
                           for label in order]
                for future in futures:
                    future.result()
            trained = set(order)
    out = {}
    for label, (kind, config) in jobs.items():
        fitted = fit_experiment(experiment, data, kind=kind, config=config, cache_dir=cache_dir)
        out[label] = fitted._replace(from_cache=fitted.from_cache and label not in trained)
    return out
