"""GET /metrics for Prometheus, behind a bearer token; off (404) unless one is configured."""

from __future__ import annotations

import hmac

from quart import Blueprint, Response, abort, request

from .. import metrics
from .extension import services
from .ratelimit import limited

blueprint = Blueprint("monitoring", __name__)


@blueprint.get("/metrics")
@limited("poll")
async def prometheus() -> Response:
    current = services()
    token = current.settings.metrics_token
    if token is None:
        abort(404)
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(offered.encode(), token.encode()):
        return Response(
            "bearer token required\n",
            status=401,
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    counters = await current.stats.counters()
    body = metrics.process_metrics() + metrics.service_metrics(
        counters.totals, counters.active_shares, counters.bytes_stored
    )
    return Response(
        body,
        content_type="text/plain; version=0.0.4; charset=utf-8",
        headers={"Cache-Control": "no-store"},
    )
