"""Tests of msa_lib.experiment: one definition of an experiment, checked in one place, shared by the
chapters, the command line and the benchmarks."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pandas as pd
import pytest
from tiny_models import ES

from msa_lib.cache import fit_experiment
from msa_lib.datasets import MarketParams
from msa_lib.experiment import (
    COURSE,
    EURUSD_1H,
    ConfigError,
    Experiment,
    LossWeights,
    ScaleSpec,
    load_experiment,
    save_experiment,
)
from msa_lib.prepare import prepare_experiment

ROOT = Path(__file__).resolve().parents[1]


def test_the_course_default_is_what_the_training_chapters_used() -> None:
    # chapters 05-08 train with these values: their numbers depend on them. The 1-minute and
    # 5-minute windows span 30 minutes, the market's reaction delay (no window holds a burst and its
    # jump), and no horizon is longer than the delay (every jump inside a horizon is announced)
    assert COURSE == Experiment()
    assert COURSE.lookbacks == {"1min": 30, "5min": 6, "1h": 12, "1D": 7}
    assert COURSE.horizons == ("5min", "15min", "30min")
    delay = pd.Timedelta(minutes=MarketParams().reaction_delay)
    for fine in ("1min", "5min"):
        assert COURSE.lookbacks[fine] * pd.Timedelta(fine) <= delay, fine
    assert max(pd.Timedelta(h) for h in COURSE.horizons) <= delay
    assert (COURSE.seed, COURSE.data.days, COURSE.data.market_seed) == (0, 120, 0)
    assert COURSE.features.every == "5min"
    assert COURSE.feature_kwargs()["1D"] == {"lags": (1, 2, 5), "vol_windows": (5,),
                                              "ma_windows": (5,), "volume_window": 5,
                                              "rsi_window": 5}
    assert COURSE.feature_kwargs()["1min"] == {}
    assert (COURSE.model.d_model, COURSE.model.dropout) == (32, 0.2)
    assert COURSE.fit_kwargs() == {"num_epochs": 12, "batch_size": 256, "lr": 3e-3,
                                   "weight_decay": 0.05, "loss_weights": LossWeights(1.0, 1.0),
                                   "patience": 4, "max_seconds": None}
    assert EURUSD_1H.lookbacks == {"1h": 24, "4h": 12, "1D": 10}
    assert EURUSD_1H.model == COURSE.model and EURUSD_1H.train == COURSE.train


def test_replace_changes_a_copy_and_is_checked() -> None:
    changed = COURSE.replace(seed=3, train={"num_epochs": 2}, **{"model.d_model": 64})
    assert (changed.seed, changed.train.num_epochs, changed.model.d_model) == (3, 2, 64)
    assert changed.train.batch_size == COURSE.train.batch_size  # the rest of the section is kept
    assert (COURSE.seed, COURSE.train.num_epochs, COURSE.model.d_model) == (0, 12, 32)  # untouched
    section = COURSE.replace(train=COURSE.train.replace(lr=0.01))
    assert section.train.lr == 0.01
    with pytest.raises(dataclasses.FrozenInstanceError):
        COURSE.seed = 1  # type: ignore[misc]
    with pytest.raises(ConfigError, match="model.n_heads: 4 does not divide d_model=10"):
        COURSE.replace(model={"d_model": 10})
    with pytest.raises(ConfigError, match="train.num_epoch: unknown key; known keys here are "
                                          "num_epochs, batch_size"):
        COURSE.replace(train={"num_epoch": 2})
    with pytest.raises(ConfigError, match="trian: unknown key"):
        COURSE.replace(trian={})
    longer = COURSE.with_lookbacks({"1min": 60})
    assert longer.lookbacks == {"1min": 60, "5min": 6, "1h": 12, "1D": 7}
    assert longer.features.scale("1D") == COURSE.features.scale("1D")  # feature windows kept
    with pytest.raises(ConfigError, match=r"features.scales: no scale '2min'; the scales are"):
        COURSE.with_lookbacks({"2min": 5})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ScaleSpec("1min", 0), "lookback: must be >= 1, got 0"),
        (lambda: ScaleSpec("fast", 5), "name: 'fast' is not a duration"),
        (lambda: ScaleSpec("1D", 5, vol_windows=(1,)), "vol_windows: a standard deviation"),
        (lambda: LossWeights(returns=0.0, direction=0.0), "returns/direction: loss weights"),
        (lambda: COURSE.replace(seed=-1), "seed: must be in"),
        (lambda: COURSE.replace(data={"days": 0}), "data.days: must be >= 1, got 0"),
        (lambda: COURSE.replace(data={"source": "file"}), "data.path: source 'file' needs a path"),
        (lambda: COURSE.replace(features={"horizons": ("5min", "soon")}),
         r"features.horizons\[1\]: 'soon' is not a duration"),
        (lambda: COURSE.replace(features={"horizons": "1h"}),
         "features.horizons: expected a list of str, got str '1h'"),
        (lambda: COURSE.replace(features={"val_frac": 0.5, "test_frac": 0.5}),
         "features.val_frac \\+ test_frac: must be < 1"),
        (lambda: COURSE.replace(features={"scales": (ScaleSpec("1h", 5), ScaleSpec("1min", 5))}),
         "features.scales: list them finest first"),
        (lambda: COURSE.replace(**{"features.scales": [{"name": "1min", "lookback": 2.5}]}),
         r"features.scales\[0\].lookback: expected an integer, got float 2.5"),
        (lambda: COURSE.replace(model={"kind": "gru"}), "model.kind: expected 'multiscale'"),
        (lambda: COURSE.replace(train={"lr": "fast"}), "train.lr: expected a number"),
        (lambda: COURSE.replace(train={"loss_weights": {"horizons": (1.0, 2.0)}}),
         r"train.loss_weights.horizons: 2 weights for 3 horizons"),
        (lambda: COURSE.replace(backtest={"horizon": "4h"}), "backtest.horizon: '4h' is not one of"),
    ],
)
def test_validation_errors_name_the_field(build, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_yaml_round_trips_into_the_same_object(tmp_path) -> None:
    for experiment in (COURSE, EURUSD_1H, ES.replace(data={"start": "2024-02-01"})):
        path = save_experiment(experiment, tmp_path / "e.yaml", header="a run")
        assert path.read_text().startswith("# a run\n")
        assert load_experiment(path) == experiment
    # YAML's own types: lists for tuples, dates for date strings
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  start: 2024-02-01\nfeatures:\n  horizons: [5min, 1h]\n")
    loaded = load_experiment(path, {"train.num_epochs": 2})
    assert loaded.data.start == "2024-02-01" and loaded.horizons == ("5min", "1h")
    assert loaded == COURSE.replace(data={"start": "2024-02-01"}, train={"num_epochs": 2},
                                    features={"horizons": ("5min", "1h")})
    with pytest.raises(ConfigError, match=f"config file {path}: train.num_epochs: expected an "
                                          "integer"):
        load_experiment(path, {"train.num_epochs": "many"})


def test_configs_default_yaml_is_the_course_experiment() -> None:
    assert load_experiment(ROOT / "configs" / "default.yaml") == COURSE


def test_a_lookback_or_horizon_changed_in_one_place_reaches_data_and_cache(tmp_path) -> None:
    tiny = ES.replace(model={"d_model": 8, "n_heads": 2, "n_cross_heads": 2},
                      train={"num_epochs": 1, "batch_size": 128})
    base = fit_experiment(tiny, prepare_experiment(tiny), cache_dir=tmp_path)
    for changed in (tiny.with_lookbacks({"1min": 12}),
                    tiny.replace(features={"horizons": ("15min", "1h")})):
        data = prepare_experiment(changed)
        assert {s: w.shape[1] for s, w in data.train.windows.items()} == changed.lookbacks
        assert data.horizons == list(changed.horizons)
        run = fit_experiment(changed, data, cache_dir=tmp_path)
        assert not run.from_cache and run.path != base.path
        assert run.model.config.horizons == changed.horizons
        assert run.model.config.scale("1min").lookback == changed.lookbacks["1min"]


@pytest.mark.parametrize("chapter", ["05_training", "06_prediction_and_interpretation",
                                     "07_backtest", "08_case_study"])
def test_chapters_state_only_what_they_change(chapter) -> None:
    text = (ROOT / "notebooks" / f"{chapter}.md").read_text()
    parameters = text.split(":tags: [parameters]", 1)[1].split("```", 1)[0]
    assert re.search(r"EXPERIMENT = (COURSE|EURUSD_1H)\b", parameters), parameters
    for typed_again in ("LOOKBACKS =", "HORIZONS =", "DAYS =", "D_MODEL =", "NUM_EPOCHS ="):
        assert typed_again not in parameters, f"{chapter} types {typed_again} again"
    assert re.search(r"fit_experiments?\(EXPERIMENT", text)  # one network, or several side by side
    if chapter != "08_case_study":  # 08 prepares walk-forward folds itself
        assert "prepare_experiment(EXPERIMENT" in text


@pytest.mark.parametrize("bad, key", [({"threshold": 0.4}, "backtest.threshold: must lie in [0.5, 1]"),
                                      ({"kelly_fraction": 0.0}, "backtest.kelly_fraction: must lie"),
                                      ({"max_position": -1.0}, "backtest.max_position: must be"),
                                      ({"cost_bps": -1.0}, "cost_bps/delay")])
def test_backtest_settings_are_checked_by_the_backtests_own_sizing_rule(bad, key):
    with pytest.raises(ConfigError) as caught:
        COURSE.replace(backtest=bad)
    assert key in str(caught.value)


def test_backtest_section_builds_the_sizing_rule_it_describes():
    from msa_lib.backtest import SizingRule

    section = COURSE.replace(backtest={"method": "kelly", "threshold": 0.6}).backtest
    assert section.sizing_rule() == SizingRule(method="kelly", threshold=0.6)
