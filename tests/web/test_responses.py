"""How routes answer (app/web/responses.py): a full page without the HX-Request header, just
the fragment with it, and ``Vary: HX-Request`` on both, for every page."""

from __future__ import annotations

import pytest
from quart.typing import TestClientProtocol as QuartClient

from tests.helpers import (
    HTMX,
    assert_fragment,
    assert_full_page,
    markup,
    page_path,
)

PAGES = ["home", "home_text", "landing", "status", "revoke", "progress"]


SHOWS_A_SHARE = {"landing", "status", "revoke", "progress"}


@pytest.mark.parametrize("name", PAGES)
async def test_without_htmx_header_a_full_page(client: QuartClient, name: str) -> None:
    response = await client.get(await page_path(client, name))
    assert response.status_code == 200
    assert_full_page(await markup(response))
    assert "HX-Request" in response.headers["Vary"]
    if name in SHOWS_A_SHARE:
        assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("name", PAGES)
async def test_with_htmx_header_only_the_fragment(client: QuartClient, name: str) -> None:
    response = await client.get(await page_path(client, name), headers=HTMX)
    assert response.status_code == 200
    text = await markup(response)
    assert_fragment(text)
    assert "HX-Request" in response.headers["Vary"]
    if name in SHOWS_A_SHARE:
        assert response.headers["Cache-Control"] == "no-store"
    expected_root = {
        "status": "data-countdown",
        "progress": "data-upload-status",
    }.get(name, 'id="share-panel"')
    assert expected_root in text
