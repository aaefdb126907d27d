"""The Russian edition's number words (msa_lib.russian)."""

import pytest

from msa_lib.russian import NBSP, plural, thousands

FORMS = ("неделя", "недели", "недель")


@pytest.mark.parametrize("n, form", [(1, 0), (21, 0), (101, 0), (2, 1), (4, 1), (23, 1), (104, 1),
                                     (0, 2), (5, 2), (11, 2), (12, 2), (14, 2), (20, 2), (111, 2),
                                     (112, 2), (25, 2)])
def test_plural_agrees_with_the_number(n, form):
    assert plural(n, *FORMS) == FORMS[form]


def test_thousands_are_set_apart_by_a_non_breaking_space():
    assert thousands(105192) == f"105{NBSP}192"
    assert thousands(1234567.891, decimals=2) == f"1{NBSP}234{NBSP}567.89"
    assert thousands(999) == "999" and "," not in thousands(-12345)
