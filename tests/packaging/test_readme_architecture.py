"""The README's Architecture section and module tree name only modules that exist.

Every later change that moves a part must update them: this fails until it does.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers import PACKAGE_DIR as PACKAGE
from tests.helpers import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
PATH = re.compile(r"(?<![\w./-])((?:[a-z_]+/)*[a-z_]+\.py)\b")


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def test_every_module_the_architecture_section_names_exists() -> None:
    named = set(PATH.findall(section("Architecture")))
    assert len(named) > 20
    files = {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")}
    names = {Path(name).name for name in files}
    missing = sorted(
        name for name in named if (name not in files if "/" in name else name not in names)
    )
    assert missing == []


def test_every_file_of_the_development_tree_exists() -> None:
    tree = section("Development").split("```")[1]
    named = set(PATH.findall(tree))
    assert len(named) > 30
    everywhere = {
        path.name
        for folder in ("app", "tools", "bench", "tests")
        for path in (REPO_ROOT / folder).rglob("*.py")
    }
    assert sorted(Path(name).name for name in named if Path(name).name not in everywhere) == []
    for folder in ("domain", "web", "process", "domain/storage"):
        assert (PACKAGE / folder).is_dir()
        assert f"{folder.split('/')[-1]}/" in tree
