"""What ships: the Dockerfile lints clean, compose and CI describe what the README promises."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import REPO_ROOT


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_shape() -> None:
    """Built from the wheel: a build stage makes it, the final stage installs only it."""
    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert stages == ["FROM python:3.13-slim AS wheel", "FROM python:3.13-slim"]
    assert "node" not in text and "npm" not in text  # htmx is committed, no Node stage
    final = text[text.rindex("\nFROM ") :]
    installs = [line for line in final.splitlines() if "pip install" in line]
    assert len(installs) == 1 and re.search(r"pip install .*/onetimeshare-\*\.whl$", installs[0])
    assert "--mount=type=bind,from=wheel" in final  # the wheel, not a copy in a layer
    assert " -e " not in final and "--editable" not in final
    # No source tree in the final image: nothing is copied into it at all.
    assert not [line for line in final.splitlines() if line.startswith(("COPY", "ADD"))]
    assert "\nUSER 10001\n" in final  # not root
    assert 'VOLUME ["/data"]' in final
    assert "HEALTHCHECK" in final and "/healthz" in final
    assert final.rstrip().endswith('CMD ["onetimeshare", "serve"]')
    for default in ("OTS_DATA_DIR=/data", "HOST=0.0.0.0", "PORT=8000"):
        assert default in final


def test_compose_runs_two_instances_on_shared_redis_and_s3() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"app1", "app2", "redis", "seaweedfs"} <= set(services)
    for name in ("app1", "app2"):
        environment = services[name]["environment"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0"
        assert environment["STORAGE_URL"].startswith("s3://")
        assert services[name]["read_only"] is True
    assert "--appendonly" in services["redis"]["command"]
    assert (
        services["redis"]["command"][services["redis"]["command"].index("--appendonly") + 1] == "no"
    )


def test_ci_workflow_runs_the_readme_test_command_on_311_and_313() -> None:
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"]["test"]
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.13"]
    commands = " ".join(step.get("run", "") for step in job["steps"])
    assert "make test" in commands
    assert "make test" in (REPO_ROOT / "README.md").read_text()
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_procfile_serves_on_the_platform_port() -> None:
    assert (REPO_ROOT / "Procfile").read_text().strip() == (
        "web: onetimeshare serve --host 0.0.0.0 --port ${PORT:-8000}"
    )


def test_the_package_is_onetimeshare_and_nothing_is_called_app(tmp_path: Path) -> None:
    """Installed under its own name: the folder app/ is not a module anyone can import.

    Both names at once would also register the Prometheus metrics twice."""
    import onetimeshare

    assert importlib.util.find_spec("app") is None
    assert "app" not in sys.modules
    assert Path(onetimeshare.__file__).parent.name == "app"  # the checkout's folder
    # From elsewhere: the checkout's own folder is importable only from the checkout.
    result = subprocess.run(
        [sys.executable, "-c", "import app"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode != 0 and "No module named 'app'" in result.stderr


def test_every_template_and_static_file_is_required_at_start_up() -> None:
    """The start-up check's one list names every file the service serves, and they exist."""
    from onetimeshare import resources

    shipped = sorted(
        str(path.relative_to(REPO_ROOT))
        for folder in ("templates", "static")
        for path in (REPO_ROOT / folder).rglob("*")
        if path.is_file() and not path.name.startswith(".")
    )
    assert sorted(resources.REQUIRED) == shipped
    assert resources.missing() == []
