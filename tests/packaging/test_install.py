"""The install path, end to end: what a user installs is what serves.

The checkout is built into a wheel by the Dockerfile's own build stage, and by ``make
dist``'s command into an sdist and a wheel built from that sdist; each wheel is installed
into a fresh venv in a temp dir, the way the Dockerfile's final stage and the README
install it, and started with ``onetimeshare serve`` from another working directory with
an empty data directory (embedded Redis). Then over HTTP: the page and every file it
loads (htmx too), an upload through the JSON API and through the form, their one
downloads, a password-protected share through the unlock proof; then SIGTERM.

Offline: pip installs with ``--no-index`` from a wheelhouse packed once per session from
the test environment's own installed distributions (tests/wheelhouse.py), and isolated
builds take setuptools from it too. pip's configuration files are ignored, so the
machine's index settings play no part.
"""

from __future__ import annotations

import dataclasses
import html
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import httpx
import pytest

from tests import wheelhouse
from tests.helpers import (
    BROWSER,
    FORM,
    REPO_ROOT,
    UNLOCK_INPUT,
    download_live,
    free_port,
    multipart,
    upload_live,
    wait_until,
)

STATIC_REFERENCE = re.compile(r'(?:src|href)="(/static/[^"?#]+)')
SHARE_LINK_FIELD = re.compile(r'id="share-url" class="share-url" type="text" value="([^"]+)"')
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def offline_pip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for pip: the wheelhouse only, no index, no configuration files."""
    # setuptools too: the build backend of isolated builds (the sdist and `pip wheel .`).
    # The dependencies the package declares, read where the wheel's metadata comes from.
    declared = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    house = wheelhouse.build(tmp_path_factory.mktemp("wheelhouse"), declared, ["setuptools"])
    return {
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(house),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        # No bytecode compiled at install (it only saves start-up time): halves the install.
        "PIP_COMPILE": "0",
    }


def container_environment(path: list[Path], extra: dict[str, str]) -> dict[str, str]:
    """A bare environment like a container's: none of the suite's OTS_*, REDIS_URL, venv."""
    env = {
        "PATH": os.pathsep.join([*map(str, path), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
    }
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    env.update(extra)
    return env


def run(command: list[str] | str, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        command,
        cwd=cwd,
        env=env,
        shell=isinstance(command, str),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def fresh_venv(path: Path) -> Path:
    """A new, empty venv, as a user (or the python image) starts from.

    Its ``pip`` is this suite's own pip pointed at the venv's interpreter (``--python``):
    the same pip installing into the same place, without the 4 s that ensurepip takes
    to put a copy of it into each venv."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    pip = path / "bin" / "pip"
    pip.write_text(
        f'#!/bin/sh\nexec {sys.executable} -m pip --python {path / "bin" / "python"} "$@"\n'
    )
    pip.chmod(0o755)
    return path / "bin"


# --- the Dockerfile, read and run as far as no container engine is needed ---------------


@dataclasses.dataclass
class Stage:
    base: str
    name: str | None
    steps: list[tuple[str, str]]  # (instruction, arguments), continuation lines joined


def dockerfile_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    logical = re.sub(
        r"\\\n",
        " ",
        "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")),
    )
    for line in logical.splitlines():
        if not line.strip():
            continue
        instruction, _, arguments = line.strip().partition(" ")
        arguments = " ".join(arguments.split())
        if instruction == "FROM":
            base, _, name = arguments.partition(" AS ")
            stages.append(Stage(base, name or None, []))
        else:
            stages[-1].steps.append((instruction, arguments))
    return stages


def docker_env(arguments: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(arguments))


def dockerignored(relative: str, patterns: list[str]) -> bool:
    return any(
        fnmatch(relative, pattern)
        or (pattern.startswith("**/") and fnmatch(Path(relative).name, pattern[3:]))
        for pattern in patterns
    )


def run_build_stage(stage: Stage, root: Path, pip_env: dict[str, str]) -> None:
    """Every step of a build stage, in ``root`` standing for the stage's file system.

    COPY takes from the checkout (the build context, less .dockerignore) and keeps
    symlinks, as Docker does; RUN runs through /bin/sh with the stage's ENV, in its
    WORKDIR, with this interpreter's pip standing for the image's one."""
    ignore = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    workdir = root
    env = container_environment([Path(sys.executable).parent], pip_env)
    for instruction, arguments in stage.steps:
        if instruction == "ENV":
            env.update(docker_env(arguments))
        elif instruction == "WORKDIR":
            workdir = root / arguments.lstrip("/")
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction == "COPY":
            *sources, destination = arguments.split()
            target = workdir / destination
            for source in sources:
                origin = REPO_ROOT / source
                if origin.is_dir():
                    shutil.copytree(
                        origin,
                        target,
                        symlinks=True,
                        ignore=lambda folder, names: [
                            name
                            for name in names
                            if dockerignored(
                                str((Path(folder) / name).relative_to(REPO_ROOT)), ignore
                            )
                        ],
                    )
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name)
        elif instruction == "RUN":
            run(arguments, workdir, env)
        else:
            raise AssertionError(f"the emulated build stage has no {instruction} step")


def install_as_final_stage(
    stage: Stage, stage_roots: dict[str, Path], venv_bin: Path, pip_env: dict[str, str]
) -> dict[str, str]:
    """The final stage's install step, with ``venv_bin`` standing for the image's python.

    Its RUN mounts a file of another stage; that path is put in the command for the
    mount target. The other RUN sets up the user and /data on the image only (not run
    here: it would change this machine's users). Returns the stage's environment."""
    env: dict[str, str] = {}
    installs = 0
    for instruction, arguments in stage.steps:
        if instruction == "ENV":
            env.update(docker_env(arguments))
        if instruction != "RUN":
            continue
        mount = re.match(r"--mount=(\S+) (.*)", arguments)
        if mount is None:
            assert arguments.startswith("useradd "), (
                f"a RUN step the test cannot check: {arguments}"
            )
            continue
        options = dict(pair.split("=", 1) for pair in mount.group(1).split(","))
        assert options["type"] == "bind"
        source = stage_roots[options["from"]] / options["source"].lstrip("/")
        command = re.sub(
            rf"(?<![\w/]){re.escape(options['target'])}(?=/|\s|$)", str(source), mount.group(2)
        )
        run(command, venv_bin.parent, container_environment([venv_bin], {**env, **pip_env}))
        installs += 1
    assert installs == 1
    return env


# --- the installed service, over HTTP ----------------------------------------------------


def redis_processes_of(directory: Path) -> list[int]:
    """Processes whose command line names this directory (the embedded Redis's ``--dir``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command_line = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # ended meanwhile
            if str(directory).encode() in command_line:
                found.append(int(entry.name))
    return found


def check_the_installed_service(venv_bin: Path, work: Path, env: dict[str, str]) -> None:
    """Everything a user of the installed package meets, from outside the checkout."""
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    data = elsewhere / "data"
    environment = {**container_environment([venv_bin], env), "OTS_DATA_DIR": str(data)}
    environment.pop("REDIS_URL", None)  # the embedded Redis
    # Loopback only, on a free port; the image's HOST=0.0.0.0 is for the container.
    port = free_port()
    environment.update({"HOST": "127.0.0.1", "PORT": str(port)})
    base = f"http://127.0.0.1:{port}"

    # The checkout's folder is not a module of the install; the command runs as a module.
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('app') is not None)"
    run([str(venv_bin / "python"), "-c", probe], elsewhere, environment)
    assert "serve" in run(
        [str(venv_bin / "python"), "-m", "onetimeshare", "--help"], elsewhere, environment
    )
    installed = run(
        [str(venv_bin / "python"), "-c", "import onetimeshare; print(onetimeshare.__file__)"],
        elsewhere,
        environment,
    )
    assert Path(installed.strip()).is_relative_to(venv_bin.parent)

    log_path = work / "server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [str(venv_bin / "onetimeshare"), "serve"],
            cwd=elsewhere,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def healthy() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"the server exited: {log_path.read_text()[-3000:]}")
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout=60, interval=0.05)
        redis_dir = data / "redis"
        assert redis_processes_of(redis_dir), "no embedded Redis in the data directory"

        home = httpx.get(base, timeout=10)
        assert home.status_code == 200 and home.headers["content-type"].startswith("text/html")
        # Every script, style sheet and icon the page loads, byte for byte the checkout's.
        assets = STATIC_REFERENCE.findall(home.text)
        assert "/static/vendor/htmx.min.js" in assets, "the page does not load htmx"
        for asset in assets:
            served = httpx.get(base + asset, timeout=10)
            assert served.status_code == 200, asset
            assert served.content == (REPO_ROOT / asset.lstrip("/")).read_bytes(), asset

        content = os.urandom(200_000)
        share = upload_live(base, content, "report.bin")
        landing = httpx.get(share["url"], headers=BROWSER, timeout=10)
        assert landing.status_code == 200 and "text/html" in landing.headers["content-type"]
        download = download_live(share["url"])
        assert download.status_code == 200 and download.content == content
        assert download_live(share["url"]).status_code == 410

        # The form without JavaScript: a page with the link, whose download is the file.
        body, headers = multipart({}, ("page.txt", b"sent from the form"))
        created = httpx.post(
            f"{base}/upload", content=body, headers={**headers, **BROWSER}, timeout=30
        )
        assert created.status_code == 201 and "text/html" in created.headers["content-type"]
        link = SHARE_LINK_FIELD.search(created.text)
        assert link is not None, created.text
        assert download_live(html.unescape(link.group(1))).content == b"sent from the form"

        guarded = upload_live(base, b"behind a password", "secret.txt", password=PASSWORD)
        unlocked = httpx.post(
            guarded["url"] + "/unlock",
            data={"password": PASSWORD},
            headers={**FORM, **BROWSER},
            timeout=30,
        )
        assert unlocked.status_code == 200, unlocked.text
        proof = UNLOCK_INPUT.search(unlocked.text)
        assert proof is not None
        download = httpx.post(
            guarded["url"],
            data={"unlock": proof.group(1)},
            headers={**FORM, **BROWSER},
            timeout=30,
        )
        assert download.status_code == 200 and download.content == b"behind a password"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            raise
    log_text = log_path.read_text()
    assert code == 0, log_text[-3000:]
    assert "Traceback" not in log_text, log_text[-3000:]
    assert redis_processes_of(redis_dir) == [], "the embedded Redis outlived the server"


# --- the tests ---------------------------------------------------------------------------


def test_the_wheel_built_and_installed_as_the_dockerfile_does_serves_everything(
    tmp_path: Path, offline_pip: dict[str, str]
) -> None:
    stages = dockerfile_stages((REPO_ROOT / "Dockerfile").read_text())
    *builders, final = stages
    roots: dict[str, Path] = {}
    for stage in builders:
        assert stage.name is not None
        roots[stage.name] = tmp_path / "stages" / stage.name
        run_build_stage(stage, roots[stage.name], offline_pip)
    [wheel] = (roots["wheel"] / "src" / "dist").glob("onetimeshare-*.whl")

    venv_bin = fresh_venv(tmp_path / "image")
    image_env = install_as_final_stage(final, roots, venv_bin, offline_pip)
    assert shutil.which("onetimeshare", path=str(venv_bin)) is not None
    cmd = [step for step in final.steps if step[0] == "CMD"]
    assert cmd == [("CMD", '["onetimeshare", "serve"]')]
    # Only the wheel went in: no editable install, no link back to a source tree.
    site = next((tmp_path / "image" / "lib").glob("python3*/site-packages"))
    assert not list(site.glob("__editable__*")) and not list(site.glob("*.egg-link"))
    assert not (site / "onetimeshare" / "templates").is_symlink()
    assert wheel.name.startswith("onetimeshare-")

    check_the_installed_service(venv_bin, tmp_path, image_env)


def test_make_dist_builds_an_sdist_whose_wheel_installs_and_serves_everything(
    tmp_path: Path, offline_pip: dict[str, str]
) -> None:
    """The README's wheel install: make dist's command builds the sdist, then the wheel
    from that unpacked sdist (as pip does from an sdist), so a file the sdist lacks is
    missing from the wheel too; that wheel goes into a fresh venv."""
    from onetimeshare import resources

    out = tmp_path / "dist"
    recipe = makefile_recipe("dist")
    assert "$(BIN)/python -m build --outdir dist ." in recipe
    run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(REPO_ROOT)],
        REPO_ROOT,
        container_environment([Path(sys.executable).parent], offline_pip),
    )
    [sdist] = out.glob("onetimeshare-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    top = sdist.name.removesuffix(".tar.gz")
    assert {f"{top}/app/{name}" for name in resources.REQUIRED} <= names
    [wheel] = out.glob("onetimeshare-*.whl")

    venv_bin = fresh_venv(tmp_path / "venv")
    run(
        [str(venv_bin / "pip"), "install", str(wheel)],
        tmp_path,
        container_environment([venv_bin], offline_pip),
    )

    check_the_installed_service(venv_bin, tmp_path, {})


def makefile_recipe(target: str) -> str:
    """The commands of one Makefile target."""
    text = (REPO_ROOT / "Makefile").read_text()
    match = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert match is not None, f"no {target} target in the Makefile"
    return match.group(1)


def readme_blocks(section: str) -> list[str]:
    """The fenced code blocks of one README section."""
    text = (REPO_ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", body, re.DOTALL)


def test_the_readme_runs_it_the_three_ways_these_tests_do() -> None:
    """Each block is what a test here (or the suite, for make run) does."""
    checkout, wheel, container = readme_blocks("Three ways to run it")[:3]
    assert "make run" in checkout
    assert "$(BIN)/onetimeshare serve" in makefile_recipe("run")
    # make dist, a venv, the wheel into it, serve from any directory (the test above).
    commands = [line.split("#")[0].strip() for line in wheel.splitlines()]
    assert commands[0] == "make dist"
    venv = commands[1].removeprefix("python3 -m venv ")
    assert commands[1] != venv
    assert commands[2] == f"{venv}/bin/pip install dist/onetimeshare-*.whl"
    assert commands[3].endswith(f"{venv}/bin/onetimeshare serve") and "cd " in commands[3]
    # The image (the Dockerfile test above) and the compose file's two instances.
    assert "docker build -t onetimeshare ." in container
    assert "docker run -p 8000:8000 -v ots-data:/data onetimeshare" in container
    assert "docker compose up" in container
