"""The ceiling for transfer benchmarks: the same Quart + Hypercorn stack doing no real work.

``POST /discard`` reads the body through the same pull-based request class as
the real upload and throws it away; ``GET /source/<n>`` sends n bytes from
memory in 1 MiB pieces, the size the real download uses. Served with the same
Hypercorn configuration as the product, so the ratio real/ceiling isolates the
cost of parsing, encryption and disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from quart import Quart, Response, request

from onetimeshare.process.tuning import tune_for_large_transfers
from onetimeshare.web.streaming import StreamingHTTPConnection, StreamingRequest

PIECE = memoryview(bytes(1024 * 1024))

tune_for_large_transfers()  # the same process tuning as the product
app = Quart(__name__)
app.request_class = StreamingRequest
app.asgi_http_class = StreamingHTTPConnection
app.config.update(
    MAX_CONTENT_LENGTH=None, BODY_TIMEOUT=None, RESPONSE_TIMEOUT=None, IDLE_TIMEOUT=60.0
)


@app.post("/discard")
async def discard() -> dict[str, int]:
    received = 0
    async for piece in request.body:
        received += len(piece)
    return {"received": received}


@app.get("/source/<int:size>")
async def source(size: int) -> Response:
    async def pieces() -> AsyncIterator[bytes]:
        left = size
        while left > 0:
            count = min(left, len(PIECE))
            yield bytes(PIECE[:count])
            left -= count

    response = Response(
        pieces(), headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"}
    )
    response.timeout = None
    return response


@app.get("/healthz")
async def health() -> dict[str, str]:
    return {"status": "ok"}
