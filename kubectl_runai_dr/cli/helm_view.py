"""What `helm values` prints: the values (as stored, or as JSON), or where they were written."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from kubectl_runai_dr import render

if TYPE_CHECKING:
    from kubectl_runai_dr.cli.options import Common


def show_values(common: Common, release: str, text: str, written: Path | None) -> None:
    fmt = common.output.value
    if written is not None:
        if common.table:
            render.consoles(common.no_color)[1].print(
                f"wrote {render.escape(str(written))} (holds the release's values, which may "
                "include secrets)")
        else:
            render.emit({"release": release, "file": str(written)}, fmt)
        return
    if fmt == "json":
        render.emit(yaml.safe_load(text) or {}, fmt)
        return
    sys.stdout.write(text)  # as helm stores them (comments and order kept)
    sys.stdout.flush()
