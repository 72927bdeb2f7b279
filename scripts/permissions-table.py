#!/usr/bin/env python3
"""Print the README's permission table (markdown) from kubectl_runai_dr/plan/permissions.py.

    scripts/permissions-table.py            print the table
    scripts/permissions-table.py --write    replace it in README.md, between the markers
                                            <!-- permissions:begin --> and <!-- permissions:end -->
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kubectl_runai_dr.components.registry import PERMISSIONS  # noqa: E402
from kubectl_runai_dr.plan.permissions import markdown_table  # noqa: E402

BEGIN = "<!-- permissions:begin -->"
END = "<!-- permissions:end -->"


def replace_table(readme: str, table: str) -> str:
    """README text with the table between the markers replaced (ValueError: no markers)."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {BEGIN} ... {END} markers")
    return readme[: start + len(BEGIN)] + "\n" + table + readme[end:]


def main(argv: list[str]) -> int:
    table = markdown_table(PERMISSIONS)
    if argv[1:] == ["--write"]:
        path = ROOT / "README.md"
        path.write_text(replace_table(path.read_text(), table))
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
