"""Tests of data-parallel training (msa_lib.distributed and fit under a process group), resuming an
interrupted run, and the precision switch. Two-process runs use torch.multiprocessing with gloo on
the CPU and tiny models, so they take a few seconds; `make ddp-check` compares a real network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny_models import TinyNet, make_data

from msa_lib import distributed, seed_everything
from msa_lib import train as tr
from msa_lib.model import ModelConfig, MultiScaleAttentionNet, ScaleConfig
from msa_lib.prepare import WindowDataset

torch.set_num_threads(1)


# -- pieces --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_rows", [0, 1, 3, 10, 257])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_rank_rows_partition_a_batch(n_rows: int, world_size: int) -> None:
    parts = [distributed.rank_rows(n_rows, r, world_size) for r in range(world_size)]
    assert parts[0][0] == 0 and parts[-1][1] == n_rows
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))  # contiguous, no gap
    sizes = [hi - lo for lo, hi in parts]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_outside_a_process_group_there_is_one_rank() -> None:
    assert distributed.world() == (0, 1) and distributed.is_main()
    assert distributed.all_reduce_sum([1.5, 2.0]) == [1.5, 2.0]
    assert distributed.init_from_env() is False  # no WORLD_SIZE: nothing to join


# -- two processes ---------------------------------------------------------------------------------
def _two_process_worker(rank: int, folder: str, batch_size: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    try:
        seed_everything(0)
        train, val = make_data(91, seed=1), make_data(41, seed=2, sign=-1.0)  # val disagrees: stops
        model = TinyNet()
        out: dict = {}
        try:
            history = tr.fit(model, train, val, num_epochs=8, batch_size=batch_size, lr=1e-2,
                             patience=2, progress=False,
                             checkpoint_path=Path(folder) / f"rank{rank}" / "model.pt")
            out = {"step_loss": history.step_loss, "val_loss": history.val_loss,
                   "best_epoch": history.best_epoch, "stop": history.stop_reason,
                   "weights": [p.detach().flatten().tolist() for p in model.parameters()]}
        except ValueError as err:
            out = {"error": str(err)}
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps(out))
    finally:
        dist.destroy_process_group()


def _run_two(tmp_path: Path, batch_size: int) -> list[dict]:
    mp.spawn(_two_process_worker, args=(str(tmp_path), batch_size), nprocs=2, join=True)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def test_two_processes_train_like_one(tmp_path: Path) -> None:
    """Same global batch and seed: the 2-process run takes the single process's steps (91 rows in
    batches of 32: the last batch of 27 splits 14/13, so each rank must weigh its loss by its
    share), every rank stops at the same epoch, and only rank 0 writes checkpoints."""
    ranks = _run_two(tmp_path, batch_size=32)
    seed_everything(0)
    model = TinyNet()
    single = tr.fit(model, make_data(91, seed=1), make_data(41, seed=2, sign=-1.0), num_epochs=8,
                    batch_size=32, lr=1e-2, patience=2, progress=False)
    for r in ranks:
        assert r["step_loss"] == pytest.approx(single.step_loss, rel=1e-5)
        assert r["val_loss"] == pytest.approx(single.val_loss, rel=1e-5)
        assert (r["best_epoch"], r["stop"]) == (single.best_epoch, single.stop_reason)
        for got, want in zip(r["weights"], model.parameters(), strict=True):
            assert got == pytest.approx(want.detach().flatten().tolist(), abs=1e-5)
    assert single.stop_reason == "early_stopping"  # the check covers the early stop
    assert (tmp_path / "rank0" / "model.pt").is_file()
    assert (tmp_path / "rank0" / "model.state.pt").is_file()
    assert not (tmp_path / "rank1").exists()


def test_a_world_size_that_does_not_divide_the_batch_is_refused(tmp_path: Path) -> None:
    ranks = _run_two(tmp_path, batch_size=33)
    for r in ranks:
        assert "batch_size 33 is not divisible by the world size 2" in r["error"]


def _shard_worker(rank: int, folder: str) -> None:
    from msa_lib.model import build_model
    from msa_lib.shards import ShardWindowDataset, fit_instrument_scaling

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    try:
        scaling = fit_instrument_scaling(Path(folder) / "shards", SHARD_FEATURES, end=SHARD_SPLIT)
        train = ShardWindowDataset(Path(folder) / "shards", SHARD_FEATURES, end=SHARD_SPLIT,
                                   scaling=scaling)  # built after joining: knows its rank
        seed_everything(0)
        model = build_model("multiscale", _shard_config(train))
        history = tr.fit(model, train, num_epochs=2, batch_size=64, progress=False)
        (Path(folder) / f"rank{rank}.json").write_text(json.dumps({
            "steps": len(history.step_loss), "step_loss": history.step_loss,
            "expected": train.num_batches(32) * 2, "rows": len(train)}))
    finally:
        dist.destroy_process_group()


SHARD_SPLIT = "2024-01-02 18:00"


def _shard_features():
    from msa_lib.experiment import SHORT_FEATURE_WINDOWS, FeatureSection, ScaleSpec

    return FeatureSection(
        scales=(ScaleSpec("1min", 10), ScaleSpec("1h", 3, **SHORT_FEATURE_WINDOWS)),
        every="5min", horizons=("5min", "30min"))


SHARD_FEATURES = _shard_features()


def _shard_config(data) -> ModelConfig:
    from msa_lib.model import config_from_windows

    windows, _, _ = next(iter(data.batches(2, drop_last=False)))
    return config_from_windows(windows, n_heads=2, d_model=8, n_cross_heads=2,
                               horizons=("5min", "30min"), dropout=0.0)


def test_two_processes_train_on_parquet_shards_in_step(tmp_path: Path) -> None:
    """Each rank reads its own shards; both take the same number of steps (DDP would hang
    otherwise) and see the same global losses."""
    from msa_lib.datasets import simulate_instruments
    from msa_lib.shards import write_shards

    markets = simulate_instruments(("AAA", "BBB", "CCC"), days=3, seed=1)
    write_shards({n: m.bars for n, m in markets.items()}, tmp_path / "shards", shard="12h")
    mp.spawn(_shard_worker, args=(str(tmp_path),), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["steps"] == ranks[1]["steps"] == ranks[0]["expected"] > 0
    assert ranks[0]["step_loss"] == ranks[1]["step_loss"]
    assert ranks[0]["rows"] == ranks[1]["rows"]


def test_a_dataset_built_for_another_world_size_is_refused(tmp_path: Path) -> None:
    from msa_lib.datasets import simulate_instruments
    from msa_lib.shards import ShardWindowDataset, write_shards

    markets = simulate_instruments(("AAA", "BBB"), days=3, seed=1)
    write_shards({n: m.bars for n, m in markets.items()}, tmp_path / "shards", shard="12h")
    mp.spawn(_stale_worker, args=(str(tmp_path),), nprocs=2, join=True)
    assert "built for 1 process(es) but this run has 2" in (tmp_path / "rank0.txt").read_text()
    assert ShardWindowDataset(tmp_path / "shards", SHARD_FEATURES).world_size == 1


def _stale_worker(rank: int, folder: str) -> None:
    from msa_lib.model import build_model
    from msa_lib.shards import ShardWindowDataset

    torch.set_num_threads(1)
    train = ShardWindowDataset(Path(folder) / "shards", SHARD_FEATURES)  # before joining the group
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    try:
        tr.fit(build_model("multiscale", _shard_config(train)), train, num_epochs=1,
               batch_size=64, progress=False)
    except ValueError as err:
        (Path(folder) / f"rank{rank}.txt").write_text(str(err))
    finally:
        dist.destroy_process_group()


# -- resuming ------------------------------------------------------------------------------------
class _Crash(Exception):
    pass


class _CrashingData(WindowDataset):
    """Training data whose third shuffled pass raises, as a run killed during epoch 3 would."""

    def __init__(self, data: WindowDataset, crash_on: int) -> None:
        super().__init__(data.windows, data.scaled_returns, data.up, horizons=data.horizons)
        self.passes, self.crash_on = 0, crash_on

    def batches(self, batch_size: int, *, shuffle: bool = False):  # type: ignore[override]
        if shuffle:
            self.passes += 1
            if self.passes == self.crash_on:
                raise _Crash
        return super().batches(batch_size, shuffle=shuffle)


def _fit(model, train, path, **kw):
    return tr.fit(model, train, make_data(40, seed=2), num_epochs=5, batch_size=16, lr=5e-3,
                  weight_decay=0.0, patience=None, progress=False, checkpoint_path=path, **kw)


def test_an_interrupted_run_resumes_with_the_same_steps(tmp_path: Path) -> None:
    seed_everything(3)
    whole_model = TinyNet()
    whole = _fit(whole_model, make_data(70, seed=1), tmp_path / "a" / "model.pt")

    seed_everything(3)
    model = TinyNet()
    with pytest.raises(_Crash):
        _fit(model, _CrashingData(make_data(70, seed=1), crash_on=3), tmp_path / "b" / "model.pt")
    seed_everything(99)  # the process that resumes starts from other generators and weights
    model = TinyNet()
    resumed = _fit(model, make_data(70, seed=1), tmp_path / "b" / "model.pt", resume=True)

    assert resumed.num_epochs == whole.num_epochs == 5
    assert resumed.step_loss == pytest.approx(whole.step_loss, rel=1e-6)
    assert resumed.val_loss == pytest.approx(whole.val_loss, rel=1e-6)
    for a, b in zip(model.parameters(), whole_model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    # resuming a finished run trains no further and returns its best weights
    again = _fit(model, make_data(70, seed=1), tmp_path / "b" / "model.pt", resume=True)
    assert again.step_loss == resumed.step_loss


def _net(d_model: int) -> MultiScaleAttentionNet:
    scales = (ScaleConfig("fast", 3, 4, n_heads=2), ScaleConfig("slow", 3, 2, n_heads=2))
    return MultiScaleAttentionNet(ModelConfig(scales=scales, d_model=d_model, n_cross_heads=2,
                                              horizons=("a", "b"), dropout=0.0))


def test_resuming_from_another_models_state_names_both_configs(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    train = make_data(40, seed=1)
    tr.fit(_net(8), train, num_epochs=1, batch_size=16, progress=False, checkpoint_path=path)
    with pytest.raises(ValueError, match="another model") as err:
        tr.fit(_net(16), train, num_epochs=2, batch_size=16, progress=False,
               checkpoint_path=path, resume=True)
    assert "d_model: 8 vs 16" in str(err.value)
    assert "'d_model': 8" in str(err.value) and "'d_model': 16" in str(err.value)
    with pytest.raises(ValueError, match="other training settings") as err:
        tr.fit(_net(8), train, num_epochs=1, batch_size=8, progress=False,
               checkpoint_path=path, resume=True)
    assert "batch_size: 16 vs 8" in str(err.value)
    with pytest.raises(ValueError, match="needs checkpoint_path"):
        tr.fit(_net(8), train, num_epochs=1, progress=False, resume=True)


# -- precision -------------------------------------------------------------------------------------
def test_bf16_is_for_gpus_and_auto_keeps_the_cpu_in_float32() -> None:
    train = make_data(40, seed=1)
    with pytest.raises(ValueError, match="bf16"):
        tr.fit(TinyNet(), train, num_epochs=1, progress=False, precision="bf16", device="cpu")
    with pytest.raises(ValueError, match="precision"):
        tr.fit(TinyNet(), train, num_epochs=1, progress=False, precision="fp16")
    losses = []
    for precision in ("auto", "fp32"):
        seed_everything(0)
        losses.append(tr.fit(TinyNet(), train, num_epochs=2, batch_size=16, progress=False,
                             precision=precision, device="cpu").step_loss)
    assert losses[0] == losses[1]  # bit for bit: "auto" casts nothing on the CPU
