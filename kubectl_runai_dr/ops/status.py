"""Collect what `status` shows: every read done once, into one facts tree.

Nothing here writes to the cluster: the only requests that are not reads are
SelfSubjectAccessReviews (questions about permissions) and one exec of psql in the
database pod (version and sizes). Each section keeps its own errors: a section the user
may not read degrades ("unknown") and the others go on. Only an unreachable server or
rejected credentials stop the command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from collections.abc import Iterator
from typing import Any

from kubectl_runai_dr.components import helm, registry
from kubectl_runai_dr.conventions import MANAGED_BY as MANAGED_BY_KEY
from kubectl_runai_dr.conventions import MANAGER
from kubectl_runai_dr.errors import ConfigError, DrError
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import Forbidden, Unauthorized, Unreachable
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.ops.record import MANAGED_BY, read_record
from kubectl_runai_dr.plan import database as db
from kubectl_runai_dr.plan import permissions as perm
from kubectl_runai_dr.plan import status as s

QUEUE_LABEL = "runai/queue"
TEMPLATE_SELECTOR = "runai/template=true"
DEFAULT_SNAPSHOT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
EXEC_TIMEOUT = 30.0
# Errors that mean the server cannot be used at all: they end the command.
_FATAL = (Unreachable, Unauthorized, ConfigError)


@contextlib.contextmanager
def _section(errors: list[s.SectionError]) -> Iterator[None]:
    """Record a failure in the section instead of raising it."""
    try:
        yield
    except _FATAL:
        raise
    except DrError as exc:
        errors.append(section_error(exc))


def section_error(exc: DrError) -> s.SectionError:
    return s.SectionError(exc.message, exc.hint or "", isinstance(exc, Forbidden))


class _Collector:
    def __init__(self, kube: KubeApi, names: Names, *, exec_database: bool,
                 permission_commands: tuple[str, ...]) -> None:
        self.kube = kube
        self.names = names
        self.exec_database = exec_database
        self.permission_commands = permission_commands
        self.facts = s.StatusFacts()
        # Read once, used by several sections.
        self.namespaces: dict[str, dict[str, Any]] | None = None  # None: could not list
        self.cp_values: dict[str, Any] | None = None

    # -- cluster and namespaces ------------------------------------------------------------
    def cluster(self) -> None:
        c = self.facts.cluster
        c.context, c.server = self.kube.context, self.kube.server
        with _section(c.errors):
            c.kubernetes_version = str(self.kube.server_version().get("gitVersion", ""))
        with _section(c.errors):
            self.namespaces = {str(ns["metadata"]["name"]): ns
                               for ns in self.kube.list(r.NAMESPACES)}
        if self.namespaces is not None:
            c.control_plane = self.names.control_plane_namespace in self.namespaces
            c.cluster = self.names.cluster_namespace in self.namespaces
            return
        # Cannot list namespaces: ask for the two that matter (errors already recorded).
        for attr, ns in (("control_plane", self.names.control_plane_namespace),
                         ("cluster", self.names.cluster_namespace)):
            with contextlib.suppress(Forbidden):
                setattr(c, attr, self.kube.get_or_none(r.NAMESPACES, ns) is not None)

    # -- helm ------------------------------------------------------------------------------
    def releases(self) -> None:
        section = self.facts.releases
        for half, release, ns in (
                ("control-plane", self.names.control_plane_release,
                 self.names.control_plane_namespace),
                ("cluster", self.names.cluster_release, self.names.cluster_namespace)):
            rel = s.ReleaseFacts(name=release, namespace=ns, half=half)
            section.releases.append(rel)
            try:
                revisions = helm.read_releases(self.kube, release, ns)
            except _FATAL:
                raise
            except DrError as exc:
                rel.error = section_error(exc)
                continue
            deployed, latest = helm.pick_revision(revisions)
            rel.found = latest is not None
            if latest is None:
                continue
            info = latest.info()
            rel.chart, rel.chart_version = latest.chart, latest.chart_version
            rel.app_version, rel.revision, rel.status = (latest.app_version, latest.revision,
                                                         latest.status)
            rel.last_deployed = str(info.get("lastDeployed") or "")
            rel.deployed_revision = deployed.revision if deployed else None
            if half == "control-plane":
                self.cp_values = (deployed or latest).computed_values()
        c = self.facts.cluster
        found = {rel.half: rel.found for rel in section.releases}
        if c.control_plane is None and found.get("control-plane") is not None:
            c.control_plane = found["control-plane"]
        if c.cluster is None and found.get("cluster") is not None:
            c.cluster = found["cluster"]

    # -- database --------------------------------------------------------------------------
    def database(self) -> None:
        d = self.facts.database
        d.statefulset = self.names.database_statefulset
        d.namespace = self.names.control_plane_namespace
        if not self.facts.cluster.control_plane:
            d.applicable = False
            return
        ext = db.external_database(self.cp_values)
        if ext is not None:
            d.external_host, d.external_port = ext.host, ext.port
            return
        ns = self.names.control_plane_namespace
        with _section(d.errors):
            sts = self.kube.get_or_none(r.STATEFULSETS, d.statefulset, ns)
            d.statefulset_found = sts is not None
            if sts is None:
                return
            labels = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            pods = [x for x in self.kube.list(r.PODS, namespace=ns,
                                              label_selector=selector or None)
                    if str(x["metadata"]["name"]).startswith(d.statefulset + "-")]
            pod = db.choose_pod(d.statefulset, pods)
            if pod is None:
                d.ready, d.not_ready = False, "does not exist (the StatefulSet has no pod)"
                return
            d.pod = str(pod["metadata"]["name"])
            problem = db.pod_problem(pod)
            d.ready, d.not_ready = problem is None, problem or ""
            if problem is None:
                d.container = db.choose_container(pod, None)
        if d.ready and d.container:
            self._query_database(d, ns)

    def _query_database(self, d: s.DatabaseFacts, ns: str) -> None:
        if not self.exec_database:
            d.query = "not asked (--no-exec)"
            return
        from kubectl_runai_dr.kube import exec as kexec

        out = io.BytesIO()
        try:
            res = kexec.run(self.kube, ns, d.pod, db.pod_command(s.status_psql_argv()),
                            container=d.container, stdout=out, timeout=EXEC_TIMEOUT)
        except _FATAL as exc:
            if isinstance(exc, Unreachable) and exc.resource == "pods/exec":
                d.query = f"unknown (exec failed: {exc.message})"
                return
            raise
        except Forbidden:
            d.query = s.EXEC_FORBIDDEN
            return
        except DrError as exc:
            d.query = f"unknown ({exc.message})"
            return
        if not res.ok:
            said = " ".join(res.stderr_tail.split())[:300] or "no error output"
            d.query = f"unknown (psql {res.describe()}: {said})"
            return
        try:
            answer = db.parse_json_line(out.getvalue())
            d.version = str(answer["version"])
            d.databases = [{"name": str(x["name"]), "bytes": int(x["bytes"])}
                           for x in answer["databases"]]
        except (ValueError, KeyError, TypeError) as exc:
            d.query = f"unknown (unexpected psql output: {exc})"
            return
        d.query = "ok"

    # -- volumes ---------------------------------------------------------------------------
    def volumes(self) -> None:
        v = self.facts.volumes
        if not self.facts.cluster.control_plane:
            v.applicable = False
            return
        ns = self.names.control_plane_namespace
        claims: dict[str, dict[str, Any]] | None = None
        with _section(v.errors):
            claims = {str(c["metadata"]["name"]): c
                      for c in self.kube.list(r.PVCS, namespace=ns)}
        snapshots: list[dict[str, Any]] = []
        classes_res: r.Resource | None = None
        with _section(v.errors):
            classes_res = self.kube.served(r.VOLUMESNAPSHOTCLASSES)
            if classes_res is None:
                v.snapshot_crds = False
            else:
                for vsc in self.kube.list(classes_res):
                    meta = vsc.get("metadata") or {}
                    default = (meta.get("annotations") or {}).get(DEFAULT_SNAPSHOT_CLASS)
                    v.snapshot_classes.append({"name": str(meta.get("name", "")),
                                               "driver": str(vsc.get("driver", "")),
                                               "default": "yes" if default == "true" else ""})
                v.snapshot_crds = True  # only once the classes are known
        if classes_res is not None:
            with _section(v.errors):
                # same group and version as the classes (one discovery, not two)
                snaps_res = dataclasses.replace(r.VOLUMESNAPSHOTS,
                                                version=classes_res.version)
                selector = ",".join(f"{k}={val}" for k, val in MANAGED_BY.items())
                snapshots = list(self.kube.list(snaps_res, namespace=ns,
                                                label_selector=selector))
        for role, candidates in s.CLAIMS:
            present = [n for n in candidates if claims is not None and n in claims]
            name = present[0] if present else candidates[0]
            c = s.ClaimFacts(role=role, namespace=ns, name=name)
            v.claims.append(c)
            if claims is None:
                continue
            c.found = bool(present)
            if not present:
                continue
            self._claim(c, claims[name], v, snapshots)

    def _claim(self, c: s.ClaimFacts, pvc: dict[str, Any], v: s.VolumesFacts,
               snapshots: list[dict[str, Any]]) -> None:
        spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
        c.phase = str(status.get("phase", ""))
        c.size = str((status.get("capacity") or {}).get("storage")
                     or ((spec.get("resources") or {}).get("requests") or {}).get("storage", ""))
        c.storage_class = str(spec.get("storageClassName") or "")
        c.volume = str(spec.get("volumeName") or "")
        if c.volume:
            with _section(v.errors):
                pv = self.kube.get_or_none(r.PVS, c.volume)
                if pv is not None:
                    pv_spec = pv.get("spec") or {}
                    c.reclaim_policy = str(pv_spec.get("persistentVolumeReclaimPolicy", ""))
                    c.driver = str((pv_spec.get("csi") or {}).get("driver", ""))
        if not c.driver:  # not bound yet, or an in-tree volume: the class's provisioner
            ann = (pvc.get("metadata") or {}).get("annotations") or {}
            c.driver = str(ann.get("volume.kubernetes.io/storage-provisioner", ""))
        matching = [x for x in v.snapshot_classes if x["driver"] == c.driver]
        matching.sort(key=lambda x: (x["default"] != "yes", x["name"]))
        c.snapshot_class = matching[0]["name"] if matching and c.driver else None
        own = [x for x in snapshots
               if ((x.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")
               == c.name]
        facts = sorted((s.SnapshotFacts(
            name=str(x["metadata"]["name"]),
            created=str(x["metadata"].get("creationTimestamp", "")),
            ready=(x.get("status") or {}).get("readyToUse") is True) for x in own),
            key=lambda f: f.created, reverse=True)
        c.latest_snapshot = next((f for f in facts if f.ready), None)
        c.unready_snapshots = [f for f in facts if not f.ready]

    # -- Run:ai objects --------------------------------------------------------------------
    def runai(self) -> None:
        ru = self.facts.runai
        cluster_ns = self.names.cluster_namespace
        with _section(ru.errors):
            res = self.kube.served(r.RUNAICONFIGS)
            ru.runaiconfig = res is not None and self.kube.get_or_none(
                res, self.names.runaiconfig_name, cluster_ns) is not None
        project_ns: set[str] | None = None
        if self.namespaces is not None:
            project_ns = {n for n, obj in self.namespaces.items()
                          if QUEUE_LABEL in ((obj.get("metadata") or {}).get("labels") or {})}
            ru.project_namespaces = len(project_ns)
        with _section(ru.errors):
            res = self.kube.served(r.PROJECTS)
            projects = list(self.kube.list(res)) if res is not None else []
            ru.projects = len(projects)
            if self.namespaces is not None:
                ru.projects_without_namespace = []
                for proj in projects:
                    name = str(proj["metadata"]["name"])
                    ns = str((proj.get("spec") or {}).get("namespace")
                             or (proj.get("status") or {}).get("namespace") or f"runai-{name}")
                    if ns not in self.namespaces:
                        ru.projects_without_namespace.append({"project": name,
                                                              "namespace": ns})
        if project_ns is not None:
            with _section(ru.errors):
                ru.rolebindings = self._count_rolebindings(project_ns)
        with _section(ru.errors):
            if self.facts.cluster.cluster is not False:
                ru.templates = sum(1 for _ in self.kube.list(
                    r.CONFIGMAPS, namespace=cluster_ns, label_selector=TEMPLATE_SELECTOR))
            else:
                ru.templates = 0

    def _count_rolebindings(self, namespaces: set[str]) -> int:
        try:
            return sum(1 for rb in self.kube.list(r.ROLEBINDINGS)
                       if rb["metadata"].get("namespace") in namespaces)
        except Forbidden:  # may read some namespaces only: ask each
            return sum(sum(1 for _ in self.kube.list(r.ROLEBINDINGS, namespace=ns))
                       for ns in sorted(namespaces))

    # -- last backup -----------------------------------------------------------------------
    def backup(self) -> None:
        b = self.facts.backup
        with _section(b.errors):
            record = read_record(self.kube, self.names)
            b.found = record is not None
            if record is None:
                return
            b.namespace = record.get("namespace", "")
            b.time, b.bundle = record.get("time", ""), record.get("bundle", "")
            b.result, b.tool_version = record.get("result", ""), record.get("toolVersion", "")
            failed = record.get("failedComponents", "")
            b.failed_components = _json_list(failed)
            b.location = record.get("location", "")
            encrypted = record.get("encrypted")
            b.encrypted = None if encrypted not in ("true", "false") else encrypted == "true"
            b.excluded_components = _json_list(record.get("excludedComponents", ""))
            b.volume_data_claims = _json_list(record.get("volumeDataClaims", ""))

    # -- scheduled backups (`schedule install`) ---------------------------------------------
    def schedules(self) -> None:
        from kubectl_runai_dr.plan import schedule as sched

        f = self.facts.schedules
        with _section(f.errors):
            for cj in self.kube.list(r.CRONJOBS, label_selector=(
                    f"{MANAGED_BY_KEY}={MANAGER},app.kubernetes.io/component={sched.COMPONENT}")):
                meta, spec = cj["metadata"], cj.get("spec") or {}
                sb = s.ScheduledBackup(namespace=meta.get("namespace", ""),
                                       schedule=str(spec.get("schedule", "")),
                                       suspended=bool(spec.get("suspend")),
                                       created=meta.get("creationTimestamp", ""),
                                       last_successful=str((cj.get("status") or {}).get(
                                           "lastSuccessfulTime") or ""))
                runs = [sched.job_run(j) for j in self.kube.list(r.JOBS, namespace=sb.namespace)
                        if any(o.get("uid") == meta.get("uid")
                               for o in j["metadata"].get("ownerReferences") or [])]
                scheduled = sorted((x for x in runs if not x.manual), key=lambda x: x.started)
                if scheduled:
                    last = scheduled[-1]
                    sb.last_run, sb.last_run_result = last.name, last.result
                    sb.last_run_message = last.message
                    done = [x for x in scheduled if x.result == "succeeded"]
                    if done and done[-1].finished > sb.last_successful:
                        sb.last_successful = done[-1].finished
                f.schedules.append(sb)

    # -- permissions -----------------------------------------------------------------------
    def permissions(self) -> None:
        p = self.facts.permissions
        control_plane = bool(self.facts.cluster.control_plane)
        names = self.names
        if not control_plane:  # SaaS: the record lives in the cluster namespace
            names = dataclasses.replace(names,
                                        control_plane_namespace=names.cluster_namespace)
        answers: dict[tuple[str, str, str, str | None], tuple[bool | None, str]] = {}
        for step, need, ns in perm.checks(registry.PERMISSIONS, self.permission_commands, names):
            check = s.PermissionCheck(command=step.command, step=step.step, verb=need.verb,
                                      resource=need.group_resource,
                                      namespace=perm.scope_text(need.scope, names),
                                      allowed=None, optional=step.optional)
            p.checks.append(check)
            if step.control_plane and not control_plane:
                check.reason = "not applicable: no control plane here"
                continue
            key = (need.verb, need.group, need.resource, ns)
            if key not in answers:
                answers[key] = self._ask(need, ns, p)
            check.allowed, check.reason = answers[key]

    def _ask(self, need: perm.Need, ns: str | None,
             p: s.PermissionsFacts) -> tuple[bool | None, str]:
        if p.user_can_review is False:
            return None, "cannot ask (SelfSubjectAccessReview not permitted)"
        res = r.Resource(need.group, "v1", need.plural, "", ns is not None)
        try:
            allowed, reason = self.kube.can_i(need.verb, res, ns,
                                              subresource=need.subresource)
        except _FATAL:
            raise
        except Forbidden as exc:
            p.user_can_review = False
            p.errors.append(section_error(exc))
            return None, "cannot ask (SelfSubjectAccessReview not permitted)"
        except DrError as exc:
            return None, f"cannot ask: {exc.message}"
        p.user_can_review = True
        return allowed, reason


def _json_list(text: str) -> list[str]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError:
        return [text]
    return [str(x) for x in value] if isinstance(value, list) else [str(value)]


def collect_status(kube: KubeApi, names: Names, *, exec_database: bool = True,
                   permission_commands: tuple[str, ...] = ("backup", "restore"),
                   ) -> s.StatusFacts:
    """Read everything `status` shows. Raises only when the server cannot be used."""
    col = _Collector(kube, names, exec_database=exec_database,
                     permission_commands=permission_commands)
    col.cluster()
    col.releases()
    col.database()
    col.volumes()
    col.runai()
    col.backup()
    col.schedules()
    col.permissions()
    return col.facts
