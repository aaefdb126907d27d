"""Tests of msa_lib.cache: a network is trained once and loaded while nothing it depends on changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import ES, TinyNet, make_data

from msa_lib import cache, user_cache_dir
from msa_lib.cache import fit_cached, network_cache_dir
from msa_lib.model import build_model
from msa_lib.prepare import prepare_experiment
from msa_lib.train import predict

torch.set_num_threads(1)


def test_fit_cached_trains_once_then_loads(tmp_path) -> None:
    train, val = make_data(128, seed=13), make_data(64, seed=14)
    kwargs = dict(num_epochs=2, batch_size=32, progress=False)
    first, h1, cached1, path1 = fit_cached(
        TinyNet, train, val, name="tiny", cache_dir=tmp_path, **kwargs
    )
    second, h2, cached2, path2 = fit_cached(
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
    third, _, cached3, path3 = fit_cached(
        TinyNet, train, val, name="tiny", cache_dir=None, **kwargs
    )
    assert not cached3 and path3 is None
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), third.state_dict().values(), strict=True)
    )
    # another setting or other data: a new entry
    _, _, cached4, _ = fit_cached(
        TinyNet, train, val, name="tiny", cache_dir=tmp_path, **{**kwargs, "lr": 5e-3}
    )
    _, _, cached5, _ = fit_cached(
        TinyNet, make_data(128, seed=15), val, name="tiny", cache_dir=tmp_path, **kwargs
    )
    assert not cached4 and not cached5
    assert len(list(tmp_path.glob("tiny-*.pt"))) == 3


def test_network_cache_dir_is_the_repository_build_folder_from_any_subfolder(tmp_path, monkeypatch):
    repo = Path(__file__).resolve().parents[1]
    assert network_cache_dir(repo / "notebooks") == repo / "_build" / "cache"
    assert network_cache_dir(repo / "_build" / "student") == repo / "_build" / "cache"
    monkeypatch.setenv("MSA_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert network_cache_dir(tmp_path) == tmp_path / "elsewhere" / "models"
    # one rule for every cache outside a checkout: $MSA_CACHE_DIR, else $XDG_CACHE_HOME/msa_lib
    monkeypatch.delenv("MSA_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "msa_lib"
    assert network_cache_dir(tmp_path) == tmp_path / "xdg" / "msa_lib" / "models"


def test_fit_cached_retrains_when_the_training_code_changes(tmp_path, monkeypatch) -> None:
    train, val = make_data(64, seed=16), make_data(32, seed=17)
    kwargs = dict(name="tiny", cache_dir=tmp_path, num_epochs=1, batch_size=32, progress=False)
    _, _, cached1, path1 = fit_cached(TinyNet, train, val, **kwargs)
    monkeypatch.setattr(cache, "_library_fingerprint", lambda: "edited-library")
    _, _, cached2, path2 = fit_cached(TinyNet, train, val, **kwargs)
    assert (cached1, cached2) == (False, False) and path1 != path2
    assert set(cache._TRAINING_MODULES) >= {"data.py", "datasets.py", "model.py", "train.py",
                                            "experiment.py", "prepare.py", "checkpoints.py"}


def test_fit_experiment_is_fit_cached_keyed_by_the_experiment(tmp_path) -> None:
    tiny = ES.replace(model={"d_model": 8, "n_heads": 2, "n_cross_heads": 2},
                      train={"num_epochs": 1, "batch_size": 128})
    data = prepare_experiment(tiny)
    first = cache.fit_experiment(tiny, data, cache_dir=tmp_path)
    # settings that do not change the weights (the backtest, the output, speed) share the file
    same = tiny.replace(backtest={"cost_bps": 5.0}, output={"run_name": "x"},
                        train={"threads": 1, "progress": False})
    second = cache.fit_experiment(same, data, cache_dir=tmp_path)
    assert (first.from_cache, second.from_cache) == (False, True) and first.path == second.path
    assert first.path.name.startswith("multiscale-")
    # the same network as building, seeding and fitting by hand
    by_hand = fit_cached(lambda: build_model("multiscale", tiny.model_config(
        data.train.windows)), data.train, data.val, name="multiscale", cache_dir=None,
        seed=tiny.seed, **tiny.fit_kwargs())
    torch.testing.assert_close(predict(by_hand.model, data.test)["returns"],
                               predict(second.model, data.test)["returns"], rtol=0, atol=0)
    # another kind on the same data and experiment: its own file, named after it
    single = cache.fit_experiment(tiny, data, kind="single_scale", cache_dir=tmp_path,
                                  config=tiny.model_config(data.train.windows, single_scale="5min"))
    assert not single.from_cache and single.path.name.startswith("single_scale-5min-")


def test_fit_experiments_in_two_processes_equals_one_at_a_time(tmp_path) -> None:
    """Workers train into the cache and the parent loads: the same weights as fitting in turn."""
    tiny = ES.replace(model={"d_model": 8, "n_heads": 2, "n_cross_heads": 2},
                      train={"num_epochs": 1, "batch_size": 128})
    data = prepare_experiment(tiny)
    base = tiny.model_config(data.train.windows)
    jobs = {"net": ("multiscale", base), "lstm": ("lstm", base),
            "fine only": ("single_scale", base.replace(single_scale=base.scale_names[0]))}
    side_by_side = cache.fit_experiments(tiny, data, jobs, workers=2, cache_dir=tmp_path / "a")
    assert list(side_by_side) == list(jobs)
    assert not any(f.from_cache for f in side_by_side.values())  # trained by this call
    again = cache.fit_experiments(tiny, data, jobs, workers=2, cache_dir=tmp_path / "a")
    assert all(f.from_cache for f in again.values())
    for label, (kind, config) in jobs.items():
        alone = cache.fit_experiment(tiny, data, kind=kind, config=config, cache_dir=None)
        torch.testing.assert_close(predict(alone.model, data.test)["returns"],
                                   predict(side_by_side[label].model, data.test)["returns"],
                                   rtol=0, atol=0)
    with pytest.raises(ValueError, match="cache_dir"):
        cache.fit_experiments(tiny, data, jobs, cache_dir=None)
