"""`schedule`: install, inspect, run and remove the in-cluster backup CronJob.

The manifests come from ``plan/schedule.py`` (pure); this module reads and writes them.
``install`` checks everything it can before writing anything (the credentials Secret and
its keys, the claim of a pvc:// location, objects of the same name that the tool did not
create), then creates or updates each object in order and reports what changed;
``uninstall`` deletes only objects carrying the schedule's labels (the namespace only when
the install created it); bundles are never touched.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kubectl_runai_dr import conventions
from kubectl_runai_dr.components import registry
from kubectl_runai_dr.errors import ConfigError, DrError, UsageError
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import Forbidden, NotFound
from kubectl_runai_dr.ops.record import read_record
from kubectl_runai_dr.plan import cron
from kubectl_runai_dr.plan import diff as d
from kubectl_runai_dr.plan import schedule as p

KINDS: dict[str, r.Resource] = {
    "Namespace": r.NAMESPACES, "ServiceAccount": r.SERVICEACCOUNTS, "Role": r.ROLES,
    "RoleBinding": r.ROLEBINDINGS, "ClusterRole": r.CLUSTERROLES,
    "ClusterRoleBinding": r.CLUSTERROLEBINDINGS, "CronJob": r.CRONJOBS,
}


class ScheduleNotInstalled(DrError):
    """No schedule in the namespace: run `schedule install` first."""


@dataclass
class Change:
    kind: str
    name: str
    namespace: str | None
    action: str  # created, updated, unchanged, deleted, absent, kept; dry run: create, update
    diff: str = ""
    changed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "name": self.name, "action": self.action}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.changed:
            out["changed"] = self.changed
        if self.diff:
            out["diff"] = self.diff
        return out


@dataclass
class InstallResult:
    namespace: str
    changes: list[Change]
    manifests: list[dict[str, Any]]
    dry_run: bool
    notes: list[str] = field(default_factory=list)


def detect_control_plane(kube: KubeApi, spec: p.ScheduleSpec) -> bool:
    """Self-hosted (the control-plane namespace exists) or SaaS (the record lives in the
    cluster namespace)? An unreadable answer counts as self-hosted (the documented case)."""
    try:
        return kube.get_or_none(r.NAMESPACES, spec.names.control_plane_namespace) is not None
    except Forbidden:
        return True


def preflight(kube: KubeApi, spec: p.ScheduleSpec) -> list[str]:
    """What must hold before anything is written; raises a UsageError naming the fix.
    Returns notes (things worth knowing that do not stop the install)."""
    notes: list[str] = []
    ns = spec.namespace
    if spec.location.scheme == "s3" and spec.s3_credentials_secret:
        name = spec.s3_credentials_secret
        secret = kube.get_or_none(r.SECRETS, name, ns)
        if secret is None:
            raise UsageError(
                f'the credentials Secret "{name}" does not exist in namespace "{ns}"',
                hint=f"create it first: kubectl create namespace {ns}; kubectl -n {ns} create "
                     f"secret generic {name} --from-file=AWS_ACCESS_KEY_ID=... "
                     "--from-file=AWS_SECRET_ACCESS_KEY=... (files keep the keys out of the "
                     "shell history)")
        keys = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        missing = [k for k in p.REQUIRED_S3_KEYS if k not in keys]
        if missing:
            raise UsageError(f'the credentials Secret "{ns}/{name}" lacks the key(s) '
                             f"{', '.join(missing)}",
                             hint="it needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                  "(optionally AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL)")
    if (spec.location.scheme == "pvc"
            and kube.get_or_none(r.PVCS, spec.location.claim, ns) is None):
        raise UsageError(f'the claim "{spec.location.claim}" of {spec.location.url} does not '
                         f'exist in namespace "{ns}"',
                         hint="create the PersistentVolumeClaim there first (the backups "
                              "live on its volume)")
    if "@sha256:" not in spec.image:
        notes.append(f"the image {spec.image} is not pinned by digest; pass --image "
                     "REPOSITORY:TAG@sha256:... (scripts/image.sh prints it)")
    return notes


def _live(kube: KubeApi, obj: dict[str, Any]) -> dict[str, Any] | None:
    meta = obj["metadata"]
    return kube.get_or_none(KINDS[obj["kind"]], meta["name"], meta.get("namespace"))


def _ours(live: dict[str, Any], spec: p.ScheduleSpec) -> bool:
    labels = (live.get("metadata") or {}).get("labels") or {}
    return (labels.get(conventions.MANAGED_BY) == conventions.MANAGER
            and labels.get(p.SCHEDULE_LABEL) == spec.namespace)


def install(kube: KubeApi, spec: p.ScheduleSpec, *, dry_run: bool = False) -> InstallResult:
    """Create or update everything; idempotent. A dry run reads and reports, writes nothing."""
    p.validate(spec)
    notes = preflight(kube, spec)
    docs = p.manifests(registry.PERMISSIONS, spec)
    existing_ns = {ns: kube.get_or_none(r.NAMESPACES, ns) is not None for ns in {
        o["metadata"].get("namespace") for o in docs if o["metadata"].get("namespace")}
        if ns != spec.namespace}
    docs = [o for o in docs if (o["kind"] != "Role" and o["kind"] != "RoleBinding")
            or existing_ns.get(o["metadata"]["namespace"], True)]
    skipped = sorted(ns for ns, ok in existing_ns.items() if not ok)
    if skipped:
        notes.append("no Role in the missing namespace(s) " + ", ".join(skipped)
                     + "; install again once they exist")
    # Every decision before the first write: a conflict stops the install with nothing done.
    plan: list[tuple[dict[str, Any], dict[str, Any] | None, d.Decision]] = []
    for obj in docs:
        live = _live(kube, obj)
        if obj["kind"] == "Namespace" and live is not None:
            if not _ours(live, spec):
                plan.append((obj, live, d.Decision(d.Action.UNCHANGED)))
                notes.append(f'namespace "{spec.namespace}" existed before: uninstall keeps it')
                continue
        elif live is not None and not _ours(live, spec):
            label = d.object_label(obj)
            raise UsageError(f"{label} exists and was not created by this schedule",
                             hint="remove or rename it, or install into another namespace "
                                  "(--schedule-namespace)")
        plan.append((obj, live, _decide(obj, live)))
    changes: list[Change] = []
    for obj, live, decision in plan:
        meta = obj["metadata"]
        res = KINDS[obj["kind"]]
        change = Change(obj["kind"], meta["name"], meta.get("namespace"), "unchanged")
        if decision.action is d.Action.CREATE:
            change.action = "create" if dry_run else "created"
            if not dry_run:
                kube.create(res, obj, namespace=meta.get("namespace"))
        elif decision.action is d.Action.UPDATE:
            change.action = "update" if dry_run else "updated"
            change.diff, change.changed = decision.diff, decision.changed
            if not dry_run:
                assert live is not None
                kube.replace(res, _updated(obj, live), namespace=meta.get("namespace"))
        changes.append(change)
    return InstallResult(spec.namespace, changes, docs, dry_run, notes)


def _project(live: Any, shape: Any) -> Any:
    """``live`` restricted to what ``shape`` says, through maps and through lists of the
    same length (containers, volumes: the server fills defaults into their items)."""
    if isinstance(shape, dict) and isinstance(live, dict):
        return {k: _project(live[k], v) for k, v in shape.items() if k in live}
    if isinstance(shape, list) and isinstance(live, list) and len(shape) == len(live):
        return [_project(a, b) for a, b in zip(live, shape, strict=True)]
    return live


def _decide(obj: dict[str, Any], live: dict[str, Any] | None) -> d.Decision:
    """create, unchanged or update (with the diff live → install)."""
    if live is None:
        return d.Decision(d.Action.CREATE)
    want = d.comparable(obj)
    have = _project(d.comparable(live), want)
    paths = d.changed_paths(want, have)
    if not paths:
        return d.Decision(d.Action.UNCHANGED)
    text = d.unified(have, want, label=d.object_label(obj)).replace("+++ bundle/", "+++ install/")
    return d.Decision(d.Action.UPDATE, text, paths)


def _updated(obj: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """The object to PUT: the desired one, with the live metadata the server or others own
    (resourceVersion for the precondition, others' labels and annotations) kept."""
    lmeta = live.get("metadata") or {}
    meta = dict(obj["metadata"])
    meta["resourceVersion"] = lmeta.get("resourceVersion")
    for key in ("labels", "annotations"):
        merged = {**(lmeta.get(key) or {}), **(meta.get(key) or {})}
        if merged:
            meta[key] = merged
    out = {**obj, "metadata": meta}
    if obj["kind"] == "ServiceAccount":  # the token controller's
        for key in ("secrets", "imagePullSecrets"):
            if key in live:
                out[key] = live[key]
    return out


# -- uninstall -------------------------------------------------------------------------------
def uninstall(kube: KubeApi, namespace: str) -> list[Change]:
    """Delete what the schedule of ``namespace`` created: CronJob (its Jobs and pods go
    with it), RBAC, ServiceAccount, then the namespace if the install created it. Claims,
    Secrets and bundles stay."""
    sel = p.selector(namespace)
    changes: list[Change] = []

    def drop(res: r.Resource, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        try:
            kube.delete(res, meta["name"], namespace=meta.get("namespace"),
                        propagation="Background")
        except NotFound:
            return
        changes.append(Change(res.kind, meta["name"], meta.get("namespace"), "deleted"))

    for res, ns in ((r.CRONJOBS, namespace), (r.ROLEBINDINGS, None), (r.ROLES, None),
                    (r.CLUSTERROLEBINDINGS, None), (r.CLUSTERROLES, None),
                    (r.SERVICEACCOUNTS, namespace)):
        for obj in list(kube.list(res, namespace=ns, label_selector=sel)):
            drop(res, obj)
    live_ns = kube.get_or_none(r.NAMESPACES, namespace)
    if live_ns is not None:
        meta = live_ns.get("metadata") or {}
        created = (meta.get("annotations") or {}).get(p.CREATED_ANNOTATION) == "true"
        if created and (meta.get("labels") or {}).get(p.SCHEDULE_LABEL) == namespace:
            drop(r.NAMESPACES, live_ns)
        else:
            changes.append(Change("Namespace", namespace, None, "kept"))
    return changes


# -- status ----------------------------------------------------------------------------------
@dataclass
class ScheduleStatus:
    namespace: str
    installed: bool
    schedule: str = ""
    suspended: bool = False
    image: str = ""
    location: str = ""
    last_schedule: str = ""
    last_successful: str = ""
    next_run: str = ""
    runs: list[p.JobRun] = field(default_factory=list)
    record: dict[str, str] | None = None
    errors: list[str] = field(default_factory=list)


def get_cronjob(kube: KubeApi, namespace: str) -> dict[str, Any]:
    cj = kube.get_or_none(r.CRONJOBS, p.NAME, namespace)
    if cj is None:
        raise ScheduleNotInstalled(f'no scheduled backup in namespace "{namespace}"',
                                   hint="install one with `kubectl runai-dr schedule install "
                                        "--schedule ... --to ...` (or name its namespace with "
                                        "--schedule-namespace)")
    return cj


def _location(args: Sequence[str]) -> str:
    args = list(args)
    return args[args.index("--to") + 1] if "--to" in args[:-1] else ""


def read_status(kube: KubeApi, namespace: str, names: Any, *,
                now: datetime | None = None) -> ScheduleStatus:
    now = now or datetime.now(timezone.utc)
    cj = kube.get_or_none(r.CRONJOBS, p.NAME, namespace)
    st = ScheduleStatus(namespace, cj is not None)
    if cj is None:
        return st
    spec = cj.get("spec") or {}
    status = cj.get("status") or {}
    st.schedule = str(spec.get("schedule", ""))
    st.suspended = bool(spec.get("suspend"))
    containers = ((((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {})
                  .get("spec") or {}).get("containers") or [{}]
    st.image = str(containers[0].get("image", ""))
    st.location = _location(containers[0].get("args") or [])
    st.last_schedule = str(status.get("lastScheduleTime") or "")
    st.last_successful = str(status.get("lastSuccessfulTime") or "")
    if not st.suspended:
        try:
            nxt = cron.next_run(cron.parse(st.schedule), now)
            st.next_run = nxt.strftime("%Y-%m-%dT%H:%M:%SZ") if nxt else ""
        except cron.CronError as exc:
            st.errors.append(f"schedule: {exc}")
    uid = (cj.get("metadata") or {}).get("uid")
    now_iso = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    jobs = [j for j in kube.list(r.JOBS, namespace=namespace)
            if any(o.get("uid") == uid for o in (j.get("metadata") or {}).get("ownerReferences")
                   or [])]
    jobs.sort(key=lambda j: j["metadata"].get("creationTimestamp", ""), reverse=True)
    st.runs = [p.job_run(j, now_iso) for j in jobs]
    try:
        st.record = read_record(kube, names)
    except DrError as exc:
        st.errors.append(f"backup record: {exc.message}")
    return st


# -- run-now, suspend, resume --------------------------------------------------------------
@dataclass
class RunResult:
    namespace: str
    job: str
    run: p.JobRun | None
    pod: str = ""
    log_tail: str = ""
    followed: bool = True


def run_now(kube: KubeApi, namespace: str, *, follow: bool = True, timeout: float | None = None,
            tail: int = 40, on_wait: Callable[[str], None] | None = None,
            poll: float = 1.0) -> RunResult:
    """Create a Job from the CronJob's template now and, with ``follow``, wait for it to
    finish (``timeout`` seconds; None: the Job's own activeDeadlineSeconds) and read the
    tail of its pod's log."""
    cj = get_cronjob(kube, namespace)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    job = kube.create(r.JOBS, p.manual_job(cj, f"{p.NAME}-manual-{stamp}"), namespace=namespace)
    name = job["metadata"]["name"]
    result = RunResult(namespace, name, p.job_run(job), followed=follow)
    if not follow:
        return result
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = kube.get(r.JOBS, name, namespace)
        run = p.job_run(job, datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        result.run = run
        if run.result != "running":
            break
        if deadline is not None and time.monotonic() > deadline:
            raise ConfigError(f'Job "{namespace}/{name}" still running after the --timeout',
                              hint=f"it goes on; follow it with kubectl -n {namespace} logs -f "
                                   f"job/{name}, or `kubectl runai-dr schedule status`")
        if on_wait is not None:
            on_wait(name)
        time.sleep(poll)
    pods = sorted(kube.list(r.PODS, namespace=namespace, label_selector=f"job-name={name}"),
                  key=lambda q: q["metadata"].get("creationTimestamp", ""))
    if pods:
        result.pod = pods[-1]["metadata"]["name"]
        try:
            result.log_tail = kube.pod_log(result.pod, namespace, tail_lines=tail)
        except DrError as exc:
            result.log_tail = f"(log not available: {exc.message})"
    return result


def set_suspend(kube: KubeApi, namespace: str, suspend: bool) -> Change:
    cj = get_cronjob(kube, namespace)
    was = bool((cj.get("spec") or {}).get("suspend"))
    if was == suspend:
        return Change("CronJob", p.NAME, namespace, "unchanged")
    kube.patch(r.CRONJOBS, p.NAME, {"spec": {"suspend": suspend}}, namespace=namespace)
    return Change("CronJob", p.NAME, namespace, "suspended" if suspend else "resumed")
