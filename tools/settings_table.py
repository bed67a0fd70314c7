"""Write the README's settings table from the declarations in app/config.py.

    make settings-table

The table sits between two markers in README.md; everything outside them is left as it
is. tests/test_config.py fails while the README and the declarations disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

# mypy reads app/ as files, not as the installed package onetimeshare.
from onetimeshare.config import variables  # type: ignore[import-not-found]

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- settings table: written by `make settings-table` from app/config.py -->"
END = "<!-- end of the settings table -->"


def table() -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for variable in variables():
        cells = (f"`{variable.name}`", variable.shown_default(), variable.meaning())
        if any("|" in cell or "\n" in cell for cell in cells):
            raise ValueError(f"{variable.name}: a table cell cannot hold '|' or a line break")
        rows.append(f"| {' | '.join(cells)} |")
    return "\n".join(rows)


def rewrite(readme: str) -> str:
    """The README with the table between the markers written anew."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return f"{readme[:start]}\n{table()}\n{readme[end:]}"


def main() -> int:
    current = README.read_text()
    written = rewrite(current)
    if written != current:
        README.write_text(written)
        print(f"{README.name}: settings table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
