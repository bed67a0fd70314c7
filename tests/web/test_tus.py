"""The tus 1.0.0 endpoint (web/tus.py): the protocol's details clients rely on."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import email.utils
import time
from pathlib import Path
from typing import Any

import redis
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.domain import keys
from onetimeshare.domain.crypto import DEFAULT_CHUNK_SIZE, decode_token
from onetimeshare.domain.resumable import upload_id_for
from tests.helpers import (
    BROWSER,
    JSON,
    files_in,
    json_error,
    random_bytes,
    running_app,
    wait_until_async,
)

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}
CHUNK = DEFAULT_CHUNK_SIZE


def metadata(**values: str) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}" if value else key
        for key, value in values.items()
    )


async def create(client: QuartClient, length: int, **values: str) -> str:
    headers = {**TUS, "Upload-Length": str(length)}
    if values:
        headers["Upload-Metadata"] = metadata(**values)
    response = await client.post("/tus/", headers=headers)
    assert response.status_code == 201, await response.get_data(as_text=True)
    location = response.headers["Location"]
    assert "/tus/" in location
    return "/tus/" + location.rsplit("/tus/", 1)[1]


async def patch(client: QuartClient, path: str, offset: int, data: bytes) -> Any:
    return await client.open(
        path,
        method="PATCH",
        data=data,
        headers={**OCTETS, "Upload-Offset": str(offset)},
    )


async def links(client: QuartClient, path: str) -> dict[str, Any]:
    response = await client.get(path, headers=JSON)
    assert response.status_code == 200, await response.get_data(as_text=True)
    answer: dict[str, Any] = await response.get_json()
    return answer


async def download(client: QuartClient, url: str) -> bytes:
    response = await client.post("/d/" + url.rsplit("/d/", 1)[1], headers=BROWSER)
    assert response.status_code == 200
    return await response.get_data()


# --- discovery and the version ---


async def test_options_names_version_extensions_and_max_size(
    client: QuartClient, settings: Settings
) -> None:
    response = await client.options("/tus/")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    extensions = set(response.headers["Tus-Extension"].split(","))
    assert extensions == {"creation", "creation-with-upload", "termination", "expiration"}
    assert response.headers["Tus-Max-Size"] == str(settings.max_upload_bytes)
    assert "Tus-Resumable" not in response.headers


async def test_a_request_without_the_version_is_412_with_tus_version(
    client: QuartClient,
) -> None:
    for headers in ({}, {"Tus-Resumable": "0.2.2"}):
        response = await client.post("/tus/", headers={**headers, "Upload-Length": "5"})
        assert response.status_code == 412
        assert response.headers["Tus-Version"] == "1.0.0"
        assert response.headers["Tus-Resumable"] == "1.0.0"


# --- creation ---


async def test_create_answers_201_location_and_upload_expires(
    client: QuartClient, settings: Settings
) -> None:
    before = time.time()
    response = await client.post("/tus/", headers={**TUS, "Upload-Length": "10"})
    assert response.status_code == 201
    assert response.headers["Tus-Resumable"] == "1.0.0"
    expires = email.utils.parsedate_to_datetime(response.headers["Upload-Expires"])
    expected = before + settings.resumable_upload_seconds
    assert abs(expires.timestamp() - expected) < 5
    assert "Upload-Offset" not in response.headers


async def test_create_needs_a_length_and_refuses_one_over_the_maximum(
    client: QuartClient, settings: Settings
) -> None:
    missing = await client.post("/tus/", headers=TUS)
    assert missing.status_code == 400
    json_error(await missing.get_data(), "malformed_request")
    for bad in ("-1", "1e3", "ten", ""):
        response = await client.post("/tus/", headers={**TUS, "Upload-Length": bad})
        assert response.status_code == 400, bad
    over = await client.post(
        "/tus/", headers={**TUS, "Upload-Length": str(settings.max_upload_bytes + 1)}
    )
    assert over.status_code == 413


async def test_malformed_metadata_is_400(client: QuartClient) -> None:
    for header in ("filename !!!notbase64", "a YQ==,a YQ==", "key one two", ","):
        response = await client.post(
            "/tus/", headers={**TUS, "Upload-Length": "3", "Upload-Metadata": header}
        )
        assert response.status_code == 400, header


async def test_an_expiry_not_offered_is_refused(client: QuartClient) -> None:
    response = await client.post(
        "/tus/",
        headers={**TUS, "Upload-Length": "3", "Upload-Metadata": metadata(expires_in="12345")},
    )
    assert response.status_code == 422


# --- appending ---


async def test_upload_in_pieces_then_links_then_one_download(client: QuartClient) -> None:
    data = random_bytes(3 * CHUNK + 1234)
    path = await create(client, len(data), filename="report.pdf", filetype="application/pdf")
    head = await client.head(path, headers=TUS)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Cache-Control"] == "no-store"

    # Not on a chunk boundary: only whole sealed chunks count as stored.
    first = await patch(client, path, 0, data[: CHUNK + 100])
    assert first.status_code == 204
    assert first.headers["Upload-Offset"] == str(CHUNK)
    assert "Upload-Expires" in first.headers
    second = await patch(client, path, CHUNK, data[CHUNK:])
    assert second.status_code == 204
    assert second.headers["Upload-Offset"] == str(len(data))

    answer = await links(client, path)
    assert set(answer) >= {"url", "revoke_url", "id", "expires_at", "size", "protected"}
    assert answer["size"] == len(data)
    assert answer["protected"] is False
    assert await download(client, answer["url"]) == data
    # The upload's own address says nothing more than the links, and HEAD agrees.
    done = await client.head(path, headers=TUS)
    assert done.headers["Upload-Offset"] == str(len(data))


async def test_creation_with_upload_and_an_empty_file(client: QuartClient) -> None:
    data = b"all at once"
    response = await client.post(
        "/tus/",
        data=data,
        headers={
            **OCTETS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": metadata(filename="a.txt"),
            # The test client sends none; every tus client does.
            "Content-Length": str(len(data)),
        },
    )
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == str(len(data))
    path = "/tus/" + response.headers["Location"].rsplit("/tus/", 1)[1]
    assert await download(client, (await links(client, path))["url"]) == data

    empty = await client.post("/tus/", headers={**TUS, "Upload-Length": "0"})
    assert empty.status_code == 201
    assert empty.headers["Upload-Offset"] == "0"
    path = "/tus/" + empty.headers["Location"].rsplit("/tus/", 1)[1]
    assert await download(client, (await links(client, path))["url"]) == b""


async def test_patch_needs_the_offset_content_type(client: QuartClient) -> None:
    path = await create(client, 5)
    response = await client.open(
        path,
        method="PATCH",
        data=b"hello",
        headers={**TUS, "Content-Type": "text/plain", "Upload-Offset": "0"},
    )
    assert response.status_code == 415


async def test_a_stale_offset_is_409(client: QuartClient) -> None:
    data = random_bytes(2 * CHUNK + 5)
    path = await create(client, len(data))
    assert (await patch(client, path, 0, data[:CHUNK])).status_code == 204
    stale = await patch(client, path, 0, data[:CHUNK])
    assert stale.status_code == 409
    ahead = await patch(client, path, 2 * CHUNK, data[2 * CHUNK :])
    assert ahead.status_code == 409
    assert (await patch(client, path, CHUNK, data[CHUNK:])).status_code == 204


async def test_bytes_past_the_length_are_refused(client: QuartClient) -> None:
    path = await create(client, 10)
    response = await patch(client, path, 0, b"x" * 11)
    assert response.status_code == 400
    json_error(await response.get_data(), "malformed_request")


async def test_two_patches_at_one_offset_one_wins(client: QuartClient) -> None:
    data = random_bytes(4 * CHUNK)
    path = await create(client, len(data))
    answers = await asyncio.gather(*(patch(client, path, 0, data) for _ in range(4)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses.count(204) == 1, statuses
    assert set(statuses) <= {204, 409, 423}
    assert await download(client, (await links(client, path))["url"]) == data


async def test_method_override_patches_and_deletes(client: QuartClient) -> None:
    path = await create(client, 3)
    response = await client.post(
        path,
        data=b"abc",
        headers={**OCTETS, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
    )
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "3"
    other = await create(client, 3)
    gone = await client.post(other, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert gone.status_code == 204
    assert (await client.head(other, headers=TUS)).status_code == 410


# --- ending ---


async def test_terminate_removes_everything_and_then_410(
    client: QuartClient, blob_dir: Path, redis_client: redis.Redis
) -> None:
    data = random_bytes(2 * CHUNK + 1)
    path = await create(client, len(data))
    assert (await patch(client, path, 0, data[:CHUNK])).status_code == 204
    assert any(name.endswith(".part") for name in files_in(blob_dir))
    response = await client.delete(path, headers=TUS)
    assert response.status_code == 204
    assert files_in(blob_dir) == []
    for method in ("HEAD", "PATCH"):
        after = await client.open(
            path,
            method=method,
            data=b"" if method == "HEAD" else b"x",
            headers={**OCTETS, "Upload-Offset": str(CHUNK)},
        )
        assert after.status_code == 410
        assert "Upload-Offset" not in after.headers


async def test_unknown_or_malformed_uploads_are_404(client: QuartClient) -> None:
    for path in ("/tus/" + "A" * 43, "/tus/short"):
        response = await client.head(path, headers=TUS)
        assert response.status_code == 404
        assert "Upload-Offset" not in response.headers


async def test_links_only_after_completion(client: QuartClient) -> None:
    path = await create(client, 10)
    response = await client.get(path, headers=JSON)
    assert response.status_code == 404
    json_error(await response.get_data(), "upload_not_found")


async def test_links_page_for_browsers(client: QuartClient) -> None:
    path = await create(client, 3)
    await patch(client, path, 0, b"abc")
    response = await client.get(path)
    assert response.status_code == 200
    text = await response.get_data(as_text=True)
    assert "/d/" in text and "/r/" in text
    assert response.headers["Cache-Control"] == "no-store"


async def test_a_password_from_metadata_protects_the_share(client: QuartClient) -> None:
    path = await create(client, 6, password="s3cret", filename="k.pem")
    await patch(client, path, 0, b"secret")
    answer = await links(client, path)
    assert answer["protected"] is True
    token = answer["url"].rsplit("/d/", 1)[1]
    wrong = await client.post(f"/d/{token}", form={"password": "nope"}, headers={**BROWSER, **JSON})
    assert wrong.status_code == 401
    right = await client.post(f"/d/{token}", form={"password": "s3cret"}, headers=BROWSER)
    assert right.status_code == 200
    assert await right.get_data() == b"secret"


async def test_an_expired_upload_is_410_and_the_janitor_removes_its_part(
    settings: Settings, blob_dir: Path, redis_client: redis.Redis
) -> None:
    data = random_bytes(2 * CHUNK + 1)
    async with running_app(dataclasses.replace(settings, resumable_upload_seconds=1)) as app:
        client = app.test_client()
        path = await create(client, len(data))
        assert (await patch(client, path, 0, data[:CHUNK])).status_code == 204
        assert any(name.endswith(".part") for name in files_in(blob_dir))

        share_id = files_in(blob_dir)[0].split(".")[0]
        upload_id = upload_id_for(decode_token(path.rsplit("/", 1)[1]))

        async def lapsed() -> bool:
            return not redis_client.exists(keys.resumable(upload_id), keys.upload(share_id))

        await wait_until_async(lapsed, timeout=5)  # Redis's own TTLs, nothing faked
        assert (await client.head(path, headers=TUS)).status_code == 410
        late = await patch(client, path, CHUNK, data[CHUNK:])
        assert late.status_code == 410
        report = await app.extensions["onetimeshare"].janitor.run_once()
        assert report is not None and report.parts_removed == 1
        assert files_in(blob_dir) == []
