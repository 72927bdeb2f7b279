"""Projects: ``projects.run.ai`` objects, project namespaces and their RoleBindings.

Project namespaces are those labelled ``runai/queue``. Every RoleBinding in them is kept
(their names changed across Run:ai versions, so none is hard-coded). RoleBindings are
listed across all namespaces in pages and filtered, which is a few requests instead of one
per namespace; without cluster-wide list permission it falls back to one list per namespace.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.components.base import BackupContext
from kubectl_runai_dr.errors import Forbidden
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.model import ComponentResult, Status
from kubectl_runai_dr.sanitize import strip_managed_fields

QUEUE_LABEL = "runai/queue"
PROJECTS_FILE = layout.objects("run.ai", "projects")
NAMESPACES_FILE = layout.objects("", "namespaces")
ROLEBINDINGS_FILE = layout.objects("rbac.authorization.k8s.io", "rolebindings")


def _rolebindings(ctx: BackupContext, namespaces: list[str]) -> Iterator[dict[str, Any]]:
    wanted = set(namespaces)
    try:
        for rb in ctx.kube.list(r.ROLEBINDINGS):
            if rb.get("metadata", {}).get("namespace") in wanted:
                yield rb
        return
    except Forbidden:
        pass  # no cluster-wide list: go namespace by namespace
    for ns in namespaces:
        yield from ctx.kube.list(r.ROLEBINDINGS, namespace=ns)


def backup(ctx: BackupContext, result: ComponentResult) -> None:
    kube, out = ctx.kube, ctx.out
    counts = {"projects": 0, "namespaces": 0, "rolebindings": 0}
    projects_res = kube.served(r.PROJECTS)
    if projects_res is not None:
        ctx.progress.start("projects")
        with out.list_file(PROJECTS_FILE) as lw:
            for obj in kube.list(projects_res):
                lw.append(strip_managed_fields(obj))
                ctx.progress.advance()
        counts["projects"] = lw.count
        result.files.append(PROJECTS_FILE)
        result.details["projectsApiVersion"] = projects_res.api_version
    else:
        result.details["projectsApiVersion"] = None

    ctx.progress.start("project namespaces")
    names: list[str] = []
    with out.list_file(NAMESPACES_FILE) as lw:
        for ns in kube.list(r.NAMESPACES, label_selector=QUEUE_LABEL):
            lw.append(strip_managed_fields(ns))
            names.append(ns["metadata"]["name"])
            ctx.progress.advance()
    counts["namespaces"] = lw.count
    result.files.append(NAMESPACES_FILE)
    ctx.facts["project_namespaces"] = names

    ctx.progress.start("role bindings")
    with out.list_file(ROLEBINDINGS_FILE) as lw:
        for rb in _rolebindings(ctx, names):
            lw.append(strip_managed_fields(rb))
            ctx.progress.advance()
    counts["rolebindings"] = lw.count
    result.files.append(ROLEBINDINGS_FILE)
    ctx.progress.finish()

    result.details.update(counts)
    result.objects = sum(counts.values())
    if projects_res is None and not names:
        result.status = Status.NOT_PRESENT
        result.reason = "no projects.run.ai CRD and no namespace labelled runai/queue"
