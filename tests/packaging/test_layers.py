"""The layers, as the folders show them: the domain (and what it shares with the rest)
never loads Quart, nor anything of the web layer.

Each module is imported in a fresh interpreter, so nothing another test imported first
can hide a dependency.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import PACKAGE_DIR

# The modules shared by every layer: they must stay as free of the web as the domain.
SHARED = [
    "config",
    "config_kinds",
    "errors",
    "formatting",
    "logs",
    "metrics",
    "resources",
    "services",
    "version",
]
DOMAIN = sorted(
    ".".join(
        ("domain", *path.relative_to(PACKAGE_DIR / "domain").with_suffix("").parts)
    ).removesuffix(".__init__")
    for path in (PACKAGE_DIR / "domain").rglob("*.py")
)


def loaded_by(module: str) -> list[str]:
    probe = (
        "import importlib, json, sys; "
        f"importlib.import_module('onetimeshare.{module}'); "
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="/"
    )
    return list(json.loads(result.stdout))


@pytest.mark.parametrize("module", DOMAIN + SHARED)
def test_the_domain_and_shared_modules_load_no_quart_and_no_web(module: str) -> None:
    loaded = loaded_by(module)
    assert f"onetimeshare.{module}" in loaded
    web = [name for name in loaded if name.split(".")[0] in {"quart", "werkzeug", "hypercorn"}]
    assert web == [], f"onetimeshare.{module} loads {web[:5]}"
    ours = [name for name in loaded if name.startswith("onetimeshare.web")]
    allowed = {"onetimeshare.web", "onetimeshare.web.inflight"} if module == "services" else set()
    assert set(ours) <= allowed, f"onetimeshare.{module} loads {sorted(set(ours) - allowed)}"


def test_the_domain_is_all_there() -> None:
    assert {
        "domain.crypto",
        "domain.shares",
        "domain.uploads",
        "domain.plaintext",
        "domain.metadata",
        "domain.storage",
    } <= set(DOMAIN)
