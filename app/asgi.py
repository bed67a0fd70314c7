"""The ASGI application for servers: ``hypercorn app.asgi:app``."""

from . import create_app

app = create_app()
