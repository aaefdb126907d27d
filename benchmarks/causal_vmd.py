"""causal_vmd: the batched rolling VMD against one ``vmdpy.VMD`` call per trailing window.

Ours is :func:`msa_lib.decompose.causal_vmd`, which decomposes all windows together. The
reference is what a reader would write first: slide over the series, call ``vmdpy.VMD`` on each
window of the last ``window`` samples, sort its modes by centre frequency and keep the last value
of each. Both use vmdpy's defaults from the chapter (``alpha=2000, tau=0, DC=0, init=1,
tol=1e-7``) on the log close price of the synthetic market.

vmdpy is slow, so the reference is timed on an evenly spread subset of the windows (every
``stride``-th) and the time is extrapolated linearly to all of them: the windows are independent
and alike (the details report the iteration counts of the subset).
"""

from __future__ import annotations

import statistics

import numpy as np

from benchmarks.common import Result, fmt_seconds, median_seconds, timed

NAME = "causal_vmd"
TARGET = 10.0
DESCRIPTION = (
    "causal_vmd (batched rolling VMD), 2,000 windows of 256 points, against one vmdpy.VMD call "
    "per window"
)

WINDOW, K, ALPHA, TOL = 256, 4, 2000.0, 1e-7
RTOL, ATOL = 1e-7, 1e-9


def reference_causal_vmd(
    x: np.ndarray, window: int, K: int, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Last value of each VMD mode (slowest first) of ``x[t - window + 1 : t + 1]``, for t in ``positions``.

    One ``vmdpy.VMD`` call per window, modes sorted by their final centre frequency.

    Returns
    -------
    values : numpy.ndarray, shape [len(positions), K]
    iterations : numpy.ndarray of int, shape [len(positions)]
        vmdpy's iteration count per window (``omega.shape[0]``).
    """
    from vmdpy import VMD

    out = np.empty((len(positions), K))
    iterations = np.empty(len(positions), dtype=np.int64)
    for row, t in enumerate(positions):
        modes, _, omega = VMD(x[t - window + 1 : t + 1], ALPHA, 0.0, K, 0, 1, TOL)  # [K, window]
        order = np.argsort(omega[-1], kind="stable")  # slowest mode first
        out[row] = modes[order, -1]
        iterations[row] = omega.shape[0]
    return out, iterations


def compare(ours: np.ndarray, ref: np.ndarray, positions: np.ndarray) -> None:
    """Assert ``ours[:, positions].T`` (``causal_vmd`` output, [K, n]) equals ``ref`` ([m, K]).

    Tolerance ``RTOL``/``ATOL``: both run the same iterations in float64, so only rounding differs.
    """
    got = ours[:, positions].T  # [m, K]
    assert got.shape == ref.shape, f"shapes differ: {got.shape} vs {ref.shape}"
    if not np.allclose(got, ref, rtol=RTOL, atol=ATOL):
        bad = np.abs(got - ref) > ATOL + RTOL * np.abs(ref)
        row, mode = np.argwhere(bad)[0]
        raise AssertionError(
            f"causal_vmd differs from vmdpy at position {positions[row]}, mode_{mode}: "
            f"{got[row, mode]!r} vs {ref[row, mode]!r} (rtol {RTOL}, atol {ATOL})"
        )


def check(x: np.ndarray, window: int, K: int, positions: np.ndarray | None = None) -> np.ndarray:
    """Run ``causal_vmd`` and the per-window vmdpy loop on ``x``; :func:`compare` them.

    ``positions`` (default: every time with a full window) are where vmdpy is run.
    Returns ``causal_vmd``'s output ``[K, n]``.
    """
    from msa_lib.decompose import causal_vmd

    ours = causal_vmd(x, window, K, ALPHA, tol=TOL)
    if positions is None:
        positions = np.arange(window - 1, len(x))
    compare(ours, reference_causal_vmd(x, window, K, positions)[0], positions)
    return ours


def make_series(n_windows: int, window: int = WINDOW, seed: int = 0) -> np.ndarray:
    """Log close prices of the synthetic market, just long enough for ``n_windows`` windows."""
    from msa_lib.datasets import simulate_market

    n = n_windows + window - 1
    days = -(-n // 1440)
    close = simulate_market(days=days, seed=seed).bars["close"].to_numpy()
    return np.log(close[:n])


def run(quick: bool = False) -> Result:
    """Time ours on every window and vmdpy on a spread-out subset; compare on that subset."""
    from msa_lib.decompose import causal_vmd

    n_windows, stride = (500, 25) if quick else (2000, 10)
    ours_repeats, ref_repeats = (1, 1) if quick else (3, 3)
    x = make_series(n_windows)
    positions = np.arange(WINDOW - 1, len(x))[::stride]  # the subset vmdpy runs on

    ref_runs = []
    for _ in range(ref_repeats):
        seconds, (ref, iterations) = timed(lambda: reference_causal_vmd(x, WINDOW, K, positions))
        ref_runs.append(seconds)
    ours_s, ours_runs = median_seconds(
        lambda: causal_vmd(x, WINDOW, K, ALPHA, tol=TOL), ours_repeats, warmup=0
    )
    compare(causal_vmd(x, WINDOW, K, ALPHA, tol=TOL), ref, positions)

    per_window = statistics.median(ref_runs) / len(positions)
    ref_s = per_window * n_windows  # linear extrapolation to every window
    details = (
        f"ours {fmt_seconds(ours_s)} for {n_windows:,} windows (median of {ours_repeats}) vs vmdpy "
        f"{fmt_seconds(per_window)} per window x {n_windows:,} = {fmt_seconds(ref_s)}, "
        f"EXTRAPOLATED from {len(positions)} windows (every {stride}th; median of {ref_repeats}); "
        f"K={K}, alpha={ALPHA:g}, tol={TOL:g}, log close prices; vmdpy iterations per window "
        f"{int(iterations.min())}-{int(iterations.max())} (median {int(np.median(iterations))})"
    )
    return Result(
        name=NAME,
        ratio=ref_s / ours_s,
        target=TARGET,
        agreement=(
            f"last value of every mode equal to vmdpy's on the {len(positions)} reference windows "
            f"(rtol {RTOL:g}, atol {ATOL:g}, float64)"
        ),
        details=details,
        metrics={
            "ours_seconds": ours_s,
            "reference_seconds_extrapolated": ref_s,
            "reference_seconds_per_window": per_window,
            "reference_windows_timed": len(positions),
            "ours_runs": ours_runs,
            "reference_runs": ref_runs,
            "windows": n_windows,
            "window": WINDOW,
            "K": K,
            "vmdpy_iterations_median": float(np.median(iterations)),
        },
    )
