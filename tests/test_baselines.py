"""Tests of msa_lib.baselines: the naive rules against values worked out by hand; the trained
rivals built by kind, with the shared outputs, each reading what it should and learning a planted
rule; the non-neural rivals tuned within the same budget, beating chance only where they can."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import ES, make_config, make_windows

from msa_lib import evaluate as ev
from msa_lib.baselines import (
    TUNING_BUDGET,
    LinearBaseline,
    LSTMBaseline,
    NHiTSStyle,
    PatchTSTStyle,
    SingleScaleTransformer,
    column_index,
    fit_lightgbm,
    fit_logistic,
    flat_windows,
    lag_features,
    last_sign_score,
    majority_class_score,
    max_pool_time,
    naive_predictions,
    past_log_returns,
)
from msa_lib.cache import fit_experiment
from msa_lib.checkpoints import load_checkpoint, save_checkpoint
from msa_lib.data import make_targets, scale_features
from msa_lib.model import ForecastHeads, ScaleConfig, build_model, config_from_windows
from msa_lib.prepare import prepare_experiment
from msa_lib.train import predict

START = pd.Timestamp("2024-03-01 00:01", tz="UTC")


def bars_from(close: list[float] | np.ndarray, index: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """Valid OHLCV bars with the given closes (1-minute bars from START unless ``index``)."""
    close = np.asarray(close, dtype=float)
    if index is None:
        index = pd.date_range(START, periods=len(close), freq="min", name="time")
    open_ = np.concatenate([[close[0]], close[:-1]])
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close),
                         "low": np.minimum(open_, close), "close": close,
                         "volume": np.ones(len(close))}, index=index)


# -- past returns and last sign --------------------------------------------------------------------
def test_past_log_returns_by_hand() -> None:
    close = [100.0, 101.0, 99.0, 99.0, 103.0, 102.0]
    bars = bars_from(close)
    frozen = bars.copy()
    times = bars.index[[3, 5]]  # 00:04 and 00:06
    past = past_log_returns(bars, times, [2, "3min"])
    assert list(past.columns) == ["2min", "3min"]
    assert past.index.equals(times)
    np.testing.assert_allclose(past["2min"], [np.log(99 / 101), np.log(102 / 99)])
    np.testing.assert_allclose(past["3min"], [np.log(99 / 100), np.log(102 / 99)])
    np.testing.assert_array_equal(
        last_sign_score(bars, times, [2, "3min"]), [[-1.0, -1.0], [1.0, 1.0]]
    )
    pd.testing.assert_frame_equal(bars, frozen)  # the input is not modified


def test_past_return_is_the_target_that_just_ended() -> None:
    rng = np.random.default_rng(0)
    bars = bars_from(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 300))))
    times = bars.index[100:200:7]
    past = past_log_returns(bars, times, ["15min", "1h"])
    future = make_targets(bars, times - pd.Timedelta("1h"), ["1h"])
    np.testing.assert_allclose(past["1h"], future["1h"])  # [t - h, t] seen from t - h


def test_past_log_returns_uses_nothing_after_the_decision_time() -> None:
    rng = np.random.default_rng(1)
    bars = bars_from(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 200))))
    t = bars.index[120]
    altered = bars.copy()
    later = altered.index > t
    altered.loc[later, ["open", "high", "low", "close"]] *= 3.0
    times = pd.DatetimeIndex([t])
    pd.testing.assert_frame_equal(past_log_returns(bars, times, [5, 60]),
                                  past_log_returns(altered, times, [5, 60]))


def test_past_log_returns_over_a_gap_uses_the_last_price_before_it() -> None:
    # bars at 00:01, 00:02, then a gap until 00:10, 00:11
    index = pd.DatetimeIndex([START, START + pd.Timedelta("1min"), START + pd.Timedelta("9min"),
                              START + pd.Timedelta("10min")], name="time")
    bars = bars_from([100.0, 110.0, 121.0, 120.0], index)
    times = index[[2, 3]]
    past = past_log_returns(bars, times, ["5min"])
    # 00:10 - 5 min = 00:05: the last price known then is 00:02's 110
    np.testing.assert_allclose(past["5min"], [np.log(121 / 110), np.log(120 / 110)])


def test_past_log_returns_errors_when_a_price_is_missing() -> None:
    bars = bars_from([100.0, 101.0, 102.0, 103.0])
    times = bars.index[[1, 3]]
    with pytest.raises(ValueError, match=r"no price is known at 2024-03-01 00:00:00\+00:00 "
                                         r"\(t - 2min for decision time 2024-03-01 00:02"):
        past_log_returns(bars, times, [1, 2])
    with pytest.raises(ValueError, match="no price is known at decision time 2024-03-01 00:00"):
        past_log_returns(bars, pd.DatetimeIndex([START - pd.Timedelta("1min")]), [1])
    with pytest.raises(ValueError, match="no time zone"):
        past_log_returns(bars, times.tz_localize(None), [1])
    with pytest.raises(ValueError, match="duplicated horizons"):
        past_log_returns(bars, times, [1, "1min"])
    unsorted = bars.iloc[[1, 0, 2, 3]]
    with pytest.raises(ValueError, match="not sorted"):
        past_log_returns(unsorted, times, [1])


def test_last_sign_of_no_move_is_not_up() -> None:
    bars = bars_from([100.0, 100.0, 101.0])
    score = last_sign_score(bars, bars.index[[1, 2]], [1])
    np.testing.assert_array_equal(score, [[0.0], [1.0]])
    assert ev.direction_accuracy(np.array([0.5, 0.5]), score[:, 0]) == 0.5  # zero calls "not up"


# -- majority class -------------------------------------------------------------------------------
def test_majority_class_score() -> None:
    y_train = np.array(
        [[0.1, -0.1], [0.2, -0.3], [-0.1, 0.4]]
    )  # col 0 mostly up, col 1 mostly down
    y_train.flags.writeable = False
    score = majority_class_score(y_train, 4)
    assert score.shape == (4, 2)
    assert (score[:, 0] == 1).all() and (score[:, 1] == -1).all()
    assert majority_class_score(pd.Series([0.0, 0.0, 1.0]), 2).tolist() == [-1.0, -1.0]
    with pytest.raises(ValueError, match="NaN or inf"):
        majority_class_score(np.array([0.1, np.nan]), 2)


# -- all three, as the chapters use them -----------------------------------------------------------
def test_naive_predictions_in_a_results_table() -> None:
    rng = np.random.default_rng(2)
    bars = bars_from(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 400))))
    times = bars.index[200:300:5]
    y_train = pd.DataFrame({"5min": [0.1, 0.2, -0.1], "15min": [-0.1, -0.2, 0.3]})
    naive = naive_predictions(bars, times, ["5min", "15min"], y_train)
    assert list(naive) == ["zero return", "last sign", "majority class"]
    assert naive["zero return"]["direction_score"] is None
    np.testing.assert_array_equal(naive["zero return"]["returns"], np.zeros((20, 2)))
    np.testing.assert_array_equal(naive["last sign"]["direction_score"],
                                  last_sign_score(bars, times, ["5min", "15min"]))
    np.testing.assert_array_equal(naive["majority class"]["direction_score"][0], [1.0, -1.0])
    y = make_targets(bars, times, ["5min", "15min"])
    table = ev.results_table(y, naive)
    assert np.isnan(table.loc[("zero return", "5min"), "accuracy"])
    assert table.loc[("zero return", "5min"), "mse_ratio"] == pytest.approx(1.0)
    assert table.loc[("majority class", "15min"), "accuracy"] == pytest.approx(
        (y["15min"] <= 0).mean()
    )
    with pytest.raises(ValueError, match=r"one column per horizon \['5min', '15min'\]"):
        naive_predictions(bars, times, ["5min", "15min"], y_train[["5min"]])


# --- trained rivals -----------------------------------------------------------------------------
torch.set_num_threads(1)

KINDS = {"lstm": LSTMBaseline, "single_scale": SingleScaleTransformer, "linear": LinearBaseline,
         "nhits": NHiTSStyle, "patchtst": PatchTSTStyle}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_build_model_builds_each_baseline_with_the_shared_heads(kind, tmp_path):
    torch.manual_seed(0)
    cfg = make_config()
    model = build_model(kind, cfg.to_dict())  # a plain dict works too (as from a checkpoint)
    assert type(model) is KINDS[kind] and model.kind == kind and model.config == cfg
    assert isinstance(model.heads, ForecastHeads)
    out = model.eval()(make_windows(cfg), return_details=True)
    assert out["returns"].shape == out["direction_logits"].shape == (5, 2)
    assert out["fused"].shape[0] == 5
    loaded, _ = load_checkpoint(save_checkpoint(model, tmp_path / "b.pt"), expected_kind=kind)
    assert type(loaded) is KINDS[kind]


def test_single_scale_baseline_uses_only_its_scale():
    torch.manual_seed(0)
    cfg = make_config(single_scale="5min")
    net = build_model("single_scale", cfg).eval()
    w = make_windows(cfg)
    base = net(w)["returns"]
    assert torch.equal(net({**w, "1min": w["1min"] + 5})["returns"], base)
    assert not torch.allclose(net({**w, "5min": w["5min"] + 5})["returns"], base)
    assert torch.equal(net({"5min": w["5min"]})["returns"], base)  # other scales may be absent


@pytest.mark.parametrize("kind", ["lstm", "linear", "nhits"])
def test_hidden_rows_are_read_as_zeros(kind):
    torch.manual_seed(0)
    cfg = make_config()
    net = build_model(kind, cfg).eval()
    w = make_windows(cfg)
    mask = torch.ones(5, 13, dtype=torch.bool)
    mask[:, :4] = False  # the 4 oldest 5-minute bars are padding
    zeroed = w["5min"].clone()
    zeroed[:, :4] = 0.0
    scrambled = w["5min"].clone()
    scrambled[:, :4] = 1e3
    masks = {"5min": mask}
    out = net({**w, "5min": scrambled}, masks=masks)["returns"]
    torch.testing.assert_close(out, net({**w, "5min": zeroed})["returns"])
    assert not torch.allclose(out, net(w)["returns"])


def test_every_scale_reaches_the_outputs_of_the_multi_scale_rivals():
    torch.manual_seed(0)
    cfg = make_config()
    for kind in ("lstm", "linear", "nhits", "patchtst"):
        net = build_model(kind, cfg).eval()
        w = make_windows(cfg)
        base = net(w)["returns"]
        for name in cfg.scale_names:
            assert not torch.allclose(net({**w, name: w[name] + 1.0})["returns"], base), (kind, name)


def test_linear_baseline_needs_whole_windows_and_names_the_scale():
    cfg = make_config()
    net = build_model("linear", cfg)
    w = make_windows(cfg)
    with pytest.raises(ValueError, match=r"windows\['5min'\] has 12 rows, needs exactly 13"):
        net({**w, "5min": w["5min"][:, 1:]})
    with pytest.raises(KeyError, match="1D"):
        net({k: v for k, v in w.items() if k != "1D"})


# --- N-HiTS- and PatchTST-style rivals -------------------------------------------------------------
def planted_windows(n: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Two scales; "up" is the sign of (newest fine feature 0) x (newest coarse feature 1).

    A product of two scales' features: no single scale, and no linear model, tells the direction.
    """
    g = torch.Generator().manual_seed(seed)
    fine = torch.randn(n, 6, 2, generator=g)  # [N, L=6, F=2]
    coarse = torch.randn(n, 3, 2, generator=g)  # [N, L=3, F=2]
    up = (fine[:, -1, 0] * coarse[:, -1, 1] > 0).float()[:, None]  # [N, 1]
    return {"fine": fine, "coarse": coarse}, up


def accuracy_after_training(kind: str, steps: int = 300, **options) -> float:
    """Test accuracy of ``kind`` after ``steps`` Adam steps on the planted product rule."""
    torch.manual_seed(0)
    windows, up = planted_windows(2048, seed=0)
    test_windows, test_up = planted_windows(1024, seed=1)
    cfg = config_from_windows(windows, d_model=16, horizons=("h",), dropout=0.0, **options)
    net = build_model(kind, cfg)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        rows = torch.randint(0, 2048, (128,))
        logits = net({k: w[rows] for k, w in windows.items()})["direction_logits"]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, up[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = net.eval()(test_windows)["direction_logits"]
    return float(((logits > 0).float() == test_up).float().mean())


@pytest.mark.parametrize(("kind", "options"), [("nhits", {}), ("patchtst", {"patch_len": 4})])
def test_multi_rate_rivals_learn_a_cross_scale_product(kind, options):
    # (no max-pooling for N-HiTS here: a max over the newest two rows would blur the sign of the
    # newest one, which the rule reads)
    assert accuracy_after_training(kind, **options) > 0.7


def test_the_planted_product_defeats_a_linear_model():
    # the control that makes the test above mean something: the rule is not linear
    assert accuracy_after_training("linear") < 0.6


def test_max_pool_time_by_hand():
    x = torch.tensor([1.0, -3.0, 2.0, 5.0, -1.0])[None, :, None]  # [1, 5, 1], oldest first
    # groups of 2 counted back from the newest row: [1] [-3, 2] [5, -1]
    assert max_pool_time(x, None, 2).flatten().tolist() == [1.0, 2.0, 5.0]
    hide_oldest_three = torch.tensor([[False, False, False, True, True]])
    assert max_pool_time(x, hide_oldest_three, 2).flatten().tolist() == [0.0, 0.0, 5.0]
    hide_the_five = torch.tensor([[True, True, True, False, True]])
    assert max_pool_time(x, hide_the_five, 2).flatten().tolist() == [1.0, 2.0, -1.0]
    assert max_pool_time(x, hide_the_five, 1).flatten().tolist() == [1.0, -3.0, 2.0, 0.0, -1.0]
    assert max_pool_time(x, None, 9).flatten().tolist() == [5.0]  # one group, shorter than k


def test_nhits_runs_one_block_per_scale_coarsest_first_on_pooled_windows():
    cfg = make_config(scales=(ScaleConfig("1min", 3, 7, pool_kernel=3), ScaleConfig("1D", 2, 2)))
    net = build_model("nhits", cfg).eval()
    assert net.order == ["1D", "1min"]
    d = cfg.d_model
    assert net.blocks["1min"].mlp[0].in_features == 3 * 3 + d  # ceil(7 / 3) rows of 3 features
    assert net.blocks["1D"].mlp[0].in_features == 2 * 2 + d
    assert net.lift.in_features == 3 * 3 + 2 * 2
    w = make_windows(cfg)
    out = net(w, return_details=True)
    # doubly residual stacking, written out: each block reads its pooled window and the residual
    pooled = {"1min": max_pool_time(w["1min"], None, 3).flatten(1), "1D": w["1D"].flatten(1)}
    residual = net.lift(torch.cat([pooled["1min"], pooled["1D"]], dim=1))
    forecast = 0.0
    for name in ("1D", "1min"):
        backcast, part = net.blocks[name](torch.cat([pooled[name], residual], dim=1))
        residual, forecast = residual - backcast, forecast + part
    torch.testing.assert_close(out["fused"], forecast)
    torch.testing.assert_close(out["fused"], out["block_forecasts"].sum(dim=1))
    torch.testing.assert_close(out["returns"], net.heads(forecast)["returns"])
    with pytest.raises(ValueError, match=r"NHiTSStyle: windows\['1min'\] has 6 rows, needs exactly 7"):
        net({**w, "1min": w["1min"][:, 1:]})


def test_patchtst_cuts_each_scale_into_patches_of_at_most_five_rows():
    cfg = make_config()  # lookbacks 7, 13 and 1: patches of 5, 5 and 1 rows
    net = build_model("patchtst", cfg).eval()
    out = net(make_windows(cfg), return_details=True)
    assert out["token_scale"].tolist() == [0, 0, 1, 1, 1, 2]  # ceil(7/5), ceil(13/5), 1
    assert net.embed["5min"].in_features == 5 * 4
    long = build_model("patchtst", make_config(scales=(ScaleConfig("1min", 3, 7, patch_len=7),
                                                        ScaleConfig("1D", 2, 1))))
    assert long.eval()(make_windows(long.config), return_details=True)["token_scale"].tolist() == [0, 1]


def test_patchtst_padding_reads_the_oldest_partial_patch():
    torch.manual_seed(0)
    cfg = make_config()
    net = build_model("patchtst", cfg).eval()
    w = make_windows(cfg)
    base = net(w)["returns"]
    oldest = w["5min"].clone()
    oldest[:, 0] += 1.0  # the first row of 13 sits alone with 2 padding rows in the oldest patch
    assert not torch.allclose(net({**w, "5min": oldest})["returns"], base)


def test_patchtst_short_window_equals_the_whole_window_with_its_oldest_patch_hidden():
    torch.manual_seed(0)
    cfg = make_config()
    net = build_model("patchtst", cfg).eval()
    w = make_windows(cfg)
    mask = torch.ones(5, 13, dtype=torch.bool)
    mask[:, :3] = False  # rows 0-2 fill the (padded) oldest patch: it is hidden as a whole
    whole = net(w, masks={"5min": mask})["returns"]
    short = net({**w, "5min": w["5min"][:, 3:]})["returns"]  # 10 rows: two whole patches
    torch.testing.assert_close(short, whole)
    with pytest.raises(ValueError, match=r"windows\['5min'\] has 14 rows, more than its lookback 13"):
        net({**w, "5min": torch.cat([w["5min"], w["5min"][:, :1]], dim=1)})


@pytest.mark.parametrize(("kind", "scales"), [
    ("nhits", (ScaleConfig("1min", 3, 7, pool_kernel=2), ScaleConfig("5min", 4, 13, pool_kernel=3))),
    ("patchtst", (ScaleConfig("1min", 3, 7), ScaleConfig("5min", 4, 13, patch_len=4))),
])
def test_rows_hidden_by_a_mask_do_not_reach_the_output(kind, scales):
    torch.manual_seed(0)
    cfg = make_config(scales=scales)
    net = build_model(kind, cfg).eval()
    w = make_windows(cfg)
    g = torch.Generator().manual_seed(3)
    masks = {s.name: torch.arange(s.lookback)[None, :] >= torch.randint(0, s.lookback, (5, 1), generator=g)
             for s in scales}  # per sample, a random number of the oldest rows hidden
    changed = {name: torch.where(masks[name][..., None], x, 1e3 * torch.randn(x.shape, generator=g))
               for name, x in w.items()}
    out = net(w, masks=masks)
    torch.testing.assert_close(net(changed, masks=masks), out)
    assert not torch.allclose(net(changed)["returns"], out["returns"])  # the rows do count unmasked


def test_scale_config_checks_the_rival_settings():
    with pytest.raises(ValueError, match="scale '1h': pool_kernel must be an integer >= 1"):
        ScaleConfig("1h", 3, 5, pool_kernel=0)
    with pytest.raises(ValueError, match="scale '1h': patch_len must be an integer >= 1"):
        ScaleConfig("1h", 3, 5, patch_len=2.5)
    cfg = config_from_windows(make_windows(make_config()), pool_kernel={"1min": 2}, patch_len=3)
    assert [(s.pool_kernel, s.patch_len) for s in cfg.scales] == [(2, 3), (1, 3), (1, 3)]


def test_the_rivals_train_in_the_course_loop_from_an_experiment():
    data = prepare_experiment(ES)
    for kind in ("nhits", "patchtst"):
        tiny = ES.replace(model={"kind": kind, "d_model": 8, "n_heads": 2, "n_cross_heads": 2},
                          train={"num_epochs": 1, "batch_size": 256})
        fit = fit_experiment(tiny, data, cache_dir=None)
        assert fit.model.kind == kind and fit.history.num_epochs == 1
        out = predict(fit.model, data.test)
        assert out["direction_prob"].shape == (len(data.test), 2)


# --- non-neural rivals ---------------------------------------------------------------------------
def test_flat_windows_is_what_the_linear_baseline_reads():
    cfg = make_config()
    w = make_windows(cfg)
    X = flat_windows(w)
    assert X.shape == (5, 7 * 3 + 13 * 4 + 1 * 2)
    net = build_model("linear", cfg).eval()
    np.testing.assert_allclose(X, net(w, return_details=True)["fused"].detach().numpy())
    np.testing.assert_array_equal(flat_windows(w, scales=["1D"]), w["1D"][:, 0].numpy())
    with pytest.raises(ValueError, match=r"windows\['5min'\] has 4 rows but windows\['1min'\] has 5"):
        flat_windows({**w, "5min": w["5min"][:4]})
    with pytest.raises(ValueError, match="windows has no scale '1h'"):
        flat_windows(w, scales=["1h"])


def test_lag_features_take_the_named_column_of_the_newest_rows():
    rng = np.random.default_rng(0)
    bars = bars_from(100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 60))))
    frames = {"1min": scale_features(bars, lags=(5, 1), vol_windows=(3,), ma_windows=(3,),
                                     volume_window=3, rsi_window=3)}
    index = column_index(frames)
    assert index == {"1min": 1}  # lags (5, 1): ret_5 first, then ret_1
    with pytest.raises(ValueError, match=r"frames\['1min'\] has no column 'ret_2'; its columns are \['ret_5'"):
        column_index(frames, "ret_2")
    fine = np.arange(2 * 4 * 3, dtype=np.float32).reshape(2, 4, 3)  # [N=2, L=4, F=3]
    coarse = -np.arange(2 * 2 * 2, dtype=np.float32).reshape(2, 2, 2)  # [N=2, L=2, F=2]
    windows = {"fine": fine, "coarse": coarse}
    X = lag_features(windows, {"fine": 1, "coarse": 0}, n_lags={"fine": 3})
    np.testing.assert_array_equal(X, np.concatenate([fine[:, 1:, 1], coarse[:, :, 0]], axis=1))
    np.testing.assert_array_equal(lag_features(windows, n_lags=1), [[9, -2], [21, -6]])  # column 0
    with pytest.raises(ValueError, match=r"feature_index\['coarse'\] = 2 is not a column"):
        lag_features(windows, {"fine": 0, "coarse": 2})
    with pytest.raises(ValueError, match="feature_index has no entry for scale 'coarse'"):
        lag_features(windows, {"fine": 0})
    with pytest.raises(ValueError, match=r"n_lags for scale 'coarse' must be an int in \[1, 2\]"):
        lag_features(windows, n_lags=3)
    with pytest.raises(ValueError, match=r"n_lags for scale 'fine' must be an int in \[1, 4\], got 0"):
        lag_features(windows, n_lags=0)


def planted_features(n: int, seed: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Six standard-normal features; two horizons of 0/1 labels from a linear or a product rule."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    z = X[:, 0] - 0.5 * X[:, 2] if rule == "linear" else X[:, 0] * X[:, 1]
    up = np.stack([z > 0, z + 0.3 * rng.normal(size=n) > 0], axis=1).astype(np.float32)  # [N, 2]
    return X, up


def held_out_accuracy(fit, rule: str) -> np.ndarray:
    """Direction accuracy of ``fit`` per horizon on fresh rows of the planted ``rule``."""
    X, up = planted_features(2000, 2, rule)
    prob = fit.predict(X)["direction_prob"]
    assert prob.shape == (2000, 2) and ((prob >= 0) & (prob <= 1)).all()
    return ((prob > 0.5) == (up == 1)).mean(axis=0)


@pytest.fixture(scope="module")
def blocks():
    """Training and validation blocks of both planted rules."""
    return {rule: (*planted_features(1500, 0, rule), *planted_features(500, 1, rule))
            for rule in ("linear", "product")}


def test_logistic_tries_exactly_the_budget_and_keeps_the_best(blocks):
    grid = (0.001, 0.1, 10.0)
    fit = fit_logistic(*blocks["linear"], grid=grid)
    assert TUNING_BUDGET == 3 and len(fit.tuning) == TUNING_BUDGET
    assert fit.tuning["C"].tolist() == list(grid)
    best = int(fit.tuning["val_accuracy"].to_numpy().argmax())
    assert fit.settings == {"C": grid[best]}
    assert fit.val_accuracy.shape == (2,)
    assert fit.val_accuracy.mean() == pytest.approx(fit.tuning["val_accuracy"].max())
    for bad in ((0.1, 1.0), (0.1, 1.0, 10.0, 100.0)):
        with pytest.raises(ValueError, match=f"grid has {len(bad)} settings.*TUNING_BUDGET = 3"):
            fit_logistic(*blocks["linear"], grid=bad)
    with pytest.raises(ValueError, match="grid repeats a setting"):
        fit_logistic(*blocks["linear"], grid=(0.1, 0.1, 1.0))


def test_logistic_learns_a_linear_rule_but_not_a_product(blocks):
    assert (held_out_accuracy(fit_logistic(*blocks["linear"]), "linear") > 0.8).all()
    assert (held_out_accuracy(fit_logistic(*blocks["product"]), "product") < 0.6).all()


def test_lightgbm_learns_an_interaction_within_the_budget(blocks):
    grid = ({"num_leaves": 3, "learning_rate": 0.1}, {"num_leaves": 7, "learning_rate": 0.1},
            {"num_leaves": 15, "learning_rate": 0.05})
    fit = fit_lightgbm(*blocks["product"], seed=0, grid=grid, max_rounds=200)
    assert len(fit.tuning) == TUNING_BUDGET and fit.settings in [dict(c) for c in grid]
    assert fit.tuning.loc[fit.tuning["val_accuracy"].idxmax(), "num_leaves"] == fit.settings["num_leaves"]
    assert (held_out_accuracy(fit, "product") > 0.7).all()
    assert all(1 <= m.best_iteration_ < 200 for m in fit.models)  # stopped early on validation
    with pytest.raises(ValueError, match=r"grid: \['n_jobs'\] are fixed"):
        fit_lightgbm(*blocks["product"], seed=0, grid=[{"n_jobs": 2}, {}, {"num_leaves": 3}])


@pytest.mark.parametrize("fitter", ["logistic", "lightgbm"])
def test_rival_fits_are_deterministic(blocks, fitter):
    def fit():
        if fitter == "logistic":
            return fit_logistic(*blocks["product"])
        return fit_lightgbm(*blocks["product"], seed=7, max_rounds=50)

    X, _ = planted_features(300, 3, "product")
    first, second = fit(), fit()
    assert first.settings == second.settings
    np.testing.assert_array_equal(first.predict(X)["direction_prob"], second.predict(X)["direction_prob"])


def test_a_rival_fit_predicts_from_windows_into_a_results_table():
    windows, up = planted_windows(400, seed=0)
    up = np.concatenate([up.numpy(), 1 - up.numpy()], axis=1)  # two horizons
    train = {k: w[:300] for k, w in windows.items()}
    val = {k: w[300:] for k, w in windows.items()}
    fit = fit_logistic(flat_windows(train), up[:300], flat_windows(val), up[300:],
                       features=flat_windows, name="logistic (flat)")
    np.testing.assert_array_equal(fit.predict(val)["direction_prob"],
                                  fit.predict(flat_windows(val))["direction_prob"])
    y = np.where(up[300:] == 1, 1.0, -1.0)  # realised returns whose signs are the labels
    table = ev.results_table(y, {fit.name: fit.predict(val)}, horizons=["a", "b"])
    np.testing.assert_allclose(table["accuracy"].to_numpy(), fit.val_accuracy)
    bare = fit_logistic(flat_windows(train), up[:300], flat_windows(val), up[300:])
    with pytest.raises(ValueError, match="fitted on a feature matrix without `features`"):
        bare.predict(val)
    with pytest.raises(ValueError, match="X has 3 columns; logistic was fitted on 18"):
        bare.predict(np.zeros((2, 3)))


def test_rival_fits_name_the_bad_argument(blocks):
    X, up, Xv, upv = blocks["linear"]
    nan = Xv.copy()
    nan[4, 2] = np.nan
    cases = [
        ((X, up[:-1], Xv, upv), "up_train has 1499 rows but X_train has 1500"),
        ((X, up, Xv[:, :5], upv), "X_val has 5 columns but X_train has 6"),
        ((X, up, nan, upv), r"X_val holds NaN or inf \(first at row 4, column 2\)"),
        ((X, up, Xv, upv[:, :1]), "up_val has 1 horizons but up_train has 2"),
        ((X, up * 2, Xv, upv), "up_train must hold only 0 and 1"),
        ((X, np.ones_like(up), Xv, upv), "up_train column 0 holds only 1s"),
        ((X[:, :, None], up, Xv, upv), r"X_train must be a non-empty \[N, D\] array"),
    ]
    for args, message in cases:
        for fitter in (fit_logistic, lambda *a: fit_lightgbm(*a, seed=0)):
            with pytest.raises(ValueError, match=message):
                fitter(*args)


# --------------------------------------------------------------------------------------------------
# The hand-made interaction feature and the line-up
# --------------------------------------------------------------------------------------------------
def test_interaction_features_rebuild_the_planted_jumps_from_bars_only() -> None:
    from msa_lib.baselines import interaction_features
    from msa_lib.data import decision_times
    from msa_lib.datasets import simulate_market

    market = simulate_market(days=14, seed=3)
    times = decision_times(market.bars, "5min")[8 * 288:]            # after the daily warm-up
    horizons = ["5min", "15min", "30min"]
    feature = interaction_features(market.bars, times, horizons)
    assert list(feature.columns) == horizons and feature.index.equals(times)
    jump = market.truth["jump"]
    for h, minutes in (("5min", 5), ("15min", 15), ("30min", 30)):
        # the jumps landing in (t, t + h], as announced: what the feature counts, in units of size
        landing = jump.rolling(minutes).sum().shift(-minutes).reindex(times)
        announced = landing.ne(0)
        agree = np.sign(feature[h][announced]) == np.sign(landing[announced])
        assert agree.mean() > 0.95, (h, agree.mean())
        assert (feature[h][landing.eq(0) & jump.reindex(times).eq(0)].abs() < 1).mean() > 0.9
    # causal: rewriting everything after a decision time changes nothing computed for it
    t = times[len(times) // 2]
    later = market.bars.index > t
    edited = market.bars.copy()
    edited.loc[later, ["open", "high", "low", "close"]] *= 1.5
    edited.loc[later, "volume"] *= 40
    again = interaction_features(edited, times[times <= t], horizons)
    pd.testing.assert_frame_equal(again, feature.loc[:t])


def test_interaction_features_reject_bars_that_are_not_one_minute() -> None:
    from msa_lib.baselines import interaction_features
    from msa_lib.datasets import simulate_market

    bars = simulate_market(days=2, seed=0).bars
    with pytest.raises(ValueError, match="1-minute"):
        interaction_features(bars.iloc[::5], bars.index[::5][10:20], ["5min"])
    with pytest.raises(ValueError, match="not a bar time"):
        interaction_features(bars, pd.DatetimeIndex([bars.index[5] + pd.Timedelta("30s")]), ["5min"])


def test_contenders_and_roles_name_every_model_of_the_claims() -> None:
    from msa_lib.baselines import NON_NEURAL, contenders, roles

    base = make_config(scales=(ScaleConfig("1min", 5, 3), ScaleConfig("1h", 3, 3),
                               ScaleConfig("1D", 2, 3)))
    lineup = contenders(base)
    assert list(lineup) == ["network", "single_scale", "rivals", "ablations"]
    for label, (kind, config) in lineup["single_scale"].items():
        assert kind == "single_scale" and label == f"Transformer {config.single_scale} only"
    assert [c.single_scale for _, c in lineup["single_scale"].values()] == ["1min", "1h", "1D"]
    ablations = lineup["ablations"]
    assert ablations["without 1min"][1].scale_names == ["1h", "1D"]
    assert ablations["without 1D"][1].scale_names == ["1min", "1h"]
    assert ablations["without cross-attention"][1].cross_attention is False
    r = roles(base.scale_names)
    assert r["single_scale"] == list(lineup["single_scale"])
    assert set(r["rivals"]) == set(lineup["rivals"]) | set(NON_NEURAL)
    assert r["network"] in lineup["network"]


def test_non_neural_rivals_reject_unknown_names() -> None:
    from msa_lib.baselines import non_neural_rivals

    with pytest.raises(ValueError, match="unknown non-neural rivals"):
        non_neural_rivals(None, None, pd.DataFrame(), which=("random forest",))
