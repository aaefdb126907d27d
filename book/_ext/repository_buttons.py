"""Show the repository and issue buttons exactly when the book knows its repository.

The course's public repository is one setting, ``repository: url:`` in ``_config.yml``. While it is
unset the header shows no button that leads out of the book (a guessed address would send readers
to a page that does not exist); once it is set, this extension turns on both buttons. Jupyter Book
itself refuses the buttons without a URL, which is why ``_config.yml`` leaves them off.
"""

from __future__ import annotations


def _buttons_follow_the_repository(app, config) -> None:
    options = dict(config.html_theme_options)
    has_repository = bool(str(options.get("repository_url") or "").strip())
    options["use_repository_button"] = has_repository
    options["use_issues_button"] = has_repository
    config.html_theme_options = options


def setup(app):
    app.connect("config-inited", _buttons_follow_the_repository)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
