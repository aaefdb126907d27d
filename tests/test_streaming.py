"""Tests of msa_lib.streaming: live forecasts equal the batch pipeline's, bar by bar, and only the
scales whose bar closed are re-encoded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from msa_lib.data import WindowScaler, make_windows, scale_features
from msa_lib.datasets import simulate_market
from msa_lib.experiment import COURSE, SHORT_FEATURE_WINDOWS, ScaleSpec
from msa_lib.model import MultiScaleAttentionNet
from msa_lib.prepare import experiment_frames
from msa_lib.streaming import StreamingPredictor, feature_span, feature_warmup, history_start

torch.set_num_threads(1)

SHORT = SHORT_FEATURE_WINDOWS
#: The course's four scales with short lookbacks and feature windows: a week of history suffices.
FOUR = COURSE.replace(features={"scales": (
    ScaleSpec("1min", 6, **SHORT), ScaleSpec("5min", 4, **SHORT), ScaleSpec("1h", 3, **SHORT),
    ScaleSpec("1D", 2, **SHORT),
)})
SPLIT = pd.Timestamp("2024-01-08 22:00", tz="UTC")  # end of the warm-up history
END = pd.Timestamp("2024-01-09 02:00", tz="UTC")  # the stretch crosses a daily close


def batch_forecasts(net, experiment, bars, times, scaler=None):
    """The batch pipeline at ``times``: features of the whole history, windows, scaling, network."""
    windows, kept = make_windows(experiment_frames(bars, experiment), experiment.lookbacks, times)
    scaler = scaler or WindowScaler().fit(windows)
    with torch.no_grad():
        out = net(scaler.transform(windows))
    return out, kept, scaler


@pytest.fixture(scope="module")
def four_scales():
    bars = simulate_market(days=9, seed=1).bars
    stretch = bars.loc[SPLIT + pd.Timedelta("1min"):END]
    windows, _ = make_windows(experiment_frames(bars, FOUR), FOUR.lookbacks, stretch.index)
    torch.manual_seed(0)
    net = MultiScaleAttentionNet(FOUR.model_config(windows, d_model=16)).eval()
    out, kept, scaler = batch_forecasts(net, FOUR, bars, stretch.index)
    assert kept.equals(stretch.index)
    return bars, stretch, net, scaler, out


def test_every_forecast_equals_the_batch_pipeline_and_coarse_scales_encode_only_when_they_close(four_scales):
    bars, stretch, net, scaler, reference = four_scales
    predictor = StreamingPredictor(net, FOUR, scaler)
    at_split = predictor.warm_up(bars.loc[:SPLIT])
    assert predictor.encode_counts == {"1min": 1, "5min": 1, "1h": 1, "1D": 1}
    with torch.no_grad():  # the warm-up's own forecast is the batch one at its last bar
        alone, _, _ = batch_forecasts(net, FOUR, bars, pd.DatetimeIndex([SPLIT]), scaler)
    np.testing.assert_allclose(at_split["returns"], alone["returns"][0].numpy(), atol=1e-5)

    outs = [predictor.update(stretch.iloc[i]) for i in range(len(stretch))]
    assert [o["time"] for o in outs] == list(stretch.index)
    for key in ("returns", "direction_logits"):
        got = np.stack([o[key] for o in outs])  # [T, H]
        np.testing.assert_allclose(got, reference[key].numpy(), atol=1e-5, rtol=0)
    # each scale was re-encoded exactly at the minutes that close one of its bars, and only then
    minutes = stretch.index.as_unit("ns").asi8
    for name in FOUR.lookbacks:
        closes = minutes % pd.Timedelta(name).value == 0
        assert predictor.encode_counts[name] == 1 + closes.sum(), name
        encoded_at = [o["time"] for o in outs if name in o["encoded"]]
        assert encoded_at == list(stretch.index[closes]), name
    assert predictor.encode_counts["1D"] == 2 and predictor.encode_counts["1min"] == len(stretch) + 1


def test_bar_by_bar_from_the_first_minute_matches_the_batch_pipeline():
    """No warm-up: the first bar opens mid-way through a 15-minute bar (a partial bar, as in batch)."""
    exp = COURSE.replace(features={"scales": (
        ScaleSpec("1min", 3, **SHORT), ScaleSpec("5min", 2, **SHORT), ScaleSpec("15min", 2, **SHORT),
    )})
    bars = simulate_market(days=1, seed=2).bars.iloc[7:160]
    windows, kept = make_windows(experiment_frames(bars, exp), exp.lookbacks, bars.index)
    torch.manual_seed(1)
    net = MultiScaleAttentionNet(exp.model_config(windows, d_model=8)).eval()
    reference, kept, scaler = batch_forecasts(net, exp, bars, bars.index)
    predictor = StreamingPredictor(net, exp, scaler)
    outs = [predictor.update(bars.iloc[[i]]) for i in range(len(bars))]  # one-row DataFrames
    first = next(i for i, o in enumerate(outs) if o is not None)
    assert bars.index[first] == kept[0] and all(o is not None for o in outs[first:])
    got = np.stack([o["returns"] for o in outs[first:]])
    np.testing.assert_allclose(got, reference["returns"].numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "kwargs",
    [{}, SHORT, {"lags": (3,), "vol_windows": (2,), "ma_windows": (9,), "volume_window": 4, "rsi_window": 2},
     {"lags": (1,), "vol_windows": (2,), "ma_windows": (2,), "volume_window": 12, "rsi_window": 3}],
)
def test_feature_warmup_and_span_are_what_scale_features_needs(kwargs):
    bars = simulate_market(days=1, seed=3).bars.iloc[:60]
    full = scale_features(bars, dropna=False, **kwargs)
    assert full.isna().any(axis=1).to_numpy().argmin() == feature_warmup(kwargs)  # leading NaN rows
    span = feature_span(kwargs)
    last = scale_features(bars.iloc[-span:], dropna=False, **kwargs).iloc[-1]
    np.testing.assert_allclose(last.to_numpy(), full.iloc[-1].to_numpy(), rtol=1e-12)
    shorter = scale_features(bars.iloc[-span + 1:], dropna=False, **kwargs).iloc[-1]
    assert not np.allclose(shorter.to_numpy(), full.iloc[-1].to_numpy(), equal_nan=False)


def test_history_start_gives_the_windows_of_the_whole_history(four_scales):
    bars = four_scales[0]
    t = pd.DatetimeIndex([pd.Timestamp("2024-01-09 00:37", tz="UTC")])
    whole, _ = make_windows(experiment_frames(bars, FOUR), FOUR.lookbacks, t)
    start = history_start(t[0], FOUR)
    # the daily bars of 3 ... 9 January: 2 in the window, 5 before them for the features
    assert start == pd.Timestamp("2024-01-02 00:01", tz="UTC")
    trailing, kept = make_windows(experiment_frames(bars.loc[start:t[0]], FOUR), FOUR.lookbacks, t)
    assert kept.equals(t)
    for name in FOUR.lookbacks:
        np.testing.assert_allclose(trailing[name], whole[name], rtol=1e-6, atol=1e-7)
    # a day less is too short: no full daily window at t
    later = experiment_frames(bars.loc[start + pd.Timedelta("1D"):t[0]], FOUR)
    assert len(make_windows(later, FOUR.lookbacks, t)[1]) == 0


# ---- bad input ----------------------------------------------------------------------------------
@pytest.fixture
def warm(four_scales):
    bars, stretch, net, scaler, _ = four_scales
    predictor = StreamingPredictor(net, FOUR, scaler)
    predictor.warm_up(bars.loc[:SPLIT])
    return predictor, stretch


def test_a_bar_that_is_not_the_next_minute_is_refused_naming_both_times(warm):
    predictor, stretch = warm
    with pytest.raises(ValueError, match=r"bar at 2024-01-08 22:02:00\+00:00 is not one minute after "
                                         r"the previous bar \(2024-01-08 22:00:00\+00:00\)"):
        predictor.update(stretch.iloc[1])  # a missing minute
    with pytest.raises(ValueError, match="22:00:00.*is not one minute after"):
        predictor.update(stretch.iloc[-1].rename(SPLIT))  # a repeat
    predictor.update(stretch.iloc[0])  # the refused bars changed nothing: the right one still fits
    assert predictor.last_time == stretch.index[0]


def test_an_invalid_bar_is_refused_naming_its_time(warm):
    predictor, stretch = warm
    bad = stretch.iloc[0].copy()
    bad["high"] = bad["low"] - 1.0
    with pytest.raises(ValueError, match=r"bar at 2024-01-08 22:01:00\+00:00: high below low"):
        predictor.update(bad)
    nan = stretch.iloc[0].copy()
    nan["volume"] = np.nan
    with pytest.raises(ValueError, match="NaN in column 'volume' at 2024-01-08 22:01"):
        predictor.update(nan)
    with pytest.raises(ValueError, match="not on a whole minute"):
        predictor.update(stretch.iloc[0].rename(stretch.index[0] + pd.Timedelta("30s")))
    with pytest.raises(ValueError, match="named by its close time"):
        predictor.update(stretch.iloc[0].rename("x"))
    with pytest.raises(ValueError, match="one bar at a time, got 2 rows"):
        predictor.update(stretch.iloc[:2])
    assert predictor.last_time == SPLIT


def test_warm_up_refuses_gaps_and_a_used_predictor(four_scales):
    bars, _, net, scaler, _ = four_scales
    history = bars.loc[:SPLIT]
    with pytest.raises(ValueError, match=r"history: bar at 2024-01-03 00:00:00\+00:00 is not one minute after"):
        StreamingPredictor(net, FOUR, scaler).warm_up(history.drop(pd.Timestamp("2024-01-02 23:59", tz="UTC")))
    predictor = StreamingPredictor(net, FOUR, scaler)
    predictor.warm_up(history)
    with pytest.raises(ValueError, match="needs a new predictor; this one has bars up to 2024-01-08 22:00"):
        predictor.warm_up(history)


def test_the_network_and_scales_must_match_and_be_in_eval_mode(four_scales):
    bars, _, net, scaler, _ = four_scales
    with pytest.raises(ValueError, match=r"scales \['1min', '5min', '1h'\] are not the network's"):
        StreamingPredictor(net, FOUR.features.scales[:3], scaler)
    with pytest.raises(ValueError, match="fitted WindowScaler"):
        StreamingPredictor(net, FOUR, WindowScaler())
    longer = FOUR.with_lookbacks({"5min": 9})
    with pytest.raises(ValueError, match="scale '5min': lookback 9 is longer than the network's 4"):
        StreamingPredictor(net, longer, scaler)
    with pytest.raises(TypeError, match="MultiScaleAttentionNet"):
        StreamingPredictor(torch.nn.Linear(2, 2), FOUR, scaler)
    predictor = StreamingPredictor(net, FOUR, scaler)
    net.train()
    try:
        with pytest.raises(ValueError, match=r"training mode: call model.eval\(\)"):
            predictor.warm_up(bars.loc[:SPLIT])
    finally:
        net.eval()
