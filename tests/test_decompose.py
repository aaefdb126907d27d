"""Tests for msa_lib.decompose: exactness, causality, agreement with vmdpy, and every bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import pywt
from hypothesis import given, settings
from hypothesis import strategies as st
from vmdpy import VMD

from msa_lib import decompose as dec


def _frozen(*arrays: np.ndarray) -> None:
    """Make arrays read-only: any in-place write by the code under test raises."""
    for a in arrays:
        a.flags.writeable = False


def _walk(n: int, seed: int = 0) -> np.ndarray:
    """A log-price-like random walk with a slow wave on top."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 4.6 + np.cumsum(rng.normal(scale=0.01, size=n)) + 0.03 * np.sin(2 * np.pi * t / 50)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# -- wavelets: exactness ----------------------------------------------------------------------------
@pytest.mark.parametrize("transform", ["dwt", "swt"])
@pytest.mark.parametrize("mode", ["symmetric", "periodization", "zero"])
@pytest.mark.parametrize("n", [257, 300])
def test_components_add_back_to_the_series(transform: str, mode: str, n: int) -> None:
    x = _walk(n)
    _frozen(x)
    parts = dec.wavelet_decompose(x, "db4", level=3, mode=mode, transform=transform)
    assert parts.shape == (4, n)
    np.testing.assert_allclose(parts.sum(axis=0), x, rtol=0, atol=1e-10)
    # every component carries something: not "everything in one row"
    assert (np.abs(parts[1:]).max(axis=1) > 1e-4).all()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(16, 400), level=st.integers(1, 5), seed=st.integers(0, 10**6),
       wavelet=st.sampled_from(["haar", "db2", "sym4"]))
def test_reconstruction_property(n: int, level: int, seed: int, wavelet: str) -> None:
    x = np.random.default_rng(seed).normal(size=n)
    max_level = pywt.dwt_max_level(n, pywt.Wavelet(wavelet).dec_len)
    if level > max_level:
        with pytest.raises(ValueError, match="level"):
            dec.wavelet_decompose(x, wavelet, level)
        return
    for transform in ("dwt", "swt"):
        parts = dec.wavelet_decompose(x, wavelet, level, transform=transform)
        np.testing.assert_allclose(parts.sum(axis=0), x, atol=1e-9)


def test_haar_components_worked_by_hand() -> None:
    # Haar, periodization: A1 = pairwise means, A2 = mean of each block of four.
    x = np.array([1.0, 3.0, 2.0, 6.0, 0.0, 4.0, 5.0, 5.0])
    parts = dec.wavelet_decompose(x, "haar", level=2, mode="periodization")
    a1 = np.array([2, 2, 4, 4, 2, 2, 5, 5], dtype=float)
    a2 = np.array([3, 3, 3, 3, 3.5, 3.5, 3.5, 3.5])
    np.testing.assert_allclose(parts[0], a2, atol=1e-12)      # A2
    np.testing.assert_allclose(parts[1], a1 - a2, atol=1e-12)  # D2
    np.testing.assert_allclose(parts[2], x - a1, atol=1e-12)   # D1
    assert dec.wavelet_names(2) == ["A2", "D2", "D1"]


def test_swt_is_shift_invariant_and_dwt_is_not() -> None:
    x = _walk(128, seed=3)
    shifted = np.roll(x, 1)
    kw = dict(wavelet="db2", level=3, mode="periodization")
    swt, swt_shift = (dec.wavelet_decompose(v, transform="swt", **kw) for v in (x, shifted))
    np.testing.assert_allclose(swt_shift, np.roll(swt, 1, axis=1), atol=1e-10)
    dwt, dwt_shift = (dec.wavelet_decompose(v, transform="dwt", **kw) for v in (x, shifted))
    assert np.abs(dwt_shift - np.roll(dwt, 1, axis=1)).max() > 1e-3


def test_series_in_dataframe_out() -> None:
    idx = pd.date_range("2024-01-01", periods=200, freq="min", tz="UTC")
    s = pd.Series(_walk(200), index=idx, name="close")
    df = dec.wavelet_decompose(s, "db4", level=2)
    assert list(df.columns) == ["A2", "D2", "D1"]
    assert df.index.equals(idx)
    np.testing.assert_allclose(df.sum(axis=1).to_numpy(), s.to_numpy(), atol=1e-10)


def test_energy_shares_add_to_one_and_white_noise_halves() -> None:
    noise = np.random.default_rng(1).normal(size=4096)
    energy = dec.wavelet_energy(noise, "db4", level=4)
    assert list(energy.index) == ["A4", "D4", "D3", "D2", "D1"]
    assert energy.sum() == pytest.approx(1.0, abs=1e-12)  # Parseval with periodization
    # white noise spreads evenly over frequency: the finest band (upper half) holds half of it
    assert energy["D1"] == pytest.approx(0.5, abs=0.05)
    assert energy["D2"] == pytest.approx(0.25, abs=0.04)


def test_denoise_drop_equals_sum_of_kept_components() -> None:
    x = _walk(300, seed=4)
    parts = dec.wavelet_decompose(x, "db4", level=4)
    np.testing.assert_allclose(dec.wavelet_denoise(x, "db4", 4, drop=2),
                               parts[:-2].sum(axis=0), atol=1e-10)


def test_soft_threshold_brings_a_noisy_wave_closer_to_the_clean_one() -> None:
    t = np.arange(1024)
    clean = np.sin(2 * np.pi * t / 128)
    noisy = clean + np.random.default_rng(2).normal(scale=0.3, size=t.size)
    smooth = dec.wavelet_denoise(noisy, "sym8", 5, method="soft")
    assert np.mean((smooth - clean) ** 2) < 0.25 * np.mean((noisy - clean) ** 2)


# -- causal wavelets ------------------------------------------------------------------------------
@pytest.mark.parametrize("transform", ["dwt", "swt"])
def test_causal_wavelet_equals_decomposing_each_window(transform: str) -> None:
    x = _walk(120, seed=5)
    _frozen(x)
    window, level = 64, 3
    out = dec.causal_wavelet_decompose(x, window, "db2", level, transform=transform)
    assert out.shape == (4, 120)
    assert np.isnan(out[:, :window - 1]).all()
    for t in (window - 1, 80, 119):
        ref = dec.wavelet_decompose(x[t - window + 1:t + 1], "db2", level, transform=transform)
        np.testing.assert_allclose(out[:, t], ref[:, -1], atol=1e-10)
    np.testing.assert_allclose(np.nansum(out, axis=0)[window - 1:], x[window - 1:], atol=1e-10)


def test_causal_wavelet_ignores_the_future_and_full_series_does_not() -> None:
    x = _walk(200, seed=6)
    t = 130
    future_changed = x.copy()
    future_changed[t + 1:] += np.random.default_rng(0).normal(size=200 - t - 1)
    a = dec.causal_wavelet_decompose(x, 64, "db4", 2)
    b = dec.causal_wavelet_decompose(future_changed, 64, "db4", 2)
    np.testing.assert_array_equal(a[:, :t + 1], b[:, :t + 1])
    assert not np.allclose(a[:, t + 1:], b[:, t + 1:])
    full_a, full_b = (dec.wavelet_decompose(v, "db4", 2) for v in (x, future_changed))
    assert np.abs(full_a[:, t] - full_b[:, t]).max() > 1e-3  # the leak


def test_causal_wavelet_step_and_series() -> None:
    idx = pd.date_range("2024-01-01", periods=100, freq="5min", tz="UTC")
    s = pd.Series(_walk(100), index=idx)
    df = dec.causal_wavelet_decompose(s, 32, "haar", 2, step=5)
    assert df.index.equals(idx) and list(df.columns) == ["A2", "D2", "D1"]
    computed = df.notna().all(axis=1).to_numpy()
    assert np.flatnonzero(computed).tolist() == list(range(31, 100, 5))


# -- VMD --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("K", "alpha", "tau", "dc", "init"), [
    (3, 2000.0, 0.0, False, 1),
    (4, 500.0, 0.2, True, 0),
    (2, 5000.0, 0.0, False, 0),
])
def test_batched_vmd_equals_vmdpy_window_by_window(K: int, alpha: float, tau: float, dc: bool,
                                                   init: int) -> None:
    x = _walk(200, seed=7)
    windows = np.lib.stride_tricks.sliding_window_view(x, 64)[::17]  # 8 windows of 64
    modes, omega, n_iter = dec.batched_vmd(windows, K, alpha, tau=tau, dc=dc, init=init,
                                           chunk_size=3)
    assert modes.shape == (len(windows), K, 64)
    for i, w in enumerate(windows):
        u, _, om = VMD(w, alpha, tau, K, dc, init, 1e-7)
        assert n_iter[i] == om.shape[0]
        assert _rel(modes[i], u) < 1e-6
        np.testing.assert_allclose(omega[i], om[-1], rtol=1e-6, atol=1e-12)


def test_batched_vmd_does_not_depend_on_chunking() -> None:
    X = np.random.default_rng(8).normal(size=(7, 32)).cumsum(axis=1)
    _frozen(X)
    ref = dec.batched_vmd(X, 3, 1000.0, chunk_size=7)
    for chunk in (1, 2, 5):
        got = dec.batched_vmd(X, 3, 1000.0, chunk_size=chunk)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    last, _, _ = dec.batched_vmd(X, 3, 1000.0, last_only=True, chunk_size=2)
    np.testing.assert_allclose(last, ref[0][:, :, -1], atol=1e-12)


def test_vmd_finds_the_frequencies_of_two_waves() -> None:
    t = np.arange(512)
    x = np.sin(2 * np.pi * 0.02 * t) + 0.5 * np.sin(2 * np.pi * 0.15 * t)
    res = dec.vmd(x, 2, 2000.0)
    np.testing.assert_allclose(res.centre_frequencies, [0.02, 0.15], atol=2e-3)
    # each mode is one of the waves
    assert _rel(res.modes[0], np.sin(2 * np.pi * 0.02 * t)) < 0.1
    assert _rel(res.modes[1], 0.5 * np.sin(2 * np.pi * 0.15 * t)) < 0.1
    assert res.converged


def test_vmd_sorts_modes_and_wraps_series() -> None:
    idx = pd.date_range("2024-01-01", periods=128, freq="h", tz="UTC")
    s = pd.Series(_walk(128, seed=9), index=idx)
    res = dec.vmd(s, 3, 1000.0, init=0)
    assert list(res.modes.columns) == ["mode_0", "mode_1", "mode_2"]
    assert res.modes.index.equals(idx)
    assert np.all(np.diff(res.centre_frequencies) >= 0)
    u, _, om = VMD(s.to_numpy(), 1000.0, 0.0, 3, False, 0, 1e-7)
    order = np.argsort(om[-1])
    assert _rel(res.modes.to_numpy().T, u[order]) < 1e-6


def test_causal_vmd_keeps_the_last_value_of_each_window_and_ignores_the_future() -> None:
    x = _walk(140, seed=10)
    _frozen(x)
    window, K = 64, 3
    out, freqs = dec.causal_vmd(x, window, K, 1500.0, step=4, return_frequencies=True)
    assert out.shape == freqs.shape == (K, 140)
    done = np.flatnonzero(~np.isnan(out[0]))
    assert done.tolist() == list(range(window - 1, 140, 4))
    for t in done[[0, 5, -1]]:
        u, _, om = VMD(x[t - window + 1:t + 1], 1500.0, 0.0, K, False, 1, 1e-7)
        order = np.argsort(om[-1])
        np.testing.assert_allclose(out[:, t], u[order, -1], rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(freqs[:, t], om[-1][order], rtol=1e-6)
    t = 100
    changed = x.copy()
    changed[t + 1:] *= 1.05
    out2 = dec.causal_vmd(changed, window, K, 1500.0, step=4)
    np.testing.assert_array_equal(out[:, :t + 1], out2[:, :t + 1])
    assert not np.allclose(out[:, done[-1]], out2[:, done[-1]])


# -- bad input ------------------------------------------------------------------------------------
def test_nan_is_reported_with_its_timestamp() -> None:
    idx = pd.date_range("2024-03-01", periods=64, freq="min", tz="UTC")
    s = pd.Series(_walk(64), index=idx)
    s.iloc[10] = np.nan
    for call in (lambda: dec.wavelet_decompose(s, "haar", 2),
                 lambda: dec.causal_wavelet_decompose(s, 16, "haar", 2),
                 lambda: dec.vmd(s, 2),
                 lambda: dec.causal_vmd(s, 16, 2)):
        with pytest.raises(ValueError, match=r"NaN at Timestamp\('2024-03-01 00:10:00"):
            call()
    x = _walk(64)
    x[5] = np.inf
    with pytest.raises(ValueError, match="infinite value at position 5"):
        dec.wavelet_decompose(x)


@pytest.mark.parametrize(("call", "message"), [
    (lambda x: dec.wavelet_decompose(x[:5], "db4"), "too short"),
    (lambda x: dec.wavelet_decompose(x, "db4", level=9), "at most pywt.dwt_max_level"),
    (lambda x: dec.wavelet_decompose(x, "db4", level=0), "level must be at least 1"),
    (lambda x: dec.wavelet_decompose(x, "nope"), "unknown discrete wavelet"),
    (lambda x: dec.wavelet_decompose(x, "bior2.2"), "not orthogonal"),
    (lambda x: dec.wavelet_decompose(x, mode="mirror"), "unknown boundary mode"),
    (lambda x: dec.wavelet_decompose(x, transform="fft"), "transform must be"),
    (lambda x: dec.wavelet_decompose(np.vstack([x, x])), "must be 1-D"),
    (lambda x: dec.wavelet_decompose(pd.DataFrame({"close": x})), "DataFrame"),
    (lambda x: dec.wavelet_denoise(x, "db4", 3, drop=4), "more detail levels"),
    (lambda x: dec.wavelet_denoise(x, "db4", 3, method="median"), "method must be"),
    (lambda x: dec.wavelet_energy(np.zeros(64), "haar"), "identically zero"),
    (lambda x: dec.causal_wavelet_decompose(x, 400), "longer than the series"),
    (lambda x: dec.causal_wavelet_decompose(x, 20, "db4", level=3), "a window of 20 samples"),
    (lambda x: dec.causal_wavelet_decompose(x, 64, step=0), "step must be at least 1"),
    (lambda x: dec.vmd(x[:-1], 3), "odd number of samples"),
    (lambda x: dec.vmd(x[:6], 2), "needs at least 8"),
    (lambda x: dec.vmd(x, 0), "K must be at least 1"),
    (lambda x: dec.vmd(x, 2, alpha=0), "alpha"),
    (lambda x: dec.vmd(x, 2, tau=-1), "tau"),
    (lambda x: dec.vmd(x, 2, init=2), "init"),
    (lambda x: dec.causal_vmd(x, 63, 2), "window=63 has an odd number"),
    (lambda x: dec.causal_vmd(x, 256, 2), "longer than the series"),
    (lambda x: dec.batched_vmd(x, 2), "2-D"),
    (lambda x: dec.batched_vmd(np.full((2, 8), np.nan), 2), "row 0, column 0"),
])
def test_bad_input_raises_a_clear_error(call, message: str) -> None:
    x = _walk(200)
    _frozen(x)
    with pytest.raises(ValueError, match=message):
        call(x)
