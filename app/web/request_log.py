"""The request log: one JSON line per request, with token-free paths, and request metrics."""

from __future__ import annotations

import time

from quart import Quart, Response, g, has_request_context, request

from .. import logs, metrics


def _request_secrets() -> tuple[str, ...]:
    return logs.secrets_in_path(request.path) if has_request_context() else ()


def install(app: Quart) -> None:
    logs.use_request_secrets(_request_secrets)

    @app.before_request
    async def start_clock() -> None:
        g.started = time.perf_counter()

    @app.after_request
    async def log_request(response: Response) -> Response:
        started = g.get("started")
        elapsed = time.perf_counter() - started if started else 0.0
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        metrics.LATENCY.labels(route).observe(elapsed)
        logs.requests_log.info(
            "request",
            extra={
                "method": request.method,
                "path": logs.redact_path(request.path),
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
                "client": request.remote_addr,
            },
        )
        return response
