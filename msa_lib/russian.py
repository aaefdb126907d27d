"""Words for the Russian edition's computed values (``ru/``): agreement with a number, thousands.

The Russian pages show a value glued by the same hidden cell as the English one, under
``<key>_ru`` (see CONTRIBUTING.md). Two rules of Russian then matter for numbers a cell computes:

- the noun agrees with the number, in three forms: 1 неделя, 3 недели, 5 недель (and 11-14 take
  the last form: 11 недель). :func:`plural` picks the form; cases with two forms (the genitive
  after «из»: 1 дня, 5 дней) pass the same word twice.
- a comma is the decimal sign, so thousands are set apart by a non-breaking space:
  :func:`thousands` writes 105 192 where English writes 105,192.
"""

from __future__ import annotations

__all__ = ["plural", "thousands"]

NBSP = "\u00a0"


def plural(n: int, one: str, few: str, many: str) -> str:
    """The form of a noun that agrees with ``n``: ``one`` for 1, 21, 31...; ``few`` for 2-4, 22-24...;
    ``many`` for 0, 5-20, 25-30... (11-14 included)."""
    n = abs(int(n))
    if n % 10 == 1 and n % 100 != 11:
        return one
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return few
    return many


def thousands(x: float, decimals: int = 0) -> str:
    """``x`` with ``decimals`` digits and its thousands set apart by non-breaking spaces."""
    return f"{x:,.{decimals}f}".replace(",", NBSP)
