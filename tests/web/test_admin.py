"""The admin dashboard's panels: counters, the live-share table and its revoke button, the
activity feed and its event stream, the system panel and the chart; never a secret."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import os
import re
import time
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import redis
from quart import Quart
from quart.testing.connections import TestHTTPConnection as HTTPConnection
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings, parse_limits
from onetimeshare.web.admin import PER_PAGE, STREAM_BLOCK_MS
from tests.helpers import (
    ADMIN_PANELS,
    BROWSER,
    FORM,
    HTMX,
    JSON,
    SHORT_EXPIRY,
    UPLOAD_ID,
    csrf_of,
    fetch,
    post_form,
    running_app,
    signed_in,
    token_path,
    upload,
    upload_text,
    urlencoded,
    wait_until_async,
)

TAGS = re.compile(r"<[^>]+>")
COUNTER = re.compile(r'<dd data-counter="([a-z_]+)">(.*?)</dd>', re.S)
SYSTEM = re.compile(r'<dd data-system="([a-z]+)">(.*?)</dd>', re.S)
ROW = re.compile(r'<tr id="share-([0-9a-f]{8})">(.*?)</tr>', re.S)
CELL = re.compile(r"<td>(.*?)</td>", re.S)
EVENT = re.compile(r'<li class="event event-[a-z_]+" data-event="([a-z_]+)">(.*?)</li>', re.S)
UPLOAD_BARS = re.compile(r'<rect class="bar-up"[^>]* data-uploads="(\d+)"')
DOWNLOAD_BARS = re.compile(r'<rect class="bar-down"[^>]* data-downloads="(\d+)"')
WORKER_LAG = re.compile(
    r'<li data-worker="(\d+)">pid \1: worst (\d+\.\d) ms, p99 (\d+\.\d) ms, '
    r"(\d+) stalls over 20 ms</li>"
)


# --- helpers ---------------------------------------------------------------------------


def plain(fragment: str) -> str:
    return " ".join(html.unescape(TAGS.sub(" ", fragment)).split())


async def body(response: Any) -> str:
    text: str = await response.get_data(as_text=True)
    return text


async def counters(client: QuartClient) -> dict[str, str]:
    return {
        name: plain(value)
        for name, value in COUNTER.findall(await fetch(client, "/admin/counters"))
    }


async def rows(client: QuartClient, query: str = "") -> list[tuple[str, list[str]]]:
    text = await fetch(client, "/admin/shares" + query)
    return [
        (short, [plain(cell) for cell in CELL.findall(row)]) for short, row in ROW.findall(text)
    ]


async def short_ids(client: QuartClient, query: str = "") -> list[str]:
    return [short for short, _ in await rows(client, query)]


async def events(client: QuartClient) -> list[tuple[str, str]]:
    return [
        (kind, plain(rest)) for kind, rest in EVENT.findall(await fetch(client, "/admin/activity"))
    ]


async def post_password(client: QuartClient, share: dict[str, Any], password: str) -> int:
    return (await post_form(client, token_path(share), password, BROWSER)).status_code


def short(share: dict[str, Any]) -> str:
    return str(share["id"])[:8]


def busy_settings(admin_settings: Settings) -> Settings:
    """Everything that is counted switched on: limits, CLI blocking, two tries."""
    return dataclasses.replace(
        admin_settings,
        max_password_tries=2,
        block_cli_agents=True,
        rate_limits_enabled=True,
        rate_limits={**admin_settings.rate_limits, "poll": parse_limits("1/minute")},
    )


# --- counters --------------------------------------------------------------------------


async def test_counters_show_exact_numbers(admin_settings: Settings) -> None:
    async with running_app(busy_settings(admin_settings)) as application:
        admin = await signed_in(application)
        assert await counters(admin) == {
            "active": "0",
            "bytes": "0 bytes",
            "uploads": "0 last hour · 0 all time",
            "downloads": "0 last hour · 0 all time",
            "failed_passwords": "0",
            "destroyed": "0",
            "expired": "0",
            "revoked": "0",
            "lost": "0",
            "rate_limited": "0",
            "cli_blocked": "0",
        }

        downloaded = await upload(admin, b"d" * 101)
        guessed = await upload(admin, b"g" * 202, password="right-password")
        destroyed = await upload(admin, b"x" * 303, password="right-password")
        after_three = await counters(admin)
        assert after_three["uploads"] == "3 last hour · 3 all time"
        assert after_three["active"] == "3"
        assert after_three["bytes"] == "606 bytes"

        # Expiring from now on, while the rest happens; counted when the counters are read.
        await upload(admin, b"e" * 505, expires_in=SHORT_EXPIRY)

        download = await admin.post(token_path(downloaded), headers={**FORM, **BROWSER})
        assert await download.get_data() == b"d" * 101
        assert await post_password(admin, guessed, "wrong") == 401
        assert await post_password(admin, destroyed, "wrong") == 401
        assert await post_password(admin, destroyed, "wrong again") == 403

        revoked = await upload(admin, b"r" * 404)
        revoke = await admin.post(urlsplit(revoked["revoke_url"]).path, headers=FORM)
        assert revoke.status_code == 303

        blocked = await admin.get(token_path(guessed), headers={"User-Agent": "curl/8"})
        assert blocked.status_code == 406

        progress = f"/upload/progress/{UPLOAD_ID}"
        assert (await admin.get(progress, headers=BROWSER)).status_code != 429
        limited = await admin.get(progress, headers=BROWSER)
        assert limited.status_code == 429

        async def expired_counted() -> bool:
            return (await counters(admin))["expired"] == "1"

        await wait_until_async(expired_counted, timeout=10, interval=0.1)

        assert await counters(admin) == {
            "active": "1",
            "bytes": "202 bytes",
            "uploads": "5 last hour · 5 all time",
            "downloads": "1 last hour · 1 all time",
            "failed_passwords": "3",
            "destroyed": "1",
            "expired": "1",
            "revoked": "1",
            "lost": "0",
            "rate_limited": "1",
            "cli_blocked": "1",
        }


# --- the table of live shares ------------------------------------------------------------


async def test_the_table_lists_live_shares_with_their_facts(admin: QuartClient) -> None:
    plain_file = await upload(admin, b"p" * 100)
    protected = await upload(admin, b"q" * 300, password="right-password")
    text = await upload_text(admin, "hello there")
    assert await post_password(admin, protected, "wrong") == 401

    listed = dict(await rows(admin))
    assert set(listed) == {short(plain_file), short(protected), short(text)}
    # Id, kind, size, password, created, expires, wrong tries, action.
    for share, kind, size, password, tries in [
        (plain_file, "file", "100 bytes", "no", "0"),
        (protected, "file", "300 bytes", "yes", "1"),
        (text, "text", f"{text['size']} bytes", "no", "0"),
    ]:
        cells = listed[short(share)]
        assert len(cells) == 8
        assert cells[0] == short(share)
        assert cells[1:4] == [kind, size, password]
        assert cells[5].startswith("in ")
        assert cells[6] == tries
    page = await fetch(admin, "/admin/shares")
    assert "Active shares <small>(3)</small>" in page


async def test_the_table_sorts_by_expiry_or_by_size(admin: QuartClient) -> None:
    late_large = await upload(admin, b"a" * 30, expires_in=86400)
    soon_small = await upload(admin, b"b" * 10, expires_in=300)
    middle = await upload(admin, b"c" * 20, expires_in=3600)

    by_expiry = [short(soon_small), short(middle), short(late_large)]
    assert await short_ids(admin) == by_expiry
    assert await short_ids(admin, "?sort=expiry") == by_expiry
    assert await short_ids(admin, "?sort=size") == [
        short(late_large),
        short(middle),
        short(soon_small),
    ]
    expiry_page = await fetch(admin, "/admin/shares?sort=expiry")
    assert "Expires ↑" in expiry_page
    size_page = await fetch(admin, "/admin/shares?sort=size")
    assert "Size ↓" in size_page


async def test_the_table_pages_through_many_shares(admin: QuartClient) -> None:
    assert PER_PAGE == 20
    shares = [await upload(admin, b"%d" % number) for number in range(25)]

    first = await fetch(admin, "/admin/shares")
    second = await fetch(admin, "/admin/shares?page=2")
    first_ids = [found for found, _ in ROW.findall(first)]
    second_ids = [found for found, _ in ROW.findall(second)]
    assert len(first_ids) == 20
    assert len(second_ids) == 5
    assert sorted(first_ids + second_ids) == sorted(short(share) for share in shares)

    assert "Page 1 of 2" in first
    assert re.search(r'<a href="[^"]*page=2[^"]*"[^>]*>Next</a>', first)
    assert ">Previous</a>" not in first
    assert "Page 2 of 2" in second
    assert re.search(r'<a href="[^"]*page=1[^"]*"[^>]*>Previous</a>', second)
    assert ">Next</a>" not in second
    assert "Active shares <small>(25)</small>" in first


async def test_downloaded_and_revoked_shares_leave_the_table(admin: QuartClient) -> None:
    kept = await upload(admin, b"kept")
    downloaded = await upload(admin, b"downloaded")
    revoked = await upload(admin, b"revoked")
    assert set(await short_ids(admin)) == {short(kept), short(downloaded), short(revoked)}

    assert (await admin.post(token_path(downloaded))).status_code == 200
    assert set(await short_ids(admin)) == {short(kept), short(revoked)}
    response = await admin.post(urlsplit(revoked["revoke_url"]).path, headers=FORM)
    assert response.status_code == 303
    assert await short_ids(admin) == [short(kept)]


# --- revoking from the table -------------------------------------------------------------


async def test_revoke_without_javascript_confirms_first(admin: QuartClient, blob_dir: Path) -> None:
    share = await upload(admin, b"to be revoked")
    path = f"/admin/shares/{share['id']}/revoke"
    csrf = await csrf_of(admin)

    confirmation = await admin.post(path, data=urlencoded(csrf=csrf), headers=FORM)
    assert confirmation.status_code == 200
    page = await body(confirmation)
    assert f"<code>{short(share)}</code>" in page
    assert f'<form action="{path}" method="post">' in page
    assert '<input type="hidden" name="confirm" value="yes">' in page
    assert f'<input type="hidden" name="csrf" value="{csrf}">' in page
    assert short(share) in await short_ids(admin)  # asking destroyed nothing
    assert (blob_dir / f"{share['id']}.blob").exists()
    assert (await counters(admin))["revoked"] == "0"

    revoked = await admin.post(path, data=urlencoded(csrf=csrf, confirm="yes"), headers=FORM)
    assert revoked.status_code == 303
    assert revoked.headers["Location"] == "/admin"

    gone = await admin.post(token_path(share), headers={**FORM, **JSON})
    assert gone.status_code == 410
    assert (await gone.get_json())["reason"] == "revoked"
    assert not (blob_dir / f"{share['id']}.blob").exists()
    assert list(blob_dir.iterdir()) == []
    assert (await counters(admin))["revoked"] == "1"
    assert await short_ids(admin) == []


async def test_revoke_with_htmx_answers_the_table_without_the_row(
    admin: QuartClient, blob_dir: Path
) -> None:
    kept = await upload(admin, b"kept")
    share = await upload(admin, b"to be revoked")
    csrf = await csrf_of(admin)

    response = await admin.post(
        f"/admin/shares/{share['id']}/revoke", data=urlencoded(csrf=csrf), headers={**FORM, **HTMX}
    )
    assert response.status_code == 200
    fragment = await body(response)
    assert fragment.lstrip().startswith('<section class="card panel" id="admin-shares"')
    assert "<html" not in fragment
    assert [found for found, _ in ROW.findall(fragment)] == [short(kept)]
    assert not (blob_dir / f"{share['id']}.blob").exists()
    gone = await admin.post(token_path(share), headers={**FORM, **JSON})
    assert (await gone.get_json())["reason"] == "revoked"
    assert (await counters(admin))["revoked"] == "1"


# --- activity --------------------------------------------------------------------------


async def test_activity_lists_events_newest_first(admin_settings: Settings) -> None:
    async with running_app(busy_settings(admin_settings)) as application:
        admin = await signed_in(application)
        assert "Nothing has happened yet." in await fetch(admin, "/admin/activity")

        expired = await upload(admin, b"e" * 40, expires_in=SHORT_EXPIRY)
        downloaded = await upload(admin, b"d" * 10)
        assert (await admin.post(token_path(downloaded), headers=BROWSER)).status_code == 200
        revoked = await upload(admin, b"r" * 20)
        revoke = await admin.post(urlsplit(revoked["revoke_url"]).path, headers=FORM)
        assert revoke.status_code == 303
        destroyed = await upload(admin, b"x" * 30, password="right-password")
        assert await post_password(admin, destroyed, "wrong") == 401
        assert await post_password(admin, destroyed, "wrong again") == 403

        async def expired_recorded() -> bool:
            return (await counters(admin))["expired"] == "1"

        await wait_until_async(expired_recorded, timeout=10, interval=0.1)
        progress = f"/upload/progress/{UPLOAD_ID}"
        assert (await admin.get(progress, headers=BROWSER)).status_code != 429
        assert (await admin.get(progress, headers=BROWSER)).status_code == 429
        blocked = await admin.get(token_path(expired), headers={"User-Agent": "curl/8"})
        assert blocked.status_code == 406

        feed = await events(admin)
        assert [kind for kind, _ in feed] == [
            "blocked",
            "rate_limited",
            "expired",
            "destroyed",
            "uploaded",
            "revoked",
            "uploaded",
            "downloaded",
            "uploaded",
            "uploaded",
        ]
        described = [text for _, text in feed]
        assert described[0].endswith("blocked")
        assert described[1].endswith("rate limited")
        assert described[2].endswith(f"expired {short(expired)} file, 40 bytes")
        assert described[3].endswith(f"destroyed {short(destroyed)} file, 30 bytes")
        assert described[4].endswith(f"uploaded {short(destroyed)} file, 30 bytes")
        assert described[5].endswith(f"revoked {short(revoked)} file, 20 bytes")
        assert described[6].endswith(f"uploaded {short(revoked)} file, 20 bytes")
        assert described[7].endswith(f"downloaded {short(downloaded)} file, 10 bytes")
        assert described[8].endswith(f"uploaded {short(downloaded)} file, 10 bytes")
        assert described[9].endswith(f"uploaded {short(expired)} file, 40 bytes")


async def test_activity_shows_at_most_twenty_events(admin: QuartClient) -> None:
    shares = [await upload(admin, b"%d" % number) for number in range(25)]
    feed = await events(admin)
    assert len(feed) == 20
    assert all(kind == "uploaded" for kind, _ in feed)
    newest_first = [short(share) for share in reversed(shares)][:20]
    assert [text.split()[2] for _, text in feed] == newest_first


async def test_the_event_stream_nudges_on_new_activity(
    admin_app: Quart, admin: QuartClient, redis_client: redis.Redis
) -> None:
    stream = cast(HTTPConnection, admin.request("/admin/activity/stream"))
    connection = await stream.__aenter__()
    try:
        first = await asyncio.wait_for(connection.receive(), timeout=5)
        assert first == b"retry: 3000\n\n"
        assert connection.status_code == 200
        assert connection.headers is not None
        assert connection.headers["Content-Type"].startswith("text/event-stream")
        assert connection.headers["Cache-Control"] == "no-store"

        async def next_event() -> bytes:
            while True:
                chunk = await connection.receive()
                if chunk.startswith(b"event: activity"):
                    return chunk
                assert chunk == b": still here\n\n"

        uploader = admin_app.test_client()
        nudge, share = await asyncio.wait_for(
            asyncio.gather(next_event(), upload(uploader, b"news")), timeout=10
        )
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]], redis_client.xrevrange("ots:events", count=1)
        )
        newest, fields = entries[0]
        assert fields[b"type"] == b"uploaded"
        assert fields[b"id"] == short(share).encode()
        assert nudge == b"event: activity\ndata: " + newest + b"\n\n"
    finally:
        await connection.disconnect()
    # The handler notices the client is gone; the stream does not outlive it.
    async with asyncio.timeout(STREAM_BLOCK_MS / 1000 + 3):
        await stream.__aexit__(None, None, None)  # type: ignore[arg-type]


# --- system panel and chart --------------------------------------------------------------


async def test_the_system_panel_reports_health_and_mismatches(
    admin_app: Quart, admin: QuartClient, blob_dir: Path
) -> None:
    await upload(admin, b"one live share")
    facts = dict(SYSTEM.findall(await fetch(admin, "/admin/system")))
    assert re.fullmatch(r"reachable, \d+(\.\d+)?[BKMG] used", facts["redis"])
    assert re.fullmatch(r"\d+(\.\d)? (KiB|MiB|GiB|TiB)|\d+ bytes?", facts["disk"])
    assert facts["blobs"] == "1 / 1"
    startup_run = plain(facts["janitor"])
    assert startup_run.endswith("0 blobs, 0 partial uploads removed, 0 expired")

    stray = blob_dir / f"{'ab' * 16}.blob"
    stray.write_bytes(b"left over")
    facts = dict(SYSTEM.findall(await fetch(admin, "/admin/system")))
    assert plain(facts["blobs"]).startswith("2 / 1 mismatch")

    report = await admin_app.extensions["onetimeshare"].janitor.run_once()
    assert report is not None and report.blobs_removed == 1
    assert not stray.exists()
    facts = dict(SYSTEM.findall(await fetch(admin, "/admin/system")))
    assert facts["blobs"] == "1 / 1"
    finished = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report.finished_at))
    assert plain(facts["janitor"]) == f"{finished}: 1 blobs, 0 partial uploads removed, 0 expired"


async def test_the_system_panel_shows_each_workers_event_loop_lag(
    admin: QuartClient, redis_client: redis.Redis
) -> None:
    # The app's own loop-lag monitor publishes this worker's figures each second.
    published = f"ots:looplag:{os.getpid()}"
    # A worker listed as having published, whose figures have since expired: not shown.
    redis_client.zadd("ots:looplag", {"4194304": time.time()})

    async def panel_shows_what_was_published() -> bool:
        before = redis_client.hgetall(published)
        panel = await fetch(admin, "/admin/system")
        if not before or redis_client.hgetall(published) != before:
            return False  # not published yet, or published again meanwhile
        expected = (
            str(os.getpid()),
            f"{float(before[b'worst_ms']):.1f}",
            f"{float(before[b'p99_ms']):.1f}",
            before[b"over_20ms"].decode(),
        )
        assert WORKER_LAG.findall(panel) == [expected]
        return True

    await wait_until_async(panel_shows_what_was_published)


async def test_the_chart_draws_the_last_24_hours(admin: QuartClient) -> None:
    hour_before = int(time.time() // 3600)
    for number in range(3):
        await upload(admin, b"chart %d" % number)
    downloaded = await upload(admin, b"chart download")
    assert (await admin.post(token_path(downloaded))).status_code == 200
    chart = await fetch(admin, "/admin/chart")
    hour_after = int(time.time() // 3600)

    assert re.search(r'<svg class="chart"[^>]* role="img"', chart)
    uploads = [int(count) for count in UPLOAD_BARS.findall(chart)]
    downloads = [int(count) for count in DOWNLOAD_BARS.findall(chart)]
    assert len(uploads) == 24
    assert len(downloads) == 24
    if hour_before == hour_after:
        assert uploads[-1] == 4
        assert downloads[-1] == 1
        assert sum(uploads[:-1]) == sum(downloads[:-1]) == 0
    else:  # the test ran across the turn of an hour
        assert uploads[-2] + uploads[-1] == 4
        assert downloads[-2] + downloads[-1] == 1


# --- what the admin never sees -----------------------------------------------------------


async def test_no_secret_is_ever_rendered(admin: QuartClient) -> None:
    name = "TOPSECRET-budget-2027.xlsx"
    password = "hunter2-password"
    message = "the vault code is 90210-SECRETTEXT"
    hostile = "<img src=x onerror=alert(1)>.html"
    protected = await upload(admin, b"budget numbers", filename=name, password=password)
    text = await upload_text(admin, message)
    html_named = await upload(admin, b"<p>hi</p>", filename=hostile)
    shares = [protected, text, html_named]
    assert await post_password(admin, protected, "wrong") == 401

    secrets = [
        name,
        "TOPSECRET",
        password,
        message,
        "90210",
        hostile,
        "onerror",
        html.escape(hostile),
    ]
    for share in shares:
        secrets.append(share["url"].rsplit("/d/", 1)[1])
        secrets.append(share["revoke_url"].rsplit("/r/", 1)[1])
    for path in ("/admin", *ADMIN_PANELS):
        for headers in ({}, HTMX):
            page = await fetch(admin, path, headers=headers)
            for secret in secrets:
                assert secret not in page, (path, secret)
            assert "<img" not in page, path
    # The shares themselves are listed, by id only.
    assert set(await short_ids(admin)) == {short(share) for share in shares}


async def test_every_admin_page_and_fragment_is_no_store(
    admin_app: Quart, admin: QuartClient
) -> None:
    share = await upload(admin, b"x")
    csrf = await csrf_of(admin)
    responses = []
    for path in ("/admin", *ADMIN_PANELS, "/admin/shares?sort=size&page=2"):
        responses.append((path, await admin.get(path)))
        responses.append((path + " (htmx)", await admin.get(path, headers=HTMX)))
    revoke = f"/admin/shares/{share['id']}/revoke"
    responses.append(
        ("confirm", await admin.post(revoke, data=urlencoded(csrf=csrf), headers=FORM))
    )
    responses.append(
        (
            "htmx revoke",
            await admin.post(revoke, data=urlencoded(csrf=csrf), headers={**FORM, **HTMX}),
        )
    )
    responses.append(("login", await admin_app.test_client().get("/auth/login")))
    for label, response in responses:
        assert response.status_code == 200, label
        assert response.content_type.startswith("text/html"), label
        assert response.headers["Cache-Control"] == "no-store", label
