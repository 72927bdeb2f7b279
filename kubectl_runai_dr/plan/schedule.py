"""Scheduled backups inside the cluster: the manifests `schedule install` applies (pure).

What is installed, all labelled ``app.kubernetes.io/managed-by=kubectl-runai-dr`` and
``runai-dr.run.ai/schedule=<namespace>`` (so `schedule uninstall` removes exactly these):

- the schedule's namespace (default ``runai-dr``; Pod Security ``restricted``), unless it
  exists already (then it is left alone, and kept by uninstall);
- a ServiceAccount ``runai-dr-backup`` there: the pod's identity (the tool falls back to the
  in-cluster service account when no kubeconfig is present);
- RBAC derived from the permission table's ``backup`` rows (``plan/permissions.py``): a
  Role and RoleBinding in each installation namespace for the namespaced needs, one
  ClusterRole and ClusterRoleBinding for the cluster-wide ones; no wildcards; the
  ``--include-secrets`` and ``--snapshots`` steps only when the schedule uses them;
- a CronJob running the tool's own image with ``backup_argv`` (the one place that says
  which backup flags the schedule passes), restricted security context, an ``emptyDir``
  scratch at /tmp with a size limit, and S3 credentials from a Secret reference.

Bundle locations the schedule writes to (``--to``):

- ``s3://BUCKET/PREFIX/``: object storage; credentials from ``--s3-credentials-secret``
  (keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optionally AWS_SESSION_TOKEN, AWS_REGION,
  AWS_ENDPOINT_URL, each a secretKeyRef) or from the ServiceAccount's workload identity
  (``--service-account-annotation eks.amazonaws.com/role-arn=...``);
- ``pvc://CLAIM[/DIR]/``: a PersistentVolumeClaim in the schedule's namespace, mounted
  at /backups; bundles go to /backups/DIR/ (default DIR: runai-dr), which the tool
  creates 0700 as its own (the pod's fsGroup makes the volume writable to it).

Any other scheme, or a plain path (it would name the pod's ephemeral filesystem), is
refused before anything is created.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubectl_runai_dr import conventions
from kubectl_runai_dr.errors import UsageError
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.plan import cron
from kubectl_runai_dr.plan import permissions as perm

DEFAULT_NAMESPACE = "runai-dr"
NAME = "runai-dr-backup"  # CronJob, ServiceAccount (in the schedule's namespace)
SCHEDULE_LABEL = f"{conventions.LABEL_DOMAIN}/schedule"
CREATED_ANNOTATION = f"{conventions.LABEL_DOMAIN}/created-by-schedule"
COMPONENT = "scheduled-backup"
IMAGE_REPOSITORY = "runai-dr/kubectl-runai-dr"  # scripts/image.sh: IMAGE_REPOSITORY
ENTRYPOINT = "/usr/local/bin/kubectl-runai_dr"
USER_ID = 65532  # the image's non-root user ("nonroot")
SCRATCH = "/tmp"
BACKUPS_MOUNT = "/backups"
DEFAULT_PVC_DIR = "runai-dr"
S3_SECRET_KEYS = (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False),
                  ("AWS_SESSION_TOKEN", True), ("AWS_REGION", True),
                  ("AWS_ENDPOINT_URL", True))  # (key, optional)
REQUIRED_S3_KEYS = tuple(k for k, optional in S3_SECRET_KEYS if not optional)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUANTITY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
# The pod's resources: the tool streams dumps to disk, its memory stays small.
RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"},
             "limits": {"cpu": "1", "memory": "1Gi"}}


def default_image(version: str) -> str:
    """The project's published image at the tool's own version (``0.3.0+local`` → ``0.3.0``)."""
    tag = re.sub(r"[^A-Za-z0-9_.-]", "-", version.split("+", 1)[0]) or "latest"
    return f"{IMAGE_REPOSITORY}:{tag}"


@dataclass(frozen=True)
class Location:
    """Where the scheduled backups go."""

    scheme: str  # "s3" or "pvc"
    url: str  # as given (normalised with a trailing slash)
    to: str  # the backup's --to inside the pod
    bucket: str = ""
    claim: str = ""


def parse_location(text: str) -> Location:
    """``s3://BUCKET/PREFIX/`` or ``pvc://CLAIM[/DIR]/``; anything else is a usage error."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise UsageError(f'--to "{text}" is not a location the cluster can write to',
                         hint="use s3://BUCKET/PREFIX/ (object storage) or pvc://CLAIM/DIR/ "
                              "(a PersistentVolumeClaim in the schedule's namespace); a plain "
                              "path would be inside the pod and lost with it")
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not _BUCKET.match(bucket) or ".." in bucket:
            raise UsageError(f'--to "{text}": "{bucket}" is not a valid bucket name',
                             hint="3-63 lowercase letters, digits, dots and hyphens")
        prefix = prefix.strip("/")
        url = f"s3://{bucket}/{prefix + '/' if prefix else ''}"
        return Location("s3", url, url, bucket=bucket)
    if scheme == "pvc":
        claim, _, sub = rest.partition("/")
        if not _DNS_SUBDOMAIN.match(claim) or len(claim) > 253:
            raise UsageError(f'--to "{text}": "{claim}" is not a valid claim name',
                             hint="pvc://CLAIM/DIR/ names a PersistentVolumeClaim in the "
                                  "schedule's namespace")
        parts = [p for p in sub.split("/") if p]
        if any(p in (".", "..") or not re.fullmatch(r"[A-Za-z0-9._-]+", p) for p in parts):
            raise UsageError(f'--to "{text}": the directory may hold only letters, digits, '
                             "'.', '_' and '-', and no '..'")
        path = "/".join(parts) or DEFAULT_PVC_DIR
        return Location("pvc", f"pvc://{claim}/{path}/", f"{BACKUPS_MOUNT}/{path}/",
                        claim=claim)
    raise UsageError(f'--to "{text}": unknown location scheme "{scheme}://"',
                     hint="use s3://BUCKET/PREFIX/ or pvc://CLAIM/DIR/")


def parse_annotations(values: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs of ``--service-account-annotation``."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        prefix, _, name = key.rpartition("/")
        valid = (sep and name and len(name) <= 63
                 and re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", name)
                 and (not prefix or _DNS_SUBDOMAIN.match(prefix)))
        if not valid:
            raise UsageError(f'--service-account-annotation "{item}" is not KEY=VALUE with a '
                             "valid annotation key",
                             hint="e.g. eks.amazonaws.com/role-arn="
                                  "arn:aws:iam::123456789012:role/backup")
        out[key] = value
    return out


@dataclass(frozen=True)
class ScheduleSpec:
    """What `schedule install` was asked for (validated by ``validate``)."""

    schedule: str
    location: Location
    image: str
    namespace: str = DEFAULT_NAMESPACE
    names: Names = field(default_factory=Names)
    keep: int | None = None
    encrypt_to: tuple[str, ...] = ()
    snapshots: bool = False
    include_secrets: bool = False
    s3_credentials_secret: str | None = None
    s3_endpoint: str | None = None
    service_account_annotations: tuple[tuple[str, str], ...] = ()
    scratch_size: str = "20Gi"
    timeout_seconds: int = 6 * 3600
    starting_deadline_seconds: int = 3600
    backoff_limit: int = 1
    history: int = 3
    suspend: bool = False
    control_plane: bool = True  # False: a SaaS cluster (the record lives in the cluster namespace)


def validate(spec: ScheduleSpec) -> None:
    """Every check that needs no cluster; a UsageError says what is wrong."""
    try:
        cron.parse(spec.schedule)
    except cron.CronError as exc:
        raise UsageError(f'--schedule "{spec.schedule}" is not a valid cron expression: {exc}',
                         hint='five fields, e.g. "30 2 * * *" (02:30 every day), or @daily') \
            from None
    if not _DNS_LABEL.match(spec.namespace) or len(spec.namespace) > 63:
        raise UsageError(f'--schedule-namespace "{spec.namespace}" is not a valid namespace name')
    if not spec.image or any(c.isspace() for c in spec.image):
        raise UsageError(f'--image "{spec.image}" is not an image reference')
    if not _QUANTITY.match(spec.scratch_size):
        raise UsageError(f'--scratch-size "{spec.scratch_size}" is not a quantity',
                         hint='e.g. "20Gi"')
    for recipient in spec.encrypt_to:
        if not re.fullmatch(r"age1[0-9a-z]{20,}|ssh-(ed25519|rsa) [A-Za-z0-9+/=]+( .*)?",
                            recipient):
            raise UsageError(f'--encrypt-to "{recipient[:80]}" is not an age recipient',
                             hint="an age public key (age1...) or an ssh public key")
    loc = spec.location
    if loc.scheme == "s3":
        secret = spec.s3_credentials_secret
        if secret is not None and (not _DNS_SUBDOMAIN.match(secret) or len(secret) > 253):
            raise UsageError(f'--s3-credentials-secret "{secret}" is not a valid Secret name')
        if secret is None and not spec.service_account_annotations:
            raise UsageError(f"{loc.url} needs credentials",
                             hint="pass --s3-credentials-secret NAME (a Secret in the schedule's "
                                  "namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) "
                                  "or --service-account-annotation for workload identity "
                                  "(eks.amazonaws.com/role-arn=...)")
        if spec.s3_endpoint is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?",
                                                             spec.s3_endpoint):
            raise UsageError(f'--s3-endpoint "{spec.s3_endpoint}" is not an http(s) URL')
    else:
        if spec.s3_credentials_secret or spec.s3_endpoint:
            raise UsageError("--s3-credentials-secret and --s3-endpoint apply to s3:// "
                             f"locations only, not {loc.url}")


# -- the backup command the CronJob runs ------------------------------------------------------
def backup_argv(spec: ScheduleSpec) -> list[str]:
    """The arguments of the tool's ``backup`` in the CronJob's container (the image's
    entrypoint is the tool). The one place that says which backup flags a schedule uses:
    a test parses it with the real command line."""
    argv = ["backup", "--to", spec.location.to, "--no-color"]
    if spec.keep is not None:
        argv += ["--keep", str(spec.keep)]
    if spec.include_secrets:
        argv.append("--include-secrets")
    if spec.snapshots:
        argv.append("--snapshots")
    for recipient in spec.encrypt_to:
        argv += ["--encrypt-to", recipient]
    if spec.s3_endpoint:
        argv += ["--s3-endpoint", spec.s3_endpoint]
    defaults = Names()
    for flag, attr in (("--namespace", "cluster_namespace"),
                       ("--control-plane-namespace", "control_plane_namespace"),
                       ("--cluster-release", "cluster_release"),
                       ("--control-plane-release", "control_plane_release")):
        value = getattr(spec.names, attr)
        if value != getattr(defaults, attr):
            argv += [flag, value]
    return argv


# -- RBAC from the permission table ---------------------------------------------------------
def _applies(step: perm.StepPermissions, spec: ScheduleSpec) -> bool:
    if step.command != "backup":
        return False
    if step.control_plane and not spec.control_plane:
        return False
    if step.step == "secrets":
        return spec.include_secrets
    if step.step in ("volumes", "snapshots"):
        return spec.snapshots
    return True


def backup_grants(table: Sequence[perm.StepPermissions],
                  spec: ScheduleSpec) -> dict[str | None, list[dict[str, Any]]]:
    """The RBAC rules the schedule's backup needs, by namespace (None: cluster-wide), from
    the permission table's backup rows; one rule per API group and resource, verbs sorted."""
    names = spec.names
    if not spec.control_plane:  # SaaS: the record lives in the cluster namespace
        names = Names(**{**names.__dict__,
                         "control_plane_namespace": names.cluster_namespace})
    verbs: dict[tuple[str | None, str, str], set[str]] = {}
    for step in table:
        if not _applies(step, spec):
            continue
        for need in step.needs:
            ns = perm.namespace_of(need.scope, names)
            verbs.setdefault((ns, need.group, need.resource), set()).add(need.verb)
    out: dict[str | None, list[dict[str, Any]]] = {}
    for (ns, group, resource), vs in sorted(verbs.items(), key=lambda kv: (
            kv[0][0] or "", kv[0][1], kv[0][2])):
        out.setdefault(ns, []).append({"apiGroups": [group], "resources": [resource],
                                       "verbs": sorted(vs)})
    return out


# -- the manifests ---------------------------------------------------------------------------
def labels(spec: ScheduleSpec) -> dict[str, str]:
    return {**conventions.MANAGED_BY_LABELS, "app.kubernetes.io/name": conventions.PREFIX,
            "app.kubernetes.io/component": COMPONENT, SCHEDULE_LABEL: spec.namespace}


def selector(namespace: str) -> str:
    """The label selector of everything one schedule installed."""
    return f"{conventions.MANAGED_BY}={conventions.MANAGER},{SCHEDULE_LABEL}={namespace}"


def rbac_name(spec: ScheduleSpec) -> str:
    """Roles outside the schedule's namespace and cluster-wide objects carry the schedule's
    namespace in their name: two schedules never share them."""
    return f"{NAME}-{spec.namespace}"


def _meta(spec: ScheduleSpec, name: str, namespace: str | None = None,
          annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = labels(spec)
    if annotations:
        meta["annotations"] = annotations
    return meta


def namespace_manifest(spec: ScheduleSpec) -> dict[str, Any]:
    meta = _meta(spec, spec.namespace, annotations={CREATED_ANNOTATION: "true"})
    meta["labels"] = {**meta["labels"], "pod-security.kubernetes.io/enforce": "restricted"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def service_account_manifest(spec: ScheduleSpec) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": _meta(spec, NAME, spec.namespace,
                              dict(spec.service_account_annotations) or None),
            "automountServiceAccountToken": True}


def rbac_manifests(table: Sequence[perm.StepPermissions],
                   spec: ScheduleSpec) -> list[dict[str, Any]]:
    """Roles and RoleBindings per namespace, then the ClusterRole and its binding."""
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": spec.namespace}]
    name = rbac_name(spec)
    out: list[dict[str, Any]] = []
    grants = backup_grants(table, spec)
    for ns in sorted(n for n in grants if n is not None):
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": _meta(spec, name, ns), "rules": grants[ns]})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": _meta(spec, name, ns),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": name},
                    "subjects": subject})
    if grants.get(None):
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": _meta(spec, name), "rules": grants[None]})
        out.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": _meta(spec, name),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": name},
                    "subjects": subject})
    return out


def _env(spec: ScheduleSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": "TMPDIR", "value": SCRATCH},
                                 {"name": "HOME", "value": SCRATCH}]
    if spec.location.scheme == "s3" and spec.s3_credentials_secret:
        for key, optional in S3_SECRET_KEYS:
            ref: dict[str, Any] = {"name": spec.s3_credentials_secret, "key": key}
            if optional:
                ref["optional"] = True
            env.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return env


def cronjob_manifest(spec: ScheduleSpec) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": SCRATCH}]
    volumes: list[dict[str, Any]] = [{"name": "scratch",
                                      "emptyDir": {"sizeLimit": spec.scratch_size}}]
    if spec.location.scheme == "pvc":
        mounts.append({"name": "backups", "mountPath": BACKUPS_MOUNT})
        volumes.append({"name": "backups",
                        "persistentVolumeClaim": {"claimName": spec.location.claim}})
    container = {
        "name": "backup",
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "args": backup_argv(spec),
        "env": _env(spec),
        "resources": copy.deepcopy(RESOURCES),
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    return {
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": _meta(spec, NAME, spec.namespace),
        "spec": {
            "schedule": spec.schedule,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": spec.starting_deadline_seconds,
            "successfulJobsHistoryLimit": spec.history,
            "failedJobsHistoryLimit": spec.history,
            "suspend": spec.suspend,
            "jobTemplate": {
                "metadata": {"labels": labels(spec)},
                "spec": {
                    "backoffLimit": spec.backoff_limit,
                    "activeDeadlineSeconds": spec.timeout_seconds,
                    "template": {
                        "metadata": {"labels": labels(spec)},
                        "spec": {
                            "serviceAccountName": NAME,
                            "automountServiceAccountToken": True,
                            "restartPolicy": "Never",
                            "securityContext": {
                                "runAsNonRoot": True, "runAsUser": USER_ID,
                                "runAsGroup": USER_ID, "fsGroup": USER_ID,
                                "fsGroupChangePolicy": "OnRootMismatch",
                                "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [container],
                            "volumes": volumes,
                        },
                    },
                },
            },
        },
    }


def manifests(table: Sequence[perm.StepPermissions], spec: ScheduleSpec) -> list[dict[str, Any]]:
    """Everything `schedule install` applies, in the order it applies it."""
    return [namespace_manifest(spec), service_account_manifest(spec),
            *rbac_manifests(table, spec), cronjob_manifest(spec)]


def to_yaml(docs: Sequence[dict[str, Any]]) -> str:
    """A multi-document YAML stream (kubectl apply -f, Argo CD, Flux)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:  # no &id001 anchors: plain manifests
            return True

    return "".join("---\n" + yaml.dump(d, Dumper=Dumper, sort_keys=False,
                                        default_flow_style=False) for d in docs)


# -- reading back what runs ------------------------------------------------------------------
@dataclass
class JobRun:
    """One run of the schedule (a Job), as `schedule status` shows it."""

    name: str
    manual: bool
    started: str
    finished: str
    result: str  # "succeeded", "failed", "running"
    duration_seconds: float | None
    message: str = ""


def job_run(job: dict[str, Any], now_iso: str | None = None) -> JobRun:
    from kubectl_runai_dr.plan.status import parse_time

    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or []
             if c.get("status") == "True"}
    if "Complete" in conds:
        result, message = "succeeded", ""
        finished = status.get("completionTime") or conds["Complete"].get("lastTransitionTime", "")
    elif "Failed" in conds:
        result = "failed"
        c = conds["Failed"]
        message = f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")
        finished = c.get("lastTransitionTime", "")
    else:
        result, message, finished = "running", "", ""
    started = status.get("startTime") or meta.get("creationTimestamp", "")
    a, b = parse_time(started), parse_time(finished or (now_iso or ""))
    duration = (b - a).total_seconds() if a and b else None
    manual = (meta.get("annotations") or {}).get("cronjob.kubernetes.io/instantiate") == "manual"
    return JobRun(str(meta.get("name", "")), manual, started, finished, result, duration,
                  message[:300])


def manual_job(cronjob: dict[str, Any], name: str) -> dict[str, Any]:
    """A Job from the CronJob's template, as ``kubectl create job --from=cronjob/...``."""
    tmpl = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    meta = cronjob.get("metadata") or {}
    tmeta = tmpl.get("metadata") or {}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": name, "namespace": meta.get("namespace"),
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": {**(tmeta.get("annotations") or {}),
                            "cronjob.kubernetes.io/instantiate": "manual"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob",
                                 "name": meta.get("name"), "uid": meta.get("uid"),
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": tmpl.get("spec") or {},
    }
