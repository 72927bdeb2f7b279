"""What `inspect` prints: the bundle's description and its components."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubectl_runai_dr import render

if TYPE_CHECKING:
    from kubectl_runai_dr.cli.options import Common


def show(common: Common, bundle: Path | str, data: dict[str, Any],
         manifest: dict[str, Any]) -> None:
    if not common.table:
        render.emit(data, common.output.value)
        return
    out, _ = render.consoles(common.no_color)
    src = data["source"] or {}
    tool = data["tool"] or {}
    out.print(render.key_values([
        ("Bundle", render.escape(str(bundle))),
        ("Status", f"{render.styled(str(data['status']))} (not verified: `kubectl runai-dr "
                   "verify` reads every file)"),
        ("Left out", render.escape(", ".join(data["excludedComponents"]) or "nothing")),
        ("Created", f"{data['createdAt']} ({render.human_age(str(data['createdAt']))} ago)"),
        ("Context", render.escape(str(src.get("context", "")))),
        ("Server", render.escape(str(src.get("server", "")))),
        ("Kubernetes", str(src.get("kubernetesVersion", ""))),
        ("Run:ai", str(src.get("runaiVersion") or "unknown")),
        ("Tool", f"{tool.get('version', '')} (bundle format {data['formatVersion']})"),
        ("Secrets", "yes (handle with care)" if data["containsSecrets"] else "no"),
        ("Size", f"{render.human_size(data['totalSize'])} in {data['fileCount']} files"),
    ]))
    out.print()
    out.print(render.table("Components", render.COMPONENT_COLUMNS,
                           render.component_rows(manifest, verbose=common.verbose)))
