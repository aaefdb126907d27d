"""The Russian edition (ru/) is the English book with its prose translated: same pages, same code.

Every page listed by one edition's table of contents has its twin in the other, under the same path;
the code cells of twins are identical (source and cell metadata, in order) and so is the kernel.
Identical code is what lets the Russian build take every output from the English build's execution
cache instead of executing each notebook a second time, and it is why nbval need not run the Russian
notebooks: it would execute the very cells it already executes in English.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import jupytext
import pytest
import yaml
from book_pages import toc_pages

ROOT = Path(__file__).resolve().parents[1]
RU = ROOT / "ru"


def _toc(book: Path) -> dict:
    return yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8"))


EN_PAGES = toc_pages(ROOT)
RU_PAGES = toc_pages(RU)


def _code_cells(path: Path) -> list[tuple[str, dict]]:
    nb = jupytext.read(path)
    return [(c.source, dict(c.metadata)) for c in nb.cells if c.cell_type == "code"]


def test_both_editions_list_the_same_pages_in_the_same_order():
    assert RU_PAGES == EN_PAGES, (
        "ru/_toc.yml and _toc.yml must list the same pages in the same order; "
        f"only in English: {sorted(set(EN_PAGES) - set(RU_PAGES))}, "
        f"only in Russian: {sorted(set(RU_PAGES) - set(EN_PAGES))}")


def test_both_editions_have_the_same_parts():
    en, ru = _toc(ROOT), _toc(RU)
    assert [len(p["chapters"]) for p in ru["parts"]] == [len(p["chapters"]) for p in en["parts"]]
    untranslated = [p["caption"] for p in ru["parts"] if p["caption"] in
                    {q["caption"] for q in en["parts"]}]
    assert not untranslated, f"part captions of ru/_toc.yml still in English: {untranslated}"


@pytest.mark.parametrize("page", EN_PAGES)
def test_every_english_page_has_its_russian_twin(page: str):
    assert (RU / f"{page}.md").is_file(), f"{page}.md has no Russian twin ru/{page}.md"


@pytest.mark.parametrize("page", sorted({p.relative_to(RU).with_suffix("").as_posix()
                                         for p in RU.glob("*/*.md")}))
def test_every_russian_page_has_its_english_twin(page: str):
    assert (ROOT / f"{page}.md").is_file(), f"ru/{page}.md has no English twin {page}.md"
    assert page in RU_PAGES, f"ru/{page}.md is not listed in ru/_toc.yml"


@pytest.mark.parametrize("page", EN_PAGES)
def test_twins_have_identical_code(page: str):
    en_path, ru_path = ROOT / f"{page}.md", RU / f"{page}.md"
    en, ru = _code_cells(en_path), _code_cells(ru_path)
    for i, (a, b) in enumerate(zip(en, ru, strict=False)):  # lengths: below
        if a != b:
            diff = "\n".join(difflib.unified_diff(
                a[0].splitlines(), b[0].splitlines(), "English", "Russian", lineterm=""))
            pytest.fail(f"code cell {i} of ru/{page}.md differs from {page}.md "
                        f"(metadata {a[1]} vs {b[1]}):\n{diff}\nTranslate prose, never code.")
    assert len(en) == len(ru), f"{page}.md has {len(en)} code cells, ru/{page}.md {len(ru)}"
    en_kernel = jupytext.read(en_path).metadata.get("kernelspec")
    assert jupytext.read(ru_path).metadata.get("kernelspec") == en_kernel


# Words that only an untranslated English sentence contains (code, identifiers and inline code are
# removed first). A Russian page may quote English terms, but not whole English sentences.
_ENGLISH = re.compile(r"\b(?:the|which|with|from|this|that|is|are|of|and)\b")


def _prose(path: Path) -> str:
    nb = jupytext.read(path)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    text = re.sub(r"```.*?```", " ", text, flags=re.S)          # fenced blocks (code, directives)
    text = re.sub(r"`[^`]*`", " ", text)                         # inline code and role targets
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", " ", text, flags=re.S)  # mathematics
    text = re.sub(r"https?://\S+|\(\S+\)=", " ", text)          # addresses, labels
    return text


@pytest.mark.parametrize("page", EN_PAGES)
def test_russian_pages_are_translated(page: str):
    prose = _prose(RU / f"{page}.md")
    cyrillic = len(re.findall(r"[А-Яа-яЁё]", prose))
    latin = len(re.findall(r"[A-Za-z]", prose))
    assert cyrillic > latin, f"ru/{page}.md reads mostly Latin letters: is it translated?"
    english = [line.strip() for line in prose.splitlines()
               if len(_ENGLISH.findall(line)) >= 3 and not re.search(r"[А-Яа-яЁё]", line)]
    assert not english, f"ru/{page}.md has lines in English: {english[:3]}"


_GLUE = re.compile(r"\{glue(?::\w+)?\}`([^`]+)`|```\{glue:\w+\}\s+(\S+)")
_LABEL = re.compile(r"^\(([\w-]+)\)=\s*$", re.M)
_TARGET = re.compile(r"\{(?:ref|numref|doc|eq|cite(?::\w+)?)\}`(?:[^`<]*<)?([^`>]+)>?`")
_DIRECTIVE = re.compile(r"^\s*(?:```+|:::+)\s*\{([\w:-]+)\}", re.M)
_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)


def _markup(path: Path) -> dict[str, list[str]]:
    nb = jupytext.read(path)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return {
        "numbers glued into the prose": sorted(a or b for a, b in _GLUE.findall(text)),
        "labels": sorted(_LABEL.findall(text)),
        "link and citation targets": sorted(set(_TARGET.findall(text))),
        "directives (figures, exercises, solutions, admonitions...)": _DIRECTIVE.findall(text),
        "display formulas": [" ".join(m.split()) for m in _MATH.findall(text)],
    }


# A value glued as text in English has its Russian wording glued as "<key>_ru" by the same code
# cell (a verdict, a range "from X to Y"): the Russian prose shows that one in its place.
RUSSIAN_KEY = "_ru"


@pytest.mark.parametrize("page", EN_PAGES)
def test_twins_show_the_same_numbers_links_and_formulas(page: str):
    """A translation keeps every computed number, label, link target, directive and formula."""
    en, ru = _markup(ROOT / f"{page}.md"), _markup(RU / f"{page}.md")
    glued = "numbers glued into the prose"
    assert not [k for k in en[glued] if k.endswith(RUSSIAN_KEY)], \
        f"{page}.md shows a Russian wording (a key ending in {RUSSIAN_KEY})"
    ru[glued] = sorted(k.removesuffix(RUSSIAN_KEY) for k in ru[glued])
    for what in en:
        assert ru[what] == en[what], (
            f"ru/{page}.md and {page}.md differ in their {what}: only in English "
            f"{sorted(set(en[what]) - set(ru[what]))}, only in Russian "
            f"{sorted(set(ru[what]) - set(en[what]))}")


def _copy_code():
    import importlib.util

    spec = importlib.util.spec_from_file_location("copy_code", RU / "copy_code.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.copy_code


_EN = """---
kernelspec: {name: msa-course}
---
# Title

Some prose.

```{code-cell} ipython3
:tags: [remove-cell]
x = 1
```

More prose.

````{code-cell} ipython3
print("```")
````
"""


def test_copy_code_replaces_the_code_and_keeps_the_russian_prose():
    russian = (_EN.replace("# Title", "# Заголовок").replace("Some prose.", "Немного текста.")
               .replace("x = 1", "x = 0").replace('print("```")', "print()"))
    copied = _copy_code()(_EN, russian)
    assert "# Заголовок" in copied and "Немного текста." in copied
    assert "x = 1" in copied and 'print("```")' in copied and "x = 0" not in copied
    assert copied == _EN.replace("# Title", "# Заголовок").replace("Some prose.", "Немного текста.")


def test_copy_code_refuses_to_guess_where_a_new_cell_goes():
    russian = _EN.replace("More prose.\n\n````{code-cell} ipython3\nprint(\"```\")\n````\n", "")
    with pytest.raises(ValueError, match="2 code cells in English, 1 in Russian"):
        _copy_code()(_EN, russian)


def test_checkers_answer_in_the_language_of_the_edition(monkeypatch):
    """Run from ru/notebooks (Jupyter's working folder for a Russian chapter), hints are Russian."""
    from msa_lib.exercises import language

    monkeypatch.delenv("MSA_LANG", raising=False)
    assert language(start=RU / "notebooks") == "ru"
    assert language(start=ROOT / "notebooks") == "en"
    assert language(start=ROOT / "book") == "en"


def test_russian_config_is_the_english_one_but_for_language_and_paths():
    """ru/_config.yml cannot inherit from _config.yml (Jupyter Book has no such thing), so a setting
    added to one edition only (an extension, an execution option, a warning) fails here."""
    en = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    ru = yaml.safe_load((RU / "_config.yml").read_text(encoding="utf-8"))

    def paths_from_root(node):  # ru/ names the shared files from one folder down
        if isinstance(node, dict):
            return {k: paths_from_root(v) for k, v in node.items()}
        if isinstance(node, list):
            return [paths_from_root(v) for v in node]
        return node.removeprefix("../") if isinstance(node, str) else node

    ru = paths_from_root(ru)
    for book in (en, ru):  # what each edition says in its own language, or about its own place
        for key in ("title", "author"):
            book.pop(key)
        book["html"].pop("extra_footer")
        book["repository"].pop("path_to_book")
        for key in ("language", "edition_twin"):
            book["sphinx"]["config"].pop(key)
    en["exclude_patterns"].remove("ru")
    assert ru == en
