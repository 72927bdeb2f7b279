"""The bundle manifest: what the bundle holds and where it came from (pure)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from kubectl_runai_dr.model import Names, Result, Status


def utc_stamp(now: datetime) -> str:
    return now.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def safe_context(context: str) -> str:
    """The context name made file-name safe."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", context).strip("._") or "cluster"


def default_bundle_name(context: str, now: datetime) -> str:
    """``runai-dr-<context>-<UTC time>.tar.gz``."""
    return (f"runai-dr-{safe_context(context)}-"
            f"{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}.tar.gz")


def build_manifest(
    *,
    created: datetime,
    tool_version: str,
    tool_commit: str,
    context: str,
    server: str,
    kubernetes_version: str,
    runai_version: str,
    names: Names,
    results: list[Result],
    contains_secrets: bool,
) -> dict[str, Any]:
    failed = [r.name for r in results if r.status is Status.FAILED]
    return {
        "tool": {"name": "kubectl-runai_dr", "version": tool_version, "commit": tool_commit},
        "createdAt": utc_stamp(created),
        "status": "partial" if failed else "complete",
        "failedComponents": failed,
        # what this backup set out to save, and what it left out (--skip, a component
        # list, or a component that needs a flag such as --include-secrets)
        "includedComponents": [r.name for r in results if r.status is not Status.SKIPPED],
        "excludedComponents": [r.name for r in results if r.status is Status.SKIPPED],
        "source": {
            "context": context,
            "server": server,
            "kubernetesVersion": kubernetes_version,
            "runaiVersion": runai_version,
            "controlPlaneNamespace": names.control_plane_namespace,
            "clusterNamespace": names.cluster_namespace,
            "controlPlaneRelease": names.control_plane_release,
            "clusterRelease": names.cluster_release,
        },
        "containsSecrets": contains_secrets,
        "components": [r.to_manifest() for r in results],
    }


def excluded_components(manifest: dict[str, Any]) -> list[str]:
    """The components a backup left out (bundles before the field: from their status)."""
    if "excludedComponents" in manifest:
        return list(manifest["excludedComponents"])
    return [c["name"] for c in manifest.get("components", [])
            if c.get("status") == Status.SKIPPED.value]


def runai_version(releases: dict[str, dict[str, Any]], names: Names) -> str:
    """Run:ai's version: the appVersion of the cluster chart, else of the control plane."""
    for rel in (names.cluster_release, names.control_plane_release):
        info = releases.get(rel)
        if info and info.get("appVersion"):
            return str(info["appVersion"])
    return ""
