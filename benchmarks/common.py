"""Shared pieces of the benchmarks: the result record, a timer, and a description of the machine.

Every benchmark module exposes ``NAME``, ``TARGET`` (``None`` for the ones reported without a
target), ``DESCRIPTION`` and ``run(quick: bool) -> Result``. ``run`` first checks that our
implementation and the straightforward one agree on the benchmark's own inputs, then times both
in the same process.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """What one benchmark measured.

    Attributes
    ----------
    name : str
        Benchmark name (``windows``, ``cross_scale_attention`` ...).
    ratio : float or None
        How many times better ours is (time of the reference / our time, or the reference's peak
        memory / ours). ``None`` for benchmarks reported without a target.
    target : float or None
        The ratio the benchmark must reach.
    agreement : str
        What was checked before timing, with its tolerance (``"FAILED: ..."`` if it did not hold).
    details : str
        One line for humans: sizes, medians, repeats, extrapolations.
    metrics : dict
        The raw numbers (seconds, bytes, samples per second ...), for the results file.
    agreed : bool
        False when the agreement check failed (the benchmark then FAILs whatever the ratio).
    load_before, load_after : float
        One-minute load average of the machine when the benchmark started and ended.
    """

    name: str
    ratio: float | None
    target: float | None
    agreement: str
    details: str
    metrics: dict[str, Any] = field(default_factory=dict)
    agreed: bool = True
    load_before: float = float("nan")
    load_after: float = float("nan")

    @property
    def passed(self) -> bool | None:
        """True/False against the target; None when there is no target (information only)."""
        if not self.agreed:
            return False
        if self.target is None:
            return None
        return self.ratio is not None and self.ratio >= self.target

    def line(self) -> str:
        """The one-line summary ``NAME: ratio=R target>=T PASS|FAIL (details)``."""
        if self.target is None:
            status = "INFO" if self.agreed else "FAIL"
            return f"{self.name}: {status} ({self.details})"
        if self.ratio is None:
            ratio = "nan"
        else:  # a share below 1 (train_utilization) needs two decimals: 0.17 must not print as 0.2
            ratio = f"{self.ratio:.1f}" if abs(self.ratio) >= 1 else f"{self.ratio:.2f}"
        status = "PASS" if self.passed else "FAIL"
        return f"{self.name}: ratio={ratio} target>={self.target:g} {status} ({self.details})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (adds ``passed`` and the printed ``line``)."""
        out = asdict(self)
        out["passed"] = self.passed
        out["line"] = self.line()
        return out


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[float, list[float]]:
    """Median wall-clock time of ``fn()`` over ``repeats`` runs, after ``warmup`` untimed runs.

    Parameters
    ----------
    fn : callable
        Called with no arguments; its result is discarded.
    repeats : int
        Timed runs (at least 1).
    warmup : int, default 1
        Untimed runs first (first-call costs: allocator, lazy imports, thread pools).

    Returns
    -------
    median : float
        Seconds.
    all_runs : list of float
        Every timed run, in order.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), runs


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn()`` once; return ``(seconds, result)`` (for slow references whose output is kept)."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def load_average() -> float:
    """One-minute load average (NaN where the OS does not report it)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """CPU model, core count, library versions and the date, for the results file."""
    import numpy as np
    import pandas as pd
    import torch

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def fmt_seconds(seconds: float) -> str:
    """``0.0123 -> '12.3 ms'``, ``4.2 -> '4.20 s'``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n: float) -> str:
    """``1536 -> '1.5 KiB'`` and so on, up to GiB."""
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.2f} GiB"
