"""Checks of the built HTML book (`make book` first): every page exists, nothing loads from the
internet, plotly figures draw, and the browser logs no JavaScript error.

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
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
pytestmark = pytest.mark.book


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc["parts"]:
        pages += [c["file"] for c in part["chapters"]]
    return pages


PAGES = _toc_pages()
CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]


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
    executed = HTML / "_sources" / f"{page}.ipynb"
    assert executed.exists(), f"no .ipynb download for {page}"
    nb = json.loads(executed.read_text())
    assert any(c.get("outputs") for c in nb["cells"]), f"the .ipynb download of {page} has no outputs"
    assert "download-notebook-button" in html and "download-source-button" in html


def test_plotly_is_served_by_the_book_itself():
    bundled = HTML / "_static" / "plotly.min.js"
    assert bundled.exists() and bundled.stat().st_size > 1_000_000
    pages_with_figures = [p for p in CHAPTERS if "Plotly.newPlot" in (HTML / f"{p}.html").read_text()]
    assert pages_with_figures, "no chapter draws a plotly figure"
    for page in pages_with_figures:
        assert "_static/plotly.min.js" in (HTML / f"{page}.html").read_text(), page


def test_execution_table_lists_every_chapter():
    html = (HTML / "book" / "setup.html").read_text()
    for page in CHAPTERS:
        assert Path(page).name in html, f"execution table misses {page}"


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
