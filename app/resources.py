"""What the service serves from its own package: templates and static files.

They are found through the installed package (``importlib.resources``), never through
a checkout's path, so ``onetimeshare serve`` works from any directory, installed from a
wheel or (in a checkout) editable: there ``app/templates`` and ``app/static`` are
links to the top-level folders, which the wheel and sdist carry as package data.

Everything a page needs is listed in ``REQUIRED``, the one list the start-up check
reads: a file missing from an install stops the service with a message saying what is
missing, instead of pages that answer 500 or silently lack their script.

htmx and its SSE extension are committed under ``static/vendor/`` (``make vendor``
refreshes them from npm), with ``static/vendor/manifest.json`` recording per file its npm
package, version, path in the package and SHA-384 in Subresource Integrity form. The pages
carry that value as the ``integrity`` of their ``<script>`` tags, so a browser refuses a
copy that differs from the one vendored; the start-up check refuses it first, with a message.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import json
from dataclasses import dataclass
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
    "vendor/manifest.json",
)
REQUIRED = tuple(f"templates/{name}" for name in TEMPLATES) + tuple(
    f"static/{name}" for name in STATIC
)


VENDOR_MANIFEST = "static/vendor/manifest.json"
REPAIR = (
    "Reinstall the package (pip install --force-reinstall onetimeshare); "
    "in a checkout, restore the files with git (git checkout -- static templates)."
)


class MissingResources(RuntimeError):
    """The installation lacks files the service serves, or has altered vendored ones; the
    message says which and what to do."""


@dataclass(frozen=True)
class VendoredFile:
    """One entry of the vendor manifest: where the file came from, and its SRI hash."""

    package: str
    version: str
    path: str
    integrity: str


def package_path(name: str) -> Path:
    """A file or folder inside the installed package, e.g. ``templates``."""
    return Path(str(importlib.resources.files(PACKAGE).joinpath(name)))


def integrity_of(data: bytes) -> str:
    """The Subresource Integrity value of some bytes: ``sha384-`` and the base64 digest."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def vendored(root: Path | None = None) -> dict[str, VendoredFile]:
    """The vendor manifest by served file name (``htmx.min.js``); ``root``: the package's."""
    path = (root or package_path("")) / VENDOR_MANIFEST
    try:
        entries = json.loads(path.read_text())
        return {name: VendoredFile(**entry) for name, entry in entries.items()}
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise MissingResources(f"{VENDOR_MANIFEST} is unreadable ({error}). {REPAIR}") from None


def missing(root: Path | None = None) -> list[str]:
    root = root or package_path("")
    return [name for name in REQUIRED if not (root / name).is_file()]


def altered(root: Path | None = None) -> list[str]:
    """Vendored files whose bytes differ from the manifest: browsers would refuse them."""
    root = root or package_path("")
    vendor = root / "static" / "vendor"
    return [
        f"static/vendor/{name}"
        for name, entry in vendored(root).items()
        if not (vendor / name).is_file()
        or integrity_of((vendor / name).read_bytes()) != entry.integrity
    ]


def check(root: Path | None = None) -> None:
    """Raise ``MissingResources`` unless every required file is installed and the vendored
    scripts are the ones the manifest (and so the pages' integrity attributes) names."""
    root = root or package_path("")
    absent = missing(root)
    if absent:
        shown = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5 else "")
        raise MissingResources(
            f"the installation is incomplete: {shown} missing from {root}. {REPAIR}"
        )
    changed = altered(root)
    if changed:
        raise MissingResources(
            f"{', '.join(changed)} in {root} differ from their SHA-384 in {VENDOR_MANIFEST}, "
            f"so browsers would refuse to run them. {REPAIR} "
            "To change a vendored library, update package.json and run make vendor."
        )
