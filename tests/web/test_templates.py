"""One htmx convention for every page template, checked on the files.

A page (a URL a browser may open) is a template in templates/ that extends
``fragment.html`` for htmx requests and ``base.html`` otherwise, and puts what an htmx
request gets in its ``fragment`` block; a wrapper only the full page has (a card and
its heading) goes in ``content`` around ``self.fragment()``. The partials in
templates/partials/ are the fragments pages include; the dashboard's self-refreshing
panels are rendered straight from their partials, because their URLs only ever serve
a panel.
"""

from __future__ import annotations

import pytest

from tests.helpers import TEMPLATES_DIR as TEMPLATES

LAYOUTS = {"base.html", "fragment.html"}
PAGES = sorted(path.name for path in TEMPLATES.glob("*.html") if path.name not in LAYOUTS)
CONVENTION = '{% extends "fragment.html" if htmx else "base.html" %}'


@pytest.mark.parametrize("name", PAGES)
def test_every_page_follows_the_one_convention(name: str) -> None:
    text = (TEMPLATES / name).read_text()
    assert text.splitlines()[0] == CONVENTION
    assert "{% block fragment %}" in text
    if "{% block content %}" in text:
        assert "{{ self.fragment() }}" in text  # the wrapper holds the fragment
    # Not the old way: one wrapper split across conditional blocks.
    assert "if not htmx" not in text and "if htmx" not in text.replace(CONVENTION, "")


def test_the_layouts_render_the_fragment_block() -> None:
    assert "{% block fragment %}{% endblock %}" in (TEMPLATES / "fragment.html").read_text()
    base = (TEMPLATES / "base.html").read_text()
    assert "{% block content %}{% block fragment %}{% endblock %}{% endblock %}" in base
