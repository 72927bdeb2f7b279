"""`kubectl runai-dr inspect BUNDLE`: what a bundle holds, without its secret values."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from kubectl_runai_dr.bundle.manifest import excluded_components
from kubectl_runai_dr.cli import complete
from kubectl_runai_dr.cli import options as o


def inspect_data(manifest: dict[str, Any]) -> dict[str, Any]:
    """What inspect shows: the manifest's description, never file contents (pure)."""
    files = manifest.get("files", {})
    return {
        "format": manifest.get("format"),
        "formatVersion": manifest.get("formatVersion"),
        "createdAt": manifest.get("createdAt"),
        "status": manifest.get("status"),
        # as the manifest says: inspect reads nothing else (`verify` reads every file)
        "verified": False,
        "tool": manifest.get("tool"),
        "source": manifest.get("source"),
        "containsSecrets": manifest.get("containsSecrets", False),
        "components": manifest.get("components", []),
        "excludedComponents": excluded_components(manifest),
        "totalSize": sum(f.get("size", 0) for f in files.values()),
        "fileCount": len(files),
    }


@o.verb(kube=False, names=False, storage="read")
def inspect(
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE", help="The bundle: a file or "
                                          "s3://BUCKET/KEY.",
                                           show_default=False,
                                           autocompletion=complete.bundles)],
    *,
    common: o.Common,
) -> None:
    """Show what a bundle holds: components, object counts, sizes, source and age."""
    from kubectl_runai_dr.bundle.reader import Bundle
    from kubectl_runai_dr.cli import inspect_view as view

    b = Bundle.open(bundle)
    try:
        view.show(common, bundle, inspect_data(b.manifest), b.manifest)
    finally:
        b.close()
