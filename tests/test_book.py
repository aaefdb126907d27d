"""Checks of the built HTML book (`make book` first): every page exists, nothing loads from the
internet, plotly figures draw, and the browser logs no JavaScript error.

Both editions are checked: the English book in ``_build/html`` and the Russian one in
``_build/html/ru``. A page is named by its path under ``_build/html`` without ``.html``, so Russian
pages read ``ru/notebooks/05_training``; their sources are ``ru/notebooks/05_training.md``.

Marked ``book``: `make test` runs these after building the book.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from book_pages import toc_pages

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
pytestmark = pytest.mark.book


EDITIONS = {"": "en", "ru/": "ru"}  # where each edition lives under _build/html (and in the repo)


PAGES = [edition + page for edition in EDITIONS for page in toc_pages(ROOT / edition)]
CHAPTERS = [p for p in PAGES if p.removeprefix("ru/").startswith("notebooks/")]


def _edition(page: str) -> tuple[str, str]:
    """(the edition's folder prefix, the page's name inside that edition)."""
    for prefix in sorted(EDITIONS, key=len, reverse=True):
        if prefix and page.startswith(prefix):
            return prefix, page.removeprefix(prefix)
    return "", page


def _twin(page: str) -> str:
    prefix, name = _edition(page)
    return name if prefix else "ru/" + name


@pytest.fixture(scope="module", autouse=True)
def built_book():
    if not (HTML / "index.html").exists():
        pytest.fail("the book is not built: run `make book` (make test does) before these tests")


@pytest.mark.parametrize("page", PAGES)
def test_every_toc_page_is_rendered(page: str):
    assert (HTML / f"{page}.html").exists(), f"{page}.html missing from _build/html"


@pytest.mark.parametrize("page", PAGES)
def test_no_page_loads_scripts_or_styles_from_outside_the_book(page: str):
    html = (HTML / f"{page}.html").read_text()
    remote = re.findall(r'<(?:script|link)[^>]+(?:src|href)="((?:https?:)?//[^"]+)"', html)
    assert not remote, f"{page}.html loads from the internet: {remote}"


@pytest.mark.parametrize("page", CHAPTERS)
def test_chapter_has_executed_outputs_and_download_buttons(page: str):
    html = (HTML / f"{page}.html").read_text()
    assert "cell_output" in html, f"{page}.html shows no cell output: was it executed?"
    assert "Traceback (most recent call last)" not in html, f"{page}.html shows a traceback"
    prefix, name = _edition(page)
    executed = HTML / prefix / "_sources" / f"{name}.ipynb"
    assert executed.exists(), f"no .ipynb download for {page}"
    nb = json.loads(executed.read_text())
    assert any(c.get("outputs") for c in nb["cells"]), f"the .ipynb download of {page} has no outputs"
    assert "download-notebook-button" in html and "download-source-button" in html


@pytest.mark.parametrize("edition", EDITIONS)
def test_plotly_is_served_by_the_book_itself(edition: str):
    bundled = HTML / edition / "_static" / "plotly.min.js"
    assert bundled.exists() and bundled.stat().st_size > 1_000_000
    pages_with_figures = [p for p in CHAPTERS if p.startswith(edition)
                          and "Plotly.newPlot" in (HTML / f"{p}.html").read_text()]
    assert pages_with_figures, "no chapter draws a plotly figure"
    for page in pages_with_figures:
        assert "_static/plotly.min.js" in (HTML / f"{page}.html").read_text(), page


# --- the two editions: each page names its language and links to its twin -----------------------
@pytest.mark.parametrize("page", PAGES)
def test_page_declares_its_language(page: str):
    lang = _soup(page).find("html").get("lang", "")
    assert lang == EDITIONS[_edition(page)[0]], f"{page}.html says lang={lang!r}"


def _switch_target(page: str) -> Path:
    links = _soup(page).select("nav.language-switch a[href]")
    assert len(links) == 1, f"{page}.html has {len(links)} language switches, expected 1"
    assert _article(page).select_one("nav.language-switch"), f"{page}: the switch is not on the page"
    return (HTML / Path(page).parent / links[0]["href"]).resolve()


@pytest.mark.parametrize("page", PAGES)
def test_language_switch_leads_to_the_same_page_and_back(page: str):
    twin = _twin(page)
    assert _switch_target(page) == (HTML / f"{twin}.html").resolve(), \
        f"{page}.html's language switch does not lead to {twin}.html"
    assert (HTML / f"{twin}.html").is_file(), f"{twin}.html, the twin of {page}, is missing"
    assert _switch_target(twin) == (HTML / f"{page}.html").resolve(), \
        f"{twin}.html's language switch does not lead back to {page}.html"


# Words that only an English sentence strings together. Code, outputs, formulas and the
# bibliography may be English; the Russian edition's prose, including every value glued into it
# (a verdict, a range), may not: a glued English phrase reads as a bug to a Russian reader.
_ENGLISH_GLUE = re.compile(r"\b(?:the|and|is|are|was|were|not|does|its|with|than|but|which|from|"
                           r"into|this|that|over|by)\b", re.I)


@pytest.mark.parametrize("page", [p for p in PAGES if p.startswith("ru/")])
def test_russian_prose_has_no_english_sentences(page: str):
    article = _article(page)
    for element in article.select("div.cell, pre, code, script, style, .math, mjx-container, "
                                  "div.bibliography, .citation, dl.citation"):
        element.decompose()
    english = [text for el in article.find_all(["p", "li", "td", "th", "h1", "h2", "h3", "dd"])
               if len(_ENGLISH_GLUE.findall(text := el.get_text(" ", strip=True))) >= 3]
    assert not english, f"{page} shows English sentences in its prose: {english[:3]}"
    assert "Решение к Упражнение" not in article.get_text(" "), \
        f"{page}: a solution title in the nominative (Решение к упражнению N)"


def test_russian_edition_speaks_russian():
    """Sphinx's own words (search box, navigation) in Russian, the English edition's in English."""
    ru, en = _soup("ru/book/intro"), _soup("book/intro")
    ru_text = ru.get_text(" ")
    assert "Поиск" in ru_text or "Искать" in ru_text or "Найти" in ru_text, "Russian UI strings missing"
    assert not re.search(r"[А-Яа-яЁё]{4}", en.select_one("article").get_text(" ").replace(
        "Русский", "")), "Cyrillic in the English edition's intro"
    assert ru.find("title").get_text() != en.find("title").get_text()


# --- what the reader sees: figures, markup, solutions, links (static HTML) ------------------------
# Calls that draw a figure in a page's code cells: each must leave an image or a plotly figure.
FIGURE_CALLS = re.compile(r"\bplt\.show\(\)|\bfig\w*\.show\(\)")
CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.M | re.S)
# MyST that should have been rendered; a reader who sees it sees a bug.
RAW_MYST = re.compile(r"\{(?:glue(?::\w+)?|ref|doc|numref|cite(?::\w+)?|eq|term|download)\}|"
                      r"^\s*(?:```|:::)\s*\{[\w-]+\}", re.M)


def _source(page: str) -> str:
    return (ROOT / f"{page}.md").read_text()


def _soup(page: str):
    from bs4 import BeautifulSoup

    return BeautifulSoup((HTML / f"{page}.html").read_text(), "html.parser")


def _article(page: str):
    soup = _soup(page)
    article = soup.find("article")
    assert article is not None, f"{page}.html has no <article>"
    return article


def _drawn_figures(page: str) -> int:
    article = _article(page)
    images = [img for img in article.find_all("img")
              if (HTML / Path(page).parent / img["src"]).is_file()
              and (HTML / Path(page).parent / img["src"]).stat().st_size > 0]
    return len(images) + len(article.select(".plotly-graph-div"))


@pytest.mark.parametrize("page", PAGES)
def test_page_shows_every_figure_its_source_draws(page: str):
    wanted = sum(len(FIGURE_CALLS.findall(cell)) for cell in CODE_CELL.findall(_source(page)))
    drawn = _drawn_figures(page)
    assert drawn >= wanted, (f"{page}: its code draws {wanted} figure(s), the page shows {drawn} "
                             "(is MPLBACKEND=Agg reaching the kernel?)")


@pytest.mark.parametrize("page", PAGES)
def test_no_raw_markup_or_solution_markers_show(page: str):
    html = (HTML / f"{page}.html").read_text()
    assert "BEGIN SOLUTION" not in html and "END SOLUTION" not in html, f"{page}: solution markers"
    article = _article(page)
    for element in article.select("pre, code, script, style"):
        element.decompose()  # code may legitimately show MyST; prose may not
    raw = RAW_MYST.findall(article.get_text("\n"))
    assert not raw, f"{page} shows unrendered MyST: {raw}"


def _solution_only_lines(page: str) -> list[str]:
    """Lines of reference code that the student's stub does not have (they must stay hidden)."""
    from msa_lib.exercises import solution_code, strip_solutions

    lines = []
    for cell in CODE_CELL.findall(_source(page)):
        if "# BEGIN SOLUTION" in cell:
            stub = {line.strip() for line in strip_solutions(cell).splitlines()}
            lines += [line.strip() for line in solution_code(cell).splitlines()
                      if len(line.strip()) > 8 and line.strip() not in stub]
    return lines


@pytest.mark.parametrize("page", CHAPTERS)
def test_solution_code_is_only_inside_collapsed_solutions(page: str):
    hidden = _solution_only_lines(page)
    if not hidden:
        pytest.skip(f"{page} has no coding exercise")
    article = _article(page)
    solutions = article.select("div.solution")
    assert solutions and all("dropdown" in s["class"] for s in solutions), \
        f"{page}: solutions must be collapsed dropdowns"
    inside = "\n".join(s.get_text() for s in solutions)
    for s in solutions:
        s.decompose()
    outside = article.get_text()
    shown = [line for line in hidden if line in outside]
    assert not shown, f"{page} shows solution code outside a collapsed solution: {shown}"
    missing = [line for line in hidden if line not in inside]
    assert not missing, f"{page}: solution code missing from its dropdown: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_bookkeeping_cells_are_hidden(page: str):
    """Cells that only feed numbers to the prose (glue) are not shown to the reader."""
    visible = [pre.get_text() for pre in _article(page).select("div.cell_input pre")]
    gluing = [code.splitlines()[0] for code in visible if "glue(" in code]
    assert not gluing, f"{page} shows cells that call glue(): {gluing}"


def _internal_links(page: str) -> list[str]:
    return [a["href"] for a in _soup(page).find_all("a", href=True)
            if not urlparse(a["href"]).scheme and not a["href"].startswith(("mailto:", "//"))]


@pytest.mark.parametrize("page", PAGES)
def test_every_internal_link_resolves(page: str):
    broken = []
    for href in _internal_links(page):
        target, _, fragment = href.partition("#")
        path = (HTML / Path(page).parent / target).resolve() if target else HTML / f"{page}.html"
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            broken.append(href)
        elif fragment and path.suffix == ".html" and \
                not re.search(rf'id="{re.escape(fragment)}"', path.read_text()):
            broken.append(href)
    assert not broken, f"{page}: links that lead nowhere: {sorted(set(broken))}"


@pytest.mark.parametrize("page", PAGES)
def test_header_buttons_stay_inside_the_book(page: str):
    soup = _soup(page)
    header = soup.select(".bd-header-article, .header-article-items, .article-header-buttons")
    outside = sorted({a["href"] for part in header for a in part.find_all("a", href=True)
                      if urlparse(a["href"]).scheme in ("http", "https")})
    assert not outside, f"{page}: header buttons point outside the book: {outside}"


@pytest.mark.parametrize("edition", EDITIONS)
def test_execution_table_lists_every_chapter(edition: str):
    html = (HTML / edition / "book" / "setup.html").read_text()
    for page in CHAPTERS:
        assert Path(page).name in html, f"execution table of {edition or 'en/'}setup misses {page}"


# --- headless Chromium -------------------------------------------------------------------------

def _browser_paths() -> tuple[str, str] | None:
    browser = next(filter(None, map(shutil.which, ["chromium", "chromium-browser", "google-chrome"])), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.fixture(scope="module")
def browser():
    paths = _browser_paths()
    if paths is None:
        message = ("Chromium and ChromeDriver are needed for the rendered-page checks; install them "
                   "with `sudo apt-get install chromium chromium-driver` (Debian/Ubuntu)")
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set, so this is a failure, not a skip)")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
                 "--window-size=1280,1600"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=paths[1]), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output readable
        pass


_FIGURES_WIDER_THAN_THEIR_COLUMN = """
return Array.from(document.querySelectorAll('.plotly-graph-div'))
  .filter(gd => gd._fullLayout && gd._fullLayout.width > gd.parentElement.getBoundingClientRect().width + 2)
  .length;
"""

_ALL_FIGURES_DRAWN = """
const divs = Array.from(document.querySelectorAll('.plotly-graph-div'));
return [divs.length, divs.filter(d => d.querySelector('svg.main-svg')).length];
"""


# Tables and images wider than the article column (or clipped by a box that hides overflow). A
# table may be wider than the column only inside a box that scrolls horizontally.
_TOO_WIDE = """
const column = document.querySelector('article.bd-article') || document.querySelector('main');
const right = column.getBoundingClientRect().right;
const found = [];
for (const el of column.querySelectorAll('table, img')) {
  const own = el.getBoundingClientRect();
  if (own.width === 0) continue;                       // not displayed (a collapsed block)
  let box = el;
  for (let p = el.parentElement; p && p !== column; p = p.parentElement) {
    const overflow = getComputedStyle(p).overflowX;
    if (overflow === 'auto' || overflow === 'scroll') { box = p; break; }
    if ((overflow === 'hidden' || overflow === 'clip') && own.right > p.getBoundingClientRect().right + 2) {
      found.push('clipped ' + el.tagName + ': ' + (el.alt || el.textContent).trim().slice(0, 50)); break;
    }
  }
  if (box.getBoundingClientRect().right > right + 2)
    found.push('too wide ' + el.tagName + ': ' + (el.alt || el.textContent).trim().slice(0, 50));
}
return found;
"""

_BROKEN_IMAGES = """
return Array.from(document.querySelectorAll('article img'))
  .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.src);
"""

# Code inside a solution dropdown must not be visible before the reader opens it.
_VISIBLE_SOLUTION_CODE = """
return Array.from(document.querySelectorAll('div.solution pre'))
  .filter(pre => pre.checkVisibility({visibilityProperty: true, checkVisibilityCSS: true,
                                      opacityProperty: true})).length;
"""

# Table cells that leave (almost) no room between their columns.
_CRAMPED_CELLS = """
return Array.from(document.querySelectorAll('article table'))
  .filter(t => Array.from(t.querySelectorAll('td, th')).some(c => {
      const s = getComputedStyle(c); return parseFloat(s.paddingLeft) + parseFloat(s.paddingRight) < 8; }))
  .map(t => t.textContent.trim().slice(0, 40));
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_in_chromium(page: str, browser, server):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser"), browser.get_log("performance")  # drop what earlier pages logged
    browser.get(f"{server}/{page}.html")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    try:
        WebDriverWait(browser, 30).until(lambda d: len(set(d.execute_script(_ALL_FIGURES_DRAWN))) == 1)
    finally:
        shots = ROOT / "_build" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(shots / f"{page.replace('/', '__')}.png"))
    n_figures, n_drawn = browser.execute_script(_ALL_FIGURES_DRAWN)
    assert n_drawn == n_figures, f"{page}: only {n_drawn} of {n_figures} plotly figures drew"
    try:
        WebDriverWait(browser, 10).until(lambda d: d.execute_script(_FIGURES_WIDER_THAN_THEIR_COLUMN) == 0)
    except TimeoutException:
        pytest.fail(f"{page}: {browser.execute_script(_FIGURES_WIDER_THAN_THEIR_COLUMN)} plotly "
                    "figure(s) overflow their column")
    if page in CHAPTERS and "Plotly.newPlot" in (HTML / f"{page}.html").read_text():
        assert n_figures > 0, f"{page}: the page holds plotly code but no figure div"

    broken = browser.execute_script(_BROKEN_IMAGES)
    assert not broken, f"{page}: images that did not load: {broken}"
    too_wide = browser.execute_script(_TOO_WIDE)
    assert not too_wide, f"{page}: wider than the column or cut off: {too_wide}"
    cramped = browser.execute_script(_CRAMPED_CELLS)
    assert not cramped, f"{page}: tables whose columns run together: {cramped}"
    assert browser.execute_script(_VISIBLE_SOLUTION_CODE) == 0, \
        f"{page}: solution code is visible before the reader opens the solution"

    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, f"{page}: JavaScript errors: {errors}"

    origin = urlparse(server).netloc
    outside = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = urlparse(message["params"]["request"]["url"])
            if url.scheme in ("http", "https", "ws", "wss") and url.netloc != origin:
                outside.add(url.geturl())
    assert not outside, f"{page} requests resources from outside the book: {sorted(outside)}"
