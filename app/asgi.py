"""The ASGI application for servers: ``hypercorn onetimeshare.asgi:app``.

Each worker process imports this, so logging is configured here as well as in
the command that starts the workers.
"""

from . import create_app
from .config import Settings
from .logs import configure

settings = Settings.from_env()
configure(settings.log_json)
app = create_app(settings)
