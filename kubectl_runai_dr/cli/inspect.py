"""`kubectl runai-dr inspect BUNDLE`: what a bundle holds, without its secret values."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kubectl_runai_dr.cli import options as o


def inspect_data(manifest: dict[str, Any]) -> dict[str, Any]:
    """What inspect shows: the manifest's description, never file contents (pure)."""
    files = manifest.get("files", {})
    return {
        "format": manifest.get("format"),
        "formatVersion": manifest.get("formatVersion"),
        "createdAt": manifest.get("createdAt"),
        "status": manifest.get("status"),
        "tool": manifest.get("tool"),
        "source": manifest.get("source"),
        "containsSecrets": manifest.get("containsSecrets", False),
        "components": manifest.get("components", []),
        "totalSize": sum(f.get("size", 0) for f in files.values()),
        "fileCount": len(files),
    }


def inspect(
    bundle: Annotated[Path, typer.Argument(help="The bundle file.")],
    output: o.Output = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Show what a bundle holds: components, object counts, sizes, source and age."""
    common = o.Common(output=output, no_color=no_color, verbose=verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.bundle.reader import Bundle

        b = Bundle.open(bundle)
        data = inspect_data(b.manifest)
        if output is not o.OutputFormat.table:
            render.emit(data, output.value)
            return
        out, _ = render.consoles(no_color)
        src = data["source"] or {}
        tool = data["tool"] or {}
        out.print(render.key_values([
            ("Bundle", render.escape(str(bundle))),
            ("Status", render.styled(str(data["status"]))),
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
        out.print(render.table("Components", ["COMPONENT", "STATUS", "OBJECTS", "SIZE", "NOTE"],
                               render.component_rows(b.manifest)))
