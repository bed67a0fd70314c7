"""GET / (app/web/pages.py): the file form and the text form, and the fresh upload id the
form carries before its file."""

from __future__ import annotations

import re

from quart.typing import TestClientProtocol as QuartClient

from tests.helpers import (
    HTMX,
    markup,
)


async def test_text_mode_fragment_is_the_text_form(client: QuartClient) -> None:
    text_form = await markup(await client.get("/?mode=text", headers=HTMX))
    file_form = await markup(await client.get("/", headers=HTMX))
    assert '<textarea id="text" name="text"' in text_form
    assert 'type="file"' not in text_form
    assert 'name="file" type="file"' in file_form
    assert "<textarea" not in file_form
    # An unknown mode falls back to the file form rather than failing.
    other = await client.get("/?mode=video")
    assert other.status_code == 200
    assert 'name="file" type="file"' in await markup(other)


async def test_home_form_carries_a_fresh_upload_id_first(client: QuartClient) -> None:
    first = await markup(await client.get("/"))
    second = await markup(await client.get("/"))
    ids = [re.search(r'name="upload_id" value="([^"]+)"', page) for page in (first, second)]
    assert ids[0] is not None and ids[1] is not None
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", ids[0].group(1))
    assert ids[0].group(1) != ids[1].group(1)
    # The small fields come before the file so the server can use them while it streams.
    assert first.index('name="upload_id"') < first.index('name="file"')
    assert first.index('name="expires_in"') < first.index('name="file"')
