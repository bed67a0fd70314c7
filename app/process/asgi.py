"""The ASGI application for servers: ``hypercorn onetimeshare.process.asgi:app``.

Each worker process imports this, so logging is configured here as well as in
the command that starts the workers, and the process is tuned for large transfers.
"""

from ..config import Settings
from ..logs import configure
from ..web.app import create_app
from .tuning import tune_for_large_transfers

settings = Settings.from_env()
configure(settings.log_json)
tune_for_large_transfers()
app = create_app(settings)
