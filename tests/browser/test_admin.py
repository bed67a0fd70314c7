"""The admin dashboard in a real browser: live counters and feed, revoking from the table."""

from __future__ import annotations

import re

from playwright.sync_api import Dialog, Page, expect

from onetimeshare.domain.crypto import decode_token, share_id_for
from tests.browser.conftest import BrowserSession, SessionFactory, axe_violations, screenshot
from tests.helpers import ADMIN_PASSWORD


def sign_in(page: Page) -> None:
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r"/auth/login$"))
    page.fill("#user", "admin")
    page.fill("#admin-password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1.page-title")).to_have_text("Dashboard")


def counter(page: Page, name: str) -> int:
    text = page.locator(f"[data-counter='{name}']").inner_text()
    numbers = re.findall(r"\d+", text)
    return int(numbers[-1])  # the all-time figure comes last


def share_text(session: BrowserSession, text: str) -> str:
    page = session.new_page()
    page.goto("/?mode=text")
    page.fill("#text", text)
    page.click("form[data-upload-form] button[type=submit]")
    expect(page.locator("#share-url")).to_be_visible()
    return page.input_value("#share-url")


def test_dashboard_follows_activity_live_and_revokes(session_factory: SessionFactory) -> None:
    admin = session_factory(width=1280, height=1000)
    dashboard = admin.new_page()
    sign_in(dashboard)
    uploads_before = counter(dashboard, "uploads")
    downloads_before = counter(dashboard, "downloads")

    sender = session_factory()
    recipient = session_factory()
    link = share_text(sender, "watched by the admin")
    # No reload: the event stream nudges the counters and the feed.
    expect(dashboard.locator("[data-counter='uploads']")).to_contain_text(
        f"{uploads_before + 1} all time", timeout=10_000
    )
    expect(dashboard.locator("#admin-activity li").first).to_have_attribute(
        "data-event", "uploaded", timeout=10_000
    )
    reader = recipient.new_page()
    reader.goto(link)
    reader.click("button[type=submit]")
    expect(reader.locator("pre.secret")).to_have_text("watched by the admin")
    expect(dashboard.locator("[data-counter='downloads']")).to_contain_text(
        f"{downloads_before + 1} all time", timeout=10_000
    )
    expect(dashboard.locator("#admin-activity li").first).to_have_attribute(
        "data-event", "downloaded", timeout=10_000
    )

    # The largest live share, so it is on the first page when sorted by size.
    doomed = share_text(sender, "to be revoked by the admin " + "x" * 200_000)
    short_id = share_id_for(decode_token(doomed.rsplit("/", 1)[1]))[:8]
    dashboard.click("#admin-shares th a:has-text('Size')")
    row = dashboard.locator(f"#share-{short_id}")
    expect(row).to_be_visible(timeout=10_000)
    dashboard.once("dialog", lambda dialog: Dialog.accept(dialog))
    row.locator("button").click()
    expect(row).to_have_count(0, timeout=10_000)
    recipient.console.expect_status(410)
    response = reader.goto(doomed)
    assert response is not None and response.status == 410
    expect(reader.locator("body")).to_contain_text("revoked")

    screenshot(dashboard, "admin-dashboard-1280")
    assert axe_violations(dashboard) == []


def test_sign_in_page_and_wrong_password(session_factory: SessionFactory) -> None:
    session = session_factory(width=360, height=800)
    page = session.new_page()
    page.goto("/auth/login")
    screenshot(page, "admin-login-360")
    assert axe_violations(page) == []
    session.console.expect_status(401)
    page.fill("#user", "admin")
    page.fill("#admin-password", "not the password")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("The user name or password is wrong.")
    page.goto("/admin")
    expect(page).to_have_url(re.compile(r"/auth/login$"))
