"""Tampered, cut, missing and rewritten stored data: a clear 410 ``lost``, never a 500 or a
download that breaks off, and the share really ends (tombstone, counter, feed, blob gone).

The damage is done for real: bytes flipped in the blob file on disk, the file cut or
removed, record fields rewritten in Redis.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.domain import crypto
from tests.helpers import FORM, JSON, share_keys, token_path, upload, upload_text
from tests.sealing import seal_bytes

BIG = 3 * 1024 * 1024 + 17  # several 1 MiB batches


def blob_path(blob_dir: Path, share: dict[str, Any]) -> Path:
    return blob_dir / f"{share['id']}.blob"


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


async def assert_lost(
    client: QuartClient, share: dict[str, Any], blob_dir: Path, redis_client: redis.Redis
) -> None:
    """The share has ended as lost: every way of asking says so, and nothing is left."""
    path = token_path(share)
    for answer in (
        await client.get(path, headers=JSON),
        await client.post(path, headers={**FORM, **JSON}),
        await client.post(path + "/unlock", data="password=pw", headers={**FORM, **JSON}),
    ):
        text = await answer.get_data(as_text=True)
        assert answer.status_code == 410, text
        body = json.loads(text)
        assert body == {"error": body["error"], "code": "gone", "reason": "lost"}
        assert "could not be read" in body["error"]
    assert not blob_path(blob_dir, share).exists()
    assert redis_client.get(f"ots:gone:{share['id']}") == b"lost"
    assert not redis_client.exists(f"ots:share:{share['id']}")
    assert int(redis_client.hget("ots:stats", "lost") or 0) == 1
    [(_, fields)] = redis_client.xrevrange("ots:events", count=1)
    assert fields[b"type"] == b"lost" and fields[b"id"] == share["id"][:8].encode()


@pytest.mark.parametrize(
    ("size", "offset"),
    [
        (BIG, crypto.BLOB_HEADER_BYTES + 5),  # first chunk of a file of several batches
        (BIG, crypto.BLOB_HEADER_BYTES + 900 * 1024),  # later in the first batch
        (1000, crypto.BLOB_HEADER_BYTES + 3),  # a file that fits in one batch
        (1000, 2),  # the header
    ],
)
async def test_a_blob_damaged_where_it_starts_is_lost_before_anything_is_sent(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, size: int, offset: int
) -> None:
    share = await upload(client, os.urandom(size))
    flip_byte(blob_path(blob_dir, share), offset)
    response = await client.post(token_path(share), headers=FORM)
    assert response.status_code == 410
    assert "Content-Disposition" not in response.headers
    page = await response.get_data(as_text=True)
    assert "could not be read" in page
    await assert_lost(client, share, blob_dir, redis_client)


async def test_damage_past_the_first_batch_still_cuts_the_download_short(
    client: QuartClient, blob_dir: Path
) -> None:
    """What cannot be checked before the headers go out: the body stops short."""
    data = os.urandom(BIG)
    share = await upload(client, data)
    flip_byte(blob_path(blob_dir, share), crypto.BLOB_HEADER_BYTES + 2 * 1024 * 1024)
    # The test client reads the whole body, so the stream's failure surfaces here; over a
    # socket the client sees a body shorter than its Content-Length.
    with pytest.raises(crypto.DecryptionError):
        await client.post(token_path(share), headers=FORM)


@pytest.mark.parametrize("damage", ["truncated", "extended", "missing", "emptied"])
async def test_a_cut_or_missing_blob_ends_the_share_at_once(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, damage: str
) -> None:
    share = await upload(client, os.urandom(200_000))
    path = blob_path(blob_dir, share)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
    elif damage == "extended":
        path.write_bytes(path.read_bytes() + b"\0" * 100)
    elif damage == "emptied":
        path.write_bytes(b"")
    else:
        path.unlink()
    first = await client.post(token_path(share), headers={**FORM, **JSON})
    assert first.status_code == 410
    assert (await first.get_json())["reason"] == "lost"
    await assert_lost(client, share, blob_dir, redis_client)


async def test_a_tampered_text_secret_is_a_410_not_a_500(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    note = "a confidential note " * 20
    share = await upload_text(client, note)
    flip_byte(blob_path(blob_dir, share), crypto.BLOB_HEADER_BYTES + 40)
    reveal = await client.post(token_path(share), headers=FORM)
    assert reveal.status_code == 410
    text = await reveal.get_data(as_text=True)
    assert "could not be read" in text and "confidential" not in text
    await assert_lost(client, share, blob_dir, redis_client)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size", "not a number"),
        ("size", "-1"),
        ("size", str(2**60)),
        ("kind", "folder"),
        ("kind", "\xff"),
        ("created", "nan"),
        ("expires", "soon"),
        ("tries", "many"),
        ("tries", "-3"),
        ("sealed", ""),
        ("rid", "../../etc"),
        ("v", "7"),
    ],
)
async def test_a_record_with_garbage_fields_is_answered_cleanly(
    client: QuartClient,
    blob_dir: Path,
    redis_client: redis.Redis,
    field: str,
    value: str,
) -> None:
    share = await upload(client, b"some file")
    redis_client.hset(f"ots:share:{share['id']}", field, value.encode("latin-1"))
    await assert_lost(client, share, blob_dir, redis_client)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("a2m", str(64 * 1024 * 1024)),  # 64 GiB per guess
        ("a2t", "100000"),  # hours per guess
        ("a2p", "0"),
        ("a2m", "huge"),
        ("salt", "short"),
    ],
)
async def test_rewritten_argon2_parameters_cannot_make_a_guess_expensive(
    client: QuartClient,
    blob_dir: Path,
    redis_client: redis.Redis,
    field: str,
    value: str,
) -> None:
    share = await upload(client, b"guarded", password="pw")
    redis_client.hset(f"ots:share:{share['id']}", field, value)
    # Refused before any Argon2 work: such a record is unreadable, not a costly guess.
    answer = await client.post(token_path(share), data="password=pw", headers={**FORM, **JSON})
    assert answer.status_code == 410, await answer.get_data(as_text=True)
    await assert_lost(client, share, blob_dir, redis_client)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "text"),  # a file must not be shown as a message
        ("size", "9"),
        ("size", "11"),
    ],
)
async def test_a_record_rewritten_within_bounds_no_longer_opens(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis, field: str, value: str
) -> None:
    """Plausible values, but the envelope is bound to the originals."""
    share = await upload(client, b"0123456789")
    redis_client.hset(f"ots:share:{share['id']}", field, value)
    await assert_lost(client, share, blob_dir, redis_client)


async def test_shares_written_before_the_envelope_binding_still_download(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    """A version-1 record and envelope, as the previous release wrote them, still open."""
    data = b"made by the previous release"
    token = crypto.new_token()
    share_id = crypto.share_id_for(token)
    file_key = os.urandom(32)
    blob_dir.mkdir(parents=True, exist_ok=True)
    (blob_dir / f"{share_id}.blob").write_bytes(seal_bytes(file_key, share_id, data))
    payload = json.dumps(
        {"k": base64.b64encode(file_key).decode(), "n": "old.txt", "t": "text/plain"}
    ).encode()
    nonce = os.urandom(12)
    kek = crypto.key_encryption_key(token, None)
    sealed = (
        b"\x01"
        + nonce
        + ChaCha20Poly1305(kek).encrypt(
            nonce, payload, b"onetimeshare envelope v1:" + share_id.encode()
        )
    )
    now = time.time()
    redis_client.hset(
        f"ots:share:{share_id}",
        mapping={
            "v": 1,
            "kind": "file",
            "size": len(data),
            "created": now,
            "expires": now + 3600,
            "sealed": sealed,
            "tries": 0,
            "rid": "",
        },
    )
    redis_client.expire(f"ots:share:{share_id}", 3600)
    path = f"/d/{crypto.encode_token(token)}"
    landing = await client.get(path)
    assert landing.status_code == 200
    assert "old.txt" in await landing.get_data(as_text=True)
    download = await client.post(path, headers=FORM)
    assert download.status_code == 200
    assert await download.get_data() == data
    assert "old.txt" in download.headers["Content-Disposition"]
    assert not [key for key in share_keys(redis_client) if key.startswith(b"ots:share:")]


# --- the store fails, the share does not -------------------------------------------------


@contextlib.contextmanager
def undeletable(path: Path) -> Iterator[None]:
    """The file cannot be unlinked, even by root, until the block ends (ext4's immutable flag)."""
    subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


async def test_a_blob_that_cannot_be_deleted_does_not_turn_an_ending_into_an_error(
    app: Quart, client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    revoked, destroyed, lost = (
        await upload(client, b"revoke me"),
        await upload(client, b"guess me", password="pw"),
        await upload(client, b"lose me"),
    )
    (blob_dir / f"{lost['id']}.blob").write_bytes(b"OTS\x1a not a blob")
    held = [blob_path(blob_dir, share) for share in (revoked, destroyed, lost)]
    with contextlib.ExitStack() as stack:
        for path in held:
            stack.enter_context(undeletable(path))
        revoke = await client.post(urlsplit(revoked["revoke_url"]).path, headers=FORM)
        assert revoke.status_code == 303
        for _ in range(4):
            await client.post(token_path(destroyed), data="password=no", headers=FORM)
        last = await client.post(token_path(destroyed), data="password=no", headers=FORM)
        assert last.status_code == 403
        assert "destroyed" in await last.get_data(as_text=True)
        gone = await client.post(token_path(lost), headers={**FORM, **JSON})
        assert gone.status_code == 410 and (await gone.get_json())["reason"] == "lost"
        assert all(path.exists() for path in held)  # still there: the delete failed
    for share, reason in ((revoked, b"revoked"), (destroyed, b"destroyed"), (lost, b"lost")):
        assert redis_client.get(f"ots:gone:{share['id']}") == reason
    # What could not be deleted then is the janitor's.
    report = await app.extensions["onetimeshare"].janitor.run_once()
    assert report is not None and report.blobs_removed == 3
    assert not any(path.exists() for path in held)


async def test_a_store_that_fails_to_read_is_a_503_and_uses_nothing_up(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    data = os.urandom(5000)
    share = await upload(client, data)
    path = blob_path(blob_dir, share)
    kept = path.read_bytes()
    path.unlink()
    path.mkdir()  # open() now fails with EISDIR: a store error, not a missing blob
    failed = await client.post(token_path(share), headers={**FORM, **JSON})
    assert failed.status_code == 503
    assert failed.headers["Retry-After"] == "30"
    body = await failed.get_json()
    assert body["code"] == "storage_unavailable" and "try again" in body["error"]
    assert redis_client.exists(f"ots:share:{share['id']}")
    path.rmdir()
    path.write_bytes(kept)
    download = await client.post(token_path(share), headers=FORM)
    assert download.status_code == 200
    assert await download.get_data() == data


async def test_an_absurd_content_type_is_stored_as_a_plain_one(
    client: QuartClient, redis_client: redis.Redis
) -> None:
    """A 9000-character type once made an envelope too big to be read back: lost at once."""
    for declared in ("\u00e9" * 9000, "text/plain; charset=" + "x" * 9000, "no slash"):
        share = await upload(client, b"typed", content_type=declared)
        assert (await client.get(token_path(share))).status_code == 200
        download = await client.post(token_path(share), headers=FORM)
        assert download.status_code == 200
        assert await download.get_data() == b"typed"
