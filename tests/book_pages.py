"""The pages a book's table of contents lists: one reading of `_toc.yml` for every test."""

from __future__ import annotations

from pathlib import Path

import yaml


def toc_pages(book: Path) -> list[str]:
    """The root page, then every ``file:`` of ``book/_toc.yml`` in order (paths without ``.md``)."""
    toc = yaml.safe_load((book / "_toc.yml").read_text(encoding="utf-8"))

    def files(node) -> list[str]:
        if isinstance(node, dict):
            return ([node["file"]] if "file" in node else []) + [
                f for value in node.values() for f in files(value)]
        if isinstance(node, list):
            return [f for item in node for f in files(item)]
        return []

    return [toc["root"], *files(toc.get("parts", toc.get("chapters", [])))]
