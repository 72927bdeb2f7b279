"""Projects: ``projects.run.ai`` objects, project namespaces and their RoleBindings.

Backup: project namespaces are those labelled ``runai/queue``. Every RoleBinding in them
is kept (their names changed across Run:ai versions, so none is hard-coded). RoleBindings
are listed across all namespaces in pages and filtered, which is a few requests instead of
one per namespace; without cluster-wide list permission it falls back to one list per
namespace. The ``projects.run.ai`` objects are kept as records (they sync back from the
control plane).

Restore, namespaces first and then their RoleBindings. From a bundle: the namespaces
labelled ``runai/queue`` and every RoleBinding that was in them. From the live cluster:
for each ``projects.run.ai`` object whose namespace is
missing, the namespace the Run:ai docs' manual procedure creates (``runai-<project>``,
label ``runai/queue=<project>``).

Live state is read once with paged lists (a few requests, not one per object); then a
bounded pool of worker threads writes what is missing, one namespace (and its bindings)
per task. All workers share one client, whose 429/Retry-After back-off pauses them all.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components.base import BackupContext, Component, NullProgress, Progress
from kubectl_runai_dr.components.restore_base import (
    RestoreContext,
    RestoreSettings,
    failure,
    live_index,
    restore_object,
)
from kubectl_runai_dr.errors import ComponentError, DrError
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import Forbidden
from kubectl_runai_dr.model import Names, ObjectResult, Outcome, Result, Status
from kubectl_runai_dr.plan import permissions as perm
from kubectl_runai_dr.sanitize import Skip, clean_for_restore, strip_managed_fields

STEP = "namespaces"
MAX_WORKERS = 32
QUEUE_LABEL = "runai/queue"
PROJECTS_FILE = layout.objects("run.ai", "projects")
NAMESPACES_FILE = layout.objects("", "namespaces")
ROLEBINDINGS_FILE = layout.objects("rbac.authorization.k8s.io", "rolebindings")


# -- backup ------------------------------------------------------------------------------------
# Pages of the backup's big lists: a real API server answers a page of 1,000 role bindings
# (about 1 MB) from its watch cache in a few tens of milliseconds; bigger pages save little
# and hold more in memory on both sides, smaller ones pay the per-request latency more often.
PAGE = 1000
# Pages read ahead by each list's background thread while the caller writes (bounded memory).
AHEAD = 2


def _rolebindings(ctx: BackupContext, cluster_wide: Iterator[dict[str, Any]],
                  namespaces: list[str]) -> Iterator[dict[str, Any]]:
    wanted = set(namespaces)
    try:
        for rb in cluster_wide:
            if rb.get("metadata", {}).get("namespace") in wanted:
                yield rb
        return
    except Forbidden:
        pass  # no cluster-wide list: go namespace by namespace
    for ns in namespaces:
        yield from ctx.kube.list(r.ROLEBINDINGS, namespace=ns)


def backup(ctx: BackupContext, result: Result) -> None:
    kube, out = ctx.kube, ctx.out
    counts = {"projects": 0, "namespaces": 0, "rolebindings": 0}
    projects_res = kube.served(r.PROJECTS)
    # The three lists are independent: all start now and read ahead concurrently, while
    # this thread writes them to the bundle one after the other.
    projects = (kube.list(projects_res, limit=PAGE, ahead=AHEAD) if projects_res is not None
                else None)
    namespaces = kube.list(r.NAMESPACES, label_selector=QUEUE_LABEL, limit=PAGE, ahead=AHEAD)
    rolebindings = kube.list(r.ROLEBINDINGS, limit=PAGE, ahead=AHEAD)
    if projects_res is not None and projects is not None:
        ctx.progress.start("projects")
        with out.list_file(PROJECTS_FILE) as lw:
            for obj in projects:
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
        for ns in namespaces:
            lw.append(strip_managed_fields(ns))
            names.append(ns["metadata"]["name"])
            ctx.progress.advance()
    counts["namespaces"] = lw.count
    result.files.append(NAMESPACES_FILE)

    ctx.progress.start("role bindings")
    with out.list_file(ROLEBINDINGS_FILE) as lw:
        for rb in _rolebindings(ctx, rolebindings, names):
            lw.append(strip_managed_fields(rb))
            ctx.progress.advance()
    counts["rolebindings"] = lw.count
    result.files.append(ROLEBINDINGS_FILE)
    ctx.progress.finish()

    result.details.update(counts)
    result.count = sum(counts.values())
    if projects_res is None and not names:
        result.status = Status.NOT_PRESENT
        result.reason = "no projects.run.ai CRD and no namespace labelled runai/queue"


# -- restore -----------------------------------------------------------------------------------


@dataclass
class NamespaceWork:
    """One namespace and the RoleBindings to restore in it (all cleaned)."""

    namespace: dict[str, Any]
    rolebindings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.namespace["metadata"]["name"])


# -- pure: what to restore ----------------------------------------------------------------
def project_of(namespace: dict[str, Any]) -> str:
    return str(((namespace.get("metadata") or {}).get("labels") or {}).get(QUEUE_LABEL, ""))


def select_work(namespaces: Iterable[dict[str, Any]], rolebindings: Iterable[dict[str, Any]],
                projects: Sequence[str] = ()) -> tuple[list[NamespaceWork], list[str]]:
    """Group cleaned bundle objects per namespace; ``projects`` filters by project name
    (the ``runai/queue`` label) or namespace name. Returns (work, notes on skipped ones)."""
    wanted = set(projects)
    work: dict[str, NamespaceWork] = {}
    notes: list[str] = []
    for raw in namespaces:
        ns = clean_for_restore(raw)
        if isinstance(ns, Skip):
            continue
        name = ns["metadata"]["name"]
        if wanted and project_of(ns) not in wanted and name not in wanted:
            continue
        work[name] = NamespaceWork(ns)
    for raw in rolebindings:
        ns_name = (raw.get("metadata") or {}).get("namespace", "")
        if ns_name not in work:
            continue
        rb = clean_for_restore(raw)
        if isinstance(rb, Skip):
            notes.append(f"RoleBinding {ns_name}/{raw['metadata'].get('name')}: {rb.reason}")
            continue
        work[ns_name].rolebindings.append(rb)
    missing = sorted(wanted - {project_of(w.namespace) for w in work.values()} - set(work))
    if missing:
        notes.append("no namespace in the bundle for: " + ", ".join(missing))
    return sorted(work.values(), key=lambda w: w.name), notes


def namespace_for_project(project: dict[str, Any]) -> dict[str, Any]:
    """The namespace the manual procedure creates for a project (``kubectl create ns
    runai-<project>; kubectl label ns runai-<project> runai/queue=<project>``)."""
    name = str(project["metadata"]["name"])
    ns = ((project.get("spec") or {}).get("namespace")
          or (project.get("status") or {}).get("namespace") or f"runai-{name}")
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": str(ns), "labels": {QUEUE_LABEL: name}}}


def missing_roles(bindings: Sequence[dict[str, Any]], cluster_roles: set[str] | None,
                  roles: set[tuple[str, str]] | None, *, examples: int = 3) -> list[str]:
    """One warning per kind of missing role, however many bindings refer to them: the
    roles with how many bindings each, and a few of the bindings (a dry run into an empty
    cluster otherwise prints hundreds of near-identical lines)."""
    by_kind: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for rb in bindings:
        if missing_role(rb, cluster_roles, roles):
            ref = rb.get("roleRef") or {}
            where = f"{rb['metadata'].get('namespace', '')}/{rb['metadata']['name']}"
            by_kind[str(ref.get("kind"))][str(ref.get("name"))].append(where)
    out = []
    for kind, missing in sorted(by_kind.items()):
        n = sum(len(v) for v in missing.values())
        named = ", ".join(f"{name} ({len(v)})" for name, v in sorted(missing.items()))
        sample = [b for v in missing.values() for b in v][:examples]
        until = ("the cluster chart creates them" if kind == "ClusterRole"
                 else "those Roles are created")
        out.append(f"{n} RoleBinding{'s refer' if n != 1 else ' refers'} to {kind}s that do "
                   f"not exist (yet): {named}; they grant nothing until {until} (e.g. "
                   f"{', '.join(sample)}{', …' if n > len(sample) else ''})")
    return out


def missing_role(rb: dict[str, Any], cluster_roles: set[str] | None,
                 roles: set[tuple[str, str]] | None) -> str | None:
    """A warning when the binding's role is not in the cluster (None: role known/unknowable)."""
    ref = rb.get("roleRef") or {}
    kind, name = ref.get("kind"), ref.get("name")
    ns = rb["metadata"].get("namespace", "")
    if kind == "ClusterRole" and cluster_roles is not None and name not in cluster_roles:
        return (f"RoleBinding {ns}/{rb['metadata']['name']} refers to ClusterRole {name}, "
                "which does not exist (yet): it grants nothing until the cluster chart "
                "creates it")
    if kind == "Role" and roles is not None and (ns, name) not in roles:
        return (f"RoleBinding {ns}/{rb['metadata']['name']} refers to Role {name}, which "
                f"does not exist in {ns}: it grants nothing until that Role is created")
    return None


# -- reading the bundle and the cluster ----------------------------------------------------
def work_from_bundle(bundle: Bundle, projects: Sequence[str] = ()
                     ) -> tuple[list[NamespaceWork], list[str]]:
    namespaces = bundle.iter_list(NAMESPACES_FILE) if bundle.has(NAMESPACES_FILE) else iter(())
    rolebindings = (bundle.iter_list(ROLEBINDINGS_FILE) if bundle.has(ROLEBINDINGS_FILE)
                    else iter(()))
    return select_work(namespaces, rolebindings, projects)


def work_from_live(kube: KubeApi, projects: Sequence[str] = ()) -> tuple[list[NamespaceWork],
                                                                       list[str]]:
    res = kube.served(r.PROJECTS)
    if res is None:
        raise ComponentError("the projects.run.ai CRD is not installed: there are no projects to "
                      "create namespaces for",
                      hint="re-install the cluster first, or restore from a bundle")
    wanted = set(projects)
    work = [NamespaceWork(namespace_for_project(p)) for p in kube.list(res)
            if not wanted or p["metadata"]["name"] in wanted]
    notes: list[str] = []
    missing = sorted(wanted - {project_of(w.namespace) for w in work})
    if missing:
        notes.append("no such project: " + ", ".join(missing))
    return sorted(work, key=lambda w: w.name), notes


def _roles_present(kube: KubeApi, work: list[NamespaceWork]
                   ) -> tuple[set[str] | None, set[tuple[str, str]] | None]:
    """Names of existing ClusterRoles and (namespace, Role) pairs the bindings refer to."""
    refs = [rb.get("roleRef") or {} for w in work for rb in w.rolebindings]
    cluster_roles: set[str] | None = None
    roles: set[tuple[str, str]] | None = None
    if any(ref.get("kind") == "ClusterRole" for ref in refs):
        try:
            cluster_roles = {c["metadata"]["name"] for c in kube.list(r.CLUSTERROLES)}
        except Forbidden:
            cluster_roles = None
    if any(ref.get("kind") == "Role" for ref in refs):
        try:
            roles = {(x["metadata"].get("namespace", ""), x["metadata"]["name"])
                     for x in kube.list(r.ROLES)}
        except Forbidden:
            roles = None
    return cluster_roles, roles


def _live_state(kube: KubeApi, work: list[NamespaceWork], from_live: bool
                ) -> tuple[dict[tuple[str, str], dict[str, Any]],
                           dict[tuple[str, str], dict[str, Any]] | None]:
    """Live namespaces (all of them) and live RoleBindings (cluster-wide, or None when the
    user may not list them across namespaces: then each namespace is read by itself)."""
    want_rb = not from_live and any(w.rolebindings for w in work)
    # both lists start at once and read ahead (see backup)
    live_ns = kube.list(r.NAMESPACES, limit=PAGE, ahead=AHEAD)
    live_rb = kube.list(r.ROLEBINDINGS, limit=PAGE, ahead=AHEAD) if want_rb else None
    namespaces = live_index(live_ns)
    if live_rb is None:
        return namespaces, {}
    try:
        rolebindings: dict[tuple[str, str], dict[str, Any]] | None = live_index(live_rb)
    except Forbidden:
        rolebindings = None
    return namespaces, rolebindings


# -- the write path --------------------------------------------------------------------------
def _restore_one(kube: KubeApi, w: NamespaceWork, live_ns: dict[tuple[str, str], dict[str, Any]],
                 live_rb: dict[tuple[str, str], dict[str, Any]] | None,
                 settings: RestoreSettings, progress: Progress,
                 stop: threading.Event | None = None) -> Result:
    """One namespace and its bindings, into a result of its own (merged into the step by
    the caller: workers share nothing while they write)."""
    step = Result(STEP)
    if stop is not None and stop.is_set():
        return step
    _restore_into(kube, w, live_ns, live_rb, settings, step, progress, stop)
    return step


def _restore_into(kube: KubeApi, w: NamespaceWork,
                  live_ns: dict[tuple[str, str], dict[str, Any]],
                  live_rb: dict[tuple[str, str], dict[str, Any]] | None,
                  settings: RestoreSettings, step: Result, progress: Progress,
                  stop: threading.Event | None) -> None:
    ns_result = step.add(restore_object(kube, r.NAMESPACES, w.namespace,
                                        live_ns.get(("", w.name)), step=STEP,
                                        settings=settings))
    progress.advance()
    if ns_result.outcome is Outcome.FAILED:
        for rb in w.rolebindings:
            step.add(ObjectResult(STEP, "RoleBinding", rb["metadata"]["name"], w.name,
                                  Outcome.SKIPPED, f"its namespace {w.name} failed"))
            progress.advance()
        return
    ns_is_new = ns_result.outcome is Outcome.CREATED or ns_result.outcome is Outcome.WOULD_CREATE
    local: dict[tuple[str, str], dict[str, Any]] | None = live_rb
    if live_rb is None and not ns_is_new:
        try:
            local = live_index(kube.list(r.ROLEBINDINGS, namespace=w.name))
        except DrError as exc:
            for rb in w.rolebindings:
                step.add(ObjectResult(STEP, "RoleBinding", rb["metadata"]["name"], w.name,
                                      Outcome.FAILED, failure(exc)))
                progress.advance()
            return
    for rb in w.rolebindings:
        if stop is not None and stop.is_set():
            return
        live = None if ns_is_new or local is None else local.get((w.name,
                                                                  rb["metadata"]["name"]))
        step.add(restore_object(kube, r.ROLEBINDINGS, rb, live, step=STEP, settings=settings))
        progress.advance()


def restore_work(kube: KubeApi, work: list[NamespaceWork], settings: RestoreSettings,
                 step: Result, *, progress: Progress | None = None,
                 from_live: bool = False) -> None:
    """Restore every namespace and then its bindings; results go into ``step``."""
    progress = progress or NullProgress()
    if not work:
        return
    live_ns, live_rb = _live_state(kube, work, from_live)
    cluster_roles, roles = _roles_present(kube, work)
    for warning in missing_roles([rb for w in work for rb in w.rolebindings],
                                 cluster_roles, roles):
        step.warn(warning)
    total = sum(1 + len(w.rolebindings) for w in work)
    progress.start("namespaces and role bindings", total=total)
    workers = max(1, min(settings.workers, MAX_WORKERS, len(work)))
    if workers == 1:
        for w in work:
            step.merge(_restore_one(kube, w, live_ns, live_rb, settings, progress))
    else:
        # An interrupt (Ctrl-C, SIGTERM) reaches this thread: the workers are told to stop
        # and queued namespaces are cancelled; requests in flight finish, and everything
        # done so far is merged into ``step`` before the interrupt goes on.
        # Each finished namespace is handed over by the worker itself: an interrupt can
        # land inside submit() after the task was queued but before its future is known
        # here, and that task's work must still be reported.
        stop = threading.Event()
        lock = threading.Lock()
        finished: list[Result] = []

        def task(w: NamespaceWork) -> None:
            part = _restore_one(kube, w, live_ns, live_rb, settings, progress, stop)
            with lock:
                finished.append(part)

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore-ns")
        futures: list[Future[None]] = []
        try:  # submitting is inside: an interrupt may come as soon as the first one runs
            for w in work:
                futures.append(pool.submit(task, w))
            for f in futures:
                f.result()
        except BaseException:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
            for part in finished:
                step.merge(part)
            _sort(step)
    progress.finish()
    _sort(step)


def _sort(step: Result) -> None:
    """Results in a stable order (namespace, then its bindings), whatever thread wrote them."""
    per_ns: dict[str, list[ObjectResult]] = defaultdict(list)
    for o in step.objects:
        per_ns[o.name if o.kind == "Namespace" else (o.namespace or "")].append(o)
    step.objects = [o for ns in sorted(per_ns) for o in
                    sorted(per_ns[ns], key=lambda o: (o.kind != "Namespace", o.name))]


# -- the restore step ----------------------------------------------------------------------
def restore(ctx: RestoreContext, step: Result) -> None:
    """The plan's ``namespaces`` step: from the bundle."""
    work, notes = work_from_bundle(ctx.bundle, ctx.settings.projects)
    step.notes.extend(notes)
    restore_work(ctx.kube, work, ctx.settings, step, progress=ctx.progress)


def run_namespaces(kube: KubeApi, bundle_path: Any, settings: RestoreSettings, *,
                   from_live: bool = False, progress: Progress | None = None) -> Result:
    """`kubectl runai-dr namespaces`: from a bundle, or from the live projects."""
    step = Result(STEP)
    if from_live:
        work, notes = work_from_live(kube, settings.projects)
    else:
        bundle = Bundle.open(bundle_path)
        try:
            if not bundle.has(NAMESPACES_FILE):
                raise ComponentError(f"{bundle_path} holds no project namespaces",
                                     hint="use --from-live to create them from the "
                                          "projects in the cluster")
            work, notes = work_from_bundle(bundle, settings.projects)
        finally:
            bundle.close()
    step.notes.extend(notes)
    restore_work(kube, work, settings, step, progress=progress, from_live=from_live)
    return step


# -- the component -----------------------------------------------------------------------------
def _holds(files: Collection[str], names: Names) -> bool:
    return NAMESPACES_FILE in files


_P = perm
COMPONENT = Component(
    name="namespaces", aliases=("projects",), title="namespaces and role bindings",
    saves="every namespace labelled `runai/queue` with its labels and annotations, every "
          "RoleBinding in those namespaces, and the `projects.run.ai` objects (as records)",
    reason="project namespaces first, then the RoleBindings inside them; they may not sync "
           "back from the control plane (projects.run.ai objects are kept as records: the "
           "control plane re-syncs them)",
    backup=backup, restore=restore, holds_data=_holds,
    backup_needs=(_P.need("list", _P.RUNAI, "projects", _P.CLUSTER_SCOPED),
                  _P.need("list", _P.CORE, "namespaces", _P.CLUSTER_SCOPED),
                  _P.need("list", _P.RBAC, "rolebindings", _P.ALL)),
    restore_needs=(_P.need("list", _P.RUNAI, "projects", _P.CLUSTER_SCOPED),
                   _P.need("list", _P.CORE, "namespaces", _P.CLUSTER_SCOPED),
                   _P.need("create", _P.CORE, "namespaces", _P.CLUSTER_SCOPED, _P.WRITE),
                   _P.need("patch", _P.CORE, "namespaces", _P.CLUSTER_SCOPED, _P.UPDATE),
                   _P.need("list", _P.RBAC, "rolebindings", _P.ALL),
                   _P.need("create", _P.RBAC, "rolebindings", _P.ALL, _P.WRITE),
                   _P.need("patch", _P.RBAC, "rolebindings", _P.ALL, _P.UPDATE),
                   _P.need("list", _P.RBAC, "clusterroles", _P.CLUSTER_SCOPED)),
)
