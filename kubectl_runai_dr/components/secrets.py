"""Secrets Run:ai needs to come back with the same identity: TLS, CA, credentials.

Only with ``--include-secrets``: the bundle then holds secret values (it is written 0600).
"""

from __future__ import annotations

from typing import Any

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.components.base import BackupContext
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.model import ComponentResult, Names, Status
from kubectl_runai_dr.sanitize import strip_managed_fields

CLUSTER_WIDE_CREDENTIALS = "run.ai/cluster-wide-credentials=true"
PROJECT_CREDENTIALS = "run.ai/credentials=true"


def named_secrets(names: Names) -> list[tuple[str, str]]:
    """(namespace, name) of the Secrets the documentation names."""
    cp, cl = names.control_plane_namespace, names.cluster_namespace
    return [
        (cp, "runai-backend-tls"),
        (cp, f"{names.database_statefulset}"),
        (cl, "runai-cluster-domain-tls-secret"),
        (cl, "runai-ca-cert"),
        (cl, "runai-reg-creds"),
    ]


def backup(ctx: BackupContext, result: ComponentResult) -> None:
    if not ctx.include_secrets:
        result.status = Status.SKIPPED
        result.reason = "secrets are backed up only with --include-secrets"
        return
    kube = ctx.kube
    found: dict[tuple[str, str], dict[str, Any]] = {}
    missing: list[str] = []
    for ns, name in named_secrets(ctx.names):
        obj = kube.get_or_none(r.SECRETS, name, ns)
        if obj is None:
            missing.append(f"{ns}/{name}")
        else:
            found[(ns, name)] = obj
    for obj in kube.list(r.SECRETS, namespace=ctx.names.cluster_namespace,
                         label_selector=CLUSTER_WIDE_CREDENTIALS):
        found[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
    for obj in kube.list(r.SECRETS, label_selector=PROJECT_CREDENTIALS):
        found[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
    with ctx.out.list_file(layout.SECRETS) as lw:
        for key in sorted(found):
            obj = found[key]
            obj.setdefault("apiVersion", "v1")
            obj.setdefault("kind", "Secret")
            lw.append(strip_managed_fields(obj))
    result.files.append(layout.SECRETS)
    result.objects = lw.count
    result.details["secrets"] = [f"{ns}/{name}" for ns, name in sorted(found)]
    if missing:
        result.details["absent"] = missing
