"""Tests of msa_lib.prepare: the dataset the loop reads, split and scaling with training statistics
only, and the whole pipeline from an experiment's bars to datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import ES

from msa_lib.data import make_targets
from msa_lib.datasets import load_dataset
from msa_lib.experiment import COURSE
from msa_lib.prepare import (
    WindowDataset,
    experiment_market,
    experiment_windows,
    load_bars,
    prepare_datasets,
    prepare_experiment,
)


# -- the dataset -------------------------------------------------------------------------------------
def test_dataset_shares_memory_and_leaves_inputs_alone() -> None:
    fast = np.zeros((5, 4, 3), dtype=np.float32)
    slow = np.ones((5, 2, 3), dtype=np.float64)  # float64: converted into a new buffer
    y = np.array([[0.5, -1.0]] * 5, dtype=np.float32)
    ds = WindowDataset({"fast": fast, "slow": slow}, y)
    assert np.shares_memory(ds.windows["fast"].numpy(), fast)
    assert slow.dtype == np.float64 and ds.windows["slow"].dtype == torch.float32
    assert ds.up[0].tolist() == [1.0, 0.0]  # from the sign of the returns
    windows, scaled_returns, up = ds[torch.tensor([0, 3])]
    assert windows["slow"].shape == (2, 2, 3) and scaled_returns.shape == (2, 2)
    assert up.tolist() == [[1.0, 0.0], [1.0, 0.0]]


def test_dataset_errors_name_the_scale_and_row() -> None:
    y = np.zeros((5, 1), dtype=np.float32)
    with pytest.raises(ValueError, match=r"windows\['slow'\] has 4 rows"):
        WindowDataset({"fast": np.zeros((5, 4, 3)), "slow": np.zeros((4, 2, 3))}, y)
    bad = np.zeros((5, 4, 3))
    bad[3, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"windows\['fast'\].*row 3"):
        WindowDataset({"fast": bad}, y)
    with pytest.raises(ValueError, match=r"\[N, L, F\]"):
        WindowDataset({"fast": np.zeros((5, 4))}, y)
    with pytest.raises(ValueError, match="scaled_returns must have shape .* N = 5"):
        WindowDataset({"fast": np.zeros((5, 4, 3))}, np.zeros((6, 1)))
    y[2, 0] = np.inf
    with pytest.raises(ValueError, match=r"scaled_returns holds NaN or inf \(first at row 2\)"):
        WindowDataset({"fast": np.zeros((5, 4, 3))}, y)
    y = np.zeros((5, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"up has shape \(5, 1\), scaled_returns has \(5, 2\)"):
        WindowDataset({"fast": np.zeros((5, 4, 3))}, y, np.zeros((5, 1)))
    with pytest.raises(ValueError, match="up labels must be 0 or 1"):
        WindowDataset({"fast": np.zeros((5, 4, 3))}, y, np.full((5, 2), 0.5))


# -- split and scale --------------------------------------------------------------------------------
def _toy_split(n: int = 40):
    times = pd.date_range("2024-01-01 00:05", periods=n, freq="5min", tz="UTC")
    rng = np.random.default_rng(12)
    windows = {"1min": rng.normal(3.0, 2.0, size=(n, 4, 2)).astype(np.float32)}
    targets = pd.DataFrame({"15min": rng.normal(0.001, 0.01, size=n)}, index=times)
    splits = {"train": times[:20], "val": times[24:30], "test": times[34:]}
    return windows, times, targets, splits


def test_prepare_datasets_scales_with_training_statistics_only() -> None:
    windows, times, targets, splits = _toy_split()
    before = windows["1min"].copy()
    prepared = prepare_datasets(windows, times, targets, splits)
    np.testing.assert_array_equal(windows["1min"], before)  # input untouched
    train_raw = windows["1min"][:20].reshape(-1, 2).astype(np.float64)
    mean, std = train_raw.mean(axis=0), train_raw.std(axis=0)
    expected_val = (windows["1min"][24:30] - mean) / std
    np.testing.assert_allclose(prepared.val.windows["1min"].numpy(), expected_val, rtol=1e-5)
    y_train = targets["15min"].to_numpy()[:20]
    assert prepared.target_scale[0] == pytest.approx(y_train.std())
    y_test = targets["15min"].to_numpy()[34:]
    np.testing.assert_allclose(
        prepared.test.scaled_returns.numpy()[:, 0], y_test / y_train.std(), rtol=1e-5
    )
    np.testing.assert_array_equal(
        prepared.test.up.numpy()[:, 0], (y_test > 0).astype(np.float32)
    )
    np.testing.assert_allclose(
        prepared.unscale(prepared.test.scaled_returns.numpy())[:, 0], y_test, rtol=1e-5
    )
    # the unscaled returns, by split, are the targets themselves
    pd.testing.assert_frame_equal(prepared.log_returns["test"], targets.loc[splits["test"]])
    assert prepared.horizons == ["15min"] and len(prepared.train) == 20


def test_prepare_datasets_names_a_missing_time() -> None:
    windows, times, targets, splits = _toy_split()
    targets = targets.drop(times[36])
    with pytest.raises(ValueError, match="test decision time 2024-01-01 03:05:00.*no targets"):
        prepare_datasets(windows, times, targets, splits)


# -- the whole pipeline ---------------------------------------------------------------------------
def test_prepare_experiment_follows_the_experiment() -> None:
    bars = load_dataset("es_1min")
    before = bars.copy()
    data = prepare_experiment(ES, bars)
    pd.testing.assert_frame_equal(bars, before)  # input untouched
    assert data.horizons == ["15min", "30min"]
    assert {s: tuple(w.shape[1:2]) for s, w in data.train.windows.items()} == {
        "1min": (16,), "5min": (8,)}
    # chronological, purged by the longest horizon, decisions every 5 minutes
    gap = pd.Timedelta("30min")
    assert data.times["train"][-1] + gap <= data.times["val"][0]
    assert data.times["val"][-1] + gap <= data.times["test"][0]
    assert (data.times["test"].minute % 5 == 0).all()
    # the targets are the bars' own forward log returns
    expected = make_targets(bars, data.times["test"], ["15min", "30min"])
    np.testing.assert_allclose(data.log_returns["test"].to_numpy(), expected.to_numpy())
    # without bars it loads them from the experiment's data section, with the same result
    again = prepare_experiment(ES)
    assert torch.equal(again.test.windows["1min"], data.test.windows["1min"])


def test_a_lookback_changes_the_windows_and_nothing_else() -> None:
    bars = load_dataset("es_1min")
    short, _ = experiment_windows(bars, ES)
    longer, _ = experiment_windows(bars, ES.with_lookbacks({"1min": 24}))
    assert short["1min"].shape[1] == 16 and longer["1min"].shape[1] == 24
    np.testing.assert_array_equal(short["1min"][-1, -16:], longer["1min"][-1, -16:])


def test_bars_of_every_source_and_clear_errors(tmp_path) -> None:
    course_bars, description = load_bars(COURSE.replace(data={"days": 2}))
    assert len(course_bars) == 2 * 1440 and description == "simulated market, 2 days, seed 0"
    market = experiment_market(COURSE.replace(data={"days": 2}))
    pd.testing.assert_frame_equal(market.bars, course_bars)
    with pytest.raises(ValueError, match="only 'simulate' has a synthetic market"):
        experiment_market(ES)
    path = tmp_path / "es.csv"
    load_dataset("es_1min").to_csv(path)
    from_file, description = load_bars(ES.replace(data={"source": "file", "path": str(path)}))
    assert description == f"file {path}" and len(from_file) == len(load_dataset("es_1min"))
    hourly = load_dataset("eurusd_1h").iloc[:500]
    with pytest.raises(ValueError, match="bars come every 0 days 01:00:00 but the finest scale is 1min"):
        experiment_windows(hourly, ES)
    with pytest.raises(ValueError, match="fewer than its lookback 5000"):
        experiment_windows(load_dataset("es_1min"), ES.with_lookbacks({"5min": 5000}))
