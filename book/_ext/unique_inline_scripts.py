"""Drop repeated inline ``<script>`` blocks from each page's head.

With Sphinx 7.4, inline scripts that extensions add while documents are read (sphinx-thebe's
``const THEBE_JS_URL = ...``, sphinx-togglebutton's selector) end up in the page twice; declaring a
``const`` twice is a JavaScript SyntaxError on every page. Files are already de-duplicated by Sphinx;
this does the same for identical inline bodies, keeping the first.
"""

from __future__ import annotations


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        body = None if getattr(script, "filename", "") else getattr(script, "attributes", {}).get("body")
        if body is not None:
            if body in seen:
                continue
            seen.add(body)
        unique.append(script)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe, priority=900)  # after every other extension
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
