"""windows: ``msa_lib.data.make_windows`` against a loop over decision times with ``get_indexer``.

The reference follows the chapter's ``create_sequences``: for every decision time and every scale
it asks pandas for the position of the row to forward-fill from (``get_indexer(method="ffill")``)
and slices the lookback rows that end there. Two things are changed so that both sides compute the
same thing: the slice *includes* the row found (the chapter's ``idx - lookback : idx`` drops it),
and the frames are labelled by bar close time, so "the row to forward-fill from" is exactly "the
last row stamped at or before t", the rule ``make_windows`` implements.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping

import numpy as np
import pandas as pd

from benchmarks.common import Result, fmt_seconds, median_seconds, timed
from msa_lib.experiment import COURSE

NAME = "windows"
TARGET = 50.0
DESCRIPTION = (
    "make_windows on 60 days of 1-minute bars, 4 scales, a decision every 5 minutes, against a "
    "per-decision-time loop with get_indexer(method='ffill') as in the chapter"
)

LOOKBACKS = COURSE.lookbacks  # the course's scales and lookbacks (msa_lib.experiment)


def reference_windows(
    frames: Mapping[str, pd.DataFrame],
    lookbacks: Mapping[str, int],
    times: pd.DatetimeIndex,
) -> tuple[dict[str, np.ndarray], pd.DatetimeIndex]:
    """Straightforward windows: one ``get_indexer`` lookup and one ``iloc`` slice per time and scale.

    Same contract as :func:`msa_lib.data.make_windows` (the window for ``t`` holds the
    ``lookbacks[s]`` rows ending with the last row stamped ``<= t``; times without a full window
    at every scale are dropped), without its input checks.

    Returns
    -------
    windows : dict[str, numpy.ndarray]
        ``[n_kept, lookback, n_features]`` float32 per scale.
    kept_times : pandas.DatetimeIndex
    """
    collected: dict[str, list[np.ndarray]] = {scale: [] for scale in frames}
    kept = []
    for t in times:
        rows = {}
        for scale, frame in frames.items():
            lookback = lookbacks[scale]
            # position of the row to forward-fill from, i.e. the last row stamped <= t (-1: none)
            pos = frame.index.get_indexer([t], method="ffill")[0]
            if pos + 1 < lookback:  # not enough history at this scale (also covers pos == -1)
                break
            rows[scale] = frame.iloc[pos - lookback + 1 : pos + 1].to_numpy(dtype=np.float32)
        else:
            for scale, window in rows.items():
                collected[scale].append(window)
            kept.append(t)
    windows = {
        scale: (
            np.stack(parts)
            if parts
            else np.empty((0, lookbacks[scale], frames[scale].shape[1]), dtype=np.float32)
        )
        for scale, parts in collected.items()
    }
    return windows, pd.DatetimeIndex(kept, tz=times.tz)


def compare(
    ours: tuple[dict[str, np.ndarray], pd.DatetimeIndex],
    ref: tuple[dict[str, np.ndarray], pd.DatetimeIndex],
) -> None:
    """Assert that two ``(windows, kept_times)`` results are identical.

    Tolerance: none. Both sides copy the same float64 values into float32, so every window must
    be bit-for-bit equal, and the kept decision times must be the same.

    Raises
    ------
    AssertionError
        Naming the scale (or the kept times) that differ.
    """
    (ours_w, ours_times), (ref_w, ref_times) = ours, ref
    assert ours_times.equals(ref_times), (
        f"kept decision times differ: make_windows keeps {len(ours_times)}, the loop {len(ref_times)}"
    )
    assert set(ours_w) == set(ref_w), f"scales differ: {sorted(ours_w)} vs {sorted(ref_w)}"
    for scale in ours_w:
        a, b = ours_w[scale], ref_w[scale]
        assert a.shape == b.shape, f"scale {scale!r}: shapes differ, {a.shape} vs {b.shape}"
        assert a.dtype == b.dtype, f"scale {scale!r}: dtypes differ, {a.dtype} vs {b.dtype}"
        if not np.array_equal(a, b):
            sample = int(np.flatnonzero((a != b).any(axis=(1, 2)))[0])
            raise AssertionError(
                f"scale {scale!r}: windows differ, first at decision time {ours_times[sample]}"
            )


def check(
    frames: Mapping[str, pd.DataFrame],
    lookbacks: Mapping[str, int],
    times: pd.DatetimeIndex,
) -> tuple[dict[str, np.ndarray], pd.DatetimeIndex]:
    """Run ``make_windows`` and :func:`reference_windows` on the same inputs; :func:`compare` them.

    Returns
    -------
    The result of ``make_windows``.
    """
    from msa_lib.data import make_windows

    ours = make_windows(frames, lookbacks, times)
    compare(ours, reference_windows(frames, lookbacks, times))
    return ours


def make_inputs(days: int, seed: int = 0) -> tuple[dict[str, pd.DataFrame], pd.DatetimeIndex]:
    """Features of the four scales of the synthetic market, and a decision time every 5 minutes."""
    from msa_lib.data import decision_times, multi_scale_features
    from msa_lib.datasets import simulate_market

    bars = simulate_market(days=days, seed=seed).bars
    frames = multi_scale_features(bars, scales=list(LOOKBACKS))
    return frames, decision_times(bars, "5min")


def run(quick: bool = False) -> Result:
    """Check agreement on the full inputs, then time both (medians)."""
    from msa_lib.data import make_windows

    days = 35 if quick else 60  # the daily scale needs 20 warm-up days plus a 10-day lookback
    ours_repeats, ref_repeats = (3, 1) if quick else (7, 3)
    frames, times = make_inputs(days)
    # The loop is slow: its timed runs double as the agreement check (the last one is compared).
    ref_runs = []
    for _ in range(ref_repeats):
        seconds, ref = timed(lambda: reference_windows(frames, LOOKBACKS, times))
        ref_runs.append(seconds)
    ref_s = statistics.median(ref_runs)
    windows, kept = make_windows(frames, LOOKBACKS, times)
    compare((windows, kept), ref)
    ours_s, ours_runs = median_seconds(lambda: make_windows(frames, LOOKBACKS, times), ours_repeats)
    ratio = ref_s / ours_s
    n_values = sum(w.size for w in windows.values())
    details = (
        f"ours {fmt_seconds(ours_s)} vs loop {fmt_seconds(ref_s)}, medians of {ours_repeats}/"
        f"{ref_repeats} runs; {days} days of 1-minute bars, scales {'/'.join(LOOKBACKS)} with "
        f"lookbacks {'/'.join(map(str, LOOKBACKS.values()))}, {len(times):,} decision times, "
        f"{len(kept):,} with full windows; windows identical"
    )
    return Result(
        name=NAME,
        ratio=ratio,
        target=TARGET,
        agreement="identical windows and kept times (tolerance 0: bit-for-bit equal float32)",
        details=details,
        metrics={
            "ours_seconds": ours_s,
            "reference_seconds": ref_s,
            "ours_runs": ours_runs,
            "reference_runs": ref_runs,
            "days": days,
            "decision_times": len(times),
            "kept_times": len(kept),
            "window_values": n_values,
        },
    )
