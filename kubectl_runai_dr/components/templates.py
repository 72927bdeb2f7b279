"""Templates: ConfigMaps labelled ``runai/template=true`` in the cluster namespace."""

from __future__ import annotations

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.components.base import BackupContext
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.model import ComponentResult, Status
from kubectl_runai_dr.sanitize import strip_managed_fields

TEMPLATE_SELECTOR = "runai/template=true"
FILE = layout.TEMPLATES


def backup(ctx: BackupContext, result: ComponentResult) -> None:
    ns = ctx.names.cluster_namespace
    if ctx.kube.get_or_none(r.NAMESPACES, ns) is None:
        result.status = Status.NOT_PRESENT
        result.reason = f'namespace "{ns}" does not exist'
        return
    with ctx.out.list_file(FILE) as lw:
        for obj in ctx.kube.list(r.CONFIGMAPS, namespace=ns, label_selector=TEMPLATE_SELECTOR):
            lw.append(strip_managed_fields(obj))
    result.objects = lw.count
    result.files.append(FILE)
