"""Copy the code cells of every English page into its Russian twin: the prose stays, the code follows.

The Russian edition (this folder) must have exactly the English code cells (tests/test_editions.py),
so code is only ever edited in the English page. ``make sync`` runs this before re-pairing the
notebooks: each code cell of ``ru/X.md`` is replaced, in order, by the English cell of ``X.md``.
When the two pages hold different numbers of code cells (a cell was added or removed), nothing is
guessed: the page is named and left alone, and the new cell must be placed in the Russian prose by
hand (copy it whole, with its option lines).

    python ru/copy_code.py            # every page
    python ru/copy_code.py --check    # only report which pages differ (exit status 1 if any)
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

RU = Path(__file__).resolve().parent
ROOT = RU.parent
# A MyST code cell: an opening fence of three or more backticks, {code-cell}, and the same fence.
CODE_CELL = re.compile(r"^(?P<fence>`{3,})\{code-cell\}[^\n]*\n.*?^(?P=fence)[ \t]*$", re.M | re.S)
FRONT_MATTER = re.compile(r"\A---\n.*?^---[ \t]*$", re.M | re.S)


def copy_code(english: str, russian: str) -> str:
    """``russian`` with its front matter and code cells replaced by those of ``english``."""
    en_cells = [m.group(0) for m in CODE_CELL.finditer(english)]
    ru_cells = [m.group(0) for m in CODE_CELL.finditer(russian)]
    if len(en_cells) != len(ru_cells):
        raise ValueError(f"{len(en_cells)} code cells in English, {len(ru_cells)} in Russian: "
                         "place the added or removed cell in the Russian page by hand")
    cells = iter(en_cells)
    result = CODE_CELL.sub(lambda _: next(cells), russian)
    en_front, ru_front = FRONT_MATTER.match(english), FRONT_MATTER.match(result)
    if en_front and ru_front:
        result = en_front.group(0) + result[ru_front.end():]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report, change nothing")
    args = parser.parse_args(argv)
    failed = False
    for ru_page in sorted(RU.glob("*/*.md")):
        name = ru_page.relative_to(RU).as_posix()
        en_page = ROOT / name
        if not en_page.is_file():
            print(f"ru/{name}: no English twin {name}", file=sys.stderr)
            failed = True
            continue
        russian = ru_page.read_text(encoding="utf-8")
        try:
            updated = copy_code(en_page.read_text(encoding="utf-8"), russian)
        except ValueError as error:
            print(f"ru/{name}: {error}", file=sys.stderr)
            failed = True
            continue
        if updated != russian:
            if args.check:
                print(f"ru/{name}: its code differs from {name}", file=sys.stderr)
                failed = True
            else:
                ru_page.write_text(updated, encoding="utf-8")
                print(f"ru/{name}: code copied from {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
