"""Tests for msa_lib.data: validation, close-labelled resampling, features, windows, targets, splits."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from msa_lib.data import (
    OHLCVError,
    WindowScaler,
    chronological_split,
    decision_times,
    make_targets,
    make_windows,
    multi_scale_features,
    resample_ohlcv,
    scale_features,
    validate_ohlcv,
    walk_forward_splits,
)

START = pd.Timestamp("2024-03-01 00:01", tz="UTC")


def random_bars(n: int, seed: int = 0, start: pd.Timestamp = START, drop: float = 0.0) -> pd.DataFrame:
    """Valid 1-minute bars from a random walk; ``drop`` removes that share of minutes (gaps)."""
    rng = np.random.default_rng(seed)
    log_close = np.log(100) + np.cumsum(rng.normal(0, 1e-3, n))
    close = np.exp(log_close)
    open_ = np.concatenate([[100.0], close[:-1]])
    wiggle = np.exp(np.abs(rng.normal(0, 5e-4, (2, n))))
    high = np.maximum(open_, close) * wiggle[0]
    low = np.minimum(open_, close) / wiggle[1]
    volume = rng.gamma(2.0, 50.0, n)
    index = pd.date_range(start, periods=n, freq="min", name="time")
    bars = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume}, index=index)
    if drop:
        bars = bars[rng.random(n) >= drop]
    return bars


# ---------------------------------------------------------------------------------------------
# validate_ohlcv: one test per kind of bad input
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def bars() -> pd.DataFrame:
    return random_bars(50)


def _set(bars: pd.DataFrame, row: int, col: str, value: float) -> pd.DataFrame:
    out = bars.copy()
    out.iloc[row, out.columns.get_loc(col)] = value
    return out


def test_valid_bars_pass_and_are_returned_unchanged(bars):
    before = bars.copy()
    assert validate_ohlcv(bars) is bars
    pd.testing.assert_frame_equal(bars, before)


@pytest.mark.parametrize(
    ("col", "value", "message"),
    [
        ("close", np.nan, "NaN in column 'close'"),
        ("open", np.inf, "infinite value in column 'open'"),
        ("low", -1.0, "non-positive price in 'low'"),
        ("open", 0.0, "non-positive price in 'open'"),
        ("volume", -5.0, "negative volume"),
    ],
)
def test_bad_values_name_problem_and_first_timestamp(bars, col, value, message):
    bad = _set(_set(bars, 17, col, value), 30, col, value)
    with pytest.raises(OHLCVError, match=message) as info:
        validate_ohlcv(bad)
    assert str(bars.index[17]) in str(info.value)


def test_high_below_low(bars):
    bad = _set(bars, 9, "high", bars["low"].iloc[9] * 0.99)
    with pytest.raises(OHLCVError, match="high below low") as info:
        validate_ohlcv(bad)
    assert str(bars.index[9]) in str(info.value)


def test_high_below_close(bars):
    bad = _set(bars, 4, "close", bars["high"].iloc[4] * 1.01)
    with pytest.raises(OHLCVError, match=re.escape(f"high below close at {bars.index[4]}")):
        validate_ohlcv(bad)


def test_low_above_open(bars):
    bad = _set(bars, 6, "low", bars["open"].iloc[6] * 1.001)
    bad = _set(bad, 6, "high", bad["low"].iloc[6] * 1.01)
    with pytest.raises(OHLCVError, match=re.escape(f"low above open at {bars.index[6]}")):
        validate_ohlcv(bad)


def test_unsorted_index(bars):
    order = list(range(len(bars)))
    order[20], order[21] = 21, 20
    with pytest.raises(OHLCVError, match=re.escape(f"not sorted: {bars.index[20]}")):
        validate_ohlcv(bars.iloc[order])


def test_duplicated_index(bars):
    dup = pd.concat([bars.iloc[:11], bars.iloc[10:]])
    with pytest.raises(OHLCVError, match=re.escape(f"duplicated timestamp {bars.index[10]}")):
        validate_ohlcv(dup)


def test_non_datetime_index(bars):
    with pytest.raises(OHLCVError, match="DatetimeIndex"):
        validate_ohlcv(bars.reset_index(drop=True))


def test_naive_index_is_refused(bars):
    with pytest.raises(OHLCVError, match="time zone"):
        validate_ohlcv(bars.tz_localize(None))


def test_missing_column_and_non_numeric(bars):
    with pytest.raises(OHLCVError, match="missing column"):
        validate_ohlcv(bars.drop(columns="volume"))
    with pytest.raises(OHLCVError, match="not numeric"):
        validate_ohlcv(bars.assign(close=bars["close"].astype(str)))


# ---------------------------------------------------------------------------------------------
# resample_ohlcv
# ---------------------------------------------------------------------------------------------
def naive_resample(bars: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Plain groupby on 'the close time rounded up to the next multiple of the bar length'."""
    step = pd.Timedelta(minutes=minutes)
    label = bars.index.ceil(step)  # a bar closing exactly on the edge belongs to that edge
    g = bars.groupby(label)
    out = pd.DataFrame({"open": g["open"].first(), "high": g["high"].max(), "low": g["low"].min(),
                        "close": g["close"].last(), "volume": g["volume"].sum()})
    out.index.name = "time"
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 300),
    seed=st.integers(0, 10_000),
    minutes=st.sampled_from([2, 5, 7, 15, 60]),
    drop=st.sampled_from([0.0, 0.3, 0.8]),
    offset=st.integers(0, 120),
)
def test_resample_invariants(n, seed, minutes, drop, offset):
    bars = random_bars(n, seed, start=START + pd.Timedelta(minutes=offset), drop=drop)
    if bars.empty:
        return
    before = bars.copy()
    out = resample_ohlcv(bars, f"{minutes}min")
    pd.testing.assert_frame_equal(bars, before)  # input untouched
    validate_ohlcv(out)
    # volume conserved, no empty bars
    assert np.isclose(out["volume"].sum(), bars["volume"].sum(), rtol=1e-12)
    assert len(out) == len(bars.index.ceil(f"{minutes}min").unique())
    assert (out["high"] >= out[["open", "close"]].max(axis=1)).all()
    assert (out["low"] <= out[["open", "close"]].min(axis=1)).all()
    # labels are right edges: on the grid, and each label is >= every bar it holds
    step = pd.Timedelta(minutes=minutes)
    assert (out.index == out.index.ceil(step)).all()
    assert (out.index >= bars.index.min()).all()
    assert out.index.max() - bars.index.max() < step
    pd.testing.assert_frame_equal(out, naive_resample(bars, minutes), check_freq=False)


def test_resample_close_label_by_hand():
    bars = random_bars(10)  # labelled 00:01 .. 00:10
    out = resample_ohlcv(bars, "5min")
    assert list(out.index.strftime("%H:%M")) == ["00:05", "00:10"]
    first = bars.iloc[:5]  # 00:01..00:05 -> bar closing at 00:05
    assert out["open"].iloc[0] == first["open"].iloc[0]
    assert out["close"].iloc[0] == first["close"].iloc[-1]
    assert out["high"].iloc[0] == first["high"].max()


def test_resample_refuses_calendar_rules_and_bad_bars(bars):
    with pytest.raises(ValueError, match="rule"):
        resample_ohlcv(bars, "ME")
    with pytest.raises(OHLCVError):
        resample_ohlcv(_set(bars, 3, "close", np.nan), "5min")


# ---------------------------------------------------------------------------------------------
# scale_features
# ---------------------------------------------------------------------------------------------
def test_scale_features_values_by_hand():
    bars = random_bars(80, seed=3)
    feats = scale_features(bars)
    assert not feats.isna().any().any()
    assert feats.index[0] == bars.index[20]  # warm-up: 20 bars of history for ret_20 / vol_20
    t = feats.index[10]
    i = bars.index.get_loc(t)
    c = bars["close"].to_numpy()
    assert np.isclose(feats.loc[t, "ret_5"], np.log(c[i] / c[i - 5]))
    assert np.isclose(feats.loc[t, "vol_5"], np.std(np.diff(np.log(c[i - 5 : i + 1])), ddof=1))
    assert np.isclose(feats.loc[t, "ma_ratio_10"], c[i] / c[i - 9 : i + 1].mean() - 1)
    assert feats["close_pos"].between(0, 1).all()
    assert feats["rsi"].between(-1, 1).all()


def test_scale_features_rsi_extremes():
    bars = random_bars(40)
    up = bars.assign(close=np.linspace(100, 120, 40))
    up = up.assign(high=up[["open", "close"]].max(axis=1) * 1.001, low=up[["open", "close"]].min(axis=1) * 0.999)
    assert np.allclose(scale_features(up)["rsi"], 1.0)


# ---------------------------------------------------------------------------------------------
# make_windows
# ---------------------------------------------------------------------------------------------
def loop_windows(frames, lookbacks, times):
    """Reference: a plain loop over decision times."""
    out = {s: [] for s in frames}
    kept = []
    for t in times:
        rows = {s: f.loc[f.index <= t] for s, f in frames.items()}
        if all(len(rows[s]) >= lookbacks[s] for s in frames):
            kept.append(t)
            for s in frames:
                out[s].append(rows[s].to_numpy()[-lookbacks[s]:])
    return out, kept


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 1000),
    lb_fine=st.integers(1, 12),
    lb_coarse=st.integers(1, 4),
    every=st.sampled_from([1, 3, 5]),
)
def test_make_windows_matches_loop(seed, lb_fine, lb_coarse, every):
    rng = np.random.default_rng(seed)
    fine_index = pd.date_range(START, periods=60, freq="min")
    fine = pd.DataFrame(rng.normal(size=(60, 3)), index=fine_index)
    coarse = pd.DataFrame(rng.normal(size=(6, 2)), index=pd.date_range(START + pd.Timedelta("9min"), periods=6, freq="10min"))
    times = pd.date_range(START - pd.Timedelta("5min"), periods=80, freq=f"{every}min")
    frames, lookbacks = {"fine": fine, "coarse": coarse}, {"fine": lb_fine, "coarse": lb_coarse}
    windows, kept = make_windows(frames, lookbacks, times)
    ref, ref_kept = loop_windows(frames, lookbacks, times)
    assert list(kept) == ref_kept
    for s in frames:
        assert windows[s].dtype == np.float32
        assert windows[s].shape == (len(ref_kept), lookbacks[s], frames[s].shape[1])
        if ref_kept:
            np.testing.assert_array_equal(windows[s], np.asarray(ref[s], dtype=np.float32))


def test_make_windows_errors():
    f = pd.DataFrame({"a": np.arange(5.0)}, index=pd.date_range(START, periods=5, freq="min"))
    t = f.index
    with pytest.raises(ValueError, match="same scales"):
        make_windows({"1min": f}, {"5min": 2}, t)
    with pytest.raises(ValueError, match="lookback for scale '1min'"):
        make_windows({"1min": f}, {"1min": 0}, t)
    with pytest.raises(ValueError, match=r"scale '1min' has NaN .* " + re.escape(str(f.index[2]))):
        make_windows({"1min": f.assign(a=[0, 1, np.nan, 3, 4])}, {"1min": 2}, t)
    with pytest.raises(OHLCVError, match="not sorted"):
        make_windows({"1min": f}, {"1min": 2}, t[::-1])
    windows, kept = make_windows({"1min": f}, {"1min": 9}, t)  # too little history: all dropped
    assert len(kept) == 0 and windows["1min"].shape == (0, 9, 1)


# ---------------------------------------------------------------------------------------------
# causality: change every bar after t, rebuild everything, nothing built for times <= t changes
# ---------------------------------------------------------------------------------------------
def test_pipeline_is_causal():
    bars = random_bars(3 * 1440, seed=7, start=pd.Timestamp("2024-03-01 00:01", tz="UTC"))
    t = pd.Timestamp("2024-03-02 13:37", tz="UTC")
    changed = bars.copy()
    after = changed.index > t
    changed.loc[after, ["open", "high", "low", "close"]] *= 1.5
    changed.loc[after, "volume"] *= 3.0
    scales = ("1min", "5min", "1h", "4h")
    lookbacks = {"1min": 30, "5min": 12, "1h": 6, "4h": 2}
    feature_kwargs = dict(lags=(1, 3), vol_windows=(3,), ma_windows=(3,), volume_window=3, rsi_window=3)
    times = decision_times(bars, "1min")
    built = []
    for b in (bars, changed):
        frames = multi_scale_features(b, scales, **feature_kwargs)
        built.append(make_windows(frames, lookbacks, times))
    (w0, k0), (w1, k1) = built
    assert k0.equals(k1)
    upto = np.asarray(k0 <= t)
    assert upto.sum() > 100 and (~upto).sum() > 100
    for s in scales:
        np.testing.assert_array_equal(w0[s][upto], w1[s][upto])
        assert not np.array_equal(w0[s][~upto], w1[s][~upto])  # the change is visible afterwards


# ---------------------------------------------------------------------------------------------
# targets, splits, scaler
# ---------------------------------------------------------------------------------------------
def test_make_targets():
    bars = random_bars(100)
    times = bars.index[::7]
    y = make_targets(bars, times, [5, "15min"])
    assert list(y.columns) == ["5min", "15min"]
    assert y.index[-1] + pd.Timedelta("15min") <= bars.index[-1]
    assert len(y) == int((times + pd.Timedelta("15min") <= bars.index[-1]).sum())
    t = y.index[3]
    c = bars["close"]
    assert np.isclose(y.loc[t, "15min"], np.log(c[t + pd.Timedelta("15min")] / c[t]))
    with pytest.raises(ValueError, match="duplicated horizons"):
        make_targets(bars, times, [15, "15min"])


def test_chronological_split_purges():
    times = pd.date_range(START, periods=1000, freq="5min")
    parts = chronological_split(times, 0.2, 0.2, purge="1h")
    assert parts["train"][-1] < parts["val"][0] < parts["val"][-1] < parts["test"][0]
    assert parts["val"][0] - parts["train"][-1] >= pd.Timedelta("1h")
    assert parts["test"][0] - parts["val"][-1] >= pd.Timedelta("1h")
    assert len(parts["train"]) == 600 and len(parts["val"]) == 200 - 11
    with pytest.raises(ValueError, match="val block is empty"):
        chronological_split(times[:20], 0.2, 0.2, purge="1D")


def test_walk_forward_splits_purge_no_training_target_reaches_the_test_block():
    times = pd.date_range(START, periods=1000, freq="5min")
    purge = pd.Timedelta("1h")
    folds = walk_forward_splits(times, 4, 0.4, 0.25, purge="1h")
    assert len(folds) == 4
    for fold in folds:
        test_start = fold["test"][0]
        for part in ("train", "val"):
            # every target (t .. t + purge) ends at or before the first test time
            assert (fold[part] + purge <= test_start).all(), part
        assert fold["train"][-1] + purge <= fold["val"][0]
        # the purge drops exactly the times whose targets would overlap: the next one would not fit
        last_kept = fold["val"][-1]
        assert times[times.get_loc(last_kept) + 1] + purge > test_start
    # the fold-2 model learns from fold 1's test block (expanding window), minus the purge
    assert folds[1]["val"][-1] > folds[0]["test"][0]
    assert folds[1]["train"][0] == folds[0]["train"][0] == times[0]
    assert len(folds[1]["train"]) > len(folds[0]["train"])


def test_walk_forward_splits_test_blocks_ordered_and_non_overlapping():
    times = pd.date_range(START, periods=1003, freq="5min")
    folds = walk_forward_splits(times, 3, 0.3, 0.2, purge=12)
    tests = [fold["test"] for fold in folds]
    joined = tests[0].append(tests[1:])
    assert joined.is_monotonic_increasing and joined.is_unique
    assert joined.equals(times[len(times) - len(joined):])  # together: the last share, no gaps
    assert len(joined) == round(1003 * 0.3)
    assert max(len(t) for t in tests) - min(len(t) for t in tests) <= 1
    for a, b in zip(tests[:-1], tests[1:], strict=True):
        assert a[-1] < b[0]


def test_walk_forward_splits_errors_on_too_few_times():
    times = pd.date_range(START, periods=10, freq="5min")
    with pytest.raises(ValueError, match="fold 2 of 5 has an empty test block"):
        walk_forward_splits(times, 5, 0.3, 0.2, purge="5min")
    with pytest.raises(ValueError, match=r"fold 1 of 2 \(test from .*\): 0 earlier decision times"):
        walk_forward_splits(times, 2, 0.5, 0.2, purge="1h")
    with pytest.raises(ValueError, match="n_folds must be an integer >= 1"):
        walk_forward_splits(times, 0, 0.5, 0.2, purge="5min")
    with pytest.raises(ValueError, match="test_share must lie in"):
        walk_forward_splits(times, 2, 1.0, 0.2, purge="5min")
    with pytest.raises(ValueError, match="not sorted"):
        walk_forward_splits(times[::-1], 2, 0.5, 0.2, purge="5min")


def test_window_scaler_uses_train_only_and_never_mutates():
    rng = np.random.default_rng(0)
    train = {"a": rng.normal(3.0, 2.0, (50, 4, 2)).astype(np.float32)}
    other = {"a": rng.normal(10.0, 1.0, (20, 4, 2)).astype(np.float32)}
    copy = train["a"].copy()
    scaler = WindowScaler().fit(train)
    z = scaler.transform(train)["a"]
    assert np.allclose(z.reshape(-1, 2).mean(0), 0, atol=1e-5)
    assert np.allclose(z.reshape(-1, 2).std(0), 1, atol=1e-4)
    assert scaler.transform(other)["a"].mean() > 2  # test data is not re-centred
    np.testing.assert_array_equal(train["a"], copy)
    with pytest.raises(ValueError, match="scale 'a'"):
        scaler.transform({"a": np.zeros((3, 4, 5))})
