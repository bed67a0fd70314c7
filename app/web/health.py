"""GET /healthz for load balancers and monitors: Redis answers, the data directory is writable."""

from __future__ import annotations

import redis.exceptions
from quart import Blueprint, Response

from .extension import services
from .ratelimit import exempt
from .responses import json_response

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
@exempt  # monitors poll it; it does no work worth limiting
async def health() -> Response:
    current = services()
    try:
        redis_ok = await current.metadata.ping()
    except (redis.exceptions.RedisError, OSError):
        redis_ok = False
    storage_ok = await current.blobs.healthy()
    healthy = redis_ok and storage_ok
    response = json_response(
        {"status": "ok" if healthy else "unavailable", "redis": redis_ok, "storage": storage_ok},
        200 if healthy else 503,
    )
    response.headers["Cache-Control"] = "no-store"
    return response
