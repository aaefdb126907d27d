"""Bars larger than memory: Parquet shards per instrument, streamed as windows.

The in-memory path (:func:`msa_lib.prepare.prepare_experiment`) holds every bar, feature and window
at once. For many instruments or long histories this module keeps the bars on disk and builds
windows shard by shard, with the same values and the same causality guarantee:

* :func:`write_shards` stores each instrument's bars as consecutive, time-ordered Parquet files
  (``AAA/part-00003.parquet``) plus a ``manifest.json`` (instrument, file, first/last time, rows)
  that lets readers plan without reading data. :func:`read_manifest` reads it back.
* :func:`read_shard` reads one file and checks it: unsorted or duplicated bars, or bars that
  overlap the previous shard, raise a :class:`ShardError` naming the file, the row and its time;
  other OHLCV problems come from :func:`msa_lib.data.validate_ohlcv`, prefixed with the file.
* :class:`ShardWindowDataset` is a :class:`torch.utils.data.IterableDataset`: the windows and
  targets of an experiment's scales and horizons, for decision times in ``[start, end)``, with a
  normalisation per instrument (:func:`fit_instrument_scaling`). The work is split by shard across
  ranks and DataLoader workers.

How a shard's windows equal the in-memory ones
----------------------------------------------
A window at decision time ``t`` needs, at each scale, ``lookback`` feature rows, and each feature
row needs ``warm-up`` earlier bars of that scale (the longest feature window). The dataset first
plans from the time column alone: which decision times have a full window and target (exactly the
rule of :func:`~msa_lib.data.make_windows` and :func:`~msa_lib.data.make_targets` on the whole
series), and for each shard the earliest bar its first window needs. It then loads the bars from
that point, moved back to a boundary of every scale's bars (so the first resampled bar is
complete and every resampled bar equals the in-memory one), through the shard, plus the next
shard(s) up to the longest horizon after its last decision time. Features, windows and targets are
built on that stretch with the library's vectorised functions. Memory: the shard, the history its
coarsest scale needs (7 daily bars + 5 of warm-up = 13 days for the course's scales) and one
horizon of look-ahead; one instrument at a time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from msa_lib.bars_io import MissingDependencyError
from msa_lib.data import (
    OHLCV_COLUMNS,
    OHLCVError,
    WindowScaler,
    as_timedelta,
    horizon_label,
    make_targets,
    make_windows,
    resample_ohlcv,
    scale_features,
    validate_ohlcv,
)

__all__ = [
    "MANIFEST",
    "InstrumentScaling",
    "ShardError",
    "ShardInfo",
    "ShardWindowDataset",
    "fit_instrument_scaling",
    "read_manifest",
    "read_shard",
    "write_shards",
]

MANIFEST = "manifest.json"
"""Name of the manifest file at the top of a shard directory."""

_FORMAT = "msa_lib shards 1"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # an instrument name that is a safe folder name

Batch = tuple[dict[str, Tensor], Tensor, Tensor]


class ShardError(ValueError):
    """A shard directory, manifest or file that breaks the rules; the message names the file."""


# --------------------------------------------------------------------------------------------------
# Parquet (pyarrow is optional for the rest of msa_lib, needed here)
# --------------------------------------------------------------------------------------------------
def _parquet() -> Any:
    """The ``pyarrow.parquet`` module, or a clear :class:`MissingDependencyError`."""
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise MissingDependencyError(
            f"Parquet shards need pyarrow ({err}); install the pinned version from requirements.txt"
        ) from None
    return pq


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardInfo:
    """One shard as the manifest describes it.

    Attributes
    ----------
    instrument : str
    path : Path
        The Parquet file (absolute).
    first, last : pandas.Timestamp
        Times of its first and last bar (UTC close times).
    rows : int
        Number of bars.
    """

    instrument: str
    path: Path
    first: pd.Timestamp
    last: pd.Timestamp
    rows: int


def _shard_keys(index: pd.DatetimeIndex, shard: int | str | pd.Timedelta) -> np.ndarray:
    """A shard number per bar ``[n]``: time bins ``(k*D, (k+1)*D]`` from the epoch, or row blocks."""
    if isinstance(shard, int | np.integer) and not isinstance(shard, bool):
        if shard < 1:
            raise ValueError(f"shard must be a positive number of rows or a duration, got {shard!r}")
        return np.arange(len(index)) // int(shard)
    step = as_timedelta(shard, what="shard").value
    ns = index.as_unit("ns").asi8
    return -(-ns // step)  # ceil: a bar closing exactly on a boundary ends its bin (close labels)


def write_shards(
    bars_by_instrument: Mapping[str, pd.DataFrame],
    directory: str | Path,
    *,
    shard: int | str | pd.Timedelta = "7D",
) -> list[Path]:
    """Write each instrument's bars as consecutive Parquet shards and a manifest.

    Parameters
    ----------
    bars_by_instrument : mapping of str to DataFrame
        Instrument name (letters, digits, ``._-``; it becomes a folder name) -> valid OHLCV bars
        labelled by close time (checked with :func:`~msa_lib.data.validate_ohlcv` first; only the
        OHLCV columns are written).
    directory : str or Path
        Where to write; created if missing. It must not hold a manifest already (nothing is
        overwritten).
    shard : int or str or Timedelta, default "7D"
        Rows per shard (int) or a duration: bars stamped in ``(k*D, (k+1)*D]`` from the Unix epoch
        share shard ``k`` (empty bins make no file).

    Returns
    -------
    list of Path
        The shard files, instrument by instrument, in time order.
    """
    pq = _parquet()
    import pyarrow as pa

    directory = Path(directory)
    if (directory / MANIFEST).exists():
        raise FileExistsError(f"{directory / MANIFEST} exists: write shards into a new folder")
    if not bars_by_instrument:
        raise ValueError("bars_by_instrument is empty: give at least one instrument")
    for name, bars in bars_by_instrument.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"instrument name {name!r} is not usable as a folder name (letters, digits, ._-)"
            )
        validate_ohlcv(bars, name=f"bars of {name!r}")
    entries, paths = [], []
    for name, bars in bars_by_instrument.items():
        frame = bars.loc[:, list(OHLCV_COLUMNS)].astype("float64")
        keys = _shard_keys(frame.index, shard)
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])  # first row of each shard
        ends = np.r_[starts[1:], len(frame)]
        (directory / name).mkdir(parents=True, exist_ok=True)
        for number, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
            part = frame.iloc[lo:hi]
            path = directory / name / f"part-{number:05d}.parquet"
            table = pa.Table.from_pandas(part.reset_index(names="time"), preserve_index=False)
            pq.write_table(table, path)
            paths.append(path)
            entries.append({
                "instrument": name,
                "path": path.relative_to(directory).as_posix(),
                "first": part.index[0].isoformat(),
                "last": part.index[-1].isoformat(),
                "rows": int(hi - lo),
            })
    manifest = {"format": _FORMAT, "columns": ["time", *OHLCV_COLUMNS], "shards": entries}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return paths


# --------------------------------------------------------------------------------------------------
# Reading and checking
# --------------------------------------------------------------------------------------------------
def read_manifest(directory: str | Path) -> dict[str, list[ShardInfo]]:
    """The shards of a directory written by :func:`write_shards`, per instrument, in time order.

    Raises
    ------
    ShardError
        No manifest, another format, or shards of one instrument listed out of time order.
    """
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise ShardError(f"{directory} has no {MANIFEST}: write it with write_shards")
    raw = json.loads(path.read_text())
    if raw.get("format") != _FORMAT:
        raise ShardError(f"{path}: format {raw.get('format')!r}, expected {_FORMAT!r}")
    out: dict[str, list[ShardInfo]] = {}
    for entry in raw["shards"]:
        info = ShardInfo(
            instrument=entry["instrument"],
            path=directory / entry["path"],
            first=pd.Timestamp(entry["first"]),
            last=pd.Timestamp(entry["last"]),
            rows=int(entry["rows"]),
        )
        earlier = out.setdefault(info.instrument, [])
        if earlier and info.first <= earlier[-1].last:
            raise ShardError(
                f"{path}: {entry['path']} starts at {info.first}, not after the previous shard's "
                f"last bar {earlier[-1].last}"
            )
        earlier.append(info)
    return out


def _check_shard_times(
    times: pd.DatetimeIndex, where: str, previous_last: pd.Timestamp | None
) -> None:
    """Raise :class:`ShardError` naming ``where``, the row and its time, for unsorted, duplicated
    or overlapping bars (``previous_last``: the last bar of the shard before)."""
    ns = times.as_unit("ns").asi8
    step = np.diff(ns)
    for bad, problem in ((step == 0, "duplicated bar (same time as row {prev})"),
                         (step < 0, "bars not sorted (earlier than row {prev})")):
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise ShardError(f"{where}, row {row} ({times[row]}): {problem.format(prev=row - 1)}")
    if previous_last is not None and len(ns) and ns[0] <= previous_last.value:
        raise ShardError(
            f"{where}, row 0 ({times[0]}): overlaps the previous shard, whose last bar is "
            f"{previous_last}"
        )


def _read_times(info: ShardInfo) -> pd.DatetimeIndex:
    """Only the time column of a shard, as a UTC DatetimeIndex (cheap: Parquet is columnar)."""
    column = _parquet().read_table(info.path, columns=["time"]).column("time").to_pandas()
    return pd.DatetimeIndex(column, name="time")


def read_shard(info: ShardInfo, *, previous_last: pd.Timestamp | None = None) -> pd.DataFrame:
    """Read one shard as OHLCV bars, checked.

    Parameters
    ----------
    info : ShardInfo
        From :func:`read_manifest`.
    previous_last : pandas.Timestamp, optional
        Time of the last bar of the instrument's previous shard: every bar must come after it.

    Returns
    -------
    pandas.DataFrame
        Columns ``open, high, low, close, volume``, index ``time`` (UTC close times).

    Raises
    ------
    ShardError
        Unsorted, duplicated or overlapping bars (naming the file, row position and time), or a
        row count that differs from the manifest's.
    OHLCVError
        Any other problem found by :func:`~msa_lib.data.validate_ohlcv`, prefixed with the file.
    """
    where = f"shard {info.path}"
    frame = _parquet().read_table(info.path).to_pandas()
    times = pd.DatetimeIndex(frame.pop("time"), name="time")
    _check_shard_times(times, where, previous_last)
    if len(times) != info.rows:
        raise ShardError(f"{where}: {len(times)} rows, the manifest says {info.rows}")
    bars = frame.set_axis(times)
    try:
        validate_ohlcv(bars, name=where)
    except OHLCVError as err:
        raise OHLCVError(str(err)) from None
    return bars.loc[:, list(OHLCV_COLUMNS)]


# --------------------------------------------------------------------------------------------------
# What an experiment asks for, in nanoseconds
# --------------------------------------------------------------------------------------------------
def _warmup_rows(feature_kwargs: Mapping[str, Any]) -> int:
    """Rows at the start of a scale that :func:`scale_features` leaves incomplete (measured on a
    dummy series, so it follows whatever windows the features use)."""
    n = 64
    while True:
        i = np.arange(n, dtype=np.float64)
        close = 100.0 * np.exp(0.001 * np.sin(i))
        index = pd.date_range("2024-01-01 00:01", periods=n, freq="min", tz="UTC", name="time")
        dummy = pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999,
                              "close": close, "volume": 1.0 + i % 3}, index=index)
        complete = scale_features(dummy, dropna=False, **feature_kwargs).notna().all(axis=1)
        if complete.any():
            return int(complete.to_numpy().argmax())
        n *= 4


@dataclass(frozen=True)
class _Spec:
    """Scales, lookbacks, feature windows and horizons of an experiment, ready for planning."""

    rules: dict[str, int]  # scale -> bar length in ns
    lookbacks: dict[str, int]
    feature_kwargs: dict[str, dict[str, Any]]
    warmups: dict[str, int]  # scale -> incomplete feature rows at its start
    horizons: list[int | str]
    every: int  # ns
    longest: int  # ns

    @classmethod
    def from_features(cls, features: Any) -> _Spec:
        """From an ``Experiment`` or its ``FeatureSection``."""
        features = getattr(features, "features", features)
        kwargs = {s.name: s.feature_kwargs() for s in features.scales}
        return cls(
            rules={s.name: as_timedelta(s.name, what="scale").value for s in features.scales},
            lookbacks=dict(features.lookbacks),
            feature_kwargs=kwargs,
            warmups={name: _warmup_rows(kw) for name, kw in kwargs.items()},
            horizons=list(features.horizons),
            every=as_timedelta(features.every, what="every").value,
            longest=max(as_timedelta(h).value for h in features.horizons),
        )

    @property
    def boundary(self) -> int:
        """A bar boundary of every scale (their least common multiple, in ns)."""
        return math.lcm(*self.rules.values())


# --------------------------------------------------------------------------------------------------
# Planning: which decision times each shard yields, from the time column alone
# --------------------------------------------------------------------------------------------------
@dataclass
class _Unit:
    """One (instrument, shard) unit of work and what building it needs."""

    instrument: str
    shard: int  # position among the instrument's shards
    times: np.ndarray  # [n] int64 ns: decision times with a full window and target
    history_from: int  # ns: load bars stamped after this (a boundary of every scale)
    until: int  # ns: load bars up to at least this (last decision time + longest horizon)


def _plan_instrument(
    name: str, shard_times: list[np.ndarray], spec: _Spec, start: int, end: int
) -> list[_Unit]:
    """The units of one instrument: kept decision times per shard, history and look-ahead."""
    stamps = np.concatenate(shard_times)  # [n_bars] int64 ns, sorted across shards
    times = stamps[(stamps % spec.every == 0) & (stamps >= start) & (stamps < end)]
    times = times[times + spec.longest <= stamps[-1]]  # make_targets' rule
    keep = np.ones(len(times), dtype=bool)
    need = np.full(len(times), np.iinfo(np.int64).max)
    for scale, rule in spec.rules.items():
        labels = np.unique(-(-stamps // rule) * rule)  # resampled bar close times [n_scale]
        rows = np.searchsorted(labels, times, side="right")  # resampled bars stamped <= t
        oldest = rows - spec.lookbacks[scale] - spec.warmups[scale]  # first bar the window needs
        keep &= oldest >= 0
        need = np.minimum(need, labels[np.maximum(oldest, 0)] - rule)  # that bar's opening time
    times, need = times[keep], need[keep]
    units, edges = [], np.cumsum([0] + [len(t) for t in shard_times])
    for k in range(len(shard_times)):
        inside = (times >= stamps[edges[k]]) & (times <= stamps[edges[k + 1] - 1])
        if inside.any():
            mine = times[inside]
            units.append(_Unit(name, k, mine, int(need[inside].min() // spec.boundary * spec.boundary),
                               int(mine[-1] + spec.longest)))
    return units


def _read_all_times(shards: list[ShardInfo]) -> list[np.ndarray]:
    """The checked time column of every shard of one instrument, int64 ns each."""
    out, previous = [], None
    for info in shards:
        times = _read_times(info)
        _check_shard_times(times, f"shard {info.path}", previous)
        if len(times) != info.rows:
            raise ShardError(f"shard {info.path}: {len(times)} rows, the manifest says {info.rows}")
        out.append(times.as_unit("ns").asi8)
        previous = times[-1]
    return out


# --------------------------------------------------------------------------------------------------
# Normalisation per instrument
# --------------------------------------------------------------------------------------------------
@dataclass
class InstrumentScaling:
    """The normalisation of one instrument: its window scaler and its target scale.

    Attributes
    ----------
    scaler : msa_lib.data.WindowScaler
        Per-scale, per-feature mean and std of the instrument's training windows.
    target_scale : ndarray ``[H]``
        Std of each horizon's training log returns (the divisor of the targets).
    """

    scaler: WindowScaler
    target_scale: np.ndarray


@dataclass
class _Moments:
    """Count, mean and sum of squared deviations per column, merged batch by batch (Chan et al.)."""

    n: int = 0
    mean: np.ndarray | float = 0.0
    m2: np.ndarray | float = 0.0

    def add(self, x: np.ndarray) -> None:
        """Merge the rows of ``x`` ``[N, F]`` (float64)."""
        n_b = len(x)
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / n)
        self.n = n

    @property
    def std(self) -> np.ndarray:
        """Population std (``ddof=0``), like :meth:`numpy.ndarray.std`."""
        return np.sqrt(self.m2 / self.n)


def fit_instrument_scaling(
    directory: str | Path,
    features: Any,
    *,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    instruments: Sequence[str] | None = None,
) -> dict[str, InstrumentScaling]:
    """Fit one :class:`InstrumentScaling` per instrument by streaming its training shards once.

    For each instrument, the result equals what :func:`msa_lib.prepare.prepare_datasets` fits for
    the pooled data, but on that instrument's windows alone: ``scaler`` is
    ``WindowScaler().fit(training windows)`` (mean and population std of every feature over all
    windows and positions, std 0 -> 1) and ``target_scale`` is the std of each horizon's training
    log returns. Moments are merged shard by shard (Chan et al.'s pairwise update), so only one
    shard's windows are held at a time; they agree with the one-pass NumPy values to about 1e-12.
    One scaler per instrument, because instruments differ in price level and volatility: pooled
    statistics would leave a volatile instrument's features and targets much larger than a calm
    one's.

    Parameters
    ----------
    directory : str or Path
        Written by :func:`write_shards`.
    features : Experiment or FeatureSection
        Scales (rule, lookback, feature windows), ``every`` and horizons.
    start, end : str or Timestamp, optional
        The training range of decision times, ``[start, end)`` (naive times are read as UTC).
    instruments : sequence of str, optional
        Default: every instrument of the manifest.

    Returns
    -------
    dict of str to InstrumentScaling
    """
    data = ShardWindowDataset(directory, features, start=start, end=end, scaling=None,
                              instruments=instruments, rank=0, world_size=1)
    windows: dict[str, dict[str, _Moments]] = {n: {s: _Moments() for s in data.scales}
                                                for n in data.instruments}
    returns = {n: _Moments() for n in data.instruments}
    for name, _times, block, log_returns, _up in data.blocks(worker=(0, 1)):
        for scale, w in block.items():  # [n, L, F]
            windows[name][scale].add(w.reshape(-1, w.shape[-1]).astype(np.float64))
        returns[name].add(log_returns)  # [n, H] float64
    out = {}
    for name in data.instruments:
        if returns[name].n == 0:
            raise ValueError(f"instrument {name!r} has no decision time in [{start}, {end})")
        scaler = WindowScaler()
        scaler.mean_ = {s: m.mean for s, m in windows[name].items()}
        scaler.std_ = {s: np.where(m.std > 0, m.std, 1.0) for s, m in windows[name].items()}
        target_scale = returns[name].std
        if (target_scale == 0).any():
            raise ValueError(f"instrument {name!r}: a horizon's training returns are constant")
        out[name] = InstrumentScaling(scaler, target_scale)
    return out


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------
def _utc_ns(value: str | pd.Timestamp | None, default: int, what: str) -> int:
    """A time as int64 ns (naive = UTC); ``default`` when None."""
    if value is None:
        return default
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"{what} is not a time: {value!r}")
    ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def _rank_and_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit ``rank``/``world_size``, else torch.distributed's, else (0, 1)."""
    if (rank is None) != (world_size is None):
        raise ValueError("give both rank and world_size, or neither")
    if rank is None:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1
    if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int)
            and 0 <= rank < world_size):
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
    return rank, world_size


class ShardWindowDataset(torch.utils.data.IterableDataset):
    """Windows and targets of many instruments, built shard by shard from Parquet files.

    Each (instrument, shard) pair with at least one decision time is a *unit*. Units are numbered
    instrument by instrument, in time order; unit ``i`` goes to rank ``i % world_size``, and
    within a rank its ``j``-th unit to DataLoader worker ``j % num_workers``: every unit goes to
    exactly one (rank, worker).

    Parameters
    ----------
    directory : str or Path
        Written by :func:`write_shards`.
    features : Experiment or FeatureSection
        Scales (rule, lookback, feature windows), ``every`` (decision spacing) and horizons.
    start, end : str or Timestamp, optional
        Decision times in ``[start, end)`` (naive times are UTC). Leave a gap of the longest
        horizon between the training range's end and the validation range's start, as
        :func:`~msa_lib.data.chronological_split` does, so no training target reaches into it.
    scaling : mapping of str to InstrumentScaling, or None
        One normalisation per instrument (:func:`fit_instrument_scaling` on the training range).
        ``None`` yields raw features and raw log returns (what the fitting reads).
    instruments : sequence of str, optional
        Default: every instrument of the manifest, in its order.
    rank, world_size : int, optional
        This process's share; default ``torch.distributed``'s when initialised, else 0 of 1.

    Notes
    -----
    Rows are ``(windows, scaled_returns, up)``: ``windows[s]`` ``[L_s, F_s]`` float32, the
    targets ``[H]`` (``up`` is 1.0 where the unscaled return is positive). With
    ``world_size > 1`` every rank yields the same number of rows per epoch, ``len(self)``: the
    smallest rank's total; the rows after it in a rank's unit order are dropped (and the same
    number of batches from :meth:`batches`). Under DistributedDataParallel read :meth:`batches`,
    or a DataLoader with ``num_workers=0``: with several workers each worker ends on its own
    partial batch, so ranks may see different batch counts. The plan reads the time column of every shard once,
    at construction (8 bytes per bar of one instrument at a time).
    """

    def __init__(
        self,
        directory: str | Path,
        features: Any,
        *,
        start: str | pd.Timestamp | None = None,
        end: str | pd.Timestamp | None = None,
        scaling: Mapping[str, InstrumentScaling] | None = None,
        instruments: Sequence[str] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self._spec = _Spec.from_features(features)
        self._shards = read_manifest(self.directory)
        chosen = list(self._shards) if instruments is None else list(instruments)
        unknown = [n for n in chosen if n not in self._shards]
        if unknown:
            raise ValueError(f"instrument(s) {unknown} not in the manifest; it has {list(self._shards)}")
        if scaling is not None:
            missing = [n for n in chosen if n not in scaling]
            if missing:
                raise ValueError(f"scaling has no InstrumentScaling for instrument(s) {missing}")
        self.scaling = scaling
        self.rank, self.world_size = _rank_and_world(rank, world_size)
        lo = _utc_ns(start, np.iinfo(np.int64).min, "start")
        hi = _utc_ns(end, np.iinfo(np.int64).max, "end")
        if lo >= hi:
            raise ValueError(f"start ({start}) must come before end ({end})")
        self._bar_times: dict[str, list[tuple[int, int]]] = {}  # first/last bar of each shard
        self._units: list[_Unit] = []
        for name in chosen:
            times = _read_all_times(self._shards[name])
            self._bar_times[name] = [(int(t[0]), int(t[-1])) for t in times]
            self._units += _plan_instrument(name, times, self._spec, lo, hi)
        self.instruments: list[str] = chosen

    # ---------------------------------------------------------------- what it holds
    @property
    def scales(self) -> list[str]:
        """Scale names, finest first."""
        return list(self._spec.rules)

    @property
    def horizons(self) -> list[str]:
        """Horizon labels (the target columns)."""
        return [horizon_label(h) for h in self._spec.horizons]

    def _rows_per_rank(self) -> list[int]:
        return [sum(len(u.times) for u in self._units[r :: self.world_size])
                for r in range(self.world_size)]

    def __len__(self) -> int:
        """Rows this rank yields per epoch (with ``world_size > 1``: the smallest rank's total)."""
        rows = self._rows_per_rank()
        return rows[self.rank] if self.world_size == 1 else min(rows)

    def num_batches(self, batch_size: int) -> int:
        """Batches :meth:`batches` yields per epoch: all rows (last one partial) on one rank;
        ``floor(min rows over ranks / batch_size)`` full batches on each of several ranks."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.world_size == 1:
            return -(-len(self) // batch_size)
        return len(self) // batch_size

    # ---------------------------------------------------------------- who does what
    def assigned_units(self, worker: tuple[int, int] | None = None) -> list[tuple[str, Path, int]]:
        """``(instrument, shard file, decision times)`` of the units this rank and worker build.

        ``worker``: ``(worker_id, num_workers)``; default from :func:`torch.utils.data.get_worker_info`.
        """
        return [(u.instrument, self._shards[u.instrument][u.shard].path, len(u.times))
                for u, _rows in self._my_units(worker, cut=False)]

    def _worker(self, worker: tuple[int, int] | None) -> tuple[int, int]:
        if worker is not None:
            return worker
        info = torch.utils.data.get_worker_info()
        return (0, 1) if info is None else (info.id, info.num_workers)

    def _rank_units(self, cut: bool) -> list[tuple[_Unit, int]]:
        """This rank's units with the rows each yields; with ``cut``, ``len(self)`` rows in all."""
        units = self._units[self.rank :: self.world_size]
        if not cut:
            return [(unit, len(unit.times)) for unit in units]
        left, out = len(self), []
        for unit in units:
            take = min(len(unit.times), left)
            if take > 0:
                out.append((unit, take))
            left -= take
        return out

    def _my_units(self, worker: tuple[int, int] | None, cut: bool) -> list[tuple[_Unit, int]]:
        worker_id, num_workers = self._worker(worker)
        return self._rank_units(cut)[worker_id::num_workers]

    # ---------------------------------------------------------------- building one unit
    def _load_bars(self, unit: _Unit) -> pd.DataFrame:
        """The bars a unit needs: history from ``history_from`` through ``until`` (and a bit more)."""
        shards, spans = self._shards[unit.instrument], self._bar_times[unit.instrument]
        parts, loaded_last = [], None
        for k, (first, last) in enumerate(spans):
            if last <= unit.history_from:
                continue
            if first > unit.until and loaded_last is not None and loaded_last >= unit.until:
                break
            previous = pd.Timestamp(spans[k - 1][1], tz="UTC") if k > 0 else None
            parts.append(read_shard(shards[k], previous_last=previous))
            loaded_last = last
        bars = pd.concat(parts) if len(parts) > 1 else parts[0]
        return bars.loc[bars.index.as_unit("ns").asi8 > unit.history_from]

    def _build(self, unit: _Unit) -> tuple[pd.DatetimeIndex, dict[str, np.ndarray], np.ndarray]:
        """Decision times ``[n]``, raw windows ``{s: [n, L, F]}`` and log returns ``[n, H]``."""
        bars = self._load_bars(unit)
        spec = self._spec
        frames = {s: scale_features(resample_ohlcv(bars, s), **spec.feature_kwargs[s])
                  for s in spec.rules}
        times = pd.DatetimeIndex(pd.to_datetime(unit.times, utc=True), name="time")
        windows, kept = make_windows(frames, spec.lookbacks, times)
        targets = make_targets(bars, kept, spec.horizons)
        if len(kept) != len(times) or len(targets) != len(times):
            raise RuntimeError(  # the plan and the build disagree: a bug, not bad input
                f"{self._shards[unit.instrument][unit.shard].path}: planned {len(times)} decision "
                f"times, built {len(kept)} windows and {len(targets)} targets"
            )
        return times, windows, targets.to_numpy(dtype=np.float64)

    def blocks(
        self, *, worker: tuple[int, int] | None = None, cut: bool = False
    ) -> Iterator[tuple[str, pd.DatetimeIndex, dict[str, np.ndarray], np.ndarray, np.ndarray]]:
        """One block per unit of this rank and worker, in unit order.

        Over all ranks and workers the blocks hold every decision time once. With ``cut`` (what
        :meth:`__iter__` reads) a rank stops after ``len(self)`` rows, so that with
        ``world_size > 1`` every rank yields as many rows as the smallest.

        Yields
        ------
        instrument : str
        times : DatetimeIndex ``[n]``
            Decision times.
        windows : dict of str to ndarray ``[n, L, F]`` float32
            Scaled with the instrument's scaler (raw when ``scaling`` is None).
        scaled_returns : ndarray ``[n, H]``
            Log returns divided by the instrument's target scale, float32 (raw float64 log
            returns when ``scaling`` is None).
        up : ndarray ``[n, H]`` float32
            1.0 where the log return is positive.
        """
        for unit, rows in self._my_units(worker, cut):
            times, windows, log_returns = self._build(unit)
            windows = {s: w[:rows] for s, w in windows.items()}
            yield (unit.instrument, times[:rows],
                   *self._normalise(unit.instrument, windows, log_returns[:rows]))

    def _normalise(
        self, name: str, windows: dict[str, np.ndarray], log_returns: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Windows and targets scaled with instrument ``name``'s scaling, and the up labels."""
        up = (log_returns > 0).astype(np.float32)  # [n, H]
        if self.scaling is None:
            return windows, log_returns, up
        scaling = self.scaling[name]
        return (scaling.scaler.transform(windows),
                (log_returns / scaling.target_scale).astype(np.float32), up)

    # ---------------------------------------------------------------- reading
    def __iter__(self) -> Iterator[Batch]:
        """Single rows ``(windows {s: [L, F]}, scaled_returns [H], up [H])`` of this rank/worker."""
        for _name, _times, windows, y, up in self.blocks(cut=True):
            w = {s: torch.from_numpy(a) for s, a in windows.items()}
            y_t, up_t = torch.from_numpy(np.asarray(y, dtype=np.float32)), torch.from_numpy(up)
            for i in range(len(y_t)):
                yield {s: a[i] for s, a in w.items()}, y_t[i], up_t[i]

    def batches(
        self, batch_size: int, *, shuffle: bool = False, drop_last: bool | None = None
    ) -> Iterator[Batch]:
        """Mini-batches ``(windows {s: [B, L, F]}, scaled_returns [B, H], up [B, H])``.

        Like :meth:`msa_lib.prepare.WindowDataset.batches`, read in this process (no workers):
        with ``shuffle`` the order of this rank's units and the rows within each unit are drawn
        from torch's global generator; batches run across unit boundaries. On one rank every row
        is yielded (the last batch may be partial); on several, exactly
        :meth:`num_batches` full batches, and the rest of the epoch's rows are dropped
        (``drop_last=False`` yields all of this rank's rows instead: for evaluation, where ranks
        need not take the same number of steps).
        """
        if drop_last is None:
            drop_last = self.world_size > 1
        n_batches = self.num_batches(batch_size) if drop_last else math.inf
        units = list(self._units[self.rank :: self.world_size])
        if shuffle:
            units = [units[i] for i in torch.randperm(len(units)).tolist()]
        done, rest = 0, None  # rest: rows carried to the next batch, fewer than batch_size
        for unit in units:
            if done == n_batches:
                return
            block = self._scaled(unit)
            if shuffle:
                order = torch.randperm(len(block[1])).numpy()
                block = ({s: w[order] for s, w in block[0].items()}, block[1][order], block[2][order])
            if rest is not None:
                block = ({s: np.concatenate([rest[0][s], w]) for s, w in block[0].items()},
                         np.concatenate([rest[1], block[1]]), np.concatenate([rest[2], block[2]]))
            n = len(block[1])
            full = min(n // batch_size, n_batches - done)
            for b in range(full):
                yield _tensors(block, slice(b * batch_size, (b + 1) * batch_size))
            done += full
            rest = _take(block, slice(full * batch_size, n))
        if rest is not None and len(rest[1]) and not drop_last:
            yield _tensors(rest, slice(0, len(rest[1])))

    def _scaled(self, unit: _Unit) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """All rows of one unit, normalised; targets as float32."""
        _times, windows, log_returns = self._build(unit)
        windows, y, up = self._normalise(unit.instrument, windows, log_returns)
        return windows, y.astype(np.float32, copy=False), up


def _take(block: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray], rows: slice) -> tuple:
    """Rows of a block (views)."""
    return {s: w[rows] for s, w in block[0].items()}, block[1][rows], block[2][rows]


def _tensors(block: tuple[dict[str, np.ndarray], np.ndarray, np.ndarray], rows: slice) -> Batch:
    """Rows of a block as tensors (views of the NumPy arrays where possible)."""
    windows, y, up = _take(block, rows)
    return ({s: torch.from_numpy(np.ascontiguousarray(w)) for s, w in windows.items()},
            torch.from_numpy(np.ascontiguousarray(y)), torch.from_numpy(np.ascontiguousarray(up)))
