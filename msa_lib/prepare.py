"""Data preparation: from an experiment's bars to the scaled train / validation / test tensors.

The pieces, in the order :func:`prepare_experiment` runs them:

* :func:`load_bars` (and :func:`experiment_market` for the synthetic market with its oracle): the
  bars an experiment's ``data`` section describes, validated.
* :func:`experiment_frames` and :func:`experiment_windows`: causal features of every scale and the
  windows at every decision time, with the experiment's lookbacks and feature windows.
* :func:`prepare_datasets`: forward returns, a chronological split purged by the longest horizon,
  and scaling fitted on the training block only, into a :class:`PreparedData`.
* :class:`WindowDataset`: the windows of every scale plus the targets, kept as tensors that share
  memory with the NumPy arrays they came from (no copies); :func:`msa_lib.train.fit` reads it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from msa_lib.bars_io import bar_spacing, read_bars
from msa_lib.bybit import fetch_bybit_klines
from msa_lib.data import (
    WindowScaler,
    as_timedelta,
    chronological_split,
    decision_times,
    make_targets,
    make_windows,
    resample_ohlcv,
    scale_features,
)
from msa_lib.datasets import SyntheticMarket, load_dataset, simulate_market
from msa_lib.experiment import Experiment

__all__ = [
    "Batch",
    "PreparedData",
    "WindowDataset",
    "experiment_frames",
    "experiment_market",
    "experiment_windows",
    "load_bars",
    "prepare_datasets",
    "prepare_experiment",
]

Batch = tuple[dict[str, Tensor], Tensor, Tensor]
"""One mini-batch ``(windows, scaled_returns, up)``: windows per scale ``[B, L, F]``, scaled returns
``[B, H]`` and the 0/1 labels ``[B, H]`` (1.0 where the return is positive)."""


# --------------------------------------------------------------------------------------------------
# The dataset the training loop reads
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
    scaled_returns : array ``[N, H]`` (or ``[N]`` for a single horizon)
        Target returns, already scaled by the caller (divided by a scale fitted on the training
        period, as :func:`prepare_datasets` does), one column per horizon: what the network's
        ``"returns"`` head learns. A pandas DataFrame is accepted; its column names become
        ``horizons``.
    up : array ``[N, H]``, optional
        The 0/1 labels of the direction head: 1.0 when the (unscaled) return is positive, else
        0.0. When omitted they are computed as ``scaled_returns > 0``, which is right only if the
        scaling did not shift the returns (dividing by a standard deviation is fine; subtracting a
        mean is not).
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
        scaled_returns: Any,
        up: Any | None = None,
        *,
        horizons: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        if not isinstance(windows, Mapping) or len(windows) == 0:
            raise ValueError("windows must be a non-empty dict of scale name -> array [N, L, F]")
        if isinstance(scaled_returns, pd.DataFrame):
            if horizons is None:
                horizons = [str(c) for c in scaled_returns.columns]
            scaled_returns = scaled_returns.to_numpy(dtype=np.float32)
        elif isinstance(scaled_returns, pd.Series):
            scaled_returns = scaled_returns.to_numpy(dtype=np.float32)
        if isinstance(up, pd.DataFrame | pd.Series):
            up = up.to_numpy(dtype=np.float32)

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

        target = _as_float32_tensor(scaled_returns, "scaled_returns")
        if target.ndim == 1:
            target = target[:, None]
        if target.ndim != 2 or target.shape[0] != n_rows:
            raise ValueError(
                f"scaled_returns must have shape [N, H] with N = {n_rows} (the number of "
                f"windows), got {tuple(target.shape)}"
            )
        _check_finite(target, "scaled_returns")
        self.scaled_returns: Tensor = target  # [N, H]

        if up is None:
            labels = (target > 0).to(torch.float32)
        else:
            labels = _as_float32_tensor(up, "up")
            if labels.ndim == 1:
                labels = labels[:, None]
            if tuple(labels.shape) != tuple(target.shape):
                raise ValueError(
                    f"up has shape {tuple(labels.shape)}, scaled_returns has "
                    f"{tuple(target.shape)}: they must match"
                )
            if not bool(((labels == 0) | (labels == 1)).all()):
                raise ValueError("up labels must be 0 or 1")
        self.up: Tensor = labels  # [N, H], 1.0 where the return is positive

        n_h = target.shape[1]
        if horizons is None:
            horizons = [f"h{j}" for j in range(n_h)]
        if len(horizons) != n_h:
            raise ValueError(f"{len(horizons)} horizon names given for {n_h} target columns")
        self.horizons: list[str] = [str(h) for h in horizons]

    def __len__(self) -> int:
        return self.scaled_returns.shape[0]

    def __getitem__(self, index: Any) -> Batch:
        """Rows ``index`` (an int, slice or index tensor) as ``(windows, scaled_returns, up)``."""
        return (
            {scale: w[index] for scale, w in self.windows.items()},
            self.scaled_returns[index],
            self.up[index],
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


# --------------------------------------------------------------------------------------------------
# Split and scale
# --------------------------------------------------------------------------------------------------
@dataclass
class PreparedData:
    """Train / validation / test datasets built from one set of windows and targets.

    Attributes
    ----------
    train, val, test : WindowDataset
        Windows standardised with statistics of the training windows; ``scaled_returns``: the
        log returns divided by ``target_scale``; ``up``: 1.0 where the unscaled return is
        positive.
    times : dict of str to DatetimeIndex
        Decision times of each split.
    log_returns : dict of str to DataFrame
        The realised forward log returns of each split, **unscaled** (one column per horizon,
        indexed by decision time): what forecasts are scored against.
        ``test.scaled_returns`` is ``log_returns["test"] / target_scale`` in float32.
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
    log_returns: dict[str, pd.DataFrame]
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
    log_returns = {name: targets.loc[splits[name]] for name in ("train", "val", "test")}
    target_scale = log_returns["train"].to_numpy(dtype=np.float64).std(axis=0)
    if (target_scale == 0).any():
        raise ValueError(f"a horizon's training returns are constant: std {target_scale}")
    datasets = {}
    for name in ("train", "val", "test"):
        part = (
            train_windows
            if name == "train"
            else {s: np.asarray(w)[rows[name]] for s, w in windows.items()}
        )
        y = log_returns[name].to_numpy(dtype=np.float64)  # [N_split, H]
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
        log_returns=log_returns,
        target_scale=target_scale,
        scaler=scaler,
        horizons=horizons,
    )



# --------------------------------------------------------------------------------------------------
# From an experiment to datasets
# --------------------------------------------------------------------------------------------------
def experiment_market(experiment: Experiment) -> SyntheticMarket:
    """The synthetic market of an experiment whose ``data.source`` is ``"simulate"``.

    Returns the whole :class:`msa_lib.datasets.SyntheticMarket` (bars, planted truth, oracle),
    simulated with ``data.days``, ``data.market_seed``, ``data.start`` and
    ``data.signal_strength``.
    """
    d = experiment.data
    if d.source != "simulate":
        raise ValueError(f"data.source is {d.source!r}: only 'simulate' has a synthetic market")
    return simulate_market(days=d.days, seed=d.market_seed, start=d.start,
                           signal_strength=d.signal_strength)


def load_bars(experiment: Experiment) -> tuple[pd.DataFrame, str]:
    """The bars an experiment's ``data`` section describes, validated, and a one-line description.

    Returns
    -------
    bars : DataFrame
        OHLCV bars labelled by close time (UTC).
    description : str
        For example ``"simulated market, 120 days, seed 0"``.
    """
    d = experiment.data
    if d.source == "simulate":
        return experiment_market(experiment).bars, (
            f"simulated market, {d.days} days, seed {d.market_seed}"
        )
    if d.source == "bundled":
        return load_dataset(d.name), f"bundled dataset {d.name!r}"
    if d.source == "file":

        assert d.path is not None  # checked by DataSection
        return read_bars(d.path, d.time_label), f"file {d.path}"
    end = d.end if d.end is not None else pd.Timestamp.now(tz="UTC").floor("min")
    bars = fetch_bybit_klines(d.symbol, d.interval, d.start, end, category=d.category,
                              cache_dir=d.cache_dir)
    gaps = bars.attrs.get("gaps", [])
    note = f", {sum(g['missing'] for g in gaps)} missing klines (not filled)" if gaps else ""
    return bars.loc[:, ["open", "high", "low", "close", "volume"]], (
        f"Bybit {d.symbol} {d.interval} ({d.category}){note}"
    )


def experiment_frames(bars: pd.DataFrame, experiment: Experiment) -> dict[str, pd.DataFrame]:
    """Causal features of every scale of ``experiment``, each from its own resampled bars.

    Raises
    ------
    ValueError
        When the finest scale is finer than the bars, or a scale has fewer bars after the
        features' warm-up than its lookback.
    """

    scales = experiment.features.scales
    spacing = bar_spacing(bars.index)
    if as_timedelta(scales[0].name) < spacing:
        raise ValueError(
            f"the bars come every {spacing} but the finest scale is {scales[0].name}: "
            "use scales no finer than the bars"
        )
    frames = {}
    for s in scales:
        frame = scale_features(resample_ohlcv(bars, s.name), **s.feature_kwargs())
        if len(frame) < s.lookback:
            raise ValueError(
                f"scale {s.name}: only {len(frame)} bars after the feature warm-up, fewer than "
                f"its lookback {s.lookback}; use more data or shorter windows"
            )
        frames[s.name] = frame
    return frames


def experiment_windows(
    bars: pd.DataFrame, experiment: Experiment
) -> tuple[dict[str, np.ndarray], pd.DatetimeIndex]:
    """Windows of every scale at every decision time (``features.every``) that has full history.

    Returns
    -------
    windows : dict of str to ndarray ``[N, L_scale, F_scale]``
    times : DatetimeIndex ``[N]``
        The decision times kept, one per row of every window array.
    """
    features = experiment.features
    frames = experiment_frames(bars, experiment)
    windows, kept = make_windows(frames, features.lookbacks, decision_times(bars, features.every))
    if len(kept) == 0:
        raise ValueError(
            f"no decision time every {features.every} has a full window at every scale "
            f"(data {bars.index[0]} .. {bars.index[-1]}); use more data or shorter lookbacks"
        )
    return windows, kept


def prepare_experiment(experiment: Experiment, bars: pd.DataFrame | None = None) -> PreparedData:
    """The whole pipeline from bars to scaled train / val / test datasets, as ``experiment`` says.

    Resamples the bars to every scale, computes causal features per scale (with each scale's
    feature windows), cuts windows at decision times every ``features.every``, computes forward
    returns for ``features.horizons``, splits chronologically with a purge gap equal to the
    longest horizon, and scales (see :func:`prepare_datasets`).

    Parameters
    ----------
    experiment : msa_lib.experiment.Experiment
    bars : DataFrame, optional
        The bars to use (1-minute bars for the course's market). Default: :func:`load_bars`.

    Returns
    -------
    PreparedData
    """
    if bars is None:
        bars, _ = load_bars(experiment)
    features = experiment.features
    windows, kept = experiment_windows(bars, experiment)
    targets = make_targets(bars, kept, list(features.horizons))
    if len(targets) == 0:
        raise ValueError(f"no decision time has {features.longest_horizon} of future data left")
    splits = chronological_split(targets.index, features.val_frac, features.test_frac,
                                 purge=features.longest_horizon)
    return prepare_datasets(windows, kept, targets, splits)
