"""Refresh static/vendor/ from the npm packages that `npm ci` installed (run by `make vendor`).

package.json and package-lock.json say which versions are vendored, and `npm ci` has checked
every tarball against the lock's integrity hash before this runs. The lock hashes whole
tarballs, not the files in them, so this copies each vendored file out of node_modules and
rewrites static/vendor/manifest.json: per file its npm package, version, path inside the
package and SHA-384 in Subresource Integrity form, the value the pages' <script> tags carry
(see onetimeshare.resources). Nothing changed upstream: the same bytes, git stays clean.

Standard library only, so it runs with any Python 3.11+ (no virtualenv needed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
VENDOR = ROOT / "static" / "vendor"
MANIFEST = VENDOR / "manifest.json"

# Served file name -> (npm package, path inside the package). A new library: add it to
# package.json's dependencies (npm install --save-exact), add it here, run `make vendor`.
VENDORED: dict[str, tuple[str, str]] = {
    "htmx.min.js": ("htmx.org", "dist/htmx.min.js"),
    "sse.min.js": ("htmx-ext-sse", "dist/sse.min.js"),
}


class VendorError(Exception):
    """Something the person running `make vendor` has to fix; the message says what."""


def integrity_of(data: bytes) -> str:
    """The Subresource Integrity value of some bytes: ``sha384-`` and the base64 digest."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def locked_version(lock: dict[str, Any], package: str) -> str:
    """The version package-lock.json resolved for a direct, non-dev dependency."""
    if package not in lock["packages"][""].get("dependencies", {}):
        raise VendorError(f"{package} is not in package.json's dependencies")
    entry = lock["packages"].get(f"node_modules/{package}")
    if entry is None:
        raise VendorError(f"{package} is missing from package-lock.json: run npm install")
    return str(entry["version"])


def installed_version(package: str) -> str:
    metadata = NODE_MODULES / package / "package.json"
    if not metadata.is_file():
        raise VendorError(f"{package} is not in node_modules: run npm ci first")
    return str(json.loads(metadata.read_text())["version"])


def refresh() -> list[str]:
    """Copy the vendored files and rewrite the manifest; return what changed, for the log."""
    lock = json.loads((ROOT / "package-lock.json").read_text())
    manifest: dict[str, dict[str, str]] = {}
    changed: list[str] = []
    VENDOR.mkdir(parents=True, exist_ok=True)
    for name, (package, path) in sorted(VENDORED.items()):
        version = locked_version(lock, package)
        if installed_version(package) != version:
            raise VendorError(
                f"node_modules has {package} {installed_version(package)}, the lock says "
                f"{version}: run npm ci first"
            )
        data = (NODE_MODULES / package / path).read_bytes()
        target = VENDOR / name
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)
            changed.append(f"static/vendor/{name} ({package} {version})")
        manifest[name] = {
            "package": package,
            "version": version,
            "path": path,
            "integrity": integrity_of(data),
        }
    for stale in sorted(VENDOR.iterdir()):
        if stale.is_file() and stale.name not in VENDORED and stale != MANIFEST:
            stale.unlink()
            changed.append(f"static/vendor/{stale.name} removed")
    text = json.dumps(manifest, indent=2) + "\n"
    if not MANIFEST.is_file() or MANIFEST.read_text() != text:
        MANIFEST.write_text(text)
        changed.append("static/vendor/manifest.json")
    return changed


def main() -> int:
    try:
        changed = refresh()
    except VendorError as error:
        print(f"make vendor: {error}", file=sys.stderr)
        return 1
    for line in changed:
        print(f"updated {line}")
    if not changed:
        print("static/vendor/ is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
