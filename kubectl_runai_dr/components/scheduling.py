"""Run:ai's cluster-side scheduling objects, kept as records: departments, node pools,
access rules, and queues where that CRD exists (Run:ai 2.10 to 2.13).

The control plane owns them: once the database and the cluster are back, it syncs them to
the cluster again, so the tool does not write them (a restore of stale copies would fight
the control plane). The bundle keeps them so `inspect` can count them and a comparison can
show what changed. Each type is read at the version discovery prefers; a type whose CRD is
not installed is noted, not an error.
"""

from __future__ import annotations

from collections.abc import Collection

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.components.base import BackupContext, Component
from kubectl_runai_dr.kube.errors import Forbidden
from kubectl_runai_dr.kube.resources import Resource
from kubectl_runai_dr.model import Names, Result, Status
from kubectl_runai_dr.plan import permissions as perm
from kubectl_runai_dr.sanitize import strip_managed_fields

SCHEDULING = "scheduling.run.ai"
# (resource at a default version: the served one is found through discovery)
TYPES: tuple[Resource, ...] = (
    Resource(SCHEDULING, "v2alpha2", "departments", "Department", False),
    Resource(perm.RUNAI, "v1alpha1", "nodepools", "NodePool", False),
    Resource(perm.RUNAI, "v1", "accessrules", "AccessRule", False),
    Resource(SCHEDULING, "v2", "queues", "Queue", False),
)


def file_of(res: Resource) -> str:
    return layout.objects(res.group, res.plural)


FILES = tuple(file_of(t) for t in TYPES)


def backup(ctx: BackupContext, result: Result) -> None:
    counts: dict[str, int] = {}
    absent: list[str] = []
    for wanted in TYPES:
        res = ctx.kube.served(wanted)
        if res is None:
            absent.append(wanted.group_resource)
            continue
        ctx.progress.start(wanted.plural)
        try:
            with ctx.out.list_file(file_of(wanted)) as lw:
                for obj in ctx.kube.list(res):
                    lw.append(strip_managed_fields(obj))
                    ctx.progress.advance()
        except Forbidden as exc:
            ctx.out.remove(file_of(wanted))
            result.warnings.append(f"{wanted.group_resource}: {exc.message}")
            continue
        counts[wanted.plural] = lw.count
        result.files.append(file_of(wanted))
        result.details[f"{wanted.plural}ApiVersion"] = res.api_version
    ctx.progress.finish()
    result.details.update(counts)
    if absent:
        result.details["notInstalled"] = absent
    result.count = sum(counts.values())
    if not counts and not result.warnings:
        result.status = Status.NOT_PRESENT
        result.reason = "none of " + ", ".join(t.group_resource for t in TYPES) + \
            " is installed"


def _holds(files: Collection[str], names: Names) -> bool:
    return any(f in files for f in FILES)


COMPONENT = Component(
    name="scheduling", title="scheduling objects (records)",
    saves="departments, node pools, access rules and (Run:ai 2.10 to 2.13) queues",
    reason="departments, node pools, access rules and queues come back from the control "
           "plane once the database and the cluster are restored",
    backup=backup, holds_data=_holds,
    record_only="the control plane owns these objects and syncs them to the cluster again "
                "after the database and cluster are restored; the bundle keeps them for "
                "inspect and comparison",
    backup_needs=tuple(perm.need("list", t.group, t.plural, perm.CLUSTER_SCOPED)
                       for t in TYPES),
    backup_note="queues only where that CRD exists",
)
