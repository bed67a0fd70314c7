"""A wheelhouse of the service's dependencies, packed from the test environment itself.

The install tests put a built wheel or sdist into a fresh venv with ``pip install
--no-index``: offline, and with nothing but the dependencies the package declares.
Every distribution that the test environment has installed is already unpacked in
its site-packages with a RECORD of its files, so each one needed is zipped back into
a wheel of the same name, version and tags. No download, no build, and the versions
are exactly the ones the rest of the suite ran against.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Written by the installer, not part of a wheel (the installer writes them again).
_INSTALLER_FILES = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD"}


def runtime_closure(requirements: Iterable[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions that ``requirements`` need, with all of theirs."""
    wanted = [Requirement(text) for text in _applying(requirements, set())]
    found: dict[str, importlib.metadata.Distribution] = {}
    while wanted:
        requirement = wanted.pop()
        name = canonicalize_name(requirement.name)
        if name in found:
            continue
        distribution = importlib.metadata.distribution(requirement.name)
        found[name] = distribution
        wanted.extend(
            Requirement(text) for text in _applying(distribution.requires or [], requirement.extras)
        )
    return sorted(found.values(), key=lambda each: canonicalize_name(each.metadata["Name"]))


def _applying(requirements: Iterable[str], extras: set[str]) -> list[str]:
    """The requirements that apply here (markers evaluated, with the given extras)."""
    applying = []
    for text in requirements:
        marker = Requirement(text).marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras or {""}):
            applying.append(text)
    return applying


def pack(distribution: importlib.metadata.Distribution, into: Path) -> Path:
    """Zip an installed distribution back into a wheel in ``into``; returns its path."""
    site = Path(str(distribution.locate_file("")))
    [record] = [
        entry
        for entry in distribution.files or []
        if entry.parts[-1:] == ("RECORD",) and len(entry.parts) == 2  # not a vendored one
    ]
    info = site / record.parent  # installed from a wheel: its .dist-info folder
    tags = [
        line.split(":", 1)[1].strip()
        for line in (info / "WHEEL").read_text().splitlines()
        if line.startswith("Tag:")
    ]
    name = canonicalize_name(distribution.metadata["Name"]).replace("-", "_")
    version = distribution.version
    wheel = into / f"{name}-{version}-{_compressed(tags)}.whl"
    records: list[str] = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for relative in sorted(str(entry) for entry in distribution.files or []):
            path = (site / relative).resolve()
            if not path.is_relative_to(site.resolve()):
                continue  # console scripts and data outside site-packages: rebuilt by pip
            inside = path.relative_to(site.resolve()).as_posix()
            if "__pycache__/" in inside or not path.is_file():
                continue
            if inside.startswith(info.name + "/") and path.name in _INSTALLER_FILES:
                continue
            data = path.read_bytes()
            entry = zipfile.ZipInfo(inside)
            entry.external_attr = (path.stat().st_mode & 0xFFFF) << 16  # keeps the x bits
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data, compresslevel=1)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            records.append(f"{inside},sha256={digest.decode()},{len(data)}")
        records.append(f"{info.name}/RECORD,,")
        archive.writestr(f"{info.name}/RECORD", "\n".join(records) + "\n")
    return wheel


def _compressed(tags: list[str]) -> str:
    """``py3-none-any`` from its tags: interpreters, ABIs and platforms each joined by dots."""
    parts = [tag.split("-") for tag in tags]
    return "-".join(".".join(dict.fromkeys(part[index] for part in parts)) for index in range(3))


def build(into: Path, requirements: Iterable[str], also: Iterable[str] = ()) -> Path:
    """A wheelhouse that satisfies ``requirements``, plus the ``also`` distributions."""
    into.mkdir(parents=True, exist_ok=True)
    distributions = runtime_closure(requirements)
    distributions += [importlib.metadata.distribution(name) for name in also]
    for distribution in distributions:
        pack(distribution, into)
    return into
