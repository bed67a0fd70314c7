"""The app's services as a Quart extension: started and stopped with the app."""

from __future__ import annotations

from typing import cast

from quart import Quart, current_app

from ..config import Settings
from ..services import Services
from .ratelimit import RedisGcraStore

EXTENSION_KEY = "onetimeshare"


def install_services(app: Quart, settings: Settings, limiter_store: RedisGcraStore) -> None:
    @app.before_serving
    async def start_services() -> None:
        started = await Services.start(settings)
        limiter_store.attach(started.redis)
        app.extensions[EXTENSION_KEY] = started

    @app.after_serving
    async def stop_services() -> None:
        services = app.extensions.pop(EXTENSION_KEY, None)
        if services is not None:
            await services.stop()


def services() -> Services:
    return cast(Services, current_app.extensions[EXTENSION_KEY])
