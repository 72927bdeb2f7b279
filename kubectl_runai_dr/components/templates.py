"""Templates: ConfigMaps labelled ``runai/template=true`` in the cluster namespace."""

from __future__ import annotations

from collections.abc import Collection

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.components.base import BackupContext, Component
from kubectl_runai_dr.components.restore_base import RestoreContext, live_index, restore_object
from kubectl_runai_dr.errors import DrError
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.model import Names, ObjectResult, Outcome, Result, Status
from kubectl_runai_dr.plan import permissions as perm
from kubectl_runai_dr.plan.restore import CLUSTER_NAMESPACE
from kubectl_runai_dr.sanitize import Skip, clean_for_restore, strip_managed_fields

TEMPLATE_SELECTOR = "runai/template=true"
FILE = layout.TEMPLATES


def backup(ctx: BackupContext, result: Result) -> None:
    ns = ctx.names.cluster_namespace
    if ctx.kube.get_or_none(r.NAMESPACES, ns) is None:
        result.status = Status.NOT_PRESENT
        result.reason = f'namespace "{ns}" does not exist'
        return
    with ctx.out.list_file(FILE) as lw:
        for obj in ctx.kube.list(r.CONFIGMAPS, namespace=ns, label_selector=TEMPLATE_SELECTOR):
            lw.append(strip_managed_fields(obj))
    result.count = lw.count
    result.files.append(FILE)


def restore(ctx: RestoreContext, step: Result) -> None:
    """The plan's ``templates`` step: each ConfigMap into the cluster namespace."""
    ns = ctx.settings.names.cluster_namespace
    kube = ctx.kube
    objs = []
    for raw in ctx.bundle.iter_list(FILE):
        obj = clean_for_restore(raw)
        if isinstance(obj, Skip):
            continue
        obj["metadata"]["namespace"] = ns
        objs.append(obj)
    if not objs:
        step.skip("the bundle has no templates")
        return
    try:
        if kube.get_or_none(r.NAMESPACES, ns) is None and ctx.after_step("cluster-namespace"):
            for obj in objs:
                step.add(ObjectResult(step.name, "ConfigMap", obj["metadata"]["name"], ns,
                                      Outcome.WOULD_CREATE,
                                      f"after {ctx.after_step('cluster-namespace')}"))
            return
        if kube.get_or_none(r.NAMESPACES, ns) is None:
            step.fail(f'namespace "{ns}" does not exist',
                      "re-install the cluster first (step cluster), then run again with "
                      "--only templates")
            return
        live = live_index(kube.list(r.CONFIGMAPS, namespace=ns, label_selector=TEMPLATE_SELECTOR))
    except DrError as exc:
        step.fail(exc.message, exc.hint or "")
        return
    ctx.progress.start("templates", total=len(objs))
    for obj in objs:
        step.add(restore_object(kube, r.CONFIGMAPS, obj, live.get((ns, obj["metadata"]["name"])),
                                step=step.name, settings=ctx.settings,
                                live_known=(ns, obj["metadata"]["name"]) in live))
        ctx.progress.advance()
    ctx.progress.finish()


def _holds(files: Collection[str], names: Names) -> bool:
    return FILE in files


COMPONENT = Component(
    name="templates", title="templates",
    saves="ConfigMaps labelled `runai/template=true` in the cluster namespace",
    reason="ConfigMaps labelled runai/template=true (older versions) in the cluster "
           "namespace, which the cluster install creates",
    backup=backup, restore=restore, holds_data=_holds, needs=(CLUSTER_NAMESPACE,),
    backup_needs=(perm.need("list", perm.CORE, "configmaps", perm.CLUSTER),),
    restore_needs=(perm.need("list", perm.CORE, "configmaps", perm.CLUSTER),
                   perm.need("create", perm.CORE, "configmaps", perm.CLUSTER, perm.WRITE),
                   perm.need("patch", perm.CORE, "configmaps", perm.CLUSTER, perm.UPDATE)),
)
