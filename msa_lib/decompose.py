"""Split a price series into time scales: wavelets and Variational Mode Decomposition (VMD).

Every decomposition here comes in two flavours:

* **full-series** (:func:`wavelet_decompose`, :func:`vmd`): one decomposition of the whole series.
  Good for looking at data. Useless as a forecasting feature, because the value of a component at
  time ``t`` depends on samples *after* ``t`` (wavelet filters are two-sided, VMD optimises over
  the whole series at once): a model fed with it sees the future.
* **causal** (:func:`causal_wavelet_decompose`, :func:`causal_vmd`): for every time ``t`` the
  series is cut to the last ``window`` samples ``x[t - window + 1 : t + 1]``, that window alone is
  decomposed, and only the *last* value of each component is kept. Nothing after ``t`` is used, so
  these are safe as features. Times before the first full window are NaN.

Conventions
-----------
* Inputs are 1-D: a NumPy array (or anything :func:`numpy.asarray` accepts) or a
  :class:`pandas.Series`. They are never modified.
* Array in, array out: components come back as an array of shape ``[n_components, n]``, one row per
  component, aligned sample for sample with the input. Series in, DataFrame out: same numbers,
  transposed to one *column* per component and indexed like the input.
* Wavelet components are ordered coarse to fine, ``A{J}, D{J}, ..., D1`` (the approximation at
  level ``J``, then details from the slowest to the fastest), as :func:`wavelet_names` gives them.
  VMD modes are ordered by centre frequency, slowest first, named ``mode_0, mode_1, ...``.
* Bad input (NaN, too short, too many levels, odd VMD length, ...) raises :class:`ValueError`
  naming the problem and where it is; nothing is silently repaired.

The batched VMD (:func:`batched_vmd`) is a NumPy re-implementation of ``vmdpy.VMD`` (Carvalho's
port of Dragomiretskiy and Zosso's MATLAB code) that decomposes many windows of the same length in
one vectorised computation, keeps only the last two iterates instead of all 500, and reproduces
vmdpy's result window by window, iteration for iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pywt
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "VMDResult",
    "batched_vmd",
    "causal_vmd",
    "causal_wavelet_decompose",
    "vmd",
    "vmd_names",
    "wavelet_decompose",
    "wavelet_denoise",
    "wavelet_energy",
    "wavelet_names",
]

Transform = Literal["dwt", "swt"]

#: vmdpy's hard-coded iteration budget: its loop stops after ``_VMDPY_NITER - 1`` updates.
_VMDPY_NITER = 500
#: Working memory (bytes) that :func:`batched_vmd` aims for when it picks how many windows to
#: decompose together: small enough to stay in a CPU's cache, where NumPy runs fastest ...
_CHUNK_BYTES = 4 * 2**20
#: ... but never fewer or more windows than this (measured on a 2-core CPU: flat in between).
_CHUNK_ROWS = (16, 512)


# ------------------------------------------------------------------------------------------------
# input checks
# ------------------------------------------------------------------------------------------------
def _as_series_values(x: Any, name: str = "x") -> tuple[np.ndarray, pd.Index | None]:
    """Return ``(values, index)`` for a 1-D input; ``index`` is None unless ``x`` is a Series.

    ``values`` is a float64 copy, checked to be finite.
    """
    if isinstance(x, pd.DataFrame):
        raise ValueError(f"{name} must be 1-D (a Series or an array), got a DataFrame with columns "
                         f"{list(x.columns)}; pick one column, e.g. bars['close']")
    index = x.index if isinstance(x, pd.Series) else None
    try:
        # A private copy: the caller's data can never be written to (and pywt rejects read-only
        # buffers).
        values = np.array(x.to_numpy() if index is not None else x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must hold numbers: {err}") from None
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {values.shape}")
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        where = f"at {index[i]!r} (position {i})" if index is not None else f"at position {i}"
        what = "NaN" if np.isnan(values[i]) else "an infinite value"
        raise ValueError(f"{name} contains {what} {where}; {int(bad.sum())} non-finite value(s) "
                         "in all. Decompositions need a gap-free series: drop or fill them "
                         "explicitly first")
    return values, index


def _check_int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def _wavelet(wavelet: str | pywt.Wavelet) -> pywt.Wavelet:
    try:
        w = wavelet if isinstance(wavelet, pywt.Wavelet) else pywt.Wavelet(wavelet)
    except ValueError:
        raise ValueError(f"unknown discrete wavelet {wavelet!r}; choose one of "
                         f"pywt.wavelist(kind='discrete'), e.g. 'haar', 'db4', 'sym5'") from None
    if not w.orthogonal:
        raise ValueError(f"wavelet {w.name!r} is not orthogonal; use an orthogonal family "
                         "(haar, db, sym, coif) so that energy per level adds up")
    return w


def _check_mode(mode: str) -> str:
    if mode not in pywt.Modes.modes:
        raise ValueError(f"unknown boundary mode {mode!r}; choose one of {pywt.Modes.modes}")
    return mode


def _resolve_level(n: int, w: pywt.Wavelet, level: int | None, where: str) -> int:
    """The decomposition level: ``level``, or the deepest the length allows when None."""
    max_level = pywt.dwt_max_level(n, w.dec_len)
    if max_level < 1:
        raise ValueError(f"{where} has {n} samples, too short for wavelet {w.name!r} (filter "
                         f"length {w.dec_len}): need at least {w.dec_len} samples for one level")
    if level is None:
        return max_level
    level = _check_int(level, "level", 1)
    if level > max_level:
        raise ValueError(f"level={level} is more than {where} allows: {n} samples and filter "
                         f"length {w.dec_len} give at most pywt.dwt_max_level = {max_level} "
                         f"levels; a level-{level} decomposition needs at least "
                         f"{(w.dec_len - 1) * 2**level} samples")
    return level


def wavelet_names(level: int) -> list[str]:
    """Names of the ``level + 1`` wavelet components, coarse to fine: ``A{J}, D{J}, ..., D1``.

    ``A`` is the approximation (the smooth part left after ``J`` halvings of the frequency band);
    ``D{j}`` is the detail at level ``j``, holding periods of roughly ``2**j`` to ``2**(j+1)``
    samples.

    Examples
    --------
    >>> wavelet_names(3)
    ['A3', 'D3', 'D2', 'D1']
    """
    level = _check_int(level, "level", 1)
    return [f"A{level}"] + [f"D{j}" for j in range(level, 0, -1)]


def vmd_names(K: int) -> list[str]:
    """Names of ``K`` VMD modes, slowest first: ``mode_0, ..., mode_{K-1}``."""
    return [f"mode_{k}" for k in range(_check_int(K, "K", 1))]


def _wrap(components: np.ndarray, index: pd.Index | None, names: list[str]
          ) -> np.ndarray | pd.DataFrame:
    """``[n_components, n]`` array -> same array, or an ``n x n_components`` DataFrame."""
    if index is None:
        return components
    return pd.DataFrame(components.T, index=index, columns=names)


# ------------------------------------------------------------------------------------------------
# wavelets
# ------------------------------------------------------------------------------------------------
def _mra_rows(X: np.ndarray, w: pywt.Wavelet, level: int, mode: str, transform: Transform
              ) -> np.ndarray:
    """Additive multiresolution analysis of every row of ``X`` ([m, n]) -> [level + 1, m, n].

    Component ``j`` is what the inverse transform returns when every coefficient except those of
    band ``j`` is set to zero, so the components add up to the input exactly (up to rounding).
    """
    m, n = X.shape
    if transform == "dwt":
        parts = pywt.mra(X, w, level=level, transform="dwt", mode=mode, axis=-1)
        return np.stack(parts)  # [level + 1, m, n]
    # The SWT (MODWT) needs a length divisible by 2**level and only knows periodic boundaries.
    # Extend both ends with the requested boundary rule by the length of the level-J equivalent
    # filter, so that the wrap-around never reaches the real samples, then cut the extension off.
    block = 2**level
    if mode == "periodization" and n % block == 0:
        left = right = 0
    else:
        left = (w.dec_len - 1) * (block - 1) + 1
        right = left + (-(n + 2 * left)) % block
    ext_mode = "periodic" if mode == "periodization" else mode
    Xp = pywt.pad(X, ((0, 0), (left, right)), ext_mode) if left else X
    parts = pywt.mra(Xp, w, level=level, transform="swt", axis=-1)
    return np.stack(parts)[:, :, left:left + n]


def wavelet_decompose(
    x: Any,
    wavelet: str = "db4",
    level: int | None = None,
    *,
    mode: str = "symmetric",
    transform: Transform = "dwt",
) -> np.ndarray | pd.DataFrame:
    """Split a whole series into wavelet components that add back up to it exactly.

    This is the additive *multiresolution analysis* (MRA) of the series: the approximation ``A{J}``
    plus one detail ``D{j}`` per level, each as long as the input. It uses every sample of the
    series to compute every value, so it looks into the future: use it to look at data, and
    :func:`causal_wavelet_decompose` to make features.

    Parameters
    ----------
    x : array-like or pandas.Series, shape [n]
        The series (for prices, usually the log price). Must be finite.
    wavelet : str, default "db4"
        An orthogonal discrete wavelet known to PyWavelets ("haar", "db4", "sym5", ...).
    level : int, optional
        Number of levels ``J``. Default: the deepest that the length allows,
        ``pywt.dwt_max_level(n, filter_length)``; more than that raises ValueError.
    mode : str, default "symmetric"
        How the series is extended past its two ends (a PyWavelets signal-extension mode).
        "symmetric" mirrors it, which suits prices; "periodization" wraps the end around to the
        start, which puts a jump at both boundaries of a trending series.
    transform : {"dwt", "swt"}, default "dwt"
        "dwt": the decimated discrete wavelet transform. "swt": the stationary (undecimated)
        transform, i.e. the MODWT, whose components do not change shape when the series is
        shifted by one sample. For "swt" the series is extended by ``mode`` and the extension cut
        off again (PyWavelets' SWT alone only wraps around).

    Returns
    -------
    numpy.ndarray of shape [level + 1, n], or pandas.DataFrame of shape [n, level + 1]
        Rows ``A{J}, D{J}, ..., D1`` (coarse to fine, see :func:`wavelet_names`) whose sum is
        ``x``. A DataFrame (one column per component, the input's index) when ``x`` is a Series.

    Raises
    ------
    ValueError
        On NaN/inf (naming the first), non-1-D input, an unknown wavelet or mode, or a ``level``
        that the length does not allow (including a series shorter than the filter).

    Examples
    --------
    >>> x = np.cumsum(np.random.default_rng(0).normal(size=300))
    >>> parts = wavelet_decompose(x, "db4", level=3)
    >>> parts.shape
    (4, 300)
    >>> bool(np.allclose(parts.sum(axis=0), x))
    True
    """
    values, index = _as_series_values(x)
    w = _wavelet(wavelet)
    mode = _check_mode(mode)
    if transform not in ("dwt", "swt"):
        raise ValueError(f"transform must be 'dwt' or 'swt', got {transform!r}")
    level = _resolve_level(values.size, w, level, "the series")
    comps = _mra_rows(values[None, :], w, level, mode, transform)[:, 0, :]  # [level + 1, n]
    return _wrap(comps, index, wavelet_names(level))


def wavelet_denoise(
    x: Any,
    wavelet: str = "db4",
    level: int | None = None,
    *,
    method: Literal["drop", "soft", "hard"] = "drop",
    drop: int = 1,
    mode: str = "symmetric",
) -> np.ndarray | pd.Series:
    """Smooth a whole series by removing or shrinking its fastest wavelet details.

    Parameters
    ----------
    x : array-like or pandas.Series, shape [n]
    wavelet, level, mode
        As in :func:`wavelet_decompose` (always the decimated DWT here).
    method : {"drop", "soft", "hard"}, default "drop"
        "drop": set the ``drop`` finest detail levels ``D1 ... D{drop}`` to zero. "soft"/"hard":
        threshold every detail coefficient at the universal threshold
        ``sigma * sqrt(2 log n)`` (Donoho and Johnstone), with the noise level ``sigma``
        estimated as ``median(|D1 coefficients|) / 0.6745``.
    drop : int, default 1
        Detail levels to remove with ``method="drop"``; ``1 <= drop <= level``.

    Returns
    -------
    numpy.ndarray of shape [n], or pandas.Series (same index and name) when ``x`` is a Series.

    Notes
    -----
    Like every full-series decomposition this uses future samples at every time: smooth data to
    look at it, never to build features.
    """
    values, index = _as_series_values(x)
    w = _wavelet(wavelet)
    mode = _check_mode(mode)
    level = _resolve_level(values.size, w, level, "the series")
    coeffs = pywt.wavedec(values, w, level=level, mode=mode)  # [cA_J, cD_J, ..., cD_1]
    if method == "drop":
        drop = _check_int(drop, "drop", 1)
        if drop > level:
            raise ValueError(f"drop={drop} removes more detail levels than the decomposition "
                             f"has (level={level})")
        coeffs = coeffs[:len(coeffs) - drop] + [np.zeros_like(c) for c in coeffs[-drop:]]
    elif method in ("soft", "hard"):
        sigma = np.median(np.abs(coeffs[-1])) / 0.6745
        thr = sigma * np.sqrt(2.0 * np.log(values.size))
        coeffs = [coeffs[0]] + [pywt.threshold(c, thr, mode=method) for c in coeffs[1:]]
    else:
        raise ValueError(f"method must be 'drop', 'soft' or 'hard', got {method!r}")
    smooth = pywt.waverec(coeffs, w, mode=mode)[:values.size]  # [n]
    if index is None:
        return smooth
    return pd.Series(smooth, index=index, name=getattr(x, "name", None))


def wavelet_energy(
    x: Any, wavelet: str = "db4", level: int | None = None, *, mode: str = "periodization"
) -> pd.Series:
    """Share of the series' energy (sum of squares) held by each level's DWT coefficients.

    With an orthogonal wavelet and ``mode="periodization"`` the transform is a rotation, so the
    shares add up to exactly 1 (Parseval). Other modes add boundary coefficients and the sum
    drifts slightly from 1. Pass a series without its mean (for example returns, or a demeaned
    log price): otherwise the approximation holds almost all the energy.

    Returns
    -------
    pandas.Series
        Indexed by :func:`wavelet_names` (``A{J}, D{J}, ..., D1``), values summing to about 1.
    """
    values, _ = _as_series_values(x)
    w = _wavelet(wavelet)
    mode = _check_mode(mode)
    level = _resolve_level(values.size, w, level, "the series")
    total = float(np.dot(values, values))
    if total == 0.0:
        raise ValueError("the series is identically zero: its energy cannot be shared out")
    coeffs = pywt.wavedec(values, w, level=level, mode=mode)
    energy = np.array([np.dot(c, c) for c in coeffs]) / total
    return pd.Series(energy, index=wavelet_names(level), name="energy share")


def _rolling_positions(n: int, window: int, step: int, where: str) -> np.ndarray:
    """Times t (positions) at which a full window ``x[t - window + 1 : t + 1]`` is decomposed."""
    if window > n:
        raise ValueError(f"window={window} is longer than {where} ({n} samples)")
    return np.arange(window - 1, n, step)


def causal_wavelet_decompose(
    x: Any,
    window: int,
    wavelet: str = "db4",
    level: int | None = None,
    *,
    mode: str = "symmetric",
    transform: Transform = "dwt",
    step: int = 1,
) -> np.ndarray | pd.DataFrame:
    """Wavelet components that use only the past: decompose each trailing window, keep its end.

    For every time ``t`` from ``window - 1`` on (every ``step``-th), the window
    ``x[t - window + 1 : t + 1]`` is decomposed with :func:`wavelet_decompose` and the last value
    of each component becomes the component's value at ``t``. Changing anything after ``t``
    leaves row ``t`` unchanged.

    Because the multiresolution analysis is linear, "last value of the decomposition of the
    window" is a fixed weighted sum of the window's samples: one one-sided (causal) filter per
    component. The filters are computed once, by decomposing the ``window`` unit impulses, and
    applied to all windows with one matrix product, which gives the same numbers as the loop (to
    rounding) at a fraction of the cost.

    Parameters
    ----------
    x : array-like or pandas.Series, shape [n]
    window : int
        Samples in each trailing window; must allow ``level`` levels (``pywt.dwt_max_level``).
    wavelet, level, mode, transform
        As in :func:`wavelet_decompose`, applied to each window. ``level=None`` means the deepest
        level the *window* allows.
    step : int, default 1
        Decompose every ``step``-th time only; the others stay NaN.

    Returns
    -------
    numpy.ndarray of shape [level + 1, n], or pandas.DataFrame of shape [n, level + 1]
        Components ``A{J}, D{J}, ..., D1`` aligned with ``x``; NaN before the first full window
        (and between steps). At each computed time they add up to ``x`` at that time.
    """
    values, index = _as_series_values(x)
    window = _check_int(window, "window", 2)
    step = _check_int(step, "step", 1)
    w = _wavelet(wavelet)
    mode = _check_mode(mode)
    if transform not in ("dwt", "swt"):
        raise ValueError(f"transform must be 'dwt' or 'swt', got {transform!r}")
    level = _resolve_level(window, w, level, f"a window of {window} samples")
    pos = _rolling_positions(values.size, window, step, "the series")
    weights = _causal_wavelet_filters(window, w, level, mode, transform)  # [level + 1, window]
    out = np.full((level + 1, values.size), np.nan)                       # [level + 1, n]
    for j, filt in enumerate(weights):
        # value at t = sum_i filt[i] * x[t - window + 1 + i]: a one-sided (causal) filter
        out[j, pos] = np.correlate(values, filt, mode="valid")[pos - (window - 1)]
    return _wrap(out, index, wavelet_names(level))


def _causal_wavelet_filters(window: int, w: pywt.Wavelet, level: int, mode: str,
                            transform: Transform, block: int = 256) -> np.ndarray:
    """Weights [level + 1, window]: component j at a window's last sample is ``weights[j] @ window``.

    Row ``i`` of the identity is the unit impulse at position ``i``; the last sample of its
    decomposition is the weight of position ``i``. Impulses are decomposed ``block`` at a time to
    bound memory.
    """
    weights = np.empty((level + 1, window))
    for lo in range(0, window, block):
        b = min(block, window - lo)
        impulses = np.zeros((b, window))                                          # [b, window]
        impulses[np.arange(b), lo + np.arange(b)] = 1.0
        weights[:, lo:lo + block] = _mra_rows(impulses, w, level, mode, transform)[:, :, -1]
    return weights


# ------------------------------------------------------------------------------------------------
# VMD
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VMDResult:
    """What :func:`vmd` returns.

    Attributes
    ----------
    modes : numpy.ndarray [K, n] or pandas.DataFrame [n, K]
        The modes, slowest first; their sum approximates the series (VMD is not an exact
        decomposition: what is left over is noise the modes do not claim).
    centre_frequencies : numpy.ndarray [K]
        Centre frequency of each mode in cycles per sample, in [0, 0.5); ``1 / f`` is its period
        in samples.
    n_iter : int
        Iterations run (vmdpy's ``omega.shape[0]``); 499 means the tolerance was never met.
    """

    modes: np.ndarray | pd.DataFrame
    centre_frequencies: np.ndarray
    n_iter: int

    @property
    def converged(self) -> bool:
        """True when VMD stopped on its tolerance rather than its iteration limit."""
        return self.n_iter < _VMDPY_NITER - 1


def _check_vmd_args(K: Any, alpha: Any, tau: Any, tol: Any, init: Any, max_iter: Any
                    ) -> tuple[int, float, float, float, int, int]:
    K = _check_int(K, "K", 1)
    alpha, tau, tol = float(alpha), float(tau), float(tol)
    if not alpha > 0 or not np.isfinite(alpha):
        raise ValueError(f"alpha (the bandwidth penalty) must be a positive number, got {alpha}")
    if not tau >= 0 or not np.isfinite(tau):
        raise ValueError(f"tau (the dual ascent step) must be >= 0, got {tau}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if init not in (0, 1):
        raise ValueError(f"init must be 0 (all centre frequencies start at 0) or 1 (spread "
                         f"uniformly); got {init!r}. vmdpy's init=2 (random) is not supported: "
                         "rolling windows would start from different random points")
    max_iter = _check_int(max_iter, "max_iter", 2)
    return K, alpha, tau, tol, int(init), max_iter


def _check_vmd_length(n: int, K: int, where: str) -> None:
    if n % 2:
        raise ValueError(f"{where} has an odd number of samples ({n}). VMD needs an even length "
                         "(vmdpy silently drops the LAST sample, the newest one, of odd-length "
                         "input); drop the oldest sample yourself, e.g. x[1:]")
    minimum = max(8, 2 * K)
    if n < minimum:
        raise ValueError(f"{where} has {n} samples; VMD with K={K} modes needs at least "
                         f"{minimum}")


def _mirror_spectrum(F: np.ndarray) -> np.ndarray:
    """Positive half of the centred spectrum of vmdpy's mirrored signal: [B, n] -> [B, n] complex.

    vmdpy mirrors half a window onto each end (length ``T = 2n``) and takes
    ``fftshift(fft(.))[T // 2:]``, which is ``fft(.)[:n]``: frequencies 0, 1/T, ..., (n-1)/T.
    """
    n = F.shape[1]
    half = n // 2
    F_mirr = np.concatenate([F[:, half - 1::-1], F, F[:, :n - half - 1:-1]], axis=1)  # [B, T]
    return np.fft.fft(F_mirr, axis=1)[:, :n]


def _modes_from_half_spectrum(h: np.ndarray) -> np.ndarray:
    """vmdpy's post-processing: positive half-spectra [..., n] -> modes in time [..., n] (real).

    The full spectrum is completed by Hermitian symmetry exactly as vmdpy does it (including its
    index conventions), transformed back, and the mirrored quarter cut off each end.
    """
    n = h.shape[-1]
    T = 2 * n
    u_hat = np.zeros(h.shape[:-1] + (T,), dtype=complex)  # [..., T]
    u_hat[..., T // 2:] = h
    u_hat[..., np.arange(T // 2, 0, -1)] = np.conj(h)
    u_hat[..., 0] = np.conj(u_hat[..., -1])
    u = np.real(np.fft.ifft(np.fft.ifftshift(u_hat, axes=-1), axis=-1))  # [..., T]
    return u[..., T // 4:3 * T // 4]


def _last_value_weights(n: int, block: int = 256) -> np.ndarray:
    """Weights ``w`` [2n] with ``mode[-1] = h.view(float) @ w`` for a half-spectrum ``h`` [n].

    The last sample of a mode is a real-linear function of its half-spectrum, so it can be read
    off with one dot product instead of an inverse FFT of the whole window. The weights are
    found by transforming unit spectra, ``block`` at a time to bound memory.
    """
    w = np.empty((n, 2))  # [n, (re, im)]: interleaved like complex numbers in memory
    for lo in range(0, n, block):
        b = min(block, n - lo)
        basis = np.zeros((b, n), dtype=complex)                  # unit spectra e_lo ... e_lo+b-1
        basis[np.arange(b), lo + np.arange(b)] = 1.0
        w[lo:lo + b, 0] = _modes_from_half_spectrum(basis)[:, -1]
        w[lo:lo + b, 1] = _modes_from_half_spectrum(1j * basis)[:, -1]
    return w.reshape(2 * n)


def _vmd_stream(signals: np.ndarray, alpha: float, tau: float, K: int, dc: bool, init: int,
                tol: float, max_iter: int, capacity: int, last_only: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """vmdpy's algorithm on every row of ``signals`` ([B, n], n even), vectorised over rows.

    Up to ``capacity`` rows are in flight at once. All rows in flight get one VMD update per
    step; a row leaves as soon as it meets vmdpy's stopping rule, and the next waiting row takes
    its place, so every row runs exactly the iterations vmdpy would run on it alone. Only the
    positive half of each spectrum is stored (vmdpy's negative half stays zero) and only two
    iterates, because vmdpy answers with the iterate *before* the last one.

    Internally vmdpy's running sum ``sum_uk`` is replaced by the residual
    ``G = f_hat - lambda / 2 - (sum of the latest modes)``, which is the same update written
    with fewer array passes. Every step is either elementwise or a sum along one row (einsum
    or ``sum``, never BLAS, whose rounding can depend on the matrix size), so a row's result does not depend on
    which other rows share its batch: causal results are bit-for-bit unaffected by the future.

    Returns
    -------
    modes : [B, K, n] (or [B, K], the last sample only, when ``last_only``)
    omega : [B, K] centre frequencies (cycles per sample), vmdpy's ``omega[-1]``
    n_iter : [B] iterations run, vmdpy's ``omega.shape[0]``
    """
    B, n = signals.shape
    T = 2 * n
    freqs = (np.arange(1, T + 1) / T - 0.5 - 1 / T)[T // 2:]  # [n], vmdpy's positive frequencies
    freqs2 = np.repeat(freqs, 2)  # [2n], matches the (re, im) interleaving of complex memory
    omega0 = np.zeros(K)
    if init == 1:
        omega0[:] = (0.5 / K) * np.arange(K)
    if dc:
        omega0[0] = 0.0
    eps = np.spacing(1.0)
    w_last = _last_value_weights(n) if last_only else None

    out_modes = np.empty((B, K) if last_only else (B, K, n))
    out_omega = np.empty((B, K))
    out_iter = np.empty(B, dtype=np.int64)

    # ---- state of the rows in flight (m <= capacity of them) ----
    m = min(capacity, B)
    rows = np.arange(m)                            # which signal each slot holds
    queue = m                                      # next signal waiting for a slot
    it = np.zeros(m, dtype=np.int64)               # iterations run per slot
    f_hat = _mirror_spectrum(np.asarray(signals[:m], dtype=np.float64))  # [m, n]
    G = f_hat.copy()                               # residual f_hat - lam/2 - sum(u)  [m, n]
    lam = np.zeros((m, n), dtype=complex) if tau else None
    u_prev = np.zeros((K, m, n), dtype=complex)    # iterate it - 1 (what vmdpy returns)
    u_new = np.zeros((K, m, n), dtype=complex)     # iterate it
    omega = np.tile(omega0, (m, 1))                # [m, K] centre frequencies of u_prev
    omega_new = np.zeros((m, K))
    num = np.empty((m, n), dtype=complex)
    sq = np.empty((m, 2 * n))
    inv = np.empty((K, m, n))

    while m:
        # Wiener filters around the previous centre frequencies, all modes at once:
        # 1 / (1 + alpha (f - omega_k)^2)                                          [K, m, n]
        np.subtract(freqs, np.ascontiguousarray(omega.T)[:, :, None], out=inv)
        np.square(inv, out=inv)
        np.multiply(inv, alpha, out=inv)
        np.add(inv, 1.0, out=inv)
        np.reciprocal(inv, out=inv)
        change = np.full(m, eps)
        for k in range(K):
            np.add(G, u_prev[k], out=num)                         # f - lam/2 - other modes
            np.multiply(num, inv[k], out=u_new[k])                # Wiener filter
            np.subtract(u_new[k], u_prev[k], out=num)             # this mode's change
            np.subtract(G, num, out=G)
            d = num.view(np.float64)                              # [m, 2n]
            change += (1 / T) * np.einsum("ij,ij->i", d, d)
            if k == 0 and dc:
                omega_new[:, 0] = 0.0
            else:
                # centre of gravity of the power spectrum: sum f |u|^2 / sum |u|^2
                np.square(u_new[k].view(np.float64), out=sq)      # re^2, im^2   [m, 2n]
                omega_new[:, k] = np.einsum("ij,j->i", sq, freqs2) / sq.sum(axis=1)
        if tau:
            delta = G + lam / 2                                    # f - sum(u)
            lam -= tau * delta
            G += (tau / 2) * delta
        it += 1
        done = (change <= tol) | (it >= max_iter - 1)
        if done.any():
            # vmdpy answers with the iterate before the last one, and its omega.
            fin = np.flatnonzero(done)
            h = u_prev[:, fin].transpose(1, 0, 2)                 # [d, K, n]
            if last_only:
                h_real = np.ascontiguousarray(h).view(np.float64)  # [d, K, 2n]
                out_modes[rows[fin]] = (h_real * w_last).sum(axis=-1)
            else:
                out_modes[rows[fin]] = _modes_from_half_spectrum(h)
            out_omega[rows[fin]] = omega[fin]
            out_iter[rows[fin]] = it[fin]
        u_prev, u_new = u_new, u_prev
        omega, omega_new = omega_new, omega
        if not done.any():
            continue
        # Waiting signals take the freed slots; when none are left, the slots are dropped.
        n_new = min(fin.size, B - queue)
        if n_new:
            slots, fin = fin[:n_new], fin[n_new:]
            new_rows = np.arange(queue, queue + n_new)
            queue += n_new
            rows[slots] = new_rows
            it[slots] = 0
            f_new = _mirror_spectrum(np.asarray(signals[new_rows], dtype=np.float64))
            f_hat[slots] = f_new
            G[slots] = f_new
            if tau:
                lam[slots] = 0.0
            u_prev[:, slots] = 0.0
            omega[slots] = omega0
        if fin.size:
            keep = np.ones(m, dtype=bool)
            keep[fin] = False
            m = int(keep.sum())
            rows, it, f_hat, G = rows[keep], it[keep], f_hat[keep], G[keep]
            if tau:
                lam = lam[keep]
            u_prev, u_new = u_prev[:, keep], u_new[:, keep]
            omega, omega_new = omega[keep], omega_new[keep]
            num, sq, inv = num[:m], sq[:m], inv[:, :m]
    return out_modes, out_omega, out_iter


def batched_vmd(
    X: Any,
    K: int,
    alpha: float = 2000.0,
    *,
    tau: float = 0.0,
    tol: float = 1e-7,
    dc: bool = False,
    init: int = 1,
    max_iter: int = _VMDPY_NITER,
    sort_modes: bool = False,
    last_only: bool = False,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """VMD of many equal-length signals at once, giving what ``vmdpy.VMD`` gives for each.

    A vectorised re-implementation of ``vmdpy.VMD(f, alpha, tau, K, DC, init, tol)``: the rows
    of ``X`` go through the same updates together, each row stops at the iteration where vmdpy
    would stop on it alone, and the memory used is a few copies of the current iterate (vmdpy
    keeps all 500 iterates of every mode). At most ``chunk_size`` rows are in flight at once,
    which bounds memory however many rows there are.

    Parameters
    ----------
    X : array-like, shape [B, n]
        One signal per row, ``n`` even (vmdpy drops the last sample of odd-length input; here
        that is an error) and at least ``max(8, 2K)``.
    K : int
        Number of modes.
    alpha : float, default 2000
        Bandwidth penalty: larger means narrower modes (each closer to one frequency).
    tau : float, default 0
        Dual-ascent step; 0 lets the modes leave a residual ("noise slack") instead of summing
        to the signal exactly.
    tol : float, default 1e-7
        Stop when ``sum_k ||u_k(new) - u_k(old)||^2 / (2n) <= tol``. This is an *absolute*
        tolerance, as in vmdpy: it depends on the scale of the signal.
    dc : bool, default False
        Hold the first mode at frequency 0.
    init : {0, 1}, default 1
        Initial centre frequencies: 0 = all at 0, 1 = ``0.5 k / K``.
    max_iter : int, default 500
        vmdpy's hard-coded ``Niter``: at most ``max_iter - 1`` updates are run.
    sort_modes : bool, default False
        Reorder each row's modes by increasing centre frequency (vmdpy does not).
    last_only : bool, default False
        Return only the last sample of each mode, shape [B, K] (what a rolling, causal
        decomposition keeps); read straight off the spectrum, without an inverse FFT.
    chunk_size : int, optional
        Rows decomposed together (rows in flight); a row that finishes makes room for the next.
        Default: as many as fit in about 4 MiB of working memory (16 to 512).

    Returns
    -------
    modes : numpy.ndarray, shape [B, K, n] (or [B, K] with ``last_only``)
    centre_frequencies : numpy.ndarray, shape [B, K]
        In cycles per sample; equal to vmdpy's ``omega[-1]``.
    n_iter : numpy.ndarray of int, shape [B]
        Iterations each row ran; equal to vmdpy's ``omega.shape[0]``.

    Notes
    -----
    Two quirks of vmdpy 0.2 are reproduced on purpose, so that results match it: the modes and
    centre frequencies returned are those of the iterate *before* the last one computed, and the
    loop runs at most ``max_iter - 1`` updates.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D [n_signals, n], got shape {X.shape}")
    if not np.isfinite(X).all():
        row, col = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"X contains NaN or inf at row {row}, column {col}")
    K, alpha, tau, tol, init, max_iter = _check_vmd_args(K, alpha, tau, tol, init, max_iter)
    _check_vmd_length(X.shape[1], K, "each signal")
    return _run_vmd(X, K, alpha, tau, tol, bool(dc), init, max_iter, sort_modes, last_only,
                    chunk_size)


def _run_vmd(X: np.ndarray, K: int, alpha: float, tau: float, tol: float, dc: bool, init: int,
             max_iter: int, sort_modes: bool, last_only: bool, chunk_size: int | None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`batched_vmd` on checked arguments (``X`` [B, n] finite, n even)."""
    n = X.shape[1]
    if chunk_size is None:
        per_row = n * (40 * K + 80)  # bytes: two iterates, filters, residual, work arrays
        chunk_size = int(np.clip(_CHUNK_BYTES // per_row, *_CHUNK_ROWS))
    chunk_size = _check_int(chunk_size, "chunk_size", 1)
    modes, omega, n_iter = _vmd_stream(X, alpha, tau, K, dc, init, tol, max_iter, chunk_size,
                                       last_only)
    if sort_modes:
        order = np.argsort(omega, axis=1, kind="stable")  # [B, K]
        omega = np.take_along_axis(omega, order, axis=1)
        modes = np.take_along_axis(modes, order if last_only else order[:, :, None], axis=1)
    return modes, omega, n_iter


def vmd(
    x: Any,
    K: int,
    alpha: float = 2000.0,
    *,
    tau: float = 0.0,
    tol: float = 1e-7,
    dc: bool = False,
    init: int = 1,
    max_iter: int = _VMDPY_NITER,
) -> VMDResult:
    """Variational Mode Decomposition of a whole series into ``K`` band-limited modes.

    VMD (Dragomiretskiy and Zosso, 2014) looks for ``K`` modes, each concentrated around its own
    centre frequency, that together reproduce the series; the centre frequencies are found by the
    optimisation, not fixed in advance as in a wavelet transform. Same algorithm and results as
    ``vmdpy.VMD`` (via :func:`batched_vmd`), with the modes sorted slowest first and far less
    memory. It optimises over the whole series, so every value sees the future: use
    :func:`causal_vmd` for features.

    Parameters
    ----------
    x : array-like or pandas.Series, shape [n]
        The series; ``n`` even (see Raises). Scale matters for ``tol`` (absolute, as in vmdpy).
    K, alpha, tau, tol, dc, init, max_iter
        As in :func:`batched_vmd`.

    Returns
    -------
    VMDResult
        ``modes`` [K, n] (a DataFrame [n, K] named ``mode_0 ...`` when ``x`` is a Series),
        ``centre_frequencies`` [K] in cycles per sample, increasing, and ``n_iter``.

    Raises
    ------
    ValueError
        On NaN/inf, an odd length (vmdpy would silently drop the newest sample), fewer than
        ``max(8, 2K)`` samples, ``K < 1``, ``alpha <= 0``, ``tau < 0``, or ``init`` not 0 or 1.
    """
    values, index = _as_series_values(x)
    K, alpha, tau, tol, init, max_iter = _check_vmd_args(K, alpha, tau, tol, init, max_iter)
    _check_vmd_length(values.size, K, "the series")
    modes, omega, n_iter = _run_vmd(values[None, :], K, alpha, tau, tol, bool(dc), init,
                                    max_iter, True, False, None)
    return VMDResult(modes=_wrap(modes[0], index, vmd_names(K)),
                     centre_frequencies=omega[0], n_iter=int(n_iter[0]))


def causal_vmd(
    x: Any,
    window: int,
    K: int,
    alpha: float = 2000.0,
    *,
    tau: float = 0.0,
    tol: float = 1e-7,
    dc: bool = False,
    init: int = 1,
    max_iter: int = _VMDPY_NITER,
    step: int = 1,
    chunk_size: int | None = None,
    return_frequencies: bool = False,
) -> np.ndarray | pd.DataFrame | tuple[np.ndarray | pd.DataFrame, np.ndarray]:
    """VMD modes that use only the past: decompose each trailing window, keep its last value.

    For every ``step``-th time ``t`` from ``window - 1`` on, the window
    ``x[t - window + 1 : t + 1]`` is decomposed by VMD (all windows in one vectorised
    computation, :func:`batched_vmd`), its modes are sorted slowest first, and the last value of
    each becomes the mode's value at ``t``. Nothing after ``t`` is used.

    Parameters
    ----------
    x : array-like or pandas.Series, shape [n]
    window : int
        Samples per window: even, and at least ``max(8, 2K)``.
    K, alpha, tau, tol, dc, init, max_iter, chunk_size
        As in :func:`batched_vmd`.
    step : int, default 1
        Decompose at every ``step``-th time only (the others stay NaN): VMD is costly.
    return_frequencies : bool, default False
        Also return each window's centre frequencies, shape [K, n] (NaN where not computed).

    Returns
    -------
    numpy.ndarray of shape [K, n], or pandas.DataFrame of shape [n, K] when ``x`` is a Series
        Last value of each mode (``mode_0`` slowest), aligned with ``x``; NaN before the first
        full window and between steps. With ``return_frequencies``, a tuple
        ``(modes, centre_frequencies)``.
    """
    values, index = _as_series_values(x)
    window = _check_int(window, "window", 2)
    step = _check_int(step, "step", 1)
    K, alpha, tau, tol, init, max_iter = _check_vmd_args(K, alpha, tau, tol, init, max_iter)
    _check_vmd_length(window, K, f"window={window}")
    pos = _rolling_positions(values.size, window, step, "the series")
    windows = sliding_window_view(values, window)[::step]  # [len(pos), window], a view: no copy
    last, omega, _ = _run_vmd(windows, K, alpha, tau, tol, bool(dc), init, max_iter, True, True,
                              chunk_size)  # [len(pos), K] each
    out = np.full((K, values.size), np.nan)  # [K, n]
    out[:, pos] = last.T
    result = _wrap(out, index, vmd_names(K))
    if not return_frequencies:
        return result
    freqs = np.full((K, values.size), np.nan)
    freqs[:, pos] = omega.T
    return result, freqs
