"""OneTimeShare: encrypted files and text secrets that can be downloaded exactly once."""

from __future__ import annotations

from pathlib import Path

from quart import Quart

from . import services
from .config import Settings
from .http import DEFAULT_BODY_LIMIT, StreamingHTTPConnection, StreamingRequest
from .runtime import tune_for_large_transfers
from .web import download, errors, filters, health, pages, revoke, security, upload

__version__ = "0.1.0"

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(settings: Settings | None = None) -> Quart:
    settings = settings or Settings.from_env()
    tune_for_large_transfers()
    app = Quart(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.request_class = StreamingRequest
    app.asgi_http_class = StreamingHTTPConnection
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Small bodies everywhere; the upload route raises its own limit.
        MAX_CONTENT_LENGTH=DEFAULT_BODY_LIMIT,
        # Replaced by per-read and per-send idle timeouts (app.http).
        BODY_TIMEOUT=None,
        RESPONSE_TIMEOUT=None,
        IDLE_TIMEOUT=settings.idle_timeout,
    )
    app.jinja_env.globals["app_version"] = __version__
    filters.install(app)
    security.install(app, settings)
    for blueprint in (
        pages.blueprint,
        upload.blueprint,
        download.blueprint,
        revoke.blueprint,
        health.blueprint,
        errors.blueprint,
    ):
        app.register_blueprint(blueprint)
    services.install(app, settings)
    return app
