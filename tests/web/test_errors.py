"""How errors are answered (app/web/errors.py): an unknown address as a page and as JSON, and
an error for an htmx request swapped into the panel it replaces."""

from __future__ import annotations

from quart.typing import TestClientProtocol as QuartClient

from tests.helpers import (
    HTMX,
    assert_fragment,
    assert_full_page,
    markup,
    post_form,
    revoke_path,
    token_path,
    upload,
)


async def test_htmx_landing_of_a_downloaded_share_retargets_the_panel(client: QuartClient) -> None:
    share = await upload(client, b"once")
    await post_form(client, token_path(share))

    response = await client.get(token_path(share), headers=HTMX)
    assert response.status_code == 410
    assert response.headers["HX-Retarget"] == "#share-panel"
    assert response.headers["HX-Reswap"] == "outerHTML"
    assert response.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in response.headers["Vary"]
    text = await markup(response)
    assert_fragment(text)
    assert 'id="share-panel"' in text
    assert "already downloaded" in text

    page = await client.get(token_path(share))
    assert page.status_code == 410
    assert "HX-Retarget" not in page.headers
    assert_full_page(await markup(page))


async def test_htmx_unlock_of_a_gone_share_retargets_the_panel(client: QuartClient) -> None:
    share = await upload(client, b"once", password="pw")
    await client.post(revoke_path(share))
    response = await post_form(client, token_path(share) + "/unlock", "pw", HTMX)
    assert response.status_code == 410
    assert response.headers["HX-Retarget"] == "#share-panel"
    text = await markup(response)
    assert_fragment(text)
    assert "revoked" in text
