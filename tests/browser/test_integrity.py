"""Subresource Integrity in a real browser: the vendored htmx runs, an altered copy does not."""

from __future__ import annotations

import json

from playwright.sync_api import Browser, ConsoleMessage, Route

from tests.browser.conftest import SessionFactory
from tests.helpers import VENDOR_DIR, LiveServer

MANIFEST = json.loads((VENDOR_DIR / "manifest.json").read_text())


def test_htmx_runs_with_its_integrity_checked(session_factory: SessionFactory) -> None:
    page = session_factory().new_page()
    page.goto("/")
    loaded = page.evaluate(
        "() => ({htmx: typeof htmx === 'object' && typeof htmx.ajax === 'function',"
        " integrity: document.querySelector('script[src$=\"/vendor/htmx.min.js\"]').integrity})"
    )
    assert loaded == {"htmx": True, "integrity": MANIFEST["htmx.min.js"]["integrity"]}


def test_an_altered_htmx_is_refused(browser: Browser, browser_server: LiveServer) -> None:
    """What a tampering proxy or a swapped file on the server would serve: one byte more.

    The page's integrity attribute makes Chromium refuse to run it (with JS off the page
    still works; that path has its own tests)."""
    altered = (VENDOR_DIR / "htmx.min.js").read_bytes() + b"\n"

    def serve_altered(route: Route) -> None:
        route.fulfill(status=200, body=altered, content_type="text/javascript")

    context = browser.new_context(base_url=browser_server.base_url)
    try:
        page = context.new_page()
        page.route("**/static/vendor/htmx.min.js", serve_altered)

        def refused(message: ConsoleMessage) -> bool:
            return message.type == "error" and "integrity" in message.text

        with page.expect_console_message(refused) as console:
            page.goto("/")
        assert "htmx.min.js" in console.value.text
        assert page.evaluate("typeof htmx") == "undefined"
    finally:
        context.close()
