"""The command line: config validation, end-to-end runs on bundled data, the no-overwrite rule,
and one-line errors for bad input."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from msa_lib import experiment
from msa_lib.bars_io import read_bars
from msa_lib.cli import load_config, main
from msa_lib.datasets import load_dataset
from msa_lib.experiment import COURSE, ConfigError, Experiment

ROOT = Path(__file__).resolve().parents[1]

# A tiny run: the bundled E-mini 1-minute bars (under two days), two scales, a 2.8k-parameter
# model, one epoch on one thread. Trains in well under a second.
TINY = {
    "seed": 0,
    "data": {"source": "bundled", "name": "es_1min"},
    "features": {
        "scales": [
            {"name": "1min", "lookback": 16},
            {"name": "5min", "lookback": 8, "lags": [1, 2], "vol_windows": [3], "ma_windows": [3],
             "volume_window": 3, "rsi_window": 3},
        ],
        "every": "5min",
        "horizons": ["15min", "30min"],
    },
    "model": {"d_model": 8, "n_heads": 2, "n_cross_heads": 2},
    "train": {"num_epochs": 1, "batch_size": 128, "threads": 1, "progress": False},
    "backtest": {"horizon": "30min", "cost_bps": 2.0},
}


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    """A working folder holding tiny.yaml; the commands run from there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    return tmp_path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run shared by the tests that only read it."""
    folder = tmp_path_factory.mktemp("trained")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    old = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["train", "--config", "tiny.yaml"]) == 0
        assert main(["predict", "--config", "tiny.yaml"]) == 0
        assert main(["backtest", "--config", "tiny.yaml"]) == 0
    finally:
        os.chdir(old)
    return folder / "runs" / "tiny"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --------------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------------
def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_default_yaml_is_valid_and_documents_every_field():
    text = (ROOT / "configs" / "default.yaml").read_text()
    tree = yaml.safe_load(text)
    # the file holds the course's experiment, so an install without the file behaves the same
    assert load_config(ROOT / "configs" / "default.yaml") == COURSE == Experiment()
    assert set(tree) == _fields(Experiment)
    for section in set(tree) - {"seed"}:
        assert set(tree[section]) == _fields(type(getattr(COURSE, section))), section
    assert set(tree["train"]["loss_weights"]) == _fields(experiment.LossWeights)
    # every key line carries a comment, except the scale entries (documented in the block above)
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "-", "volume_window")) and ":" in stripped:
            if not stripped.endswith(":"):
                assert "#" in stripped, f"undocumented key: {line}"


def test_missing_keys_take_the_defaults():
    assert Experiment.from_dict({}) == COURSE
    assert Experiment.from_dict({"train": {"num_epochs": 2}}).train.num_epochs == 2


@pytest.mark.parametrize(
    ("tree", "key"),
    [
        ({"train": {"epochs": 3}}, "train.epochs: unknown key"),
        ({"trian": {}}, "trian: unknown key"),
        ({"train": {"num_epochs": "5"}}, "train.num_epochs: expected an integer"),
        ({"train": {"num_epochs": True}}, "train.num_epochs: expected an integer"),
        ({"train": {"lr": "fast"}}, "train.lr: expected a number"),
        ({"model": {"gates": "yes"}}, "model.gates: expected true or false"),
        ({"data": {"source": "csv"}}, "data.source: expected 'simulate'"),
        ({"data": {"interval": 1}}, "data.interval: expected a string"),
        ({"features": {"scales": [{"name": "1min", "lookback": 2.5}]}},
         r"features.scales\[0\].lookback: expected an integer"),
        ({"features": {"scales": [{"name": "1min"}]}},
         r"features.scales\[0\].lookback: required key is missing"),
        ({"features": {"scales": [{"name": "1min", "lookback": 5, "window": 3}]}},
         r"features.scales\[0\].window: unknown key"),
        ({"features": {"horizons": ["15min", "soon"]}}, r"features.horizons\[1\]: 'soon'"),
        ({"features": {"scales": [{"name": "1h", "lookback": 5}, {"name": "1min", "lookback": 5}]}},
         "finest first"),
        ({"model": {"d_model": 10, "n_heads": 4}}, "model.n_heads: 4 does not divide"),
        ({"train": []}, "train: expected a mapping"),
        ({"backtest": {"horizon": "4h"}}, "backtest.horizon: '4h' is not one of"),
    ],
)
def test_invalid_configs_name_the_key(tree, key):
    with pytest.raises(ConfigError, match=key):
        Experiment.from_dict(tree)


def test_overrides_and_yaml_dates(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  start: 2024-02-01\n")  # YAML reads this as a date
    config = load_config(path, ["train.num_epochs=2", "features.horizons=[5min, 1h]"])
    assert config.data.start == "2024-02-01"
    assert config.train.num_epochs == 2
    assert config.features.horizons == ("5min", "1h")
    with pytest.raises(ConfigError, match="train.num_epochs: expected an integer"):
        load_config(path, ["train.num_epochs=many"])


def test_resolved_config_round_trips(trained):
    saved = load_config(trained / "config.yaml")
    assert saved == Experiment.from_dict(TINY)


# --------------------------------------------------------------------------------------------------
# end to end on bundled data
# --------------------------------------------------------------------------------------------------
def test_train_writes_a_complete_run_folder(trained):
    for name in ("model.pt", "config.yaml", "scalers.json", "metrics.json", "history.csv"):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["training"]["epochs"] == 1
    assert set(metrics["test"]) == {"15min", "30min"}
    splits = metrics["splits"]
    # chronological, purged by the longest horizon (30 minutes)
    assert pd.Timestamp(splits["train"]["last"]) + pd.Timedelta("30min") <= pd.Timestamp(
        splits["val"]["first"])
    assert pd.Timestamp(splits["val"]["last"]) + pd.Timedelta("30min") <= pd.Timestamp(
        splits["test"]["first"])
    for h, scores in metrics["test"].items():
        low, high = scores["accuracy_ci95"]
        assert low <= scores["direction_accuracy"] <= high, h
    scalers = json.loads((trained / "scalers.json").read_text())
    assert set(scalers["windows"]) == {"1min", "5min"}
    assert all(s > 0 for s in scalers["target_scale"].values())


def test_predict_covers_the_test_period_only(trained):
    frame = pd.read_csv(trained / "predictions.csv", index_col="time", parse_dates=["time"])
    metrics = json.loads((trained / "metrics.json").read_text())
    assert frame.index[0] >= pd.Timestamp(metrics["splits"]["test"]["first"])
    for h in ("15min", "30min"):
        assert frame[f"prob_up_{h}"].between(0, 1).all()
        assert np.isfinite(frame[f"forecast_{h}"]).all()
    # realised returns are the bars' own forward log returns
    bars = load_dataset("es_1min")
    t = frame.index[0]
    later = bars["close"].loc[: t + pd.Timedelta("15min")].iloc[-1]
    assert frame["realised_15min"].iloc[0] == pytest.approx(np.log(later / bars["close"].loc[t]))


def test_backtest_writes_table_and_figures(trained):
    folder = trained / "backtest"
    for name in ("metrics.csv", "metrics.json", "equity.png", "equity.html"):
        assert (folder / name).is_file(), name
    table = pd.read_csv(folder / "metrics.csv", index_col=0)
    assert list(table.columns) == ["model (30min, fixed)", "naive: sign of last 30min",
                                   "buy and hold"]
    assert {"sharpe", "max_drawdown", "win_rate", "profit_factor", "turnover"} <= set(table.index)
    assert "<script" in (folder / "equity.html").read_text()


def test_prediction_on_a_user_file_matches_the_run_data(trained, tmp_path, capsys):
    # the same bars written to a CSV give the same forecasts at the same times
    path = tmp_path / "es.csv"
    load_dataset("es_1min").to_csv(path)
    out = tmp_path / "p.csv"
    assert main(["predict", "--run", str(trained), "--data", str(path), "--out", str(out)]) == 0
    mine = pd.read_csv(out, index_col="time", parse_dates=["time"])
    ref = pd.read_csv(trained / "predictions.csv", index_col="time", parse_dates=["time"])
    common = ref.index.intersection(mine.index)
    assert len(common) == len(ref)
    np.testing.assert_allclose(mine.loc[common, "prob_up_15min"], ref["prob_up_15min"], rtol=1e-5)


def test_data_command_writes_a_cache_file_that_reads_back(tiny, capsys):
    assert main(["data", "--config", "tiny.yaml"]) == 0
    out = tiny / "data" / "es_1min.csv.gz"
    bars = read_bars(out)
    pd.testing.assert_frame_equal(bars, load_dataset("es_1min"), check_freq=False,
                                  check_index_type=False)
    assert main(["data", "--config", "tiny.yaml"]) == 1  # exists: refused
    assert "--force" in _one_error_line(capsys)
    assert main(["data", "--config", "tiny.yaml", "--force"]) == 0


# --------------------------------------------------------------------------------------------------
# never overwrite without --force
# --------------------------------------------------------------------------------------------------
def test_run_folder_is_not_overwritten_without_force(tiny, capsys):
    assert main(["train", "--config", "tiny.yaml"]) == 0
    run = tiny / "runs" / "tiny"
    before = (run / "model.pt").read_bytes()
    (run / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["train", "--config", "tiny.yaml", "--set", "seed=1"]) == 1
    line = _one_error_line(capsys)
    assert "already exists" in line and "--force" in line
    assert (run / "model.pt").read_bytes() == before
    assert (run / "notes.txt").read_text() == "mine"
    assert main(["train", "--config", "tiny.yaml", "--set", "seed=1", "--force"]) == 0
    assert (run / "model.pt").read_bytes() != before
    assert not (run / "notes.txt").exists()
    # predictions too
    assert main(["predict", "--config", "tiny.yaml"]) == 0
    assert main(["predict", "--config", "tiny.yaml"]) == 1
    assert "predictions file" in _one_error_line(capsys)


def test_resume_continues_a_run_and_refuses_another_config(tiny, capsys):
    """A run cut short (here by its time budget) continues with --resume from the state in its
    folder; a state written by another network config is refused, naming both configs. (That a
    resumed run takes exactly the uninterrupted run's steps is tested on fit itself.)"""
    two = ["--config", "tiny.yaml", "--set", "train.num_epochs=2", "--run", "cut"]
    assert main(["train", *two, "--set", "train.max_seconds=0.001"]) == 0
    cut = json.loads((tiny / "cut" / "metrics.json").read_text())["training"]
    assert (cut["epochs"], cut["stop_reason"]) == (1, "time_budget")
    assert main(["train", *two]) == 1  # the folder exists: without --resume it is not touched
    assert "already exists" in _one_error_line(capsys)
    assert main(["train", *two, "--resume"]) == 0
    done = json.loads((tiny / "cut" / "metrics.json").read_text())["training"]
    assert (done["epochs"], done["stop_reason"]) == (2, "completed")
    assert len(pd.read_csv(tiny / "cut" / "history.csv")) == 2
    capsys.readouterr()
    assert main(["train", *two, "--resume", "--set", "model.d_model=16"]) == 1
    line = _one_error_line(capsys)
    assert "another model" in line and "d_model: 8 vs 16" in line


def test_force_does_not_delete_a_folder_that_is_not_a_run(tiny, capsys):
    victim = tiny / "runs" / "tiny"
    victim.mkdir(parents=True)
    (victim / "thesis.tex").write_text("precious")
    assert main(["train", "--config", "tiny.yaml", "--force"]) == 1
    assert "not a run folder" in _one_error_line(capsys)
    assert (victim / "thesis.tex").read_text() == "precious"


# --------------------------------------------------------------------------------------------------
# bad input: non-zero exit, one line naming the problem
# --------------------------------------------------------------------------------------------------
def test_bad_inputs_exit_with_one_line(tiny, capsys):
    (tiny / "notes.csv").write_text("a,b\n1,2\n3,4\n")
    (tiny / "broken.yaml").write_text("train:\n  num_epochs: [1\n")
    (tiny / "typo.yaml").write_text("train:\n  num_epoch: 1\n")
    cases = [
        (["train", "--config", "missing.yaml"], "config file missing.yaml does not exist"),
        (["train", "--config", "broken.yaml"], "invalid YAML at line"),
        (["train", "--config", "typo.yaml"], "train.num_epoch: unknown key"),
        (["train", "--config", "tiny.yaml", "--set", "data.source=file",
          "--set", "data.path=nowhere.csv"], "data file nowhere.csv does not exist"),
        (["data", "--config", "tiny.yaml", "--source", "file", "--path", "notes.csv"],
         "is not OHLCV bars"),
        (["data", "--config", "tiny.yaml", "--source", "bybit", "--start", "2024-01-02",
          "--end", "2024-01-01"], "empty range"),
        (["predict", "--config", "tiny.yaml"], "no run folder at runs/tiny"),
        (["train", "--config", "tiny.yaml", "--set", "features.scales=[{name: 1min, "
          "lookback: 5000}]"], "fewer than its lookback 5000"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        line = _one_error_line(capsys)
        assert line.startswith(f"msa {argv[0]}: error: "), line
        assert message in line, (argv, line)
    assert not (tiny / "runs").exists()  # nothing half-written


def test_every_subcommand_has_help(capsys):
    for command in ("data", "train", "predict", "backtest"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: msa {command}" in capsys.readouterr().out


def test_python_dash_m_entry_point(tmp_path):
    (tmp_path / "typo.yaml").write_text("model:\n  d_modle: 8\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "msa_lib", "train", "--config", "typo.yaml"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "msa train: error: config file typo.yaml: model.d_modle: unknown key; known keys here are "
        + ", ".join(f.name for f in dataclasses.fields(experiment.ModelSection))
    ]
