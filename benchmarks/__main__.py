"""``python -m benchmarks [--only NAME[,NAME...]] [--quick] [--threads N] [--output PATH | --no-save]``.

Runs the benchmarks, prints one line each (then the table of all of them), writes the results
file, and exits with status 1 if any benchmark failed its target or its agreement check.

* A full run writes ``benchmarks/results.json`` (replacing it).
* ``--only`` updates just those entries of the existing file (each entry keeps its own date).
* ``--quick`` (small inputs, few repeats) writes nothing unless ``--output`` is given: its numbers
  are a smoke test, not the published ones.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import BENCHMARKS
from benchmarks.common import Result, load_average, machine_info

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"
MAKE_COMMAND = "make bench"


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="msa_lib against the straightforward implementations: speed and memory.",
    )
    parser.add_argument("--only", help=f"comma-separated names among {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="small inputs, few repeats (smoke test)")
    parser.add_argument("--threads", type=int,
                        help="threads for PyTorch and BLAS (default: their own choice, one per core)")
    parser.add_argument("--output", type=Path, help=f"results file (default {DEFAULT_OUTPUT.name})")
    parser.add_argument("--no-save", action="store_true", help="write no results file")
    args = parser.parse_args(argv)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; choose among {list(BENCHMARKS)}")
        args.names = [n for n in BENCHMARKS if n in names]
    else:
        args.names = list(BENCHMARKS)
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be >= 1")
    return args


def run_one(name: str, quick: bool) -> Result:
    """Run one benchmark module; a failed agreement check or an error becomes a FAIL result."""
    module = importlib.import_module(f"benchmarks.{name}")
    before = load_average()
    try:
        result = module.run(quick=quick)
    except AssertionError as err:
        result = Result(name=name, ratio=None, target=module.TARGET, agreed=False,
                        agreement=f"FAILED: {err}", details=f"agreement check failed: {err}")
    except Exception as err:  # an error must fail the run visibly, not hide the other results
        traceback.print_exc()
        result = Result(name=name, ratio=None, target=module.TARGET, agreed=False,
                        agreement="not reached", details=f"error: {type(err).__name__}: {err}")
    result.load_before, result.load_after = before, load_average()
    return result


def _command(argv: list[str]) -> str:
    return " ".join(["python -m benchmarks", *argv])


def _write(path: Path, results: list[Result], args: argparse.Namespace, argv: list[str],
           started: str, wall: float) -> None:
    machine = machine_info()
    entries: dict[str, Any] = {}
    if args.only and path.is_file():  # update just these entries of the existing file
        entries = json.loads(path.read_text(encoding="utf-8")).get("benchmarks", {})
    for r in results:
        entries[r.name] = {**r.to_dict(), "date": machine["date"], "quick": args.quick,
                           "command": _command(argv)}
    ordered = {n: entries[n] for n in BENCHMARKS if n in entries}
    graded = [e for e in ordered.values() if e["passed"] is not None]
    payload = {
        "command": MAKE_COMMAND,
        "last_command": _command(argv),
        "quick": args.quick,
        "started": started,
        "wall_seconds": round(wall, 1),
        "machine": machine,
        "threads_option": args.threads,
        "all_passed": all(e["passed"] for e in graded),
        "benchmarks": ordered,
    }
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse(argv)
    if args.threads is not None:
        # before NumPy and PyTorch start their thread pools (BLAS reads these when it loads)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    info = machine_info()
    print(f"# {info['cpu']}, {info['cores']} cores, torch {info['torch']} "
          f"({info['torch_threads']} threads), load {load_average():.2f}"
          + (", QUICK run" if args.quick else ""), flush=True)
    t0 = time.perf_counter()
    results = []
    for name in args.names:
        print(f"... {name}", file=sys.stderr, flush=True)
        result = run_one(name, args.quick)
        print(result.line(), flush=True)
        results.append(result)
    wall = time.perf_counter() - t0

    print("\n# summary" + (" (quick run: not the published numbers)" if args.quick else ""))
    for result in results:
        print(result.line())
    failed = [r.name for r in results if r.passed is False]
    print(f"# {len(results)} benchmarks in {wall:.0f} s; "
          + (f"FAILED: {', '.join(failed)}" if failed else "all targets met"))

    output = args.output
    if output is None and not args.quick and not args.no_save:
        output = DEFAULT_OUTPUT
    if output is not None and not args.no_save:
        _write(output, results, args, argv, started, wall)
        print(f"# results written to {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
