"""Every notebook is a Jupytext pair whose halves say the same thing, and the book sees each once.

The Russian edition's chapters (ru/notebooks/) are pairs too, held to the same rules.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jupytext
import pytest
import yaml
from book_pages import toc_pages

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FOLDERS = [NOTEBOOKS, ROOT / "ru" / "notebooks"]
IPYNBS = sorted(p for folder in FOLDERS for p in folder.glob("[0-9][0-9]_*.ipynb"))
TEXTS = sorted(p for folder in FOLDERS for p in folder.glob("[0-9][0-9]_*.md"))


def _cells(nb) -> list[tuple[str, str, tuple[str, ...]]]:
    """What a reader sees in a notebook: cell type, source and tags, ignoring outputs and ids."""
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ()))) for c in nb.cells]


def test_there_are_notebooks():
    assert IPYNBS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("text", TEXTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_text_file_has_its_notebook(text: Path):
    assert text.with_suffix(".ipynb").exists(), f"{text.name} has no paired .ipynb: run `make sync`"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pair_says_the_same_thing(ipynb: Path):
    text = ipynb.with_suffix(".md")
    assert text.exists(), f"{ipynb.name} has no paired .md: run `make sync`"
    from_ipynb = _cells(jupytext.read(ipynb))
    from_text = _cells(jupytext.read(text))
    assert len(from_ipynb) == len(from_text), (
        f"{ipynb.name} has {len(from_ipynb)} cells, {text.name} {len(from_text)}: run `make sync`")
    for i, (a, b) in enumerate(zip(from_ipynb, from_text, strict=True)):
        assert a == b, f"cell {i} differs between {ipynb.name} and {text.name}: run `make sync`"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_committed_notebooks_carry_no_outputs(ipynb: Path):
    nb = json.loads(ipynb.read_text())
    with_outputs = [i for i, c in enumerate(nb["cells"]) if c.get("outputs")]
    assert not with_outputs, f"{ipynb.name} cells {with_outputs} hold outputs: run `make sync`"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_notebooks_use_the_course_kernel(ipynb: Path):
    assert json.loads(ipynb.read_text())["metadata"]["kernelspec"]["name"] == "msa-course"


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_pairing_is_declared_once_for_the_folder(folder: Path):
    config = (folder / "jupytext.toml").read_text()
    assert re.search(r'formats\s*=\s*"ipynb,md:myst"', config)


def test_toc_lists_every_chapter_once_and_nothing_missing():
    files = toc_pages(ROOT)
    assert len(files) == len(set(files)), "a page is listed twice in _toc.yml"
    for f in files:
        assert (ROOT / f"{f}.md").exists(), f"_toc.yml lists {f}, which has no .md file"
    chapters = {f"notebooks/{p.stem}" for p in TEXTS}
    assert chapters <= set(files), f"chapters missing from _toc.yml: {sorted(chapters - set(files))}"


@pytest.mark.parametrize("book", [ROOT, ROOT / "ru"], ids=["en", "ru"])
def test_book_excludes_one_half_of_each_pair(book: Path):
    config = yaml.safe_load((book / "_config.yml").read_text(encoding="utf-8"))
    assert "notebooks/*.ipynb" in config["exclude_patterns"]
