"""The Quart application: plumbing, guards, limits and every blueprint, put together."""

from __future__ import annotations

from quart import Quart

from .. import resources
from ..config import Settings
from ..version import __version__
from . import (
    admin,
    auth,
    clients,
    download,
    errors,
    filters,
    guards,
    health,
    monitoring,
    pages,
    proxy,
    ratelimit,
    request_log,
    revoke,
    security,
    tus,
    upload,
)
from .extension import install_services
from .streaming import DEFAULT_BODY_LIMIT, StreamingHTTPConnection, StreamingRequest


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or Settings.from_env()
    resources.check()
    app = errors.Application(
        __name__,
        template_folder=str(resources.package_path("templates")),
        static_folder=str(resources.package_path("static")),
    )
    app.request_class = StreamingRequest
    app.asgi_http_class = StreamingHTTPConnection
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Small bodies everywhere; the upload route raises its own limit.
        MAX_CONTENT_LENGTH=DEFAULT_BODY_LIMIT,
        # Replaced by per-read and per-send idle timeouts (web/streaming.py).
        BODY_TIMEOUT=None,
        RESPONSE_TIMEOUT=None,
        IDLE_TIMEOUT=settings.idle_timeout,
        MIN_UPLOAD_RATE=settings.min_upload_rate,
        UPLOAD_RATE_GRACE=settings.upload_rate_grace,
    )
    app.jinja_env.globals["app_version"] = __version__
    filters.install(app)
    request_log.install(app)
    security.install(app, settings)
    # Order matters: refused requests (command-line clients, cross-site posts) are
    # turned away before the rate limiter records them.
    guards.install(app, settings)
    clients.install(app, settings.secret_key, settings.rate_ipv6_prefix)
    limiter_store = ratelimit.RedisGcraStore()
    ratelimit.AtomicRateLimiter(
        app,
        limiter_store,
        {name: ratelimit.limits_of(spec) for name, spec in settings.rate_limits.items()},
        enabled=settings.rate_limits_enabled,
    )
    if settings.trusted_proxy_hops:
        # Only then are X-Forwarded-For and -Proto believed, for exactly that many
        # proxies; X-Forwarded-Host never is (links come from OTS_PUBLIC_URL).
        app.asgi_app = proxy.ProxyHeaders(  # type: ignore[method-assign]
            app.asgi_app, settings.trusted_proxy_hops
        )
    for blueprint in (
        pages.blueprint,
        upload.blueprint,
        tus.blueprint,
        download.blueprint,
        revoke.blueprint,
        auth.blueprint,
        admin.blueprint,
        health.blueprint,
        monitoring.blueprint,
        errors.blueprint,
    ):
        app.register_blueprint(blueprint)
    auth.install(app, settings)
    install_services(app, settings, limiter_store)
    return app
