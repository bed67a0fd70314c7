"""Whole flows in headless Chromium, with JavaScript on and off."""

from __future__ import annotations

import os
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    BROWSER_SHORT_EXPIRY,
    BrowserSession,
    SessionFactory,
    axe_violations,
    screenshot,
)

SECRET_TEXT = 'line one\n  <script>alert("x")</script> & \u00e9t\u00e9 \U0001f511\nlast line'


def upload_file_with_progress(
    page: Page, session: BrowserSession, path: Path, password: str
) -> str:
    """Upload through the page at a throttled 2 MiB/s; return the share link."""
    page.goto("/")
    page.evaluate(
        "window.__progress = [];"
        "document.addEventListener('htmx:xhr:progress', e => {"
        "  if (e.detail.lengthComputable)"
        "    window.__progress.push(Math.floor(e.detail.loaded * 100 / e.detail.total)); })"
    )
    cdp = session.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": 2 * 1024 * 1024,
        },
    )
    page.set_input_files("#file", str(path))
    expect(page.locator("[data-file-choice]")).to_contain_text(path.name)
    page.fill("#password", password)
    page.select_option("#expires_in", "300")
    page.click("form[data-upload-form] button[type=submit]")
    # While the bytes flow, the bar and the server's own status fragment both move.
    expect(page.locator("[data-progress]")).to_be_visible()
    expect(page.locator("[data-upload-status]")).to_contain_text("Server received")
    expect(page.locator("#share-url")).to_be_visible(timeout=30_000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": -1,
        },
    )
    seen = page.evaluate("window.__progress")
    assert max(seen) == 100
    assert len({value for value in seen if 0 < value < 100}) >= 3, seen
    return page.input_value("#share-url")


def test_protected_file_with_javascript(session_factory: SessionFactory, tmp_path: Path) -> None:
    uploader = session_factory()
    page = uploader.new_page()
    original = tmp_path / "quarterly-report.pdf"
    original.write_bytes(os.urandom(4 * 1024 * 1024 + 123))

    link = upload_file_with_progress(page, uploader, original, "correct horse")
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/d/[A-Za-z0-9_-]{43}", link)
    expect(page.locator("svg.qr")).to_be_visible()
    expect(page.locator("[data-countdown]")).to_contain_text("expires in 4 min")
    page.click("button[data-copy='#share-url']")
    expect(page.locator("button[data-copy='#share-url']")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link

    recipient = session_factory()
    landing = recipient.new_page()
    landing.goto(link)
    expect(landing.locator("h1")).to_have_text("Protected file, 4 MiB")
    expect(landing.locator("body")).not_to_contain_text("quarterly-report")

    recipient.console.expect_status(401)
    landing.fill("#password", "wrong")
    landing.click("#password-panel button[type=submit]")
    expect(landing.locator("#password-error")).to_have_text(
        "Wrong password. 4 tries left before the share is destroyed."
    )
    expect(landing.locator("#tries-left")).to_contain_text("4 tries left")

    landing.fill("#password", "correct horse")
    with landing.expect_download() as download_info:
        landing.click("#password-panel button[type=submit]")
    download = download_info.value
    assert download.suggested_filename == "quarterly-report.pdf"
    assert Path(download.path()).read_bytes() == original.read_bytes()

    recipient.console.expect_status(410)
    again = recipient.new_page()
    response = again.goto(link)
    assert response is not None and response.status == 410
    expect(again.locator("h1")).to_have_text("This link no longer works")
    expect(again.locator("body")).to_contain_text("already downloaded")
    # The uploader's countdown flips to the final state by itself.
    expect(page.locator("[data-countdown]")).to_have_text("Already downloaded", timeout=12_000)


def test_text_secret_with_javascript(session_factory: SessionFactory) -> None:
    uploader = session_factory()
    page = uploader.new_page()
    page.goto("/")
    page.click("nav.tabs >> text=Text")
    expect(page.locator("#text")).to_be_visible()
    assert page.url.endswith("/")  # swapped in place, no navigation
    page.fill("#text", SECRET_TEXT)
    page.fill("#password", "pw")
    page.click("form[data-upload-form] button[type=submit]")
    expect(page.locator("#share-url")).to_be_visible()
    link = page.input_value("#share-url")

    recipient = session_factory()
    recipient.console.expect_status(401, 410)
    reader = recipient.new_page()
    reader.goto(link)
    expect(reader.locator("h1")).to_contain_text("Protected message")
    expect(reader.locator("body")).not_to_contain_text("line one")
    reader.fill("#password", "nope")
    reader.click("#password-panel button[type=submit]")
    expect(reader.locator("#password-error")).to_contain_text("4 tries left")
    reader.fill("#password", "pw")
    reader.click("#password-panel button[type=submit]")
    expect(reader.locator("#reveal-heading")).to_be_visible()
    assert reader.locator("pre.secret").inner_text() == SECRET_TEXT
    reader.click("button[data-copy='#secret-text']")
    expect(reader.locator("button[data-copy='#secret-text']")).to_have_text("Copied")
    assert reader.evaluate("navigator.clipboard.readText()") == SECRET_TEXT

    response = reader.goto(link)
    assert response is not None and response.status == 410


def test_countdown_ticks_and_flips_to_expired(session_factory: SessionFactory) -> None:
    uploader = session_factory()
    page = uploader.new_page()
    page.goto("/?mode=text")
    page.fill("#text", "short-lived")
    page.select_option("#expires_in", str(BROWSER_SHORT_EXPIRY))
    page.click("form[data-upload-form] button[type=submit]")
    countdown = page.locator("[data-countdown]")
    expect(countdown).to_contain_text("expires in")
    first = countdown.inner_text()
    link = page.input_value("#share-url")

    recipient = session_factory()
    landing = recipient.new_page()
    landing.goto(link)
    expect(landing.locator("[data-countdown]")).to_contain_text("expires in")

    expect(countdown).not_to_have_text(first)  # it ticks
    expect(countdown).to_have_text("Expired", timeout=BROWSER_SHORT_EXPIRY * 1000 + 8000)
    expect(landing.locator("[data-countdown]")).to_have_text("Expired")
    assert countdown.get_attribute("hx-trigger") is None  # and stops polling


def test_revoke_from_the_created_panel(session_factory: SessionFactory) -> None:
    uploader = session_factory()
    uploader.console.expect_status(410)
    page = uploader.new_page()
    page.goto("/?mode=text")
    page.fill("#text", "changed my mind")
    page.click("form[data-upload-form] button[type=submit]")
    link = page.input_value("#share-url")
    page.click("text=Revoke this link")
    expect(page.locator("h1")).to_have_text("Revoke this share?")
    page.click("button:has-text('Revoke and destroy')")
    expect(page.locator("h1")).to_have_text("Share revoked")
    response = page.goto(link)
    assert response is not None and response.status == 410
    expect(page.locator("body")).to_contain_text("revoked")


def test_drag_and_drop_chooses_the_file(session_factory: SessionFactory) -> None:
    page = session_factory().new_page()
    page.goto("/")
    page.evaluate(
        "() => { const data = new DataTransfer();"
        " data.items.add(new File(['dropped bytes'], 'dropped.txt', {type: 'text/plain'}));"
        " const zone = document.querySelector('[data-dropzone]');"
        " zone.dispatchEvent(new DragEvent('dragover', {dataTransfer: data, bubbles: true}));"
        " zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true})); }"
    )
    expect(page.locator("[data-file-choice]")).to_have_text("dropped.txt (13 bytes)")
    page.click("form[data-upload-form] button[type=submit]")
    expect(page.locator("#share-url")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("13 bytes")


def test_keyboard_only_upload_and_visible_focus(session_factory: SessionFactory) -> None:
    page = session_factory().new_page()
    page.goto("/?mode=text")
    focus_path = []
    for _ in range(12):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " const style = getComputedStyle(e);"
            " return [e.id || e.textContent.trim(), style.outlineStyle, style.outlineWidth]; }"
        )
        focus_path.append(focused[0])
        if focused[0] in {"expires_in", "password", "text"}:
            assert focused[1] != "none" and focused[2] != "0px", focused
        if focused[0] == "text":
            break
    assert focus_path.index("expires_in") < focus_path.index("password") < focus_path.index("text")
    page.keyboard.type("typed without a mouse")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#share-url")).to_be_visible()


def test_everything_works_without_javascript(
    session_factory: SessionFactory, tmp_path: Path
) -> None:
    original = tmp_path / "no-js.bin"
    original.write_bytes(os.urandom(300_000))
    uploader = session_factory(javascript=False)
    page = uploader.new_page()
    page.goto("/")
    expect(page.locator("[data-progress]")).to_be_hidden()
    page.set_input_files("#file", str(original))
    page.fill("#password", "s3cret")
    page.click("form[data-upload-form] button[type=submit]")
    expect(page.locator("h1")).to_have_text("Your link is ready")
    link = page.input_value("#share-url")
    expect(page.locator("button[data-copy]")).to_be_hidden()  # select-all instead
    expect(page.locator("[data-countdown] time")).to_be_visible()  # absolute expiry

    recipient = session_factory(javascript=False)
    recipient.console.expect_status(401, 410)
    landing = recipient.new_page()
    landing.goto(link)
    landing.fill("#password", "wrong")
    landing.click("button[type=submit]")
    expect(landing.locator("#password-error")).to_contain_text("4 tries left")
    landing.fill("#password", "s3cret")
    with landing.expect_download() as download_info:
        landing.click("button[type=submit]")
    assert Path(download_info.value.path()).read_bytes() == original.read_bytes()
    response = landing.goto(link)
    assert response is not None and response.status == 410

    text_page = uploader.new_page()
    text_page.goto("/")
    text_page.click("nav.tabs >> text=Text")
    text_page.fill("#text", "plain html only")
    text_page.click("form[data-upload-form] button[type=submit]")
    text_link = text_page.input_value("#share-url")
    reader = recipient.new_page()
    reader.goto(text_link)
    reader.click("button[type=submit]")
    assert reader.locator("pre.secret").inner_text() == "plain html only"


def test_screenshots_and_accessibility(session_factory: SessionFactory, tmp_path: Path) -> None:
    sample = tmp_path / "contract.pdf"
    sample.write_bytes(b"%PDF-1.7 sample")
    problems: dict[str, list[str]] = {}
    for width in (360, 1280):
        session = session_factory(width=width, height=800)
        page = session.new_page()
        page.goto("/")
        screenshot(page, f"home-{width}")
        problems[f"home-{width}"] = axe_violations(page)

        page.set_input_files("#file", str(sample))
        page.fill("#password", "pw")
        page.click("form[data-upload-form] button[type=submit]")
        expect(page.locator("#share-url")).to_be_visible()
        screenshot(page, f"share-created-{width}")
        problems[f"share-created-{width}"] = axe_violations(page)

        prompt = session.new_page()
        prompt.goto(page.input_value("#share-url"))
        screenshot(prompt, f"password-prompt-{width}")
        problems[f"password-prompt-{width}"] = axe_violations(prompt)

        page.goto("/")
        page.set_input_files("#file", str(sample))
        page.click("form[data-upload-form] button[type=submit]")
        expect(page.locator("#share-url")).to_be_visible()
        landing = session.new_page()
        landing.goto(page.input_value("#share-url"))
        screenshot(landing, f"landing-{width}")
        problems[f"landing-{width}"] = axe_violations(landing)
        # Nothing scrolls sideways on a phone.
        assert landing.evaluate("document.documentElement.scrollWidth") <= width
    assert problems == {name: [] for name in problems}
