"""notebooks: each chapter's execution time, read from the last book build (no target).

``make book`` executes every notebook; myst-nb's ``{nb-exec-table}`` directive (on the set-up page)
renders a table of documents, modification times, methods, run times and statuses. This module reads
that table back from the built HTML. It runs nothing: without a built book it says so.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from benchmarks.common import Result

NAME = "notebooks"
TARGET = None
DESCRIPTION = "execution time of each notebook in the last book build (myst-nb's execution table)"

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 90.0  # per chapter, at defaults, on a 2-core CPU (training chapters: 180 s)


class _TableParser(HTMLParser):
    """Collect the text of every cell of every table: ``tables[i][row][col]``."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_exec_table(html: str) -> list[dict[str, str | float | None]]:
    """Rows of the first execution table in ``html`` (``[]`` when there is none).

    Returns
    -------
    list of dict
        ``document``, ``modified``, ``method``, ``seconds`` (float, None if unreadable), ``status``.
    """
    parser = _TableParser()
    parser.feed(html)
    for table in parser.tables:
        if not table:
            continue
        header = [h.lower() for h in table[0]]
        if "document" not in header or not any(h.startswith("run time") for h in header):
            continue
        col = {name: header.index(name) for name in ("document", "modified", "method", "status")
               if name in header}
        col["seconds"] = next(i for i, h in enumerate(header) if h.startswith("run time"))
        rows = []
        for cells in table[1:]:
            if len(cells) != len(header):
                continue
            row: dict[str, str | float | None] = {k: cells[i] for k, i in col.items() if k != "seconds"}
            try:
                row["seconds"] = float(cells[col["seconds"]])
            except ValueError:
                row["seconds"] = None
            rows.append(row)
        return rows
    return []


def find_exec_table(build_dir: Path) -> tuple[Path | None, list[dict[str, str | float | None]]]:
    """The first HTML page under ``build_dir/html`` holding an execution table, and its rows.

    The set-up page (``html/book/setup.html``) is tried first, where the course puts the table.
    """
    html_dir = build_dir / "html"
    if not html_dir.is_dir():
        return None, []
    preferred = html_dir / "book" / "setup.html"
    pages = [preferred] if preferred.is_file() else []
    pages += sorted(p for p in html_dir.rglob("*.html") if p != preferred and "_static" not in p.parts)
    for page in pages:
        text = page.read_text(encoding="utf-8", errors="replace")
        if "Run Time" not in text:
            continue
        rows = parse_exec_table(text)
        if rows:
            return page, rows
    return None, []


def run(quick: bool = False, build_dir: Path | None = None) -> Result:
    """Report the build's per-notebook execution times (``quick`` changes nothing here)."""
    build_dir = ROOT / "_build" if build_dir is None else build_dir
    page, rows = find_exec_table(build_dir)
    if page is None:
        return Result(name=NAME, ratio=None, target=None, agreement="not applicable",
                      details="book not built (no execution table under _build/html)",
                      metrics={"built": False, "notebooks": []})
    timed = [r for r in rows if isinstance(r["seconds"], float)]
    slowest = max(timed, key=lambda r: r["seconds"]) if timed else None
    parts = [f"{Path(str(r['document'])).name} {r['seconds']:.1f} s" for r in timed]
    details = f"{len(rows)} notebooks in the last build: " + ", ".join(parts)
    if slowest is not None:
        details += f"; slowest {Path(str(slowest['document'])).name} ({slowest['seconds']:.1f} s)"
    return Result(
        name=NAME,
        ratio=None,
        target=None,
        agreement="not applicable",
        details=details,
        metrics={
            "built": True,
            "source": str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else str(page),
            "notebooks": rows,
            "budget_seconds": BUDGET_SECONDS,
        },
    )
