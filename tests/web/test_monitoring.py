"""GET /metrics (app/web/monitoring.py): off without a token, behind the token, no secret
in it, and counts that add up across workers."""

from __future__ import annotations

import dataclasses
import re

import httpx
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare.config import Settings
from onetimeshare.web.app import create_app
from tests.helpers import (
    BROWSER,
    METRICS_TOKEN,
    LiveServerFactory,
    token_path,
    upload,
)


async def test_metrics_are_off_unless_a_token_is_set(client: QuartClient) -> None:
    assert (await client.get("/metrics")).status_code == 404


async def test_metrics_need_the_token_and_never_show_secrets(settings: Settings) -> None:
    application = create_app(dataclasses.replace(settings, metrics_token=METRICS_TOKEN))
    authorised = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    async with application.test_app():
        client = application.test_client()
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        # Counters are per process and this process runs other tests: compare deltas.
        before = await (await client.get("/metrics", headers=authorised)).get_data(as_text=True)
        share = await upload(client, b"counted", filename="metric-secret-name.txt")
        await client.get(token_path(share))
        await client.post(token_path(share))
        answer = await client.get("/metrics", headers=authorised)
    assert answer.status_code == 200
    text = await answer.get_data(as_text=True)

    def grew(name: str, labels: str) -> float:
        return metric_value(text, name, labels) - metric_value(before, name, labels, default=0)

    assert grew("ots_requests_total", 'method="GET",route="/d/<token>",status="200"') == 1
    assert grew("ots_requests_total", 'method="POST",route="/upload",status="201"') == 1
    assert grew("ots_transfer_bytes_total", 'direction="in"') == 7
    assert 'ots_service_events_total{event="uploads"} 1' in text  # this test's own Redis
    assert "ots_service_active_shares 0" in text
    token = share["url"].rsplit("/", 1)[1]
    assert token not in text and "metric-secret-name" not in text


def metric_value(text: str, name: str, labels: str, default: float | None = None) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
    if match is None and default is not None:
        return default
    assert match, f"{name}{{{labels}}} not in the scrape"
    return float(match.group(1))


def test_metrics_add_up_across_workers(live_server_factory: LiveServerFactory) -> None:
    server = live_server_factory(workers=2, metrics_token=METRICS_TOKEN)
    with httpx.Client(base_url=server.base_url, headers=BROWSER) as client:
        for _ in range(12):  # new connections, spread over both workers
            assert httpx.get(f"{server.base_url}/", headers=BROWSER).status_code == 200
        scrape = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert scrape.status_code == 200
    assert (
        metric_value(scrape.text, "ots_requests_total", 'method="GET",route="/",status="200"') == 12
    )
