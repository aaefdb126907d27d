"""Offer each chapter's *executed* notebook (.ipynb, with outputs) next to its MyST source (.md).

The book renders the MyST text half of each Jupytext pair. sphinx-book-theme only offers the
``.ipynb`` download of such a page when a launch service (Binder, Colab...) is configured, which an
offline course has not; this extension copies the notebook that myst-nb executed during the build
into ``_sources/`` and tells the theme about it, so readers get the notebook with its outputs.

When a page's outputs come from the execution cache (the Russian edition's always do), myst-nb
writes the notebook *before* merging the cached outputs into it; this extension merges them from
the same cache, so the download carries the outputs the page shows.
"""

from __future__ import annotations

from pathlib import Path

import nbformat


def _offer_executed_notebook(app, pagename, templatename, context, doctree) -> None:
    if "kernelspec" not in app.env.metadata.get(pagename, {}):
        return  # a prose page, not a notebook
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not executed.exists():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    notebook = nbformat.read(executed, as_version=4)
    if not any(cell.get("outputs") for cell in notebook.cells):
        from jupyter_cache import get_cache

        cache = get_cache(app.env.mystnb_config.execution_cache_path)
        _, notebook = cache.merge_match_into_notebook(notebook)
    nbformat.write(notebook, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    # Runs before sphinx-book-theme builds its header buttons (priority 501).
    app.connect("html-page-context", _offer_executed_notebook, priority=450)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
