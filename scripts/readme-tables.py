#!/usr/bin/env python3
"""Print or write the README's generated tables, from the component registry:
the components (what each backs up and how it is restored) and the permissions.

    .venv/bin/python scripts/readme-tables.py            print both tables
    .venv/bin/python scripts/readme-tables.py --write    replace them in README.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from kubectl_runai_dr.components.base import Component
from kubectl_runai_dr.components.registry import COMPONENTS, PERMISSIONS
from kubectl_runai_dr.plan.permissions import markdown_table

ROOT = Path(__file__).resolve().parent.parent


def components_table(components: tuple[Component, ...] = COMPONENTS) -> str:
    """One row per component, in the restore order."""
    lines = ["| component | backup keeps | restore |", "|---|---|---|"]
    for c in components:
        name = f"`{c.name}`" + (f" (was {', '.join(f'`{a}`' for a in c.aliases)})"
                                if c.aliases else "")
        keeps = c.saves + (f"; only with `{c.opt_in}`" if c.opt_in else "")
        restore = f"not restored: {c.record_only}" if c.record_only else c.reason
        lines.append(f"| {name} | {keeps} | {restore} |")
    return "\n".join(lines) + "\n"


TABLES = {"components": components_table, "permissions": lambda: markdown_table(PERMISSIONS)}


def replace_table(readme: str, table: str, marker: str = "permissions") -> str:
    """README text with the table between ``marker``'s begin/end comments replaced
    (ValueError: no markers)."""
    begin, end_mark = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    start, end = readme.find(begin), readme.find(end_mark)
    if start < 0 or end < start:
        raise ValueError(f"README has no {begin} ... {end_mark} markers")
    return readme[: start + len(begin)] + "\n" + table + readme[end:]


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        path = ROOT / "README.md"
        text = path.read_text()
        for marker, make in TABLES.items():
            text = replace_table(text, make(), marker)
        path.write_text(text)
        return 0
    if argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    for make in TABLES.values():
        sys.stdout.write(make() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
