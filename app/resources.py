"""What the service serves from its own package: templates and static files.

They are found through the installed package (``importlib.resources``), never through
a checkout's path, so ``onetimeshare serve`` works from any directory, installed from a
wheel or (in a checkout) editable: there ``app/templates`` and ``app/static`` are
links to the top-level folders, which the wheel and sdist carry as package data.

Everything a page needs is listed in ``REQUIRED``, the one list the start-up check
reads: a file missing from an install stops the service with a message saying what is
missing, instead of pages that answer 500 or silently lack their script.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

PACKAGE = "onetimeshare"

TEMPLATES = (
    "base.html",
    "fragment.html",
    "admin.html",
    "admin_revoke.html",
    "created.html",
    "error.html",
    "home.html",
    "landing.html",
    "login.html",
    "reveal.html",
    "revoke.html",
    "share_status.html",
    "unlocked.html",
    "upload_status.html",
    "partials/admin_activity.html",
    "partials/admin_chart.html",
    "partials/admin_counters.html",
    "partials/admin_shares.html",
    "partials/admin_system.html",
    "partials/countdown.html",
    "partials/error.html",
    "partials/landing.html",
    "partials/password_form.html",
    "partials/reveal.html",
    "partials/revoke.html",
    "partials/share_created.html",
    "partials/share_form.html",
    "partials/unlocked.html",
    "partials/upload_status.html",
)
STATIC = (
    "favicon.svg",
    "css/app.css",
    "js/app.js",
    "vendor/htmx.min.js",
    "vendor/sse.min.js",
)
REQUIRED = tuple(f"templates/{name}" for name in TEMPLATES) + tuple(
    f"static/{name}" for name in STATIC
)


class MissingResources(RuntimeError):
    """The installation lacks files the service serves; the message says which and what to do."""


def package_path(name: str) -> Path:
    """A file or folder inside the installed package, e.g. ``templates``."""
    return Path(str(importlib.resources.files(PACKAGE).joinpath(name)))


def missing() -> list[str]:
    return [name for name in REQUIRED if not package_path(name).is_file()]


def check() -> None:
    """Raise ``MissingResources`` unless every required file is installed."""
    absent = missing()
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise MissingResources(
            f"the installation is incomplete: {shown} missing from {package_path('')}. "
            "Reinstall the package (pip install --force-reinstall onetimeshare); "
            "in a checkout, restore the files with git (git checkout -- static templates)."
        )
