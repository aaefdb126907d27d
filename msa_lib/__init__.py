"""msa_lib: the small library behind the course *Multi-Scale Attention for Financial Time Series*.

One module per idea, each taught by one chapter of the book:

=========== ===========================================================
experiment  one definition of an experiment, and the course's (COURSE)
datasets    synthetic market with ground truth, bundled real data
bars_io     bar files in and out: CSV, Parquet, exchange dumps; UTC close labels
data        validation, close-labelled resampling, features, windows
prepare     from an experiment's bars to scaled train/val/test tensors
shards      bars larger than memory: Parquet shards streamed as windows
decompose   wavelets and VMD, full-series and causal (past-only)
model       scale encoders, cross-scale attention, fusion, networks
baselines   the rivals: naive rules and the trained LSTM, single-scale and linear models
train       the loss, the training loop, early stopping, prediction
streaming   live forecasts, one 1-minute bar at a time, re-encoding only closed scales
checkpoints one file format for trained weights: save and load
cache       train a network once, reload it while nothing changed
evaluate    honest scores: ratios to naive forecasts, intervals
backtest    positions, costs and trading metrics
plots       matplotlib and plotly figures used across chapters
cli         the ``msa`` command line over these modules
=========== ===========================================================

This file holds the two helpers every module may need: :func:`seed_everything` and
:func:`user_cache_dir`.

Modules are imported on demand (``from msa_lib import data``) so that ``import msa_lib`` stays fast.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

__all__ = ["__version__", "seed_everything", "user_cache_dir"]
__version__ = "0.1.0"


def seed_everything(seed: int = 0, *, deterministic: bool = True) -> None:
    """Fix every random number generator the course uses, so a notebook gives the same numbers twice.

    Seeds Python's :mod:`random`, NumPy's legacy global generator and PyTorch (CPU and, when
    present, CUDA). With ``deterministic=True`` PyTorch is also asked to use deterministic kernels.

    Parameters
    ----------
    seed : int
        Any non-negative integer below 2**32.
    deterministic : bool, default True
        Ask PyTorch for deterministic algorithms (slightly slower on GPU, no effect on CPU speed).
    """
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - notebooks may still use the legacy global generator
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def user_cache_dir() -> Path:
    """Where msa_lib keeps downloads and trained networks between sessions, outside a checkout.

    ``$MSA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/msa_lib`` (``~/.cache/msa_lib``). The Bybit
    client caches its pages here; :func:`msa_lib.cache.network_cache_dir` uses ``models/`` in it
    when no course repository is found.
    """
    if os.environ.get("MSA_CACHE_DIR"):
        return Path(os.environ["MSA_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "msa_lib"
