"""Secrets Run:ai needs to come back with the same identity: TLS, CA, credentials.

Only with ``--include-secrets``: the bundle then holds secret values (it is written 0600).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.components.base import BackupContext, Component
from kubectl_runai_dr.components.restore_base import RestoreContext, failure, restore_object
from kubectl_runai_dr.errors import DrError
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.model import Names, ObjectResult, Outcome, Result, Status
from kubectl_runai_dr.plan import permissions as perm
from kubectl_runai_dr.sanitize import Skip, clean_for_restore, strip_managed_fields

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


def backup(ctx: BackupContext, result: Result) -> None:
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
    result.count = lw.count
    result.details["secrets"] = [f"{ns}/{name}" for ns, name in sorted(found)]
    if missing:
        result.details["absent"] = missing


def restore(ctx: RestoreContext, step: Result) -> None:
    """The plan's ``secrets`` step: each Secret of the bundle, before the charts are installed.

    The Run:ai namespaces are created when missing (the charts install into them). A Secret
    in another namespace (a project's credentials) waits for that namespace: it is reported
    as skipped, to be restored with ``--only secrets`` after the namespaces step.
    """
    kube, settings = ctx.kube, ctx.settings
    own = {settings.names.control_plane_namespace, settings.names.cluster_namespace}
    objs = []
    for raw in ctx.bundle.iter_list(layout.SECRETS):
        obj = clean_for_restore(raw)
        if not isinstance(obj, Skip):
            objs.append(obj)
    ready: set[str] = set()
    planned: set[str] = set()  # namespaces a dry run would create: they hold nothing yet
    ctx.progress.start("secrets", total=len(objs))
    for obj in objs:
        ns = str(obj["metadata"].get("namespace", ""))
        ctx.progress.advance()
        if ns not in ready:
            try:
                exists = kube.get_or_none(r.NAMESPACES, ns) is not None
            except DrError as exc:
                step.add(ObjectResult(step.name, "Secret", obj["metadata"]["name"], ns,
                                      Outcome.FAILED, failure(exc)))
                continue
            if not exists and ns in own:
                ns_obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                result = restore_object(kube, r.NAMESPACES, ns_obj, None, step=step.name,
                                        settings=settings)
                step.add(result)
                exists = result.outcome in (Outcome.CREATED, Outcome.WOULD_CREATE)
                if result.outcome is Outcome.WOULD_CREATE:
                    planned.add(ns)
            if not exists:
                step.add(ObjectResult(
                    step.name, "Secret", obj["metadata"]["name"], ns, Outcome.SKIPPED,
                    f'namespace "{ns}" does not exist yet: run `restore --only secrets` '
                    "again after the namespaces step"))
                continue
            ready.add(ns)
        step.add(restore_object(kube, r.SECRETS, obj, None, step=step.name, settings=settings,
                                live_known=ns in planned))
    ctx.progress.finish()


def _holds(files: Collection[str], names: Names) -> bool:
    return layout.SECRETS in files


_ns_get = perm.need("get", perm.CORE, "namespaces", perm.CLUSTER_SCOPED)
COMPONENT = Component(
    name="secrets", title="secrets", opt_in="--include-secrets",
    saves="TLS, CA, registry and credential Secrets of the Run:ai namespaces and projects",
    reason="TLS, CA, registry and credential Secrets (bundles made with --include-secrets) "
           "must exist before the charts that reference them",
    backup=backup, restore=restore, holds_data=_holds,
    backup_needs=(perm.need("get", perm.CORE, "secrets", perm.CLUSTER),
                  perm.need("list", perm.CORE, "secrets", perm.CLUSTER),
                  perm.need("list", perm.CORE, "secrets", perm.ALL)),
    restore_needs=(_ns_get,
                   perm.need("create", perm.CORE, "namespaces", perm.CLUSTER_SCOPED, perm.WRITE),
                   perm.need("get", perm.CORE, "secrets", perm.CLUSTER),
                   perm.need("create", perm.CORE, "secrets", perm.CLUSTER, perm.WRITE),
                   perm.need("patch", perm.CORE, "secrets", perm.CLUSTER, perm.UPDATE),
                   perm.need("get", perm.CORE, "secrets", perm.ALL),
                   perm.need("create", perm.CORE, "secrets", perm.ALL, perm.WRITE)),
    restore_note="only for bundles made with --include-secrets",
)
