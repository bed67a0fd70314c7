"""GET /healthz, and what every route answers while Redis is down."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.process.embedded_redis import EmbeddedRedis
from onetimeshare.web.app import create_app
from tests.helpers import JSON, multipart, token_path, upload


async def test_healthy(client: QuartClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert await response.get_json() == {"status": "ok", "redis": True, "storage": True}
    assert response.headers["Cache-Control"] == "no-store"


async def test_missing_data_directory_is_unhealthy(client: QuartClient, blob_dir: Path) -> None:
    blob_dir.rmdir()  # as when a volume is unmounted under the running service
    response = await client.get("/healthz")
    assert response.status_code == 503
    assert await response.get_json() == {"status": "unavailable", "redis": True, "storage": False}


async def test_redis_down_gives_503_and_recovers(
    settings: Settings, own_redis: EmbeddedRedis
) -> None:
    app = create_app(dataclasses.replace(settings, redis_url=own_redis.url, redis_timeout=1.0))
    async with app.test_app():
        client = app.test_client()
        share = await upload(client, b"kept")

        own_redis.stop()
        health = await client.get("/healthz")
        assert health.status_code == 503
        assert await health.get_json() == {"status": "unavailable", "redis": False, "storage": True}
        body, headers = multipart(file=("a.txt", b"abc"))
        failed = await client.post("/upload", data=body, headers={**headers, **JSON})
        assert failed.status_code == 503
        assert "try again" in (await failed.get_json())["error"]
        assert failed.headers["Retry-After"] == "30"
        page = await client.get(token_path(share))
        assert page.status_code == 503
        text = await page.get_data(as_text=True)
        assert "Temporarily unavailable" in text
        assert "Traceback" not in text
        assert list(settings.blob_dir.glob("*.part")) == []

        own_redis.ensure_running()  # the append-only file brings the share back
        assert (await client.get("/healthz")).status_code == 200
        response = await client.post(token_path(share))
        assert await response.get_data() == b"kept"
