"""Real-browser fixtures: one server and one Chromium for the session, fresh contexts per test.

Chromium is Debian's (/usr/bin/chromium) driven by Playwright through
``executable_path``; Playwright's own browser download does not work here.
Every page's console is recorded and checked: no errors, no CSP violations.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright

from onetimeshare.config import Settings
from onetimeshare.process.embedded_redis import EmbeddedRedis
from tests.helpers import ADMIN_PASSWORD, REPO_ROOT, TEST_ARGON2, TEST_SECRET_KEY, LiveServer

# Debian's Chromium by default; CI elsewhere may point at another Chromium-based browser.
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO_ROOT / "artifacts" / "screenshots"
AXE_SOURCE = REPO_ROOT / "node_modules" / "axe-core" / "axe.min.js"
BROWSER_SHORT_EXPIRY = 4
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Chromium reports every non-2xx answer to a script request as a console error. Tests that
# provoke such an answer on purpose (a wrong password is a 401) say so; anything else fails.
NETWORK_STATUS = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")


@pytest.fixture(scope="session")
def browser_server(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("browser") / "data",
        secret_key=TEST_SECRET_KEY,
        # Database 1, so other tests flushing database 0 never touch this server's shares.
        redis_url=f"{redis_server.url}?db=1",
        expiry_choices=(BROWSER_SHORT_EXPIRY, 300, 3600, 86400, 604800),
        default_expiry=86400,
        max_upload_bytes=64 * 1024 * 1024,
        min_free_bytes=0,
        janitor_interval=3600,
        argon2=TEST_ARGON2,
        # Many uploads a minute from one address; the limits have their own tests.
        rate_limits_enabled=False,
        admin_password=ADMIN_PASSWORD,
    )
    server = LiveServer(settings, workers=1, extra_env={})
    server.start()
    yield server
    server.stop()


# Module scope, not session: while sync Playwright runs, its event loop counts as running
# in this thread, and the asyncio tests of other modules could not start their own.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is needed: `make browser` installs it"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class ConsoleLog:
    """Console errors, warnings and uncaught exceptions of every page in a context."""

    problems: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def listen(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type not in {"error", "warning"}:
            return
        status = NETWORK_STATUS.search(message.text)
        if status and int(status.group(1)) in self.expected_statuses:
            return
        self.problems.append(f"{message.type}: {message.text}")

    def expect_status(self, *statuses: int) -> None:
        self.expected_statuses.update(statuses)


@dataclass
class BrowserSession:
    context: BrowserContext
    console: ConsoleLog
    base_url: str

    def new_page(self) -> Page:
        page = self.context.new_page()
        self.console.listen(page)
        return page


SessionFactory = Callable[..., BrowserSession]


@pytest.fixture
def session_factory(browser: Browser, browser_server: LiveServer) -> Iterator[SessionFactory]:
    sessions: list[BrowserSession] = []

    def open_session(
        *, javascript: bool = True, width: int = 1280, height: int = 900
    ) -> BrowserSession:
        context = browser.new_context(
            java_script_enabled=javascript,
            viewport={"width": width, "height": height},
            accept_downloads=True,
            base_url=browser_server.base_url,
        )
        context.set_default_timeout(15_000)
        if javascript:
            context.grant_permissions(
                ["clipboard-read", "clipboard-write"], origin=browser_server.base_url
            )
        session = BrowserSession(context, ConsoleLog(), browser_server.base_url)
        sessions.append(session)
        return session

    yield open_session
    problems = [problem for session in sessions for problem in session.console.problems]
    for session in sessions:
        session.context.close()
    assert problems == [], "the browser console reported problems"


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def axe_violations(page: Page) -> list[str]:
    """Serious and critical accessibility violations reported by axe-core on this page.

    axe is injected through the DevTools protocol (page.evaluate), which the page's
    Content-Security-Policy does not apply to, so the policy stays as strict as in use.
    """
    assert AXE_SOURCE.is_file(), "axe-core comes from npm: `make test` (or `npm ci`) installs it"
    page.evaluate(AXE_SOURCE.read_text() + "\n;0")
    results = page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map("
        "v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))})))"
    )
    return [
        f"{violation['id']} ({violation['impact']}): {violation['nodes']}"
        for violation in results
        if violation["impact"] in {"serious", "critical"}
    ]
