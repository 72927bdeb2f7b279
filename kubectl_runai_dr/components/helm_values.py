"""Helm values of the control plane and cluster releases (via the helm storage bridge)."""

from __future__ import annotations

from kubectl_runai_dr.components import helm
from kubectl_runai_dr.components.base import BackupContext
from kubectl_runai_dr.model import ComponentResult


def _backup(ctx: BackupContext, result: ComponentResult, release: str, namespace: str) -> None:
    rel = helm.backup_release(ctx.kube, ctx.out, release, namespace, result)
    if rel is not None:
        ctx.facts.setdefault("releases", {})[release] = rel.info()


def backup_control_plane(ctx: BackupContext, result: ComponentResult) -> None:
    _backup(ctx, result, ctx.names.control_plane_release, ctx.names.control_plane_namespace)


def backup_cluster(ctx: BackupContext, result: ComponentResult) -> None:
    _backup(ctx, result, ctx.names.cluster_release, ctx.names.cluster_namespace)
