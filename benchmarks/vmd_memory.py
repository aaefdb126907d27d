"""vmd_memory: peak memory of one VMD of a long series, ``msa_lib.decompose.vmd`` against vmdpy.

vmdpy keeps every iterate: its ``u_hat_plus`` array holds 500 iterations x 2n frequencies x K
modes of complex numbers, allocated up front (for n = 20,000 and K = 4 that alone is 1.2 GiB).
``msa_lib.decompose.vmd`` keeps two iterates of the positive half of the spectrum. Peak memory is
measured with :mod:`tracemalloc`, which sees NumPy's allocations (NumPy reports them to it), from
the call to its return, inputs excluded. Memory does not vary between runs, so each side runs once
(and those runs are also the ones compared).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.common import Result, fmt_bytes, fmt_seconds

NAME = "vmd_memory"
TARGET = 20.0
DESCRIPTION = "peak memory (tracemalloc) of one VMD of 20,000 points, vmdpy / msa_lib.decompose.vmd"

N_POINTS, K, ALPHA, TOL = 20_000, 4, 2000.0, 1e-7
RTOL, ATOL = 1e-7, 1e-9


def peak_memory(fn: Callable[[], Any]) -> tuple[int, float, Any]:
    """Run ``fn()`` under :mod:`tracemalloc`; return ``(peak bytes, seconds, result)``.

    The peak is counted from the start of the call, so memory held before it is not included.
    """
    if tracemalloc.is_tracing():
        raise RuntimeError("tracemalloc is already tracing; peak_memory needs it to itself")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, seconds, result


def reference_vmd(x: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``vmdpy.VMD`` with the chapter's settings, modes sorted slowest first.

    Returns
    -------
    modes : [K, n], centre_frequencies : [K], n_iter : int
    """
    from vmdpy import VMD

    modes, _, omega = VMD(x, ALPHA, 0.0, K, 0, 1, TOL)
    order = np.argsort(omega[-1], kind="stable")
    return modes[order], omega[-1][order], int(omega.shape[0])


def ours_vmd(x: np.ndarray, K: int) -> tuple[np.ndarray, np.ndarray, int]:
    """``msa_lib.decompose.vmd`` with the same settings, in the same format as :func:`reference_vmd`."""
    from msa_lib.decompose import vmd

    result = vmd(x, K, ALPHA, tol=TOL)
    return np.asarray(result.modes), result.centre_frequencies, result.n_iter


def compare(ours: tuple[np.ndarray, np.ndarray, int], ref: tuple[np.ndarray, np.ndarray, int]) -> None:
    """Assert equal modes, centre frequencies (``RTOL``/``ATOL``) and iteration counts (exactly)."""
    (u, omega, n_iter), (u_ref, omega_ref, n_iter_ref) = ours, ref
    assert n_iter == n_iter_ref, f"iterations differ: {n_iter} vs vmdpy's {n_iter_ref}"
    assert u.shape == u_ref.shape, f"mode shapes differ: {u.shape} vs {u_ref.shape}"
    for what, a, b in (("modes", u, u_ref), ("centre frequencies", omega, omega_ref)):
        if not np.allclose(a, b, rtol=RTOL, atol=ATOL):
            raise AssertionError(
                f"{what} differ from vmdpy: max |diff| {np.abs(a - b).max():.3g} "
                f"(rtol {RTOL}, atol {ATOL})"
            )


def check(x: np.ndarray, K: int) -> None:
    """Run both on ``x`` and :func:`compare` them."""
    compare(ours_vmd(x, K), reference_vmd(x, K))


def make_series(n: int, seed: int = 0) -> np.ndarray:
    """The first ``n`` log close prices of the synthetic market."""
    from msa_lib.datasets import simulate_market

    close = simulate_market(days=-(-n // 1440), seed=seed).bars["close"].to_numpy()
    return np.log(close[:n])


def run(quick: bool = False) -> Result:
    """Measure both peaks once, then compare the two results."""
    n = 4_000 if quick else N_POINTS
    x = make_series(n)
    ours_peak, ours_s, ours = peak_memory(lambda: ours_vmd(x, K))
    ref_peak, ref_s, ref = peak_memory(lambda: reference_vmd(x, K))
    compare(ours, ref)
    details = (
        f"peak {fmt_bytes(ours_peak)} vs vmdpy {fmt_bytes(ref_peak)} (tracemalloc, one run each); "
        f"{n:,} log close prices, K={K}, {ours[2]} iterations both; time {fmt_seconds(ours_s)} vs "
        f"{fmt_seconds(ref_s)}"
    )
    return Result(
        name=NAME,
        ratio=ref_peak / ours_peak,
        target=TARGET,
        agreement=(
            f"same iteration count; modes and centre frequencies allclose (rtol {RTOL:g}, "
            f"atol {ATOL:g}, float64)"
        ),
        details=details,
        metrics={
            "ours_peak_bytes": ours_peak,
            "reference_peak_bytes": ref_peak,
            "ours_seconds": ours_s,
            "reference_seconds": ref_s,
            "points": n,
            "K": K,
            "iterations": ours[2],
        },
    )
