"""notebooks_cold: every chapter, executed from an empty network cache, against the 90 s budget.

A learner who opens a chapter for the first time has no trained network in the cache: the chapter
trains whatever it needs. This benchmark executes each ``notebooks/NN_*.ipynb`` the way nbval does
(a fresh ``msa-course`` kernel, every cell in order) inside a temporary copy of the course's root
(``_toc.yml``, ``requirements.txt`` and links to ``msa_lib/`` and ``evidence/``), so that
:func:`msa_lib.cache.network_cache_dir` finds an empty ``_build/cache`` of its own for every chapter.

ratio = budget (90 s) / the slowest chapter's seconds; target >= 1.0. ``--quick`` runs only the
first chapter (a smoke test).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import Result

NAME = "notebooks_cold"
TARGET = 1.0
DESCRIPTION = "each chapter from an empty network cache, under the 90 s budget (ratio 90/slowest)"

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 90.0
KERNEL = "msa-course"
ROOT_FILES = ("_toc.yml", "_config.yml", "requirements.txt", "constraints.txt")


def cold_root(destination: Path, source: Path = ROOT) -> Path:
    """A minimal course root in ``destination``: its network cache is empty, its library the real one."""
    for name in ROOT_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, destination / name)
    (destination / "msa_lib").symlink_to(source / "msa_lib", target_is_directory=True)
    # results files the chapters read (chapter 06 reads the evidence, chapter 09 the benchmarks'),
    # never the network cache
    for folder in ("evidence", "benchmarks"):
        (destination / folder).symlink_to(source / folder, target_is_directory=True)
    (destination / "notebooks").mkdir()
    return destination


def execute_cold(notebook: Path, timeout: int = 600) -> float:
    """Seconds to execute ``notebook`` in a fresh kernel, in a course root with an empty cache."""
    import nbformat
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="msa-cold-") as tmp:
        root = cold_root(Path(tmp))
        copy = root / "notebooks" / notebook.name
        shutil.copy2(notebook, copy)
        nb = nbformat.read(copy, as_version=4)
        client = NotebookClient(nb, kernel_name=KERNEL, timeout=timeout,
                                resources={"metadata": {"path": str(copy.parent)}})
        start = time.perf_counter()
        client.execute()  # raises CellExecutionError when a cell fails
        return time.perf_counter() - start


def run(quick: bool = False, chapters: list[Path] | None = None) -> Result:
    """Execute every chapter cold, one after the other, and compare the slowest with the budget."""
    if chapters is None:
        chapters = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        if quick:
            chapters = chapters[:1]
    seconds = {}
    for chapter in chapters:
        seconds[chapter.stem] = execute_cold(chapter)
    slowest = max(seconds, key=seconds.get)
    ratio = BUDGET_SECONDS / seconds[slowest]
    details = (", ".join(f"{name[:2]} {s:.0f} s" for name, s in seconds.items())
               + f"; slowest {slowest} ({seconds[slowest]:.0f} s) against {BUDGET_SECONDS:.0f} s")
    return Result(
        name=NAME,
        ratio=ratio,
        target=TARGET,
        agreement="every cell of every chapter ran without an error",
        details=details,
        metrics={"seconds": seconds, "budget_seconds": BUDGET_SECONDS, "slowest": slowest},
    )
