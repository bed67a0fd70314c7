"""GET and POST /r/<revoke token> (app/web/revoke.py): a token of its own, a confirmation page
that never destroys, the revoke itself with and without htmx, and what the page says once
the share has ended."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.domain.crypto import encode_token, new_token
from tests.helpers import (
    HTMX,
    JSON,
    assert_fragment,
    assert_only_tombstone,
    files_in,
    markup,
    post_form,
    revoke_path,
    share_keys,
    token_path,
    upload,
)


async def test_revoke_url_is_a_separate_token(client: QuartClient) -> None:
    share = await upload(client, b"x")
    assert re.fullmatch(r"http://localhost/r/[A-Za-z0-9_-]{43}", share["revoke_url"])
    revoke_token = share["revoke_url"].rsplit("/", 1)[1]
    share_token = share["url"].rsplit("/", 1)[1]
    assert revoke_token != share_token
    # The revoke token is not a download link, and the share token is not a revoke link.
    assert (await client.get(f"/d/{revoke_token}", headers=JSON)).status_code == 410
    other = await markup(await client.get(f"/r/{share_token}"))
    assert "Nothing to revoke" in other


async def test_looking_at_the_revoke_page_never_destroys(client: QuartClient) -> None:
    share = await upload(client, b"still mine")
    for _ in range(2):
        response = await client.get(revoke_path(share))
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        text = await markup(response)
        assert "Revoke this share?" in text
        assert f'action="{revoke_path(share)}"' in text
    download = await post_form(client, token_path(share))
    assert await download.get_data() == b"still mine"


async def test_revoke_without_htmx_redirects_and_destroys(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    kept = await upload(client, b"other share")
    share = await upload(client, b"to be revoked")
    path = revoke_path(share)

    response = await client.post(path)
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == path
    assert response.headers["Cache-Control"] == "no-store"

    gone = await post_form(client, token_path(share), headers=JSON)
    assert gone.status_code == 410
    assert (await gone.get_json())["reason"] == "revoked"
    assert files_in(blob_dir) == [f"{kept['id']}.blob"]
    own_keys = [key for key in share_keys(redis_client) if share["id"].encode() in key]
    assert own_keys == [f"ots:gone:{share['id']}".encode()]
    assert redis_client.get(f"ots:gone:{share['id']}") == b"revoked"
    # Both revoke pointers remain: the other share's, and this one's, so the revoke page
    # can keep saying what happened until the tombstone expires.
    pointers = [key for key in share_keys(redis_client) if key.startswith(b"ots:revoke:")]
    assert sorted(redis_client.get(key) for key in pointers) == sorted(
        [kept["id"].encode(), share["id"].encode()]
    )

    assert await (await post_form(client, token_path(kept))).get_data() == b"other share"


async def test_revoke_result_page_after_the_redirect_says_revoked(client: QuartClient) -> None:
    share = await upload(client, b"to be revoked")
    response = await client.post(revoke_path(share), follow_redirects=True)
    assert response.status_code == 200
    text = await markup(response)
    assert "Share revoked" in text
    assert "Nothing to revoke" not in text
    again = await markup(await client.get(revoke_path(share)))
    assert "Share revoked" in again


async def test_htmx_revoke_answers_with_the_fragment(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    share = await upload(client, b"to be revoked")
    response = await client.post(revoke_path(share), headers=HTMX)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = await markup(response)
    assert_fragment(text)
    assert "Share revoked" in text
    assert files_in(blob_dir) == []
    assert_only_tombstone(redis_client, share, b"revoked")


async def test_revoking_an_already_downloaded_share_says_so(client: QuartClient) -> None:
    share = await upload(client, b"taken")
    assert await (await post_form(client, token_path(share))).get_data() == b"taken"

    fragment = await client.post(revoke_path(share), headers=HTMX)
    assert fragment.status_code == 200
    assert "Already downloaded" in await markup(fragment)
    redirected = await client.post(revoke_path(share))
    assert redirected.status_code == 303
    page = await client.get(revoke_path(share))
    assert page.status_code == 200
    assert "Already downloaded" in await markup(page)


async def test_revoke_page_of_a_destroyed_share_says_so(
    client: QuartClient, settings: Settings
) -> None:
    share = await upload(client, b"x", password="right")
    for _ in range(settings.max_password_tries):
        await post_form(client, token_path(share), "wrong", headers=JSON)
    assert (await post_form(client, token_path(share), "right")).status_code == 410

    page = await client.get(revoke_path(share))
    assert page.status_code == 200
    assert "Already destroyed" in await markup(page)
    fragment = await client.post(revoke_path(share), headers=HTMX)
    assert "Already destroyed" in await markup(fragment)


@pytest.mark.parametrize("token", ["short", "A" * 44, "A" * 42 + "!"])
async def test_malformed_revoke_token_is_404(client: QuartClient, token: str) -> None:
    assert (await client.get(f"/r/{token}")).status_code == 404
    assert (await client.post(f"/r/{token}", headers=JSON)).status_code == 404
    assert (await client.post(f"/r/{token}", headers=HTMX)).status_code == 404


async def test_unknown_revoke_token_has_nothing_to_revoke(
    client: QuartClient, redis_client: redis.Redis
) -> None:
    share = await upload(client, b"unrelated")
    path = f"/r/{encode_token(new_token())}"
    page = await client.get(path)
    assert page.status_code == 200
    assert "Nothing to revoke" in await markup(page)
    fragment = await client.post(path, headers=HTMX)
    assert fragment.status_code == 200
    assert "Nothing to revoke" in await markup(fragment)
    assert redis_client.exists(f"ots:share:{share['id']}") == 1
