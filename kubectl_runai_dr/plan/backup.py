"""Which backup components run, in which order, and why (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ComponentStep:
    name: str
    title: str
    reason: str


# Order matters only for the reader of the summary and for consistency: the small,
# fast configuration first (it is what a restore needs first), bulk data last.
BACKUP_COMPONENTS: tuple[ComponentStep, ...] = (
    ComponentStep("runaiconfig", "RunaiConfig",
                  "the cluster's configuration; restored right after the cluster chart"),
    ComponentStep("helm-control-plane", "control-plane helm values",
                  "values to re-install the control plane (helm release runai-backend)"),
    ComponentStep("helm-cluster", "cluster helm values",
                  "values to re-install the cluster (its identity: cluster.uid, clientSecret)"),
    ComponentStep("templates", "templates",
                  "ConfigMaps labelled runai/template=true (older versions)"),
    ComponentStep("projects", "projects, namespaces, role bindings",
                  "project namespaces and bindings may not sync back after a re-install"),
    ComponentStep("secrets", "secrets", "TLS, CA and credentials (only with --include-secrets)"),
    ComponentStep("database", "database", "the control plane's PostgreSQL (pg_dump)"),
    ComponentStep("snapshots", "volume snapshots",
                  "CSI snapshots of the database and metrics volumes (with --snapshots)"),
)


def plan_backup(*, only: Sequence[str] = (), skip: Sequence[str] = (),
                available: Sequence[str] | None = None) -> list[ComponentStep]:
    """The components to run. ``available``: those implemented/enabled in this build."""
    known = {c.name for c in BACKUP_COMPONENTS}
    unknown = sorted((set(only) | set(skip)) - known)
    if unknown:
        raise ValueError(f"unknown component(s): {', '.join(unknown)} "
                         f"(known: {', '.join(c.name for c in BACKUP_COMPONENTS)})")
    steps = [c for c in BACKUP_COMPONENTS if (not only or c.name in only) and c.name not in skip]
    if available is not None:
        steps = [c for c in steps if c.name in available]
    return steps
