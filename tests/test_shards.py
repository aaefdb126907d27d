"""Tests for msa_lib.shards: Parquet shards streamed as windows equal the in-memory path.

The reference everywhere is the in-memory pipeline (resample_ohlcv -> scale_features ->
make_windows / make_targets on each instrument's full bars), computed here independently of the
shard code; the shard path must give the same rows, value for value.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from msa_lib.data import (
    OHLCVError,
    WindowScaler,
    decision_times,
    make_targets,
    make_windows,
    resample_ohlcv,
    scale_features,
)
from msa_lib.datasets import simulate_instruments
from msa_lib.experiment import SHORT_FEATURE_WINDOWS, FeatureSection, ScaleSpec
from msa_lib.shards import (
    MANIFEST,
    ShardError,
    ShardWindowDataset,
    fit_instrument_scaling,
    read_manifest,
    read_shard,
    write_shards,
)

torch.set_num_threads(1)

FEATURES = FeatureSection(
    scales=(ScaleSpec("1min", 10), ScaleSpec("5min", 4, **SHORT_FEATURE_WINDOWS),
            ScaleSpec("1h", 3, **SHORT_FEATURE_WINDOWS)),
    every="5min",
    horizons=("5min", "30min"),
)
TRAIN = ("2024-01-01 06:00", "2024-01-02 12:00")  # [start, end) of the training decisions
ALL = ("2024-01-01 00:00", "2024-01-04 00:00")


@pytest.fixture(scope="module")
def bars():
    markets = simulate_instruments(("AAA", "BBB"), days=3, seed=2)
    return {name: m.bars for name, m in markets.items()}


@pytest.fixture(scope="module")
def shard_dir(bars, tmp_path_factory):
    directory = tmp_path_factory.mktemp("shards")
    write_shards(bars, directory, shard="12h")
    return directory


@pytest.fixture(scope="module")
def scaling(shard_dir):
    return fit_instrument_scaling(shard_dir, FEATURES, start=TRAIN[0], end=TRAIN[1])


def in_memory(bars: pd.DataFrame, start: str, end: str):
    """Decision times, raw windows and log returns of one instrument, the in-memory way."""
    frames = {s.name: scale_features(resample_ohlcv(bars, s.name), **s.feature_kwargs())
              for s in FEATURES.scales}
    times = decision_times(bars, FEATURES.every)
    times = times[(times >= pd.Timestamp(start, tz="UTC")) & (times < pd.Timestamp(end, tz="UTC"))]
    windows, kept = make_windows(frames, FEATURES.lookbacks, times)
    targets = make_targets(bars, kept, list(FEATURES.horizons))
    rows = kept.get_indexer(targets.index)
    return targets.index, {s: w[rows] for s, w in windows.items()}, targets.to_numpy()


def collect(datasets, workers: int = 2):
    """Every block of every rank and worker: {instrument: (times, windows, scaled, up)}."""
    parts: dict[str, list] = {}
    for ds in datasets:
        for worker in range(workers):
            for name, times, windows, y, up in ds.blocks(worker=(worker, workers)):
                parts.setdefault(name, []).append((times, windows, y, up))
    out = {}
    for name, blocks in parts.items():
        times = pd.DatetimeIndex(np.concatenate([b[0] for b in blocks]))
        order = np.argsort(times.asi8, kind="stable")
        windows = {s: np.concatenate([b[1][s] for b in blocks])[order] for s in blocks[0][1]}
        out[name] = (times[order], windows, np.concatenate([b[2] for b in blocks])[order],
                     np.concatenate([b[3] for b in blocks])[order])
    return out


# ---------------------------------------------------------------------------------------------
# the key property: the same rows as the in-memory path
# ---------------------------------------------------------------------------------------------
def test_scaling_fitted_by_streaming_equals_the_in_memory_scaler(bars, scaling):
    for name, b in bars.items():
        _, windows, log_returns = in_memory(b, *TRAIN)
        reference = WindowScaler().fit(windows)
        for s in windows:
            np.testing.assert_allclose(scaling[name].scaler.mean_[s], reference.mean_[s],
                                       rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(scaling[name].scaler.std_[s], reference.std_[s], rtol=1e-9)
        np.testing.assert_allclose(scaling[name].target_scale, log_returns.std(axis=0), rtol=1e-9)
    # instruments differ in level and volatility: one pooled scaler would not fit both
    ratio = scaling["BBB"].target_scale / scaling["AAA"].target_scale
    assert (ratio > 1.3).all()


def test_rows_over_all_ranks_and_workers_equal_the_in_memory_windows_and_targets(
    bars, shard_dir, scaling
):
    datasets = [ShardWindowDataset(shard_dir, FEATURES, start=ALL[0], end=ALL[1], scaling=scaling,
                                   rank=r, world_size=2) for r in range(2)]
    got = collect(datasets)
    assert set(got) == set(bars)
    n_rows = 0
    for name, b in bars.items():
        times, windows, log_returns = in_memory(b, *ALL)
        g_times, g_windows, g_y, g_up = got[name]
        assert g_times.is_unique  # every decision time once
        assert g_times.equals(times)
        expected = scaling[name].scaler.transform(windows)
        for s in windows:
            np.testing.assert_array_equal(g_windows[s], expected[s])  # float32, exactly
        np.testing.assert_array_equal(g_y, (log_returns / scaling[name].target_scale).astype(np.float32))
        np.testing.assert_array_equal(g_up, (log_returns > 0).astype(np.float32))
        n_rows += len(times)
    assert n_rows > 1000


def test_dataloader_workers_yield_every_row_of_the_rank_once(shard_dir, scaling):
    ds = ShardWindowDataset(shard_dir, FEATURES, start=ALL[0], end=ALL[1], scaling=scaling)
    loader = torch.utils.data.DataLoader(ds, batch_size=50, num_workers=2)
    got = [batch for batch in loader]
    windows = {s: torch.cat([b[0][s] for b in got]) for s in ds.scales}
    y = torch.cat([b[1] for b in got])
    assert windows["1min"].shape[1:] == (10, ds_features(ds)) and y.shape[1] == 2
    expected = np.concatenate([blk[3] for blk in ds.blocks(worker=(0, 1))])
    assert len(y) == len(ds) == len(expected)
    # the same multiset of rows (workers interleave their batches)
    key = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
    np.testing.assert_array_equal(key(y.numpy()), key(expected))


def ds_features(ds) -> int:
    return next(iter(ds.blocks()))[2]["1min"].shape[-1]


# ---------------------------------------------------------------------------------------------
# the split of the work
# ---------------------------------------------------------------------------------------------
def test_ranks_and_workers_partition_the_units(shard_dir):
    everything = ShardWindowDataset(shard_dir, FEATURES, rank=0, world_size=1)
    all_units = everything.assigned_units(worker=(0, 1))
    assert len(all_units) >= 10
    seen = []
    for rank in range(2):
        ds = ShardWindowDataset(shard_dir, FEATURES, rank=rank, world_size=2)
        mine = [u for w in range(3) for u in ds.assigned_units(worker=(w, 3))]
        assert len(mine) > 0
        seen += [(name, path) for name, path, _rows in mine]
    assert len(seen) == len(set(seen))  # nobody twice
    assert set(seen) == {(name, path) for name, path, _ in all_units}  # nobody missing


def test_every_rank_yields_the_same_number_of_full_batches(shard_dir, scaling):
    ranks = [ShardWindowDataset(shard_dir, FEATURES, start=ALL[0], end=ALL[1], scaling=scaling,
                                rank=r, world_size=2) for r in range(2)]
    rows = [sum(n for _, _, n in ds.assigned_units(worker=(0, 1))) for ds in ranks]
    assert rows[0] != rows[1]  # the ranks hold different numbers of rows ...
    batch_size = 64
    expected = min(rows) // batch_size
    for ds in ranks:
        assert len(ds) == min(rows) and ds.num_batches(batch_size) == expected
        for shuffle in (False, True):
            sizes = [len(b[1]) for b in ds.batches(batch_size, shuffle=shuffle)]
            assert sizes == [batch_size] * expected  # ... but yield the same full batches
        assert sum(1 for _row in ds) == len(ds)  # and the same rows through __iter__
    single = ShardWindowDataset(shard_dir, FEATURES, start=ALL[0], end=ALL[1], scaling=scaling)
    sizes = [len(b[1]) for b in single.batches(batch_size, shuffle=True)]
    assert sum(sizes) == len(single) == sum(rows) and len(sizes) == single.num_batches(batch_size)


def test_batches_hold_the_same_rows_as_the_blocks(shard_dir, scaling):
    ds = ShardWindowDataset(shard_dir, FEATURES, start=ALL[0], end=ALL[1], scaling=scaling)
    torch.manual_seed(0)
    batches = list(ds.batches(100, shuffle=True))
    y = torch.cat([b[1] for b in batches]).numpy()
    w = torch.cat([b[0]["1h"] for b in batches]).numpy()
    ref_y = np.concatenate([blk[3] for blk in ds.blocks()])
    assert not np.array_equal(y, ref_y)  # shuffled
    order, ref_order = np.lexsort(y.T[::-1]), np.lexsort(ref_y.T[::-1])
    np.testing.assert_array_equal(y[order], ref_y[ref_order])
    ref_w = np.concatenate([blk[2]["1h"] for blk in ds.blocks()])
    np.testing.assert_array_equal(w[order], ref_w[ref_order])


# ---------------------------------------------------------------------------------------------
# causality: what comes after t never changes a window for t
# ---------------------------------------------------------------------------------------------
def test_changing_bars_after_t_leaves_windows_up_to_t_unchanged(shard_dir, scaling, tmp_path):
    changed = tmp_path / "changed"
    shutil.copytree(shard_dir, changed)
    t = pd.Timestamp("2024-01-02 09:00", tz="UTC")
    for path in changed.glob("*/part-*.parquet"):
        frame = pq.read_table(path).to_pandas()
        later = frame["time"] > t
        frame.loc[later, ["open", "high", "low", "close"]] *= 1.7
        frame.loc[later, "volume"] *= 3.0
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    kwargs = {"start": ALL[0], "end": ALL[1], "scaling": scaling}
    before = collect([ShardWindowDataset(shard_dir, FEATURES, **kwargs)], workers=1)
    after = collect([ShardWindowDataset(changed, FEATURES, **kwargs)], workers=1)
    for name in before:
        times = before[name][0]
        assert times.equals(after[name][0])
        early = np.asarray(times <= t)
        for s in FEATURES.scale_names:
            np.testing.assert_array_equal(before[name][1][s][early], after[name][1][s][early])
            # a scale whose latest row is after t does change: the test can see a change
            assert not np.array_equal(before[name][1][s][~early], after[name][1][s][~early])


# ---------------------------------------------------------------------------------------------
# writing, the manifest, and bad shards
# ---------------------------------------------------------------------------------------------
def test_write_shards_makes_consecutive_files_and_an_honest_manifest(bars, tmp_path):
    paths = write_shards(bars, tmp_path / "rows", shard=1000)
    manifest = read_manifest(tmp_path / "rows")
    assert [p.name for p in paths[:2]] == ["part-00000.parquet", "part-00001.parquet"]
    for name, b in bars.items():
        infos = manifest[name]
        assert [i.rows for i in infos] == [1000] * 4 + [len(b) - 4000]
        parts = [read_shard(i) for i in infos]
        pd.testing.assert_frame_equal(pd.concat(parts), b, check_freq=False)
        assert all(i.first == p.index[0] and i.last == p.index[-1] for i, p in zip(infos, parts, strict=True))
    daily = write_shards(bars, tmp_path / "daily", shard="1D")
    assert len(daily) == 2 * 3  # bars close 00:01 .. 24:00: three UTC days each
    with pytest.raises(FileExistsError, match=MANIFEST):
        write_shards(bars, tmp_path / "daily")
    with pytest.raises(ValueError, match="not usable as a folder name"):
        write_shards({"../up": bars["AAA"]}, tmp_path / "bad")


def _rewrite(directory, rel, change):
    path = directory / rel
    frame = pq.read_table(path).to_pandas()
    pq.write_table(pa.Table.from_pandas(change(frame), preserve_index=False), path)
    return path


def _swap(frame):
    frame = frame.copy()
    frame.loc[[7, 8], "time"] = frame.loc[[8, 7], "time"].to_numpy()
    return frame


def _duplicate(frame):
    frame = frame.copy()
    frame.loc[12, "time"] = frame.loc[11, "time"]
    return frame


@pytest.mark.parametrize(
    ("change", "row", "problem"),
    [(_swap, 8, "bars not sorted"), (_duplicate, 12, "duplicated bar")],
)
def test_unsorted_or_duplicated_bars_name_the_shard_and_the_row(shard_dir, tmp_path, change, row, problem):
    bad = tmp_path / "bad"
    shutil.copytree(shard_dir, bad)
    path = _rewrite(bad, "BBB/part-00002.parquet", change)
    when = pq.read_table(path).to_pandas()["time"][row]
    info = read_manifest(bad)["BBB"][2]
    with pytest.raises(ShardError) as err:
        read_shard(info)
    assert str(path) in str(err.value) and f"row {row} ({when})" in str(err.value)
    assert problem in str(err.value)
    with pytest.raises(ShardError, match=rf"part-00002.parquet, row {row} "):
        ShardWindowDataset(bad, FEATURES)


def test_bars_overlapping_the_previous_shard_are_refused(shard_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(shard_dir, bad)
    manifest = read_manifest(bad)["AAA"]
    earlier = manifest[0].last
    _rewrite(bad, "AAA/part-00001.parquet",
             lambda f: f.assign(time=f["time"] - pd.Timedelta("5min")))
    with pytest.raises(ShardError, match=r"part-00001.parquet, row 0 \(.*\): overlaps the previous"):
        read_shard(manifest[1], previous_last=earlier)
    with pytest.raises(ShardError, match="overlaps the previous shard"):
        ShardWindowDataset(bad, FEATURES)


def test_other_ohlcv_problems_come_from_validate_ohlcv_prefixed_with_the_shard(shard_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(shard_dir, bad)
    path = _rewrite(bad, "AAA/part-00003.parquet",
                    lambda f: f.assign(volume=np.where(f.index == 5, -1.0, f["volume"])))
    with pytest.raises(OHLCVError, match=rf"shard {path}: negative volume at"):
        read_shard(read_manifest(bad)["AAA"][3])


def test_a_manifest_that_disagrees_with_the_files_is_an_error(shard_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(shard_dir, bad)
    raw = json.loads((bad / MANIFEST).read_text())
    raw["shards"][1]["rows"] += 1
    (bad / MANIFEST).write_text(json.dumps(raw))
    with pytest.raises(ShardError, match=r"part-00001.parquet: 720 rows, the manifest says 721"):
        ShardWindowDataset(bad, FEATURES)


def test_bad_arguments_are_named(shard_dir, scaling):
    with pytest.raises(ValueError, match=r"instrument\(s\) \['ZZZ'\] not in the manifest"):
        ShardWindowDataset(shard_dir, FEATURES, instruments=["ZZZ"])
    with pytest.raises(ValueError, match=r"no InstrumentScaling for instrument\(s\) \['BBB'\]"):
        ShardWindowDataset(shard_dir, FEATURES, scaling={"AAA": scaling["AAA"]})
    with pytest.raises(ValueError, match="0 <= rank < world_size"):
        ShardWindowDataset(shard_dir, FEATURES, rank=2, world_size=2)
    with pytest.raises(ValueError, match="start .* must come before end"):
        ShardWindowDataset(shard_dir, FEATURES, start=ALL[1], end=ALL[0])


def test_without_pyarrow_shards_fail_clearly(bars, tmp_path, monkeypatch):
    import sys

    from msa_lib.bars_io import MissingDependencyError

    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # makes the import fail
    with pytest.raises(MissingDependencyError, match="Parquet shards need pyarrow"):
        write_shards(bars, tmp_path / "none")
