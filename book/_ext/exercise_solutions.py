"""Render each exercise as a student meets it, with its reference code in the collapsed solution.

The chapters keep their reference solutions between ``# BEGIN SOLUTION`` and ``# END SOLUTION``, so
nbval proves that every solution passes its checker. The web book must not print them in the
exercise's own cell: before Sphinx parses a chapter, this extension applies
:func:`msa_lib.exercises.web_edition`, which puts the student copy's stub in that cell (the book
executes and shows the stub, whose checker reports "not attempted yet") and moves the reference code
into the chapter's ``{solution}`` dropdown. The notebooks on disk are not changed.
"""

from __future__ import annotations

from sphinx.errors import ExtensionError

from msa_lib.exercises import web_edition


def _web_edition(app, docname: str, source: list[str]) -> None:
    if "# BEGIN SOLUTION" not in source[0]:
        return
    try:
        source[0] = web_edition(source[0], where=app.env.doc2path(docname))
    except ValueError as error:
        raise ExtensionError(str(error)) from error


def setup(app):
    app.connect("source-read", _web_edition)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
