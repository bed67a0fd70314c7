"""Vendored front-end libraries: the committed files, their manifest, the npm lock, and the
Subresource Integrity values the pages carry. Offline: nothing here asks npm."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.typing import TestClientProtocol as QuartClient

from onetimeshare import resources
from tests.helpers import REPO_ROOT, VENDOR_DIR, fetch

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
ATTRIBUTE = re.compile(r'([a-z-]+)(?:="([^"]*)")?')


def manifest() -> dict[str, dict[str, str]]:
    entries: dict[str, dict[str, str]] = json.loads((VENDOR_DIR / "manifest.json").read_text())
    return entries


def sha384_sri(data: bytes) -> str:
    """Computed here, not with the app's helper: the test is the independent check."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def vendored_scripts(page: str) -> dict[str, dict[str, str | None]]:
    """Attributes of every <script> loaded from /static/vendor/, by file name."""
    scripts: dict[str, dict[str, str | None]] = {}
    for tag in SCRIPT_TAG.findall(page):
        attributes: dict[str, str | None] = {
            name: value or None for name, value in ATTRIBUTE.findall(tag)
        }
        source = attributes.get("src") or ""
        if source.startswith("/static/vendor/"):
            scripts[source.removeprefix("/static/vendor/")] = attributes
    return scripts


# --- the files and the manifest --------------------------------------------------------


def test_every_vendored_file_matches_its_manifest_hash() -> None:
    entries = manifest()
    committed = sorted(path.name for path in VENDOR_DIR.iterdir() if path.name != "manifest.json")
    assert sorted(entries) == committed == ["htmx.min.js", "sse.min.js"]
    for name, entry in entries.items():
        assert set(entry) == {"package", "version", "path", "integrity"}, name
        assert entry["integrity"] == sha384_sri((VENDOR_DIR / name).read_bytes()), name


def test_manifest_versions_are_the_locked_ones() -> None:
    """package.json pins exactly, the lock resolved that version, the manifest records it."""
    lock = json.loads((REPO_ROOT / "package-lock.json").read_text())
    package = json.loads((REPO_ROOT / "package.json").read_text())
    for name, entry in manifest().items():
        locked = lock["packages"][f"node_modules/{entry['package']}"]
        assert locked["version"] == entry["version"], name
        assert not locked.get("dev"), f"{entry['package']} is served, not a dev dependency"
        assert package["dependencies"][entry["package"]] == entry["version"], name


def test_make_vendor_writes_the_same_manifest() -> None:
    """tools/vendor.py copies the same files from the same packages the manifest names."""
    spec = importlib.util.spec_from_file_location("vendor_tool", REPO_ROOT / "tools" / "vendor.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    copied: dict[str, tuple[str, str]] = tool.VENDORED
    assert copied == {name: (entry["package"], entry["path"]) for name, entry in manifest().items()}
    assert tool.integrity_of(b"abc") == sha384_sri(b"abc")


# --- the start-up check ----------------------------------------------------------------


def copy_of_the_package_data(tmp_path: Path) -> Path:
    root = tmp_path / "onetimeshare"
    for folder in ("templates", "static"):
        shutil.copytree(REPO_ROOT / folder, root / folder)
    return root


def test_start_up_refuses_an_altered_vendored_script(tmp_path: Path) -> None:
    root = copy_of_the_package_data(tmp_path)
    resources.check(root)  # a faithful copy starts
    htmx = root / "static" / "vendor" / "htmx.min.js"
    htmx.write_bytes(htmx.read_bytes().replace(b"htmx", b"HTMX", 1))
    with pytest.raises(resources.MissingResources) as refused:
        resources.check(root)
    message = str(refused.value)
    assert message.startswith("static/vendor/htmx.min.js in ")
    assert "static/vendor/manifest.json" in message and "make vendor" in message
    assert "sse.min.js" not in message


def test_start_up_refuses_an_unreadable_manifest(tmp_path: Path) -> None:
    root = copy_of_the_package_data(tmp_path)
    (root / "static" / "vendor" / "manifest.json").write_text('{"htmx.min.js": {"package"')
    with pytest.raises(resources.MissingResources, match=r"static/vendor/manifest\.json is unr"):
        resources.check(root)


def test_start_up_refuses_a_missing_manifest(tmp_path: Path) -> None:
    root = copy_of_the_package_data(tmp_path)
    (root / "static" / "vendor" / "manifest.json").unlink()
    with pytest.raises(resources.MissingResources, match=r"incomplete: static/vendor/manifest"):
        resources.check(root)


# --- the rendered pages ----------------------------------------------------------------


async def test_pages_load_vendored_scripts_with_the_manifests_integrity(
    admin_app: Quart, admin: QuartClient
) -> None:
    """Home and admin dashboard, rendered for real: every vendored <script> carries the
    manifest's hash, no crossorigin (same-origin), and the bytes served match it."""
    entries = manifest()
    visitor = admin_app.test_client()
    home = vendored_scripts(await fetch(visitor, "/"))
    dashboard = vendored_scripts(await fetch(admin, "/admin"))

    assert sorted(home) == ["htmx.min.js"]
    assert sorted(dashboard) == ["htmx.min.js", "sse.min.js"]
    for name, attributes in [*home.items(), *dashboard.items()]:
        assert attributes["integrity"] == entries[name]["integrity"], name
        assert "crossorigin" not in attributes, name
        served: Any = await visitor.get(f"/static/vendor/{name}")
        assert served.status_code == 200
        assert sha384_sri(await served.get_data()) == entries[name]["integrity"], name
