"""A Sphinx extension (``_config.yml``: ``sphinx.local_extensions``) that keeps the book's pages
free of browser console errors under the pinned Sphinx 7.4.

Sphinx 7.4 writes an inline script twice when an extension adds it after the HTML builder has
started: the builder keeps it once under the name ``None`` and again under ``''`` (fixed in
Sphinx 8.2 by sphinx-doc/sphinx#13402; Jupyter Book 1 needs Sphinx 7). sphinx-thebe's
``const THEBE_JS_URL = ...`` then fails on every page with "Identifier 'THEBE_JS_URL' has
already been declared". Here the builder records every inline script under ``''``, as the fix does.
"""

from __future__ import annotations

from sphinx.builders.html import StandaloneHTMLBuilder


def _add_js_file(original):
    def add_js_file(self, filename, **kwargs):
        return original(self, filename or "", **kwargs)

    add_js_file.geovae_fixed = True
    return add_js_file


def setup(app):
    if not getattr(StandaloneHTMLBuilder.add_js_file, "geovae_fixed", False):
        StandaloneHTMLBuilder.add_js_file = _add_js_file(StandaloneHTMLBuilder.add_js_file)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
