"""`status`: the facts collected from the cluster, and the rules that turn them into
problems with a severity and what to do (pure: tested without a server).

Severity:
- critical: a disaster now would cost data or block recovery (no recent complete backup,
  a helm release stuck or failed, the database not ready, a backup step not permitted);
- warning: recovery would be harder or partial (a volume reclaimed on delete, projects
  without namespace, a restore step not permitted, a section that could not be read);
- info: worth knowing, nothing to fix (no snapshot class, an external database).

Exit code: 0 when nothing is above info, 7 (STATUS_WARNING) with warnings only,
8 (STATUS_CRITICAL) with any critical problem.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from kubectl_runai_dr.errors import ExitCode
from kubectl_runai_dr.plan import voldata

CRITICAL = "critical"
WARNING = "warning"
INFO = "info"
SEVERITIES = (CRITICAL, WARNING, INFO)

HEALTHY_RELEASE_STATUSES = ("deployed",)
DEFAULT_MAX_AGE = 24 * 3600.0
EXEC_FORBIDDEN = "unknown (exec not permitted)"

# The claims that hold Run:ai's state in the control-plane namespace: (role, names old and new).
CLAIMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("database", ("data-runai-backend-postgresql-0", "pvc-postgresql")),
    ("thanos", ("data-runai-backend-thanos-receive-0", "pvc-thanos-receive")),
    ("redis-queue", ("data-runai-backend-redis-queue-master-0",)),
)

# Run inside the database pod: the server's version and every database's size, one JSON line.
STATUS_SQL = (
    "SELECT json_build_object('version', current_setting('server_version'), "
    "'databases', (SELECT coalesce(json_agg(json_build_object('name', datname, "
    "'bytes', pg_database_size(datname)) ORDER BY datname), '[]') FROM pg_database "
    "WHERE datallowconn AND NOT datistemplate))"
)


def status_psql_argv() -> list[str]:
    """psql running STATUS_SQL: no password on the line (the pod's environment has it)."""
    return ["psql", "-X", "-q", "-A", "-t", "-w", "-c", STATUS_SQL, "--dbname=postgres"]


# -- the facts -----------------------------------------------------------------------------
@dataclass
class SectionError:
    """Something a section could not read: it degrades, the others go on."""

    message: str
    hint: str = ""
    forbidden: bool = False


@dataclass
class ClusterFacts:
    context: str = ""
    server: str = ""
    kubernetes_version: str = ""
    control_plane: bool | None = None  # None: could not tell
    cluster: bool | None = None
    errors: list[SectionError] = field(default_factory=list)

    @property
    def installation(self) -> str:
        if self.control_plane and self.cluster:
            return "control plane and cluster (self-hosted)"
        if self.cluster and self.control_plane is False:
            return "cluster only (SaaS control plane)"
        if self.control_plane and self.cluster is False:
            return "control plane only"
        if self.control_plane is False and self.cluster is False:
            return "none"
        return "unknown"


@dataclass
class ReleaseFacts:
    name: str
    namespace: str
    half: str  # "control-plane" or "cluster"
    found: bool | None = None
    chart: str = ""
    chart_version: str = ""
    app_version: str = ""
    revision: int | None = None  # the latest revision, whatever its status
    status: str = ""
    last_deployed: str = ""
    deployed_revision: int | None = None  # the latest revision with status deployed
    error: SectionError | None = None


@dataclass
class ReleasesFacts:
    releases: list[ReleaseFacts] = field(default_factory=list)
    errors: list[SectionError] = field(default_factory=list)


@dataclass
class DatabaseFacts:
    applicable: bool = True  # False: no control plane here
    namespace: str = ""
    external_host: str | None = None  # set when postgresql.enabled=false
    external_port: int | None = None
    statefulset: str = ""
    statefulset_found: bool | None = None
    pod: str = ""
    container: str = ""
    ready: bool | None = None
    not_ready: str = ""  # why the pod is not ready
    version: str | None = None
    databases: list[dict[str, Any]] = field(default_factory=list)  # {name, bytes}
    query: str = ""  # "ok" or why version/sizes are unknown
    errors: list[SectionError] = field(default_factory=list)


@dataclass
class SnapshotFacts:
    name: str
    created: str
    ready: bool | None


@dataclass
class ClaimFacts:
    role: str
    namespace: str
    name: str
    found: bool | None = None
    phase: str = ""
    size: str = ""
    storage_class: str = ""
    volume: str = ""
    driver: str = ""
    reclaim_policy: str = ""
    snapshot_class: str | None = None
    latest_snapshot: SnapshotFacts | None = None  # the latest READY one
    # snapshots of the claim that are not ready (failed, or still in progress), newest first
    unready_snapshots: list[SnapshotFacts] = field(default_factory=list)


@dataclass
class VolumesFacts:
    applicable: bool = True
    snapshot_crds: bool | None = None
    snapshot_classes: list[dict[str, str]] = field(default_factory=list)  # {name, driver}
    claims: list[ClaimFacts] = field(default_factory=list)
    errors: list[SectionError] = field(default_factory=list)


@dataclass
class RunaiFacts:
    runaiconfig: bool | None = None
    projects: int | None = None
    project_namespaces: int | None = None
    rolebindings: int | None = None
    templates: int | None = None
    projects_without_namespace: list[dict[str, str]] | None = None  # {project, namespace}
    errors: list[SectionError] = field(default_factory=list)


@dataclass
class BackupFacts:
    found: bool | None = None
    namespace: str = ""
    time: str = ""
    bundle: str = ""
    location: str = ""  # the directory or s3:// prefix it went to ("" in older records)
    encrypted: bool | None = None  # None: not recorded (older records)
    result: str = ""
    failed_components: list[str] = field(default_factory=list)
    excluded_components: list[str] = field(default_factory=list)  # left out (--skip, ...)
    volume_data_claims: list[str] = field(default_factory=list)  # NAMESPACE/CLAIM, file-level
    tool_version: str = ""
    errors: list[SectionError] = field(default_factory=list)


@dataclass
class PermissionCheck:
    command: str
    step: str
    verb: str
    resource: str
    namespace: str  # a namespace, "(all namespaces)" or "(cluster)"
    allowed: bool | None  # None: could not ask, or the step does not apply here
    optional: bool = False
    reason: str = ""


@dataclass
class PermissionsFacts:
    user_can_review: bool | None = None
    checks: list[PermissionCheck] = field(default_factory=list)
    errors: list[SectionError] = field(default_factory=list)


@dataclass
class ScheduledBackup:
    """One in-cluster schedule (`schedule install`): its CronJob and its last scheduled run."""

    namespace: str
    schedule: str
    suspended: bool
    created: str
    last_successful: str = ""
    last_run: str = ""  # the latest scheduled (not run-now) Job
    last_run_result: str = ""  # succeeded, failed, running
    last_run_message: str = ""


@dataclass
class SchedulesFacts:
    schedules: list[ScheduledBackup] = field(default_factory=list)
    errors: list[SectionError] = field(default_factory=list)


@dataclass
class StatusFacts:
    cluster: ClusterFacts = field(default_factory=ClusterFacts)
    releases: ReleasesFacts = field(default_factory=ReleasesFacts)
    database: DatabaseFacts = field(default_factory=DatabaseFacts)
    volumes: VolumesFacts = field(default_factory=VolumesFacts)
    runai: RunaiFacts = field(default_factory=RunaiFacts)
    backup: BackupFacts = field(default_factory=BackupFacts)
    permissions: PermissionsFacts = field(default_factory=PermissionsFacts)
    schedules: SchedulesFacts = field(default_factory=SchedulesFacts)


@dataclass(frozen=True)
class Problem:
    severity: str
    section: str
    message: str
    hint: str


# -- time ------------------------------------------------------------------------------------
def parse_time(text: str) -> datetime | None:
    """RFC 3339 as Kubernetes, helm (nanoseconds) and the backup record write it."""
    if not text:
        return None
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?", text.strip())
    if not m:
        return None
    base = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    tz = m.group(3) or "Z"
    if tz == "Z":
        return base.replace(tzinfo=timezone.utc)
    sign = 1 if tz[0] == "+" else -1
    offset = sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return base.replace(tzinfo=timezone.utc) - timedelta(seconds=offset)


def age_seconds(text: str, now: datetime) -> float | None:
    when = parse_time(text)
    return None if when is None else (now - when).total_seconds()


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 0:
        return "in the future"
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            rest = s % size
            sub = {"d": (3600, "h"), "h": (60, "m"), "m": (1, "s")}[unit]
            extra = f"{rest // sub[0]}{sub[1]}" if rest // sub[0] else ""
            return f"{s // size}{unit}{extra}"
    return f"{s}s"


# -- rules -----------------------------------------------------------------------------------
def _section_errors(section: str, errors: Iterable[SectionError]) -> list[Problem]:
    out = []
    for err in errors:
        hint = err.hint or ("ask for read access to it (see the permission table: "
                            "`kubectl runai-dr status` lists what each step needs)"
                            if err.forbidden else "check the cluster and run status again")
        out.append(Problem(WARNING, section, err.message, hint))
    return out


def _cluster_problems(c: ClusterFacts) -> list[Problem]:
    out = _section_errors("cluster", c.errors)
    if c.control_plane is False and c.cluster is False:
        out.append(Problem(CRITICAL, "cluster", "no Run:ai installation found in this cluster "
                           "(neither the control-plane nor the cluster namespace exists)",
                           "check the context (`kubectl config current-context`) and the "
                           "namespaces (--control-plane-namespace, -n)"))
    return out


def _release_problems(r: ReleasesFacts, cluster: ClusterFacts) -> list[Problem]:
    out = _section_errors("helm", r.errors)
    for rel in r.releases:
        where = f'helm release "{rel.name}" (namespace "{rel.namespace}")'
        history = f"`helm history {rel.name} -n {rel.namespace}`"
        if rel.error is not None:
            out += _section_errors("helm", [rel.error])
            continue
        if rel.found is False:
            expected = cluster.control_plane if rel.half == "control-plane" else cluster.cluster
            if expected:
                out.append(Problem(WARNING, "helm", f"{where} not found, although its "
                                   "namespace exists",
                                   "check the release name (--control-plane-release, "
                                   "--cluster-release) and `helm list -A`"))
            continue
        if not rel.found:
            continue
        status = rel.status
        if status.startswith("pending-"):
            out.append(Problem(CRITICAL, "helm", f"{where} is stuck in {status} (revision "
                               f"{rel.revision}): helm refuses upgrades and rollbacks",
                               f"see {history}; when no helm operation is running, roll back "
                               f"to the last deployed revision (`helm rollback {rel.name} "
                               f"{rel.deployed_revision or '<revision>'} -n {rel.namespace}`)"))
        elif status not in HEALTHY_RELEASE_STATUSES:
            fallback = (f"a backup saves revision {rel.deployed_revision}, the latest deployed one"
                        if rel.deployed_revision else "no revision is deployed: a backup "
                        "cannot save its values")
            out.append(Problem(CRITICAL, "helm", f"{where}: latest revision {rel.revision} is "
                               f"{status}; {fallback}",
                               f"see {history}; fix the release (upgrade again or `helm "
                               f"rollback`) so the values a backup saves are the running ones"))
    return out


def _database_problems(d: DatabaseFacts) -> list[Problem]:
    out = _section_errors("database", d.errors)
    if not d.applicable:
        return out
    if d.external_host is not None:
        out.append(Problem(INFO, "database", "the control plane uses an external database "
                           f"({d.external_host or 'host not set'}:{d.external_port or 5432})",
                           "back it up with `backup --db-mode local` (pg_dump on this machine), "
                           "or with the database service's own backups"))
        return out
    if d.statefulset_found is False:
        out.append(Problem(CRITICAL, "database", f'no database StatefulSet "{d.statefulset}"',
                           "check the control plane (`kubectl get statefulsets -n "
                           f"{d.namespace}`); a backup cannot dump the database"))
        return out
    if d.ready is False:
        out.append(Problem(CRITICAL, "database", f'database pod "{d.pod or d.statefulset}" '
                           f"{d.not_ready or 'is not ready'}",
                           "a backup cannot dump it now: look at the pod (`kubectl describe "
                           f"pod {d.pod} -n {d.namespace}`, its logs and its volume)"))
    elif d.ready and d.query == EXEC_FORBIDDEN:
        out.append(Problem(INFO, "database", f"PostgreSQL version and sizes: {d.query}",
                           "run status as a user allowed to exec into the database pod to "
                           "see them (a backup needs it too: see the permissions)"))
    elif d.ready and d.query.startswith("unknown"):
        out.append(Problem(WARNING, "database", f"PostgreSQL in pod {d.pod} did not answer: "
                           f"{d.query}",
                           "a database backup would likely fail the same way: check the pod "
                           f"(`kubectl logs {d.pod} -n {d.namespace}`) and its database"))
    return out


def _volume_problems(v: VolumesFacts) -> list[Problem]:
    out = _section_errors("volumes", v.errors)
    if not v.applicable:
        return out
    for c in v.claims:
        if c.found is not True:
            if c.found is False and c.role == "database":
                out.append(Problem(INFO, "volumes", f"no claim for the {c.role} "
                                   f"({c.name}) in namespace {c.namespace}",
                                   "nothing to do if the database is external"))
            continue
        where = f'claim "{c.name}" ({c.role})'
        if c.reclaim_policy == "Delete":
            out.append(Problem(WARNING, "volumes", f"{where}: volume {c.volume} has reclaim "
                               "policy Delete: deleting the claim (helm uninstall, a deleted "
                               "namespace) destroys the data",
                               "`kubectl runai-dr protect` (Retain on every claim of the "
                               f"control plane), or kubectl patch pv {c.volume} -p "
                               "'{\"spec\":{\"persistentVolumeReclaimPolicy\":\"Retain\"}}'"))
        if c.phase and c.phase != "Bound":
            out.append(Problem(WARNING, "volumes", f"{where} is {c.phase}, not Bound",
                               f"kubectl describe pvc {c.name} -n {c.namespace}"))
        newest_ready = c.latest_snapshot.created if c.latest_snapshot else ""
        stuck = [x for x in c.unready_snapshots if x.created > newest_ready]
        if stuck:
            names = ", ".join(x.name for x in stuck[:3])
            out.append(Problem(WARNING, "volumes", f"{where}: {len(stuck)} snapshot(s) newer "
                               f"than the latest ready one are not ready ({names})"
                               + (f"; the latest ready one is {c.latest_snapshot.name}"
                                  if c.latest_snapshot else "; none is ready"),
                               f"kubectl describe volumesnapshot -n {c.namespace} "
                               f"{stuck[0].name} (the CSI driver's snapshotter logs say why); "
                               "delete it if it failed"))
        if v.snapshot_crds and c.driver and c.snapshot_class is None:
            out.append(Problem(INFO, "volumes", f"{where}: no VolumeSnapshotClass for CSI "
                               f"driver {c.driver}: the volume cannot be snapshotted",
                               "create a VolumeSnapshotClass for the driver to use "
                               "`backup --snapshots`; the database dump does not need it"))
    if v.snapshot_crds is False:
        out.append(Problem(INFO, "volumes", "the volume snapshot API (snapshot.storage.k8s.io) "
                           "is not installed: volumes cannot be snapshotted",
                           "install the CSI external-snapshotter CRDs and controller to use "
                           "`backup --snapshots`; the database dump does not need it"))
    return out


def _runai_problems(r: RunaiFacts, cluster: ClusterFacts) -> list[Problem]:
    out = _section_errors("run:ai", r.errors)
    if r.runaiconfig is False and cluster.cluster:
        out.append(Problem(WARNING, "run:ai", "no RunaiConfig in the cluster namespace",
                           "the cluster is not fully installed: check `helm status "
                           "runai-cluster -n runai` and `kubectl get runaiconfig -A`"))
    missing = r.projects_without_namespace or []
    if missing:
        listed = ", ".join(f"{m['project']} ({m['namespace']})" for m in missing[:10])
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        out.append(Problem(WARNING, "run:ai", f"{len(missing)} project(s) without namespace: "
                           f"{listed}{more}",
                           "re-create them from a backup (`kubectl runai-dr namespaces "
                           "BUNDLE`) or check project-controller.createNamespaces"))
    return out


# Left out of a backup (--skip, a component list), these leave a recovery without data it
# needs: every project, user and setting (database), the charts' values (a re-installation
# needs them), the projects' namespaces and access.
ESSENTIAL_COMPONENTS = {
    "database": "the database",
    "control-plane": "the control plane's helm values",
    "cluster": "the cluster's helm values",
    "namespaces": "the projects (namespaces and role bindings)",
}


def _backup_problems(b: BackupFacts, max_age: float | None, now: datetime) -> list[Problem]:
    out = _section_errors("backup", b.errors)
    if b.found is False:
        out.append(Problem(CRITICAL, "backup", "no backup recorded in this cluster (ConfigMap "
                           "runai-dr-last-backup)",
                           "run `kubectl runai-dr backup` (and schedule it)"))
        return out
    if not b.found:
        return out
    if b.encrypted is False:
        out.append(Problem(WARNING, "backup", f"the last backup is not encrypted: {b.bundle} "
                           "holds the cluster's client secret and the database password (in "
                           "the helm values) and the database's data",
                           "encrypt the backups: --encrypt-to RECIPIENT (`kubectl runai-dr "
                           "keygen` makes a key) or --passphrase"))
    age = age_seconds(b.time, now)
    if age is None:
        out.append(Problem(WARNING, "backup", f"the last-backup record has no readable time "
                           f"({b.time!r})", "run `kubectl runai-dr backup` again"))
    elif max_age is not None and age > max_age:
        out.append(Problem(CRITICAL, "backup", f"the last backup is {human_duration(age)} old "
                           f"(older than {human_duration(max_age)}): {b.bundle}",
                           "run `kubectl runai-dr backup`, and check the job that schedules "
                           "it"))
    if b.result and b.result != "complete":
        failed = f" ({', '.join(b.failed_components)} failed)" if b.failed_components else ""
        out.append(Problem(CRITICAL, "backup", f"the last backup is {b.result}{failed}: "
                           f"{b.bundle}",
                           "fix the failed components (`kubectl runai-dr inspect BUNDLE` "
                           "shows why) and run the backup again"))
    left_out = [what for name, what in ESSENTIAL_COMPONENTS.items()
                if name in b.excluded_components]
    if left_out:
        out.append(Problem(WARNING, "backup", f"the last backup left out {', '.join(left_out)}: "
                           f"{b.bundle}", "back up without --skip or a component list (the "
                           "scheduled backup should include everything)"))
    return out


def _schedule_problems(f: SchedulesFacts, max_age: float | None, now: datetime) -> list[Problem]:
    out = _section_errors("schedule", f.errors)
    for s in f.schedules:
        where = f"the scheduled backup in namespace {s.namespace} ({s.schedule})"
        look = f"`kubectl runai-dr schedule status --schedule-namespace {s.namespace}`"
        if s.last_run_result == "failed":
            out.append(Problem(CRITICAL, "schedule", f"the last run of {where} failed: "
                               f"{s.last_run} {s.last_run_message}".rstrip(),
                               f"see {look} and `kubectl -n {s.namespace} logs job/{s.last_run}`"))
        since = age_seconds(s.last_successful or s.created, now)
        if max_age is not None and since is not None and since > max_age:
            out.append(Problem(CRITICAL, "schedule", f"{where} has not succeeded within "
                               f"{human_duration(max_age)}" + ("" if s.last_successful else
                                                               " (never succeeded)"),
                               f"see {look}; `schedule run-now` runs it at once"))
        if s.suspended:
            out.append(Problem(WARNING, "schedule", f"{where} is suspended",
                               "`kubectl runai-dr schedule resume` when it should run again"))
    return out


def _permission_problems(p: PermissionsFacts) -> list[Problem]:
    out = _section_errors("permissions", p.errors)
    denied: dict[tuple[str, str], list[PermissionCheck]] = {}
    for c in p.checks:
        if c.allowed is False:
            denied.setdefault((c.command, c.step), []).append(c)
    for (command, step), checks in denied.items():
        what = "; ".join(f"{c.verb} {c.resource} in {c.namespace}" for c in checks)
        optional = all(c.optional for c in checks)
        severity = CRITICAL if command == "backup" and not optional else WARNING
        out.append(Problem(severity, "permissions", f"{command} step {step}: you may not "
                           f"{what}",
                           "ask a cluster administrator for these permissions (the README "
                           "lists them per command); a restore is usually run by a cluster "
                           "administrator" if command == "restore" else
                           "ask a cluster administrator for these permissions (the README "
                           "lists them per command)"))
    return out


def evaluate(facts: StatusFacts, *, max_age: float | None = DEFAULT_MAX_AGE,
             now: datetime) -> list[Problem]:
    """Every problem, most severe first (stable within a severity)."""
    problems = [
        *_cluster_problems(facts.cluster),
        *_release_problems(facts.releases, facts.cluster),
        *_database_problems(facts.database),
        *_volume_problems(facts.volumes),
        *_runai_problems(facts.runai, facts.cluster),
        *_backup_problems(facts.backup, max_age, now),
        *_schedule_problems(facts.schedules, max_age, now),
        *_permission_problems(facts.permissions),
    ]
    return sorted(problems, key=lambda p: SEVERITIES.index(p.severity))


def exit_code(problems: Iterable[Problem]) -> ExitCode:
    severities = {p.severity for p in problems}
    if CRITICAL in severities:
        return ExitCode.STATUS_CRITICAL
    if WARNING in severities:
        return ExitCode.STATUS_WARNING
    return ExitCode.OK


# -- the document (json/yaml, and what the table view reads) --------------------------------
def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_camel(f.name): _to_json(getattr(value, f.name))
                for f in dataclasses.fields(value)}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def report(facts: StatusFacts, problems: list[Problem], *, now: datetime,
           max_age: float | None) -> dict[str, Any]:
    """One document for programs and people: the facts, derived ages, the problems."""
    doc: dict[str, Any] = _to_json(facts)
    doc["cluster"]["installation"] = facts.cluster.installation
    doc["backup"]["ageSeconds"] = age_seconds(facts.backup.time, now)
    doc["backup"]["maxAgeSeconds"] = max_age
    for claim, c in zip(doc["volumes"]["claims"], facts.volumes.claims, strict=True):
        if c.latest_snapshot is not None:
            claim["latestSnapshot"]["ageSeconds"] = age_seconds(c.latest_snapshot.created, now)
        claim["protection"] = voldata.protection(c.latest_snapshot is not None, c.namespace,
                                                 c.name, facts.backup.volume_data_claims)
    for rel in doc["releases"]["releases"]:
        rel["flagged"] = bool(rel["found"] and rel["status"] not in HEALTHY_RELEASE_STATUSES)
    doc["problems"] = [dataclasses.asdict(p) for p in problems]
    code = exit_code(problems)
    doc["summary"] = {
        "checkedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "critical": sum(p.severity == CRITICAL for p in problems),
        "warnings": sum(p.severity == WARNING for p in problems),
        "info": sum(p.severity == INFO for p in problems),
        "exitCode": int(code),
        "healthy": code is ExitCode.OK,
    }
    return doc
