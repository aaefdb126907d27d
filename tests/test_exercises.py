"""Exercises: reference solutions (taken from the chapters themselves) pass, typical wrong answers
fail with the hint that names the mistake, stubs count as "not attempted", and student copies lose
their solutions but keep their prose. Verdicts and hints come in the reader's language (English or
Russian: MSA_LANG, else the nearest .msa-language file); every hint exists in both."""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pandas as pd
import pytest
import torch

from msa_lib import exercises
from msa_lib.exercises import EXERCISES, check, make_student_copy, strip_solutions

ROOT = Path(__file__).resolve().parents[1]
CHECK_CALL = re.compile(r"""check\(\s*["'](?P<id>[\w-]+)["']\s*,\s*(?P<answer>[^,)]+)""")


@pytest.fixture(autouse=True)
def _english_unless_asked(monkeypatch, tmp_path):
    """Every test starts in English, whatever the shell's MSA_LANG or the folder it runs from."""
    monkeypatch.delenv("MSA_LANG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert exercises.language() == "en", f"a {exercises.LANGUAGE_FILE} file above {tmp_path}?"


def _reference_answers() -> dict[str, object]:
    """Run each chapter's solution cells; return {exercise id: the answer its check cell passes}."""
    answers = {}
    for text in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md")):
        cells = [c for c in jupytext.read(text).cells if c.cell_type == "code"]
        # `check` is a no-op here: the test checks the answers itself, quietly.
        namespace = {"np": np, "pd": pd, "torch": torch, "math": math, "check": lambda *a: None}
        for cell in cells:
            if "# BEGIN SOLUTION" in cell.source:
                exec(compile(cell.source, f"{text.name}", "exec"), namespace)  # noqa: S102
            for match in CHECK_CALL.finditer(cell.source):
                if match["id"] in EXERCISES:
                    answers[match["id"]] = eval(match["answer"], namespace)  # noqa: S307
    return answers


@pytest.fixture(scope="module")
def reference_answers():
    return _reference_answers()


def test_there_are_at_least_two_exercises_per_chapter_and_fourteen_in_all():
    per_chapter = pd.Series([e.chapter for e in EXERCISES.values()]).value_counts()
    assert len(EXERCISES) >= 14
    assert (per_chapter >= 2).all(), per_chapter
    assert {e.kind for e in EXERCISES.values()} == {"code", "predict"}


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_exercise_lives_in_its_chapter_and_in_the_exercises_page(exercise_id):
    chapter = ROOT / "notebooks" / f"{EXERCISES[exercise_id].chapter}.md"
    assert chapter.exists(), f"{exercise_id}: chapter {chapter.name} does not exist"
    source = chapter.read_text()
    assert f'check("{exercise_id}"' in source, f"{exercise_id}: no check cell in {chapter.name}"
    assert f":label: ex-{exercise_id}" in source, f"{exercise_id}: no exercise label in {chapter.name}"
    assert f"ex-{exercise_id}" in (ROOT / "book" / "exercises.md").read_text()


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_reference_solution_passes(exercise_id, reference_answers):
    assert exercise_id in reference_answers, f"no solution cell found for {exercise_id}"
    result = check(exercise_id, reference_answers[exercise_id], quiet=True)
    assert result, result


@pytest.mark.parametrize("exercise_id", sorted(EXERCISES))
def test_unattempted_answers_are_reported_not_raised(exercise_id):
    assert check(exercise_id, None, quiet=True).status == "not attempted"

    def stub(*args):
        raise NotImplementedError

    if EXERCISES[exercise_id].kind == "code":
        assert check(exercise_id, stub, quiet=True).status == "not attempted"


def _wald(k, n):
    p, z = k / n, 1.959963984540054
    return p - z * math.sqrt(p * (1 - p) / n), p + z * math.sqrt(p * (1 - p) / n)


def _no_mask_attention(q, k, v, mask):
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v, weights


def _sin_cos_swapped(length, d):
    pos, freq = np.arange(length)[:, None], 10_000.0 ** (-np.arange(0, d, 2) / d)
    out = np.zeros((length, d))
    out[:, 0::2], out[:, 1::2] = np.cos(pos * freq), np.sin(pos * freq)
    return out


def _stop_one_late(losses, patience):
    best = int(np.argmin(losses))
    return best, min(best + patience + 1, len(losses))


def _mutating_resampler(close, minutes):
    close.iloc[0] = 0.0
    return close.resample(f"{minutes}min", label="right", closed="right").last()


WRONG_ANSWERS = [
    ("ch01-right-labels", lambda c, m: c.resample(f"{m}min").last().dropna(), "START times"),
    ("ch01-right-labels", lambda c, m: c.resample(f"{m}min", label="right", closed="left").last(),
     "off by one"),
    ("ch01-right-labels", _mutating_resampler, "changed its input"),
    ("ch01-right-labels", lambda c, m: c.to_numpy(), "pandas Series"),
    ("ch01-find-the-leak", "bc", "(c) uses"),
    ("ch01-find-the-leak", {"b"}, "(d)"),
    ("ch02-mra-count", (4, True), "approximation"),
    ("ch02-mra-count", (5, False), "additive"),
    ("ch02-causal-rolling", lambda x, w, f: f(x), "whole series"),
    ("ch02-causal-rolling",
     lambda x, w, f: np.array([np.nan] * w + [f(x[t - w:t])[-1] for t in range(w, len(x))]),
     "off by one"),
    ("ch02-causal-rolling",
     lambda x, w, f: np.array([f(x[max(0, t - w + 1):t + 1])[-1] for t in range(len(x))]), "NaN"),
    ("ch03-sinusoidal", _sin_cos_swapped, "swapped"),
    ("ch03-sinusoidal", lambda length, d: np.zeros((d, length)), "transposed"),
    ("ch03-attention-cost", (1440, 6580), "square"),
    ("ch03-attention-cost", (1440**2, 142**2), "add the squares"),
    ("ch04-one-head", _no_mask_attention, "masked keys received weight"),
    ("ch04-one-head", lambda q, k, v, m: (q, None), "numbers"),
    ("ch04-masked-weight", [0.787, 0.107, 0.107], "no part in the softmax"),
    ("ch05-purge-gap", "15min", "overlap the validation"),
    ("ch05-early-stopping", lambda losses, p: (int(np.argmin(losses)) + 1, len(losses)),
     "counted from 0"),
    ("ch05-early-stopping", _stop_one_late, "off by one"),
    ("ch06-wilson", _wald, "Wald"),
    ("ch06-edge-captured", 0.58 / 0.64, "majority class"),
    ("ch07-sharpe-se", lambda r: 1 / math.sqrt(len(r)), "1/sqrt(n)"),
    ("ch07-sharpe-se", lambda r: math.sqrt((1 + 0.5 * (r.mean() / r.std(ddof=1)) ** 2) / len(r))
     * math.sqrt(252), "annualise"),
    ("ch07-kelly", lambda p, b: 2 * p - 1, "even odds"),
    ("ch08-purged-past", lambda t, start, purge: t[t < start], "without a purge"),
    ("ch08-purged-past", lambda t, start, purge: t[t + purge < start], "off by one"),
    ("ch08-purged-past", lambda t, start, purge: t, "not the past"),
    ("ch08-coin-flip", math.sqrt(0.25 / 1000), "one standard error"),
    ("ch08-coin-flip", 3.1, "not in percent"),
    ("ch09-encoder-runs", 0.25, "coarser encoders"),
    ("ch09-encoder-runs", 1753, "as a fraction"),
    ("ch09-encoder-runs", 30.4, "not in percent"),
    ("ch09-loss-factor", 22 / 90, "divides the summed gradients"),
    ("ch09-loss-factor", 1.0, "not equal"),
]


@pytest.mark.parametrize(("exercise_id", "answer", "hint"), WRONG_ANSWERS,
                         ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG_ANSWERS)])
def test_typical_wrong_answer_fails_with_the_right_hint(exercise_id, answer, hint):
    result = check(exercise_id, answer, quiet=True)
    assert result.status == "fail"
    assert hint in result.message, result.message


def test_every_coding_exercise_has_a_wrong_answer_test():
    coding = {e.id for e in EXERCISES.values() if e.kind == "code"}
    assert coding <= {w[0] for w in WRONG_ANSWERS}


def test_a_function_that_crashes_gets_a_message_not_a_traceback(capsys):
    def broken(close, minutes):
        return close.resample(minutes)  # an int is no rule

    result = check("ch01-right-labels", broken)
    assert result.status == "fail" and "raised" in result.message
    assert "Traceback" not in capsys.readouterr().out


def test_unknown_exercise_lists_the_known_ones():
    with pytest.raises(ValueError, match="ch01-right-labels"):
        check("ch99-nope", 1)


def test_strip_solutions_keeps_indentation_and_custom_stubs():
    source = ("def f(x):\n    # BEGIN SOLUTION\n    return x + 1\n    # END SOLUTION\n\n"
              "# BEGIN SOLUTION -> answer = None\nanswer = 3\n# END SOLUTION\nprint(answer)")
    stripped = strip_solutions(source)
    assert "return x + 1" not in stripped and "answer = 3" not in stripped
    assert "    raise NotImplementedError" in stripped
    assert "\nanswer = None\nprint(answer)" in stripped
    compile(stripped, "student", "exec")


@pytest.mark.parametrize("bad", ["# BEGIN SOLUTION\nx = 1\n",
                                 "x = 1\n# END SOLUTION\n",
                                 "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n"])
def test_unbalanced_markers_are_refused(bad):
    with pytest.raises(ValueError, match="SOLUTION"):
        strip_solutions(bad, "cell 3")


def test_student_copy_removes_solutions_and_keeps_prose(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("Intro prose stays.\n\n:::{solution} ex-x\nThe answer is 42.\n:::\n"
                                      "\nMore prose."),
        nbformat.v4.new_code_cell("def f(x):\n    # BEGIN SOLUTION\n    return 42\n    # END SOLUTION"),
    ]
    source = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, source)
    original = source.read_text()
    removed = make_student_copy(source, tmp_path / "student" / "01_demo.ipynb")
    copy = nbformat.read(tmp_path / "student" / "01_demo.ipynb", as_version=4)
    assert removed == 2
    assert "42" not in copy.cells[0].source + copy.cells[1].source
    assert "Intro prose stays." in copy.cells[0].source and "More prose." in copy.cells[0].source
    assert source.read_text() == original, "the teacher's notebook must not change"


def test_cli_refuses_an_empty_folder(tmp_path, capsys):
    assert exercises.main(["make-student-copies", str(tmp_path), str(tmp_path / "out")]) == 2
    assert "no notebooks" in capsys.readouterr().err


# --- the web edition: exercises as a student meets them, solution code in the dropdown -----------
CHAPTER_TEXTS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md"))


@pytest.mark.parametrize("chapter", CHAPTER_TEXTS, ids=lambda p: p.stem)
def test_web_edition_shows_the_student_stub_and_keeps_the_solution_in_its_dropdown(chapter, tmp_path):
    text = chapter.read_text()
    web = exercises.web_edition(text, chapter.name)
    assert "BEGIN SOLUTION" not in web and "END SOLUTION" not in web
    # the code cells are exactly those of the student copy
    student = tmp_path / chapter.with_suffix(".ipynb").name
    make_student_copy(chapter.with_suffix(".ipynb"), student)
    web_cells = [c.source for c in jupytext.reads(web, fmt="md:myst").cells if c.cell_type == "code"]
    student_cells = [c.source for c in nbformat.read(student, as_version=4).cells
                     if c.cell_type == "code"]
    assert web_cells == student_cells
    # every line of reference code now sits inside a {solution} block
    solution_blocks = "".join(m.group(0) for m in exercises._SOLUTION_BLOCK.finditer(web))
    for cell in jupytext.read(chapter).cells:
        if cell.cell_type == "code" and "# BEGIN SOLUTION" in cell.source:
            for line in exercises.solution_code(cell.source).splitlines():
                assert line in solution_blocks, f"{chapter.name}: {line!r} is in no solution block"


def test_web_edition_refuses_a_solution_with_nowhere_to_go():
    text = (":::{exercise} One\n:label: ex-one\nDo it.\n:::\n\n"
            "```{code-cell} ipython3\n# BEGIN SOLUTION -> x = None\nx = 1\n# END SOLUTION\n```\n\n"
            ":::{exercise} Two\n:label: ex-two\n:::\n\n:::{solution} ex-two\n:class: dropdown\n:::\n")
    with pytest.raises(ValueError, match="line 6: an exercise's solution cell has no"):
        exercises.web_edition(text, "demo.md")


def test_web_edition_keeps_cell_options_and_places_code_first_in_the_dropdown():
    text = ("```{code-cell} ipython3\n:tags: [skip]\n\ndef f():\n    # BEGIN SOLUTION\n"
            "    return 1\n    # END SOLUTION\n```\n\n:::{solution} ex-f\n:class: dropdown\n\n"
            "Because.\n:::\n")
    web = exercises.web_edition(text)
    assert web.startswith("```{code-cell} ipython3\n:tags: [skip]\n\ndef f():\n"
                          "    raise NotImplementedError")
    dropdown = web[web.index(":::{solution}"):]
    assert dropdown.index("    return 1") < dropdown.index("Because.")
    assert "def f():\n    return 1\n```" in dropdown


def test_a_printed_verdict_is_not_shown_twice_in_a_notebook(capsys):
    printed = check("ch01-find-the-leak", {"b", "d"})
    printed._ipython_display_()
    assert capsys.readouterr().out.count("[PASS]") == 1
    quiet = check("ch01-find-the-leak", {"b", "d"}, quiet=True)
    quiet._ipython_display_()
    assert capsys.readouterr().out.count("[PASS]") == 1
    assert printed == quiet


# --- the reader's language: English or Russian ----------------------------------------------------
CYRILLIC = re.compile("[А-Яа-яЁё]")
KELLY = ("ch07-kelly", lambda p, b: 2 * p - 1, lambda p, b: p - (1 - p) / b, "выплате один к одному")
_Z = 1.959963984540054
COIN_FLIP = ("ch08-coin-flip", math.sqrt(0.25 / 1000),
             _Z / (1000 + _Z**2) * math.sqrt(1000 * 0.25 + _Z**2 / 4), "одна стандартная ошибка")


@pytest.mark.parametrize(("exercise_id", "wrong", "right", "phrase"), [KELLY, COIN_FLIP],
                         ids=["code", "predict"])
def test_with_msa_lang_ru_verdicts_and_hints_are_russian(monkeypatch, exercise_id, wrong, right,
                                                         phrase):
    monkeypatch.setenv("MSA_LANG", "ru")
    failed = check(exercise_id, wrong, quiet=True)
    assert failed.status == "fail"
    assert failed.message.startswith("пока неверно. ") and phrase in failed.message, failed.message
    assert str(failed).startswith(f"[FAIL] {exercise_id}: пока неверно.")  # the marks stay
    passed = check(exercise_id, right, quiet=True)
    assert passed and passed.message == "верно, отлично.", passed.message
    assert str(passed) == f"[PASS] {exercise_id}: верно, отлично."
    todo = check(exercise_id, None, quiet=True)
    assert todo.status == "not attempted" and todo.message == "ответа пока нет."
    assert str(todo).startswith("[TODO]")


def test_russian_helper_hints_name_the_thing_in_russian(monkeypatch):
    monkeypatch.setenv("MSA_LANG", " RU ")  # case and surrounding whitespace do not matter
    result = check("ch03-sinusoidal", lambda length, d: np.zeros((d, length)), quiet=True)
    assert "позиционное кодирование: форма (8, 12) — массив транспонирован" in result.message
    result = check("ch01-right-labels", 42, quiet=True)
    assert "ответом должна быть функция" in result.message
    result = check("ch02-mra-count", ("five", True), quiet=True)
    assert "число компонент: ожидалось число" in result.message


def test_a_language_file_above_the_working_folder_decides(monkeypatch, tmp_path):
    edition = tmp_path / "ru"
    (edition / "notebooks" / "deep").mkdir(parents=True)
    (edition / exercises.LANGUAGE_FILE).write_text("ru\n")
    monkeypatch.chdir(edition / "notebooks" / "deep")
    assert exercises.language() == "ru"
    result = check(*KELLY[:2], quiet=True)
    assert CYRILLIC.search(result.message) and KELLY[3] in result.message, result.message
    monkeypatch.setenv("MSA_LANG", "en")  # the environment variable wins over the file
    assert "even odds" in check(*KELLY[:2], quiet=True).message
    monkeypatch.setenv("MSA_LANG", "")  # an empty one does not count
    assert exercises.language() == "ru"


def test_without_a_language_file_or_msa_lang_it_is_english(monkeypatch, tmp_path):
    (tmp_path / "ru").mkdir()
    (tmp_path / "ru" / exercises.LANGUAGE_FILE).write_text("ru")
    (tmp_path / "en" / "notebooks").mkdir(parents=True)  # a sibling of ru/, not below it
    monkeypatch.chdir(tmp_path / "en" / "notebooks")
    assert exercises.language() == "en"
    assert exercises.language(start=tmp_path / "ru") == "ru"
    result = check(*KELLY[:2], quiet=True)
    assert result.message.startswith("not yet. 2p - 1 holds only for even odds")
    assert not CYRILLIC.search(result.message)


def test_an_unknown_msa_lang_is_refused(monkeypatch):
    monkeypatch.setenv("MSA_LANG", "de")
    with pytest.raises(ValueError, match=r"MSA_LANG.*'de'.*'en', 'ru'"):
        exercises.language()
    with pytest.raises(ValueError, match="MSA_LANG"):  # an error of its own, not a wrong answer
        check(*KELLY[:2], quiet=True)


def test_an_unknown_language_in_the_file_is_refused(monkeypatch, tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / exercises.LANGUAGE_FILE).write_text("fr\n")
    monkeypatch.chdir(tmp_path / "book")
    file = (tmp_path / "book" / exercises.LANGUAGE_FILE).resolve()
    with pytest.raises(ValueError, match=re.escape(str(file)) + r".*'fr'"):
        exercises.language()


def test_language_and_its_file_name_are_public():
    assert {"language", "LANGUAGE_FILE"} <= set(exercises.__all__)
    assert exercises.LANGUAGE_FILE == ".msa-language"


# Source-level guards: a hint added in English only, or a Russian half that lost a placeholder,
# fails here rather than in front of a Russian reader.
def _text(node: ast.expr) -> str | None:
    """The literal text of a string or f-string node (placeholders left out); None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant))
    return None


def _placeholders(node: ast.expr) -> set[str]:
    if isinstance(node, ast.JoinedStr):
        return {ast.dump(v) for v in node.values if isinstance(v, ast.FormattedValue)}
    return set()


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name]


def _untranslated(node: ast.expr) -> str | None:
    """Why ``node`` is not a proper ``_tr("english", "русский")`` call; None when it is."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "_tr"):
        return "not a _tr(...) call"
    if len(node.args) != 2 or node.keywords:
        return "_tr takes exactly two positional arguments"
    en, ru = (_text(arg) for arg in node.args)
    if en is None or ru is None:
        return "both halves must be string or f-string literals"
    if CYRILLIC.search(en):
        return "the English half holds Cyrillic"
    if not CYRILLIC.search(ru):
        return "the Russian half holds no Cyrillic"
    return None


def _hint_problems(tree: ast.AST) -> list[str]:
    problems = []
    for call in _calls(tree, "Hint"):
        if len(call.args) != 1 or call.keywords:
            problems.append(f"line {call.lineno}: Hint takes a single argument")
        elif why := _untranslated(call.args[0]):
            problems.append(f"line {call.lineno}: {why}")
    return problems


EXERCISES_TREE = ast.parse(Path(exercises.__file__).read_text(encoding="utf-8"))


def test_every_hint_is_written_in_english_and_in_russian():
    assert len(_calls(EXERCISES_TREE, "Hint")) >= 80  # the walk does see the hints
    assert _hint_problems(EXERCISES_TREE) == []


def test_the_hint_guard_catches_a_hint_in_english_only():
    snippet = ast.parse('raise Hint("english only")\nraise Hint(_tr(f"{x} bad", f"{x} плохо"))\n'
                        'raise Hint(_tr("good", "still english"))\n')
    assert _hint_problems(snippet) == ["line 1: not a _tr(...) call",
                                       "line 3: the Russian half holds no Cyrillic"]


def test_every_verdict_and_every_named_value_is_translated():
    (check_def,) = [n for n in EXERCISES_TREE.body
                    if isinstance(n, ast.FunctionDef) and n.name == "check"]
    verdicts = _calls(check_def, "CheckResult")
    assert len(verdicts) == 4
    assert [_untranslated(call.args[2]) for call in verdicts] == [None] * 4
    # the `what` argument of the helpers ends up inside a hint: it must be translated as well
    named = [call for helper in ("_as_float_array", "_expect_shape", "_number")
             for call in _calls(EXERCISES_TREE, helper) if len(call.args) > 1]
    assert len(named) >= 15
    problems = [f"line {c.lineno}: {why}" for c in named if (why := _untranslated(c.args[-1]))]
    assert problems == []


def test_both_halves_of_every_translation_have_the_same_placeholders():
    pairs = _calls(EXERCISES_TREE, "_tr")
    assert sum(isinstance(call.args[0], ast.JoinedStr) for call in pairs) >= 20
    mismatched = [f"line {call.lineno}" for call in pairs
                  if _placeholders(call.args[0]) != _placeholders(call.args[1])]
    assert mismatched == []


# --- student copies keep the language of their source ---------------------------------------------
def _notebook_with_a_solution(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(":::{solution} ex-x\nThe answer is 42.\n:::\n"),
        nbformat.v4.new_code_cell("def f(x):\n    # BEGIN SOLUTION\n    return 42\n"
                                  "    # END SOLUTION"),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


@pytest.mark.parametrize("where", [".", ".."], ids=["in-the-folder", "in-its-parent"])
def test_russian_student_copies_say_so_and_keep_talking_russian(tmp_path, where):
    source = tmp_path / "ru" / "notebooks"
    _notebook_with_a_solution(source / "01_demo.ipynb")
    ((source / where).resolve() / exercises.LANGUAGE_FILE).write_text("ru\n")
    destination = tmp_path / "student"  # the working folder (tmp_path) is English
    assert exercises.make_student_copies(source, destination) == {"01_demo.ipynb": 2}
    prose = nbformat.read(destination / "01_demo.ipynb", as_version=4).cells[0].source
    assert prose == "*(Решение приведено в версии книги для преподавателя.)*\n"
    assert (destination / exercises.LANGUAGE_FILE).read_text() == "ru\n"
    assert exercises.language(start=destination) == "ru"


def test_english_student_copies_get_the_english_placeholder_and_no_language_file(tmp_path):
    source = tmp_path / "notebooks"
    _notebook_with_a_solution(source / "01_demo.ipynb")
    (tmp_path / "ru").mkdir()
    (tmp_path / "ru" / exercises.LANGUAGE_FILE).write_text("ru\n")  # a sibling: no say here
    assert exercises.main(["make-student-copies", str(source), str(tmp_path / "student")]) == 0
    prose = nbformat.read(tmp_path / "student" / "01_demo.ipynb", as_version=4).cells[0].source
    assert prose == "*(The solution is in the teacher's edition of the book.)*\n"
    assert not (tmp_path / "student" / exercises.LANGUAGE_FILE).exists()


def test_msa_lang_overrides_the_source_folder_for_a_single_copy(monkeypatch, tmp_path):
    _notebook_with_a_solution(tmp_path / "ru" / "01_demo.ipynb")
    (tmp_path / "ru" / exercises.LANGUAGE_FILE).write_text("ru\n")
    monkeypatch.setenv("MSA_LANG", "en")
    make_student_copy(tmp_path / "ru" / "01_demo.ipynb", tmp_path / "out" / "01_demo.ipynb")
    prose = nbformat.read(tmp_path / "out" / "01_demo.ipynb", as_version=4).cells[0].source
    assert "teacher's edition" in prose


def test_cli_reports_a_bad_language_file(tmp_path, capsys):
    _notebook_with_a_solution(tmp_path / "src" / "01_demo.ipynb")
    (tmp_path / "src" / exercises.LANGUAGE_FILE).write_text("klingon")
    source, destination = str(tmp_path / "src"), str(tmp_path / "out")
    assert exercises.main(["make-student-copies", source, destination]) == 2
    assert "'klingon'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
