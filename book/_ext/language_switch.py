"""Link every page to the same page in the book's other edition (English <-> Russian).

The two editions are two Sphinx projects with the same page names: the English book in
``_build/html/`` and the Russian one in ``_build/html/ru/``. ``edition_twin`` in each
``_config.yml`` says where the other edition's root is, relative to this one's root, its language
and the link's label, for example ``{root: ru/, lang: ru, label: Русский}``. Every page then gets

- a link to its twin at the top of the article (``<nav class="language-switch">``), and
- ``<link rel="alternate" hreflang=...>`` in its head, so browsers and search engines know it.

``tests/test_book.py`` follows each link and checks that it leads to the twin, and back.

One grammatical repair for the Russian edition: sphinx-exercise's Russian catalogue titles a solution
"Решение к" + the exercise's title in the nominative ("Решение к Упражнение 3"); the preposition
needs the dative, "Решение к упражнению 3".
"""

from __future__ import annotations

import html
import re

from sphinx.errors import ConfigError


def _check_config(app, config) -> None:
    twin = config.edition_twin
    missing = {"root", "lang", "label"} - set(twin or {})
    if missing:
        raise ConfigError(f"edition_twin in _config.yml lacks {sorted(missing)}: it needs root "
                          "(the other edition's root relative to this one), lang and label")
    if not str(twin["root"]).endswith("/"):
        raise ConfigError(f"edition_twin root must end with '/': got {twin['root']!r}")


def twin_href(pagename: str, root: str) -> str:
    """The relative address of ``pagename``'s twin, seen from ``pagename`` itself."""
    return "../" * pagename.count("/") + root + pagename + ".html"


def _add_switch(app, pagename, templatename, context, doctree) -> None:
    twin = app.config.edition_twin
    href = html.escape(twin_href(pagename, twin["root"]))
    lang = html.escape(twin["lang"])
    context["metatags"] = (context.get("metatags", "")
                           + f'\n<link rel="alternate" hreflang="{lang}" href="{href}" />')
    if "body" in context:
        switch = (f'<nav class="language-switch" aria-label="{html.escape(twin["label"])}">'
                  f'<a href="{href}" hreflang="{lang}" lang="{lang}">'
                  f'{html.escape(twin["label"])}</a></nav>\n')
        context["body"] = switch + context["body"]


_SOLUTION_TITLE = re.compile(r'Решение к(<a class="reference internal" href="[^"]*">)\s*Упражнение ')


def _russian_solution_titles(app, pagename, templatename, context, doctree) -> None:
    if app.config.language == "ru" and "body" in context:
        context["body"] = _SOLUTION_TITLE.sub(r"Решение к \1упражнению ", context["body"])


def setup(app):
    app.add_config_value("edition_twin", None, "html", types=[dict])
    app.connect("config-inited", _check_config)
    app.connect("html-page-context", _add_switch)
    app.connect("html-page-context", _russian_solution_titles)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
