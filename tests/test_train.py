"""Tests for msa_lib.train, on tiny stand-in models so that they run in a few seconds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from msa_lib import train as tr

torch.set_num_threads(1)


class TinyNet(nn.Module):
    """Two scales in, H horizons out: flattens each window and runs a small MLP."""

    def __init__(self, n_horizons: int = 2, hidden: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4 * 3 + 2 * 3, hidden), nn.Tanh())
        self.returns = nn.Linear(hidden, n_horizons)
        self.direction = nn.Linear(hidden, n_horizons)

    def forward(self, windows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = torch.cat([windows["fast"].flatten(1), windows["slow"].flatten(1)], dim=1)  # [B, 18]
        h = self.body(x)  # [B, hidden]
        return {"returns": self.returns(h), "direction_logits": self.direction(h)}


def make_data(n: int, seed: int, sign: float = 1.0) -> tr.WindowDataset:
    """Targets that depend linearly on the last fast feature (sign flips the relation)."""
    rng = np.random.default_rng(seed)
    fast = rng.normal(size=(n, 4, 3)).astype(np.float32)  # [N, L=4, F=3]
    slow = rng.normal(size=(n, 2, 3)).astype(np.float32)  # [N, L=2, F=3]
    y = sign * np.stack([fast[:, -1, 0], fast[:, -1, 0] + slow[:, -1, 1]], axis=1)  # [N, 2]
    y = y + 0.1 * rng.normal(size=y.shape)
    return tr.WindowDataset({"fast": fast, "slow": slow}, y.astype(np.float32))


# -- data -----------------------------------------------------------------------------------------
def test_dataset_shares_memory_and_leaves_inputs_alone() -> None:
    fast = np.zeros((5, 4, 3), dtype=np.float32)
    slow = np.ones((5, 2, 3), dtype=np.float64)  # float64: converted into a new buffer
    y = np.array([[0.5, -1.0]] * 5, dtype=np.float32)
    ds = tr.WindowDataset({"fast": fast, "slow": slow}, y)
    assert np.shares_memory(ds.windows["fast"].numpy(), fast)
    assert slow.dtype == np.float64 and ds.windows["slow"].dtype == torch.float32
    assert ds.direction[0].tolist() == [1.0, 0.0]  # from the sign of the returns
    windows, returns, direction = ds[torch.tensor([0, 3])]
    assert windows["slow"].shape == (2, 2, 3) and returns.shape == (2, 2)


def test_dataset_errors_name_the_scale_and_row() -> None:
    y = np.zeros((5, 1), dtype=np.float32)
    with pytest.raises(ValueError, match=r"windows\['slow'\] has 4 rows"):
        tr.WindowDataset({"fast": np.zeros((5, 4, 3)), "slow": np.zeros((4, 2, 3))}, y)
    bad = np.zeros((5, 4, 3))
    bad[3, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"windows\['fast'\].*row 3"):
        tr.WindowDataset({"fast": bad}, y)
    with pytest.raises(ValueError, match=r"\[N, L, F\]"):
        tr.WindowDataset({"fast": np.zeros((5, 4))}, y)
    with pytest.raises(ValueError, match="N = 5"):
        tr.WindowDataset({"fast": np.zeros((5, 4, 3))}, np.zeros((6, 1)))


# -- loss -----------------------------------------------------------------------------------------
def test_loss_by_hand() -> None:
    out = {"returns": torch.zeros(4, 2), "direction_logits": torch.zeros(4, 2)}
    target = torch.ones(4, 2)  # squared error 1 everywhere; logit 0 -> cross-entropy ln 2
    total, parts = tr.multi_horizon_loss(
        out, target, torch.ones(4, 2), {"returns": 2, "direction": 3}
    )
    assert parts["mse"] == pytest.approx(1.0) and parts["bce"] == pytest.approx(math.log(2))
    assert float(total) == pytest.approx(2 + 3 * math.log(2))
    # horizon weights: only the second horizon counts, and its error is 4
    out["returns"] = torch.tensor([[1.0, -1.0]] * 4)
    total, parts = tr.multi_horizon_loss(
        out, target, torch.ones(4, 2), tr.LossWeights(direction=0.0, horizons=(0.0, 1.0))
    )
    assert float(total) == pytest.approx(4.0)


def test_loss_rejects_wrong_shapes() -> None:
    out = {"returns": torch.zeros(4, 3), "direction_logits": torch.zeros(4, 3)}
    with pytest.raises(ValueError, match="shape"):
        tr.multi_horizon_loss(out, torch.zeros(4, 2), torch.zeros(4, 2))
    with pytest.raises(KeyError, match="direction_logits"):
        tr.multi_horizon_loss({"returns": torch.zeros(4, 2)}, torch.zeros(4, 2), torch.zeros(4, 2))


# -- the loop -------------------------------------------------------------------------------------
def test_tiny_model_overfits_a_tiny_batch() -> None:
    tr.seed_everything(0)
    rng = np.random.default_rng(0)
    data = tr.WindowDataset(
        {"fast": rng.normal(size=(16, 4, 3)), "slow": rng.normal(size=(16, 2, 3))},
        rng.normal(size=(16, 2)),  # pure noise: only memorising can fit it
    )
    model = TinyNet(hidden=64)
    history = tr.fit(
        model,
        data,
        num_epochs=300,
        batch_size=16,
        lr=1e-2,
        weight_decay=0.0,
        scheduler=None,
        progress=False,
    )
    assert history.train_loss[-1] < 0.1 * history.train_loss[0]
    pred = tr.predict(model, data)
    assert np.mean((pred["returns"] - data.returns.numpy()) ** 2) < 0.05
    assert ((pred["direction_logits"] > 0) == (data.returns.numpy() > 0)).all()


def test_early_stopping_restores_the_best_weights(tmp_path) -> None:
    tr.seed_everything(1)
    train = make_data(256, seed=1)
    val = make_data(128, seed=2, sign=-1.0)  # the opposite relation: learning makes val worse
    model = TinyNet()
    ckpt = tmp_path / "sub" / "best.pt"
    history = tr.fit(
        model,
        train,
        val,
        num_epochs=30,
        batch_size=64,
        lr=1e-2,
        patience=3,
        checkpoint_path=ckpt,
        progress=False,
    )
    assert history.stop_reason == "early_stopping"
    assert history.num_epochs == history.best_epoch + 1 + 3
    assert history.val_loss[-1] > history.best_val_loss  # the last weights were worse ...
    again = tr._evaluate(model, val, 1024, tr.LossWeights(), torch.device("cpu"))["loss"]
    assert again == pytest.approx(history.best_val_loss, rel=1e-5)  # ... and were thrown away

    # the checkpoint written by fit holds the same (best) weights and loads onto the CPU
    fresh = TinyNet()
    meta = tr.load_weights(fresh, ckpt, map_location="cpu")
    assert meta["epoch"] == history.best_epoch
    assert meta["val_loss"] == pytest.approx(history.best_val_loss)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    np.testing.assert_array_equal(
        tr.predict(model, val)["returns"], tr.predict(fresh, val)["returns"]
    )


def test_history_frame_and_learning_is_real() -> None:
    tr.seed_everything(2)
    train, val = make_data(512, seed=3), make_data(128, seed=4)
    history = tr.fit(TinyNet(), train, val, num_epochs=8, batch_size=64, lr=5e-3, progress=False)
    frame = history.to_frame()
    assert list(frame.index) == list(range(1, history.num_epochs + 1))
    assert frame["best"].sum() == 1 and frame["best"].idxmax() == history.best_epoch + 1
    assert history.val_loss[history.best_epoch] < history.val_loss[0] or history.best_epoch == 0
    assert min(history.val_loss) < 0.8 * history.val_loss[0]
    assert history.val_accuracy[history.best_epoch] > 0.8


def test_same_seed_same_weights() -> None:
    def run(seed: int) -> dict[str, torch.Tensor]:
        tr.seed_everything(seed)
        model = TinyNet()
        tr.fit(model, make_data(200, seed=5), num_epochs=2, batch_size=32, progress=False)
        return model.state_dict()

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_cosine_schedule_with_restarts() -> None:
    tr.seed_everything(3)
    data = make_data(64, seed=6)
    one_cycle = tr.fit(
        TinyNet(), data, num_epochs=4, batch_size=16, lr=1e-2, patience=None, progress=False
    )
    assert all(x > y for x, y in zip(one_cycle.lr, one_cycle.lr[1:], strict=False))
    assert one_cycle.lr[-1] < 0.1 * 1e-2
    restarts = tr.fit(
        TinyNet(), data, num_epochs=4, batch_size=16, lr=1e-2, restart_epochs=2, progress=False
    )
    assert restarts.lr[1] < 0.2 * 1e-2 and restarts.lr[2] > 0.5 * 1e-2  # back up after epoch 2


def test_time_budget_stops_training(capsys) -> None:
    tr.seed_everything(4)
    history = tr.fit(
        TinyNet(),
        make_data(256, seed=7),
        make_data(64, seed=8),
        num_epochs=50,
        batch_size=8,
        max_seconds=0.0,
        progress=False,
    )
    assert history.stop_reason == "time_budget" and history.num_epochs == 1
    assert capsys.readouterr().err == ""  # progress=False prints nothing
    tr.fit(TinyNet(), make_data(32, seed=9), num_epochs=1, batch_size=8, progress=True)
    assert "batch" in capsys.readouterr().err


def test_predict_outputs_and_mode() -> None:
    model = TinyNet()
    data = make_data(70, seed=10)
    model.train()
    out = tr.predict(model, {k: v.numpy() for k, v in data.windows.items()}, batch_size=32)
    assert model.training  # the mode is restored
    assert out["returns"].shape == (70, 2) and out["returns"].dtype == np.float32
    np.testing.assert_allclose(
        out["direction_prob"],
        1 / (1 + np.exp(-out["direction_logits"].astype(np.float64))),
        rtol=1e-5,
    )


def test_device_choice_and_checkpoint_mismatch(tmp_path) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert tr.resolve_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            tr.resolve_device("cuda")
    path = tr.save_checkpoint(TinyNet(n_horizons=2), tmp_path / "a.pt", note="x")
    with pytest.raises(RuntimeError, match="does not fit"):
        tr.load_weights(TinyNet(n_horizons=3), path)
    with pytest.raises(FileNotFoundError):
        tr.load_weights(TinyNet(), tmp_path / "missing.pt")


def test_fit_checkpoint_of_a_library_model_rebuilds_from_the_file(tmp_path) -> None:
    from msa_lib import model as mm

    tr.seed_everything(5)
    rng = np.random.default_rng(11)
    windows = {"1min": rng.normal(size=(96, 8, 3)), "1h": rng.normal(size=(96, 4, 2))}
    y = rng.normal(size=(96, 2))
    data = tr.WindowDataset(windows, y, horizons=["15min", "1h"])
    cfg = mm.config_from_windows(
        windows, d_model=8, n_heads=2, n_cross_heads=2, horizons=("15min", "1h")
    )
    net = mm.build_model("multiscale", cfg)
    history = tr.fit(
        net,
        data,
        data,
        num_epochs=2,
        batch_size=32,
        checkpoint_path=tmp_path / "n.pt",
        progress=False,
    )
    rebuilt, extra = mm.load_checkpoint(tmp_path / "n.pt", cfg)
    assert extra["epoch"] == history.best_epoch
    np.testing.assert_allclose(
        tr.predict(net, data)["returns"], tr.predict(rebuilt, data)["returns"], rtol=1e-6
    )


# -- preparation and cache ------------------------------------------------------------------------
def _toy_split(n: int = 40):
    import pandas as pd

    times = pd.date_range("2024-01-01 00:05", periods=n, freq="5min", tz="UTC")
    rng = np.random.default_rng(12)
    windows = {"1min": rng.normal(3.0, 2.0, size=(n, 4, 2)).astype(np.float32)}
    targets = pd.DataFrame({"15min": rng.normal(0.001, 0.01, size=n)}, index=times)
    splits = {"train": times[:20], "val": times[24:30], "test": times[34:]}
    return windows, times, targets, splits


def test_prepare_datasets_scales_with_training_statistics_only() -> None:
    windows, times, targets, splits = _toy_split()
    before = windows["1min"].copy()
    prepared = tr.prepare_datasets(windows, times, targets, splits)
    np.testing.assert_array_equal(windows["1min"], before)  # input untouched
    train_raw = windows["1min"][:20].reshape(-1, 2).astype(np.float64)
    mean, std = train_raw.mean(axis=0), train_raw.std(axis=0)
    expected_val = (windows["1min"][24:30] - mean) / std
    np.testing.assert_allclose(prepared.val.windows["1min"].numpy(), expected_val, rtol=1e-5)
    y_train = targets["15min"].to_numpy()[:20]
    assert prepared.target_scale[0] == pytest.approx(y_train.std())
    y_test = targets["15min"].to_numpy()[34:]
    np.testing.assert_allclose(
        prepared.test.returns.numpy()[:, 0], y_test / y_train.std(), rtol=1e-5
    )
    np.testing.assert_array_equal(
        prepared.test.direction.numpy()[:, 0], (y_test > 0).astype(np.float32)
    )
    np.testing.assert_allclose(
        prepared.unscale(prepared.test.returns.numpy())[:, 0], y_test, rtol=1e-5
    )
    assert prepared.horizons == ["15min"] and len(prepared.train) == 20


def test_prepare_datasets_names_a_missing_time() -> None:
    windows, times, targets, splits = _toy_split()
    targets = targets.drop(times[36])
    with pytest.raises(ValueError, match="test decision time 2024-01-01 03:05:00.*no targets"):
        tr.prepare_datasets(windows, times, targets, splits)


def test_fit_cached_trains_once_then_loads(tmp_path) -> None:
    train, val = make_data(128, seed=13), make_data(64, seed=14)
    kwargs = dict(num_epochs=2, batch_size=32, progress=False)
    first, h1, cached1, path1 = tr.fit_cached(
        TinyNet, train, val, name="tiny", cache_dir=tmp_path, **kwargs
    )
    second, h2, cached2, path2 = tr.fit_cached(
        TinyNet, train, val, name="tiny", cache_dir=tmp_path, **kwargs
    )
    assert (cached1, cached2) == (False, True)
    assert path1 == path2 and path1.parent == tmp_path and path1.name.startswith("tiny-")
    assert h2.val_loss == h1.val_loss and h2.best_epoch == h1.best_epoch
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    )
    # without the cache the same seed gives the same weights
    third, _, cached3, path3 = tr.fit_cached(
        TinyNet, train, val, name="tiny", cache_dir=None, **kwargs
    )
    assert not cached3 and path3 is None
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), third.state_dict().values(), strict=True)
    )
    # another setting or other data: a new entry
    _, _, cached4, _ = tr.fit_cached(
        TinyNet, train, val, name="tiny", cache_dir=tmp_path, **{**kwargs, "lr": 5e-3}
    )
    _, _, cached5, _ = tr.fit_cached(
        TinyNet, make_data(128, seed=15), val, name="tiny", cache_dir=tmp_path, **kwargs
    )
    assert not cached4 and not cached5
    assert len(list(tmp_path.glob("tiny-*.pt"))) == 3


def test_default_cache_dir_is_the_repository_build_folder_from_any_subfolder(tmp_path, monkeypatch):
    from msa_lib.train import default_cache_dir

    repo = Path(__file__).resolve().parents[1]
    assert default_cache_dir(repo / "notebooks") == repo / "_build" / "cache"
    assert default_cache_dir(repo / "_build" / "student") == repo / "_build" / "cache"
    monkeypatch.setenv("MSA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert default_cache_dir(tmp_path) == tmp_path / "elsewhere" / "models"


def test_fit_cached_retrains_when_the_training_code_changes(tmp_path, monkeypatch) -> None:
    train, val = make_data(64, seed=16), make_data(32, seed=17)
    kwargs = dict(name="tiny", cache_dir=tmp_path, num_epochs=1, batch_size=32, progress=False)
    _, _, cached1, path1 = tr.fit_cached(TinyNet, train, val, **kwargs)
    monkeypatch.setattr(tr, "_library_fingerprint", lambda: "edited-library")
    _, _, cached2, path2 = tr.fit_cached(TinyNet, train, val, **kwargs)
    assert (cached1, cached2) == (False, False) and path1 != path2
    assert set(tr._TRAINING_MODULES) >= {"data.py", "datasets.py", "model.py", "train.py"}
