"""Tests of msa_lib.train (the loss, one epoch, early stopping, the loop, prediction), on tiny
stand-in models so that they run in a few seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_models import TinyNet, make_data

from msa_lib import seed_everything
from msa_lib import train as tr
from msa_lib.checkpoints import load_checkpoint
from msa_lib.prepare import WindowDataset

torch.set_num_threads(1)


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
def test_fit_epoch_weighs_every_sample_once_and_keeps_to_the_deadline() -> None:
    seed_everything(6)
    data, model = make_data(70, seed=18), TinyNet()  # 70 rows: batches of 32, 32 and 6
    before = [p.detach().clone() for p in model.parameters()]
    frozen = torch.optim.AdamW(model.parameters(), lr=0.0)  # no step moves the weights
    ticks = []
    loss, out_of_time = tr.fit_epoch(model, data, frozen, None, epoch=0, batch_size=32,
                                     weights=tr.LossWeights(), grad_clip=1.0,
                                     device=torch.device("cpu"), on_batch=lambda: ticks.append(1))
    assert not out_of_time and len(ticks) == 3 and model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    whole = tr.evaluate_loss(model, data, 1024, tr.LossWeights(), torch.device("cpu"))["loss"]
    assert loss == pytest.approx(whole, rel=1e-5)  # the mean per sample, not per batch
    ticks.clear()
    _, out_of_time = tr.fit_epoch(model, data, frozen, None, epoch=0, batch_size=32,
                                  weights=tr.LossWeights(), grad_clip=None,
                                  device=torch.device("cpu"), deadline=0.0,
                                  on_batch=lambda: ticks.append(1))
    assert out_of_time and len(ticks) == 1  # the batch that passed the deadline ends the epoch


def test_early_stopping_keeps_a_copy_of_the_best_weights() -> None:
    model = torch.nn.Linear(1, 1)
    stopper = tr.EarlyStopping(patience=2)
    for loss, weight, improved in ((3.0, 1.0, True), (2.0, 2.0, True), (2.5, 3.0, False),
                                   (2.0, 4.0, False)):  # an equal loss is not an improvement
        with torch.no_grad():
            model.weight.fill_(weight)
        assert stopper.update(loss, model) is improved
        assert stopper.should_stop is (weight == 4.0)
    assert (stopper.best_epoch, stopper.best_loss) == (1, 2.0)
    stopper.restore_best(model)
    assert model.weight.item() == 2.0  # the copy, not the weights the model held later
    never = tr.EarlyStopping(patience=None)
    for loss in range(10):  # worse and worse
        never.update(float(loss), model)
    assert not never.should_stop and never.best_epoch == 0
    with pytest.raises(ValueError, match="patience must be >= 1"):
        tr.EarlyStopping(patience=0)


def test_tiny_model_overfits_a_tiny_batch() -> None:
    seed_everything(0)
    rng = np.random.default_rng(0)
    data = WindowDataset(
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
    assert np.mean((pred["returns"] - data.scaled_returns.numpy()) ** 2) < 0.05
    assert ((pred["direction_logits"] > 0) == data.up.numpy().astype(bool)).all()


def test_early_stopping_restores_the_best_weights(tmp_path) -> None:
    seed_everything(1)
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
    again = tr.evaluate_loss(model, val, 1024, tr.LossWeights(), torch.device("cpu"))["loss"]
    assert again == pytest.approx(history.best_val_loss, rel=1e-5)  # ... and were thrown away

    # the checkpoint written by fit holds the same (best) weights and loads onto the CPU
    fresh, meta = load_checkpoint(ckpt, model=TinyNet(), map_location="cpu")
    assert meta["epoch"] == history.best_epoch
    assert meta["val_loss"] == pytest.approx(history.best_val_loss)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    np.testing.assert_array_equal(
        tr.predict(model, val)["returns"], tr.predict(fresh, val)["returns"]
    )


def test_history_frame_and_learning_is_real() -> None:
    seed_everything(2)
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
        seed_everything(seed)
        model = TinyNet()
        tr.fit(model, make_data(200, seed=5), num_epochs=2, batch_size=32, progress=False)
        return model.state_dict()

    a, b, c = run(7), run(7), run(8)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_cosine_schedule_with_restarts() -> None:
    seed_everything(3)
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
    seed_everything(4)
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


def test_device_choice() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert tr.resolve_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            tr.resolve_device("cuda")


def test_fit_checkpoint_of_a_library_model_rebuilds_from_the_file(tmp_path) -> None:
    from msa_lib import model as mm

    seed_everything(5)
    rng = np.random.default_rng(11)
    windows = {"1min": rng.normal(size=(96, 8, 3)), "1h": rng.normal(size=(96, 4, 2))}
    y = rng.normal(size=(96, 2))
    data = WindowDataset(windows, y, horizons=["15min", "1h"])
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
    rebuilt, extra = load_checkpoint(tmp_path / "n.pt", cfg)
    assert extra["epoch"] == history.best_epoch
    np.testing.assert_allclose(
        tr.predict(net, data)["returns"], tr.predict(rebuilt, data)["returns"], rtol=1e-6
    )
