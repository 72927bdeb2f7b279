"""Seed the loopback API server with a realistic self-hosted Run:ai installation; the CRDs
it needs (Run:ai 2.16.79's and the CSI snapshot ones) are in crds/."""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import gzip
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .server import ApiServer
from .workloads import template_hash

CRD_DIR = Path(__file__).resolve().parent / "crds"
_CRD_DOCS: list[dict[str, Any]] | None = None


def crd_paths() -> list[Path]:
    """The CRD files of a Run:ai installation (and of the CSI snapshot API), sorted."""
    return sorted(CRD_DIR.glob("*.yaml"))


def crd_docs() -> list[dict[str, Any]]:
    """The CRDs of crd_paths(), parsed once per process (deep copies: callers may change them)."""
    global _CRD_DOCS
    if _CRD_DOCS is None:
        _CRD_DOCS = [d for p in crd_paths() for d in yaml.safe_load_all(p.read_text()) if d]
    return copy.deepcopy(_CRD_DOCS)


BACKEND_NS = "runai-backend"
CLUSTER_NS = "runai"
RESERVATION_NS = "runai-reservation"

PROJECT_ROLEBINDINGS: list[tuple[str, str]] = [
    # (RoleBinding name, ClusterRole it binds)
    ("runai-user-psp", "runai-user-psp"),
    ("runai-project-controller-project", "runai-project-controller-project"),
    ("runai-job-controller-project", "runai-job-controller-project"),
    ("researcher-service-rw", "runai-researcher-service-rw"),
    ("runai-scheduler-rw", "runai-scheduler-rw"),
    ("runai-admission-controller-project", "runai-admission-controller-project"),
    ("runai-job-executor-manual", "runai-job-executor"),
]
SA_FOR_BINDING = {
    "runai-project-controller-project": "runai-project-controller",
    "runai-job-controller-project": "runai-job-controller",
    "researcher-service-rw": "researcher-service",
    "runai-scheduler-rw": "runai-scheduler",
    "runai-admission-controller-project": "runai-admission-controller",
}
FAKE_CA_PEM = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBfzCCASWgAwIBAgIUQ2hhbmdlTWVJblRlc3RzT25seTAKBggqhkjOPQQDAjAV\n"
    "MRMwEQYDVQQDDApydW5haS10ZXN0MB4XDTI0MDEwMTAwMDAwMFoXDTM0MDEwMTAw\n"
    "MDAwMFowFTETMBEGA1UEAwwKcnVuYWktdGVzdDBZMBMGByqGSM49AgEGCCqGSM49\n"
    "-----END CERTIFICATE-----\n"
)
FAKE_KEY_PEM = "-----BEGIN EC PRIVATE KEY-----\nTUlIY0FnRUJCQmdxaGtqT1BRTUJCdz09\n-----END EC PRIVATE KEY-----\n"


def encode_helm_release(release: dict[str, Any]) -> str:
    """Helm 3's storage encoding of a release: base64(gzip(JSON)). A Secret's data.release holds this
    string base64-encoded once more (the Secret encoding); a ConfigMap's data.release holds it as is."""
    raw = json.dumps(release, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)).decode()


def decode_helm_release(data: str) -> dict[str, Any]:
    """Inverse of encode_helm_release (accepts the string helm stores)."""
    raw = base64.b64decode(data)
    if raw[:3] == b"\x1f\x8b\x08":
        raw = gzip.decompress(raw)
    release: dict[str, Any] = json.loads(raw)
    return release


@dataclass
class HelmReleaseInfo:
    name: str
    namespace: str
    chart: str
    chart_version: str
    revisions: list[tuple[int, str]]  # (revision, status)
    config: dict[str, Any]  # what `helm get values` prints for the deployed revision
    object_names: list[str]  # Secret or ConfigMap names

    @property
    def deployed_revision(self) -> int:
        return next(r for r, s in reversed(self.revisions) if s == "deployed")


@dataclass
class SeedInfo:
    version: str
    control_plane: bool
    helm_driver: str
    namespaces: list[str] = field(default_factory=list)  # every namespace created (Run:ai and noise)
    runai_namespaces: list[str] = field(default_factory=list)
    projects: list[str] = field(default_factory=list)
    project_namespaces: list[str] = field(default_factory=list)
    rolebindings: list[tuple[str, str]] = field(default_factory=list)  # (namespace, name) in project namespaces
    clusterroles: list[str] = field(default_factory=list)
    helm_releases: dict[str, HelmReleaseInfo] = field(default_factory=dict)
    runaiconfig_spec: dict[str, Any] = field(default_factory=dict)
    templates: list[str] = field(default_factory=list)
    secrets: list[tuple[str, str]] = field(default_factory=list)  # (namespace, name) Run:ai secrets
    credential_secrets: list[tuple[str, str]] = field(default_factory=list)
    postgres_password: str = ""
    postgres_pod: tuple[str, str] | None = None  # (namespace, pod)
    statefulsets: list[tuple[str, str]] = field(default_factory=list)
    pvcs: list[tuple[str, str]] = field(default_factory=list)
    pvs: list[str] = field(default_factory=list)
    noise: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, namespace, name): not Run:ai's
    objects: int = 0


def _ts(days_ago: float) -> str:
    t = _dt.datetime(2025, 1, 15, 9, 30, tzinfo=_dt.timezone.utc) - _dt.timedelta(days=days_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _helm_time(days_ago: float) -> str:
    t = _dt.datetime(2025, 1, 15, 9, 30, tzinfo=_dt.timezone.utc) - _dt.timedelta(days=days_ago)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "123456789Z"


def _b64(s: str | bytes) -> str:
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def backend_chart_values(version: str) -> dict[str, Any]:
    return {
        "global": {
            "domain": "", "image": {"registry": "", "pullPolicy": "IfNotPresent"},
            "ingress": {"enabled": True, "ingressClass": "nginx", "tlsSecretName": "runai-backend-tls"},
            "postgresql": {"auth": {"host": "", "port": 5432, "username": "", "password": "",
                                    "existingSecret": "", "dbSslMode": "disable"}},
            "affinity": {}, "tolerations": [], "customCA": {"enabled": False},
        },
        "postgresql": {
            "enabled": True,
            "auth": {"existingSecret": "", "postgresPassword": "", "database": "backend"},
            "primary": {"persistence": {"enabled": True, "size": "20Gi", "existingClaim": ""},
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
            "image": {"repository": "bitnami/postgresql", "tag": "15.6.0-debian-12-r7"},
        },
        "thanos": {"receive": {"persistence": {"enabled": True, "size": "100Gi"}},
                   "query": {"replicaCount": 1}},
        "redisQueue": {"master": {"persistence": {"size": "8Gi"}}},
        "keycloakx": {"enabled": True, "adminUser": "admin", "adminPassword": ""},
        "tenantsManager": {"config": {"adminUsername": "test@run.ai", "adminPassword": ""}},
        "grafana": {"enabled": True, "adminUser": "admin"},
        "backend": {"replicaCount": 1, "image": {"tag": version}},
        "frontend": {"replicaCount": 1},
    }


def cluster_chart_values(version: str) -> dict[str, Any]:
    return {
        "controlPlane": {"url": "", "clientSecret": "", "existingSecret": "", "secretKeys": {"clientSecret": ""}},
        "cluster": {"uid": "", "url": "", "customCA": {"enabled": False}},
        "global": {"image": {"registry": "runai.jfrog.io", "tag": version}, "nodeAffinity": {"restrictScheduling": False}},
        "spec": {"researcherService": {"ingress": {"tlsSecret": "runai-cluster-domain-tls-secret"}},
                 "prometheus": {"spec": {"retention": "2h"}}},
        "openshift": False,
    }


def _release(name: str, ns: str, chart: str, chart_version: str, revision: int, status: str,
             description: str, days_ago: float, first_days_ago: float, values: dict[str, Any],
             config: dict[str, Any], manifest: str) -> dict[str, Any]:
    return {
        "name": name,
        "info": {"first_deployed": _helm_time(first_days_ago), "last_deployed": _helm_time(days_ago),
                 "deleted": "", "description": description, "status": status},
        "chart": {
            "metadata": {"name": chart, "version": chart_version, "description": f"Run:ai {chart}",
                         "apiVersion": "v2", "appVersion": chart_version, "type": "application"},
            "lock": None, "templates": [], "values": values, "schema": None, "files": [],
        },
        "config": config,
        "manifest": manifest,
        "hooks": [],
        "version": revision,
        "namespace": ns,
    }


def _store_release(srv: ApiServer, rel: dict[str, Any], driver: str, days_ago: float) -> str:
    name, ns, rev, status = rel["name"], rel["namespace"], rel["version"], rel["info"]["status"]
    obj_name = f"sh.helm.release.v1.{name}.v{rev}"
    labels = {"name": name, "owner": "helm", "status": status, "version": str(rev),
              "modifiedAt": str(int(_dt.datetime(2025, 1, 15, tzinfo=_dt.timezone.utc).timestamp() - days_ago * 86400))}
    enc = encode_helm_release(rel)
    md = {"name": obj_name, "namespace": ns, "labels": labels, "creationTimestamp": _ts(days_ago)}
    if driver == "secret":
        srv.seed({"apiVersion": "v1", "kind": "Secret", "metadata": md, "type": "helm.sh/release.v1",
                  "data": {"release": _b64(enc)}})
    elif driver == "configmap":
        srv.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": {"release": enc}})
    else:
        raise ValueError(f"unknown helm driver {driver!r}")
    return obj_name


def _ns(name: str, labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
        days_ago: float = 90) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "creationTimestamp": _ts(days_ago),
                          "labels": {"kubernetes.io/metadata.name": name, **(labels or {})}}
    if annotations:
        md["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": md, "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"}}


def _namespace_defaults(srv: ApiServer, ns: str) -> int:
    """What every real namespace holds: the root CA ConfigMap and the default ServiceAccount."""
    srv.seed({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                           "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to "
                                           "verify the kube-apiserver when using internal endpoints such as the "
                                           "internal service IP or kubernetes.default.svc. No other usage is "
                                           "guaranteed across distributions of Kubernetes clusters."}},
              "data": {"ca.crt": FAKE_CA_PEM}})
    srv.seed({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}})
    return 2


def _statefulset(name: str, ns: str, component: str, app: str, containers: list[dict[str, Any]],
                 claim: str, size: str) -> dict[str, Any]:
    sel = {"app.kubernetes.io/name": app, "app.kubernetes.io/instance": "runai-backend",
           "app.kubernetes.io/component": component}
    sts: dict[str, Any] = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {**sel, "app.kubernetes.io/managed-by": "Helm"},
                     "annotations": {"meta.helm.sh/release-name": "runai-backend",
                                     "meta.helm.sh/release-namespace": ns}},
        "spec": {
            "replicas": 1, "serviceName": f"{name}-hl", "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": sel},
            "template": {"metadata": {"labels": dict(sel)},
                         "spec": {"containers": containers, "serviceAccountName": "default",
                                  "securityContext": {"fsGroup": 1001}}},
            "volumeClaimTemplates": [{
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim.split("-")[0]},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
            }],
            "updateStrategy": {"type": "RollingUpdate"},
        },
        "status": {"replicas": 1, "readyReplicas": 1, "currentReplicas": 1, "updatedReplicas": 1,
                   "availableReplicas": 1, "observedGeneration": 1},
    }
    rev = f"{name}-{template_hash(sts['spec']['template'])}"
    sts["status"].update(currentRevision=rev, updateRevision=rev)
    return sts


def seed_runai(srv: ApiServer, *, projects: int = 30, rolebindings_per_project: int = 7, control_plane: bool = True,
               helm_driver: str = "secret", version: str = "2.16.79",
               postgres_password: str = "pg-Secr3t-for-tests") -> SeedInfo:
    """A self-hosted Run:ai installation, stored directly (no HTTP): fast enough for thousands of projects."""
    if rolebindings_per_project > len(PROJECT_ROLEBINDINGS):
        raise ValueError(f"at most {len(PROJECT_ROLEBINDINGS)} role bindings per project")
    info = SeedInfo(version=version, control_plane=control_plane, helm_driver=helm_driver,
                    postgres_password=postgres_password)
    n = 0

    def put(obj: dict[str, Any]) -> None:
        nonlocal n
        srv.seed(obj)
        n += 1

    # ---------------------------------------------------------------- namespaces
    run_ns = [CLUSTER_NS, RESERVATION_NS]
    if control_plane:
        run_ns.insert(0, BACKEND_NS)
    for ns in run_ns:
        put(_ns(ns, annotations={"meta.helm.sh/release-namespace": ns} if ns == BACKEND_NS else None, days_ago=200))
        n += _namespace_defaults(srv, ns)
    info.runai_namespaces = list(run_ns)
    info.namespaces.extend(run_ns)

    # ---------------------------------------------------------------- helm releases
    cluster_uid = "3f2a5b1e-7c1d-4e8a-9b62-0d4c1f9e8a77"
    cluster_url = "https://runai-cluster.example.com"
    cp_url = "https://runai.example.com"
    if control_plane:
        backend_config_by_rev = {
            1: {"global": {"domain": "runai.example.com"},
                "postgresql": {"auth": {"postgresPassword": postgres_password}},
                "tenantsManager": {"config": {"adminUsername": "admin@example.com", "adminPassword": "Adm1n-pass"}}},
        }
        backend_config_by_rev[2] = {**backend_config_by_rev[1],
                                    "thanos": {"receive": {"persistence": {"size": "200Gi"}}}}
        backend_config_by_rev[3] = {**backend_config_by_rev[2], "grafana": {"enabled": False}}
        backend_config_by_rev[4] = backend_config_by_rev[2]
        revs = [(1, "superseded", "Install complete", 180), (2, "superseded", "Upgrade complete", 90),
                (3, "failed", "Upgrade \"runai-backend\" failed: context deadline exceeded", 30),
                (4, "deployed", "Rollback to 2", 29)]
        names = []
        manifest = ("---\n# Source: control-plane/templates/backend-deployment.yaml\napiVersion: apps/v1\n"
                    "kind: Deployment\nmetadata:\n  name: runai-backend-backend\n  namespace: runai-backend\n"
                    "---\n# Source: control-plane/charts/postgresql/templates/primary/statefulset.yaml\n"
                    "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: runai-backend-postgresql\n")
        for rev, status, desc, days in revs:
            rel = _release("runai-backend", BACKEND_NS, "control-plane", version, rev, status, desc, days, 180,
                           backend_chart_values(version), backend_config_by_rev[rev], manifest)
            names.append(_store_release(srv, rel, helm_driver, days))
            n += 1
        info.helm_releases["runai-backend"] = HelmReleaseInfo(
            "runai-backend", BACKEND_NS, "control-plane", version, [(r, s) for r, s, _, _ in revs],
            backend_config_by_rev[4], names)
    cluster_config = {"controlPlane": {"url": cp_url, "clientSecret": "c1ient-s3cret-0123456789"},
                      "cluster": {"uid": cluster_uid, "url": cluster_url}}
    cluster_revs = [(1, "superseded", "Install complete", 170), (2, "deployed", "Upgrade complete", 60)]
    names = []
    cmanifest = ("---\n# Source: runai-cluster/templates/runaiconfig.yaml\napiVersion: run.ai/v1\nkind: RunaiConfig\n"
                 "metadata:\n  name: runai\n  namespace: runai\n")
    for rev, status, desc, days in cluster_revs:
        cfg = cluster_config if rev == 2 else {**cluster_config, "controlPlane": {"url": cp_url, "clientSecret": "old"}}
        rel = _release("runai-cluster", CLUSTER_NS, "runai-cluster", version, rev, status, desc, days, 170,
                       cluster_chart_values(version), cfg, cmanifest)
        names.append(_store_release(srv, rel, helm_driver, days))
        n += 1
    info.helm_releases["runai-cluster"] = HelmReleaseInfo("runai-cluster", CLUSTER_NS, "runai-cluster", version,
                                                          [(r, s) for r, s, _, _ in cluster_revs], cluster_config,
                                                          names)

    # ---------------------------------------------------------------- RunaiConfig and templates
    spec = {
        "project-controller": {"createNamespaces": True, "createRoleBindings": True, "clusterWideSecret": True,
                               "limitRange": False},
        "global": {"clusterDomain": "runai-cluster.example.com", "nodeAffinity": {"restrictScheduling": False},
                   "image": {"registry": "runai.jfrog.io"}, "subdomainSupport": False},
        "prometheus": {"spec": {"retention": "2h", "retentionSize": "20GB", "resources": {"limits": {"memory": "4Gi"}}}},
        "limitRange": {"cpuDefaultRequestCpuLimitFactorNoGpu": "0.1", "memoryDefaultRequestMemoryLimitFactorNoGpu": "0.1"},
        "mps-server": {"enabled": False},
        "researcher-service": {"ingress": {"tlsSecret": "runai-cluster-domain-tls-secret"}},
        "__cluster_version": version,
    }
    info.runaiconfig_spec = spec
    put({"apiVersion": "run.ai/v1", "kind": "RunaiConfig",
         "metadata": {"name": "runai", "namespace": CLUSTER_NS, "generation": 3,
                      "labels": {"app.kubernetes.io/managed-by": "Helm"},
                      "annotations": {"meta.helm.sh/release-name": "runai-cluster",
                                      "meta.helm.sh/release-namespace": CLUSTER_NS}},
         "spec": spec,
         "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Ready",
                                    "lastTransitionTime": _ts(60), "message": "All components are ready"}],
                    "observedGeneration": 3, "version": version, "ready": True}})
    for tname, desc, vals in [
        ("pytorch-default", "PyTorch training defaults", "gpu: 1\nimage: pytorch/pytorch:2.1.0\n"),
        ("jupyter-interactive", "Jupyter notebook", "interactive: true\nimage: jupyter/base-notebook\nserviceType: ClusterIP\n"),
        ("tf-distributed", "TensorFlow distributed", "gpu: 2\nworkers: 4\n"),
    ]:
        put({"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": f"template-{tname}", "namespace": CLUSTER_NS, "labels": {"runai/template": "true"}},
             "data": {"name": tname, "description": desc, "values": vals}})
        info.templates.append(f"template-{tname}")

    # ---------------------------------------------------------------- cluster roles
    for _, cr in PROJECT_ROLEBINDINGS[:rolebindings_per_project]:
        put({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": cr, "labels": {"app": "runai"}},
             "rules": [{"apiGroups": ["", "run.ai"], "resources": ["pods", "configmaps", "runaijobs"],
                        "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]})
        info.clusterroles.append(cr)
    for sa in sorted(set(SA_FOR_BINDING.values())):
        put({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": CLUSTER_NS}})

    # ---------------------------------------------------------------- projects
    for i in range(projects):
        p = f"proj-{i:04d}"
        ns = f"runai-{p}"
        put(_ns(ns, labels={"runai/queue": p},
                annotations={"runai/project": p, "openshift.io/display-name": f"Project {p}"}, days_ago=100 - i % 90))
        n += _namespace_defaults(srv, ns)
        put({"apiVersion": "run.ai/v2", "kind": "Project",
             "metadata": {"name": p, "labels": {"runai/queue": p}, "creationTimestamp": _ts(100 - i % 90)},
             "spec": {"namespace": ns, "department": "default",
                      "queues": [{"name": p, "nodepool": "default",
                                  "resources": {"gpu": {"deserved": 1 + i % 4, "limit": -1, "overQuotaWeight": 1},
                                                "cpu": {"deserved": -1}, "memory": {"deserved": -1}}}],
                      "permissions": {"users": [f"user{i}@example.com"], "groups": []},
                      "interactiveJobTimeLimitSecs": 0},
             "status": {"namespace": ns, "phase": "Ready", "message": "",
                        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": _ts(50)}]}})
        for rb, cr in PROJECT_ROLEBINDINGS[:rolebindings_per_project]:
            if rb in SA_FOR_BINDING:
                subjects = [{"kind": "ServiceAccount", "name": SA_FOR_BINDING[rb], "namespace": CLUSTER_NS}]
            elif rb == "runai-user-psp":
                subjects = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                             "name": f"system:serviceaccounts:{ns}"}]
            else:
                subjects = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": f"user{i}@example.com"},
                            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": f"{p}-researchers"}]
            put({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": rb, "namespace": ns, "labels": {"app": "runai", "runai/queue": p}},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cr},
                 "subjects": subjects})
            info.rolebindings.append((ns, rb))
        info.projects.append(p)
        info.project_namespaces.append(ns)
        info.namespaces.append(ns)

    # ---------------------------------------------------------------- secrets
    tls = {"tls.crt": _b64(FAKE_CA_PEM), "tls.key": _b64(FAKE_KEY_PEM)}
    secrets: list[tuple[str, dict[str, Any]]] = [
        (CLUSTER_NS, {"metadata": {"name": "runai-cluster-domain-tls-secret"}, "type": "kubernetes.io/tls", "data": tls}),
        (CLUSTER_NS, {"metadata": {"name": "runai-ca-cert",
                                   "labels": {"run.ai/cluster-wide": "true", "run.ai/name": "runai-ca-cert"}},
                      "type": "Opaque", "data": {"runai-ca.pem": _b64(FAKE_CA_PEM)}}),
        (CLUSTER_NS, {"metadata": {"name": "runai-reg-creds"}, "type": "kubernetes.io/dockerconfigjson",
                      "data": {".dockerconfigjson": _b64(json.dumps({"auths": {"runai.jfrog.io": {
                          "username": "self-hosted-image-puller", "password": "jfrog-token-xyz",
                          "auth": _b64("self-hosted-image-puller:jfrog-token-xyz")}}}))}}),
        (CLUSTER_NS, {"metadata": {"name": "git-credentials-shared",
                                   "labels": {"run.ai/cluster-wide-credentials": "true", "run.ai/resource": "password"}},
                      "type": "Opaque", "data": {"username": _b64("svc-git"), "password": _b64("g1t-pass")}}),
    ]
    if control_plane:
        secrets += [
            (BACKEND_NS, {"metadata": {"name": "runai-backend-tls"}, "type": "kubernetes.io/tls", "data": tls}),
            (BACKEND_NS, {"metadata": {"name": "runai-backend-postgresql",
                                       "labels": {"app.kubernetes.io/name": "postgresql",
                                                  "app.kubernetes.io/instance": "runai-backend",
                                                  "app.kubernetes.io/managed-by": "Helm"},
                                       "annotations": {"meta.helm.sh/release-name": "runai-backend",
                                                       "meta.helm.sh/release-namespace": BACKEND_NS}},
                          "type": "Opaque", "data": {"postgres-password": _b64(postgres_password),
                                                     "password": _b64(postgres_password)}}),
            (BACKEND_NS, {"metadata": {"name": "runai-reg-creds"}, "type": "kubernetes.io/dockerconfigjson",
                          "data": {".dockerconfigjson": _b64('{"auths":{}}')}}),
        ]
    for ns, s in secrets:
        s = {"apiVersion": "v1", "kind": "Secret", **s}
        s["metadata"]["namespace"] = ns
        put(s)
        info.secrets.append((ns, s["metadata"]["name"]))
        if (s["metadata"].get("labels") or {}).get("run.ai/cluster-wide-credentials") == "true":
            info.credential_secrets.append((ns, s["metadata"]["name"]))
    for ns in info.project_namespaces[:2]:
        put({"apiVersion": "v1", "kind": "Secret",
             "metadata": {"name": "s3-credentials", "namespace": ns,
                          "labels": {"run.ai/credentials": "true", "run.ai/resource": "access-key"}},
             "type": "Opaque", "data": {"AWS_ACCESS_KEY_ID": _b64("AKIAEXAMPLE"),
                                        "AWS_SECRET_ACCESS_KEY": _b64("secret/key")}})
        info.credential_secrets.append((ns, "s3-credentials"))

    # ---------------------------------------------------------------- storage and stateful sets
    if control_plane:
        put({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
             "metadata": {"name": "gp3-csi", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
             "provisioner": "ebs.csi.aws.com", "parameters": {"type": "gp3", "encrypted": "true"},
             "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer", "allowVolumeExpansion": True})
        put({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
             "metadata": {"name": "csi-aws-vsc"}, "driver": "ebs.csi.aws.com", "deletionPolicy": "Delete"})
        pg_env = [
            {"name": "BITNAMI_DEBUG", "value": "false"},
            {"name": "POSTGRESQL_PORT_NUMBER", "value": "5432"},
            {"name": "PGDATA", "value": "/bitnami/postgresql/data"},
            {"name": "POSTGRES_POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {
                "name": "runai-backend-postgresql", "key": "postgres-password"}}},
            {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {
                "name": "runai-backend-postgresql", "key": "password"}}},
            {"name": "POSTGRES_DATABASE", "value": "backend"},
        ]
        pg_container = {"name": "postgresql", "image": "docker.io/bitnami/postgresql:15.6.0-debian-12-r7",
                        "imagePullPolicy": "IfNotPresent", "env": pg_env,
                        "ports": [{"name": "tcp-postgresql", "containerPort": 5432, "protocol": "TCP"}],
                        "volumeMounts": [{"name": "data", "mountPath": "/bitnami/postgresql"}],
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}
        # (name, component, app, containers, claim template, size, reclaim policy)
        sts_specs: list[tuple[str, str, str, list[dict[str, Any]], str, str, str]] = [
            ("runai-backend-postgresql", "primary", "postgresql", [pg_container], "data", "20Gi", "Delete"),
            ("runai-backend-thanos-receive", "receive", "thanos",
             [{"name": "thanos-receive", "image": "quay.io/thanos/thanos:v0.34.1", "args": ["receive"]}],
             "data", "200Gi", "Retain"),
            ("runai-backend-redis-queue-master", "master", "redis-queue",
             [{"name": "redis", "image": "docker.io/bitnami/redis:7.2"}], "data", "8Gi", "Retain"),
        ]
        for sts_name, comp, app, containers, claim, size, reclaim in sts_specs:
            sts = srv.seed(_statefulset(sts_name, BACKEND_NS, comp, app, containers, claim, size))
            n += 1
            info.statefulsets.append((BACKEND_NS, sts_name))
            pvc_name = f"{claim}-{sts_name}-0"
            pv_name = f"pvc-{zlib.crc32(pvc_name.encode()) % 10**8:08d}-4c1f-4e8a-9b62-0d4c1f9e8a77"
            sel = sts["spec"]["selector"]["matchLabels"]
            pvc = srv.seed({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": pvc_name, "namespace": BACKEND_NS, "labels": dict(sel),
                             "finalizers": ["kubernetes.io/pvc-protection"],
                             "annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                             "pv.kubernetes.io/bound-by-controller": "yes",
                                             "volume.beta.kubernetes.io/storage-provisioner": "ebs.csi.aws.com",
                                             "volume.kubernetes.io/storage-provisioner": "ebs.csi.aws.com"}},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                         "storageClassName": "gp3-csi", "volumeMode": "Filesystem", "volumeName": pv_name},
                "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": size}},
            })
            n += 1
            put({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": pv_name, "finalizers": ["kubernetes.io/pv-protection"],
                             "annotations": {"pv.kubernetes.io/provisioned-by": "ebs.csi.aws.com",
                                             "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                                             "volume.kubernetes.io/provisioner-deletion-secret-namespace": ""}},
                "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": size},
                         "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": pvc_name,
                                      "namespace": BACKEND_NS, "uid": pvc["metadata"]["uid"],
                                      "resourceVersion": pvc["metadata"]["resourceVersion"]},
                         "csi": {"driver": "ebs.csi.aws.com", "fsType": "ext4",
                                 "volumeHandle": f"vol-0{zlib.crc32(pv_name.encode()):016x}",
                                 "volumeAttributes": {"storage.kubernetes.io/csiProvisionerIdentity": "1700000000000-8081-ebs.csi.aws.com"}},
                         "persistentVolumeReclaimPolicy": reclaim, "storageClassName": "gp3-csi",
                         "volumeMode": "Filesystem",
                         "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{
                             "key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["us-east-1a"]}]}]}}},
                "status": {"phase": "Bound"},
            })
            info.pvcs.append((BACKEND_NS, pvc_name))
            info.pvs.append(pv_name)
            pod_name = f"{sts_name}-0"
            put({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": BACKEND_NS,
                             "labels": {**sel, "statefulset.kubernetes.io/pod-name": pod_name,
                                        "apps.kubernetes.io/pod-index": "0",
                                        "controller-revision-hash": sts["status"]["currentRevision"]},
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts_name,
                                                  "uid": sts["metadata"]["uid"], "controller": True,
                                                  "blockOwnerDeletion": True}]},
                "spec": {"containers": containers, "hostname": pod_name, "subdomain": f"{sts_name}-hl",
                         "nodeName": "ip-10-0-1-23.ec2.internal", "restartPolicy": "Always",
                         "serviceAccountName": "default", "schedulerName": "default-scheduler",
                         "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": pvc_name}}]},
                "status": {
                    "phase": "Running", "podIP": "10.0.1.57", "hostIP": "10.0.1.23", "qosClass": "Burstable",
                    "startTime": _ts(29),
                    "conditions": [{"type": t, "status": "True", "lastTransitionTime": _ts(29)} for t in
                                   ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                    "PodScheduled")],
                    "containerStatuses": [{"name": c["name"], "ready": True, "started": True, "restartCount": 0,
                                           "image": c["image"], "imageID": "", "containerID": "containerd://0123abcd",
                                           "state": {"running": {"startedAt": _ts(29)}}} for c in containers],
                },
            })
            if sts_name == "runai-backend-postgresql":
                info.postgres_pod = (BACKEND_NS, pod_name)
        put({"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "runai-backend-postgresql", "namespace": BACKEND_NS,
                          "labels": {"app.kubernetes.io/name": "postgresql",
                                     "app.kubernetes.io/instance": "runai-backend",
                                     "app.kubernetes.io/component": "primary",
                                     "app.kubernetes.io/managed-by": "Helm"},
                          "annotations": {"meta.helm.sh/release-name": "runai-backend",
                                          "meta.helm.sh/release-namespace": BACKEND_NS}},
             "spec": {"type": "ClusterIP", "clusterIP": "172.20.14.2", "ports": [
                 {"name": "tcp-postgresql", "port": 5432, "protocol": "TCP", "targetPort": "tcp-postgresql"}],
                 "selector": {"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": "runai-backend",
                              "app.kubernetes.io/component": "primary"}}})
        put({"apiVersion": "apps/v1", "kind": "Deployment",
             "metadata": {"name": "runai-backend-thanos-query", "namespace": BACKEND_NS},
             "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "thanos-query"}},
                      "template": {"metadata": {"labels": {"app": "thanos-query"}},
                                   "spec": {"containers": [{"name": "query", "image": "quay.io/thanos/thanos:v0.34.1"}]}}}})

    # ---------------------------------------------------------------- noise: not Run:ai's, must not be backed up
    for ns, labels in [("monitoring", {}), ("ingress-nginx", {"app": "ingress-nginx"}), ("team-scratch", {}),
                       ("runai-lookalike", {"team": "runai"})]:
        put(_ns(ns, labels=labels, days_ago=300))
        n += _namespace_defaults(srv, ns)
        info.namespaces.append(ns)
        info.noise.append(("Namespace", "", ns))
        put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app-settings", "namespace": ns},
             "data": {"LOG_LEVEL": "info"}})
        info.noise.append(("ConfigMap", ns, "app-settings"))
        put({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "edit-binding", "namespace": ns},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob@example.com"}]})
        info.noise.append(("RoleBinding", ns, "edit-binding"))
    for name, labels in [("unrelated-settings", {}), ("template-lookalike", {"runai/template": "false"})]:
        put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": CLUSTER_NS,
                                                                  "labels": labels},
             "data": {"name": "x", "values": "y: 1\n"}})
        info.noise.append(("ConfigMap", CLUSTER_NS, name))
    put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "unrelated-token", "namespace": CLUSTER_NS},
         "type": "Opaque", "data": {"token": _b64("not-runai")}})
    info.noise.append(("Secret", CLUSTER_NS, "unrelated-token"))
    put({"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "sh.helm.release.v1.ingress-nginx.v1", "namespace": "ingress-nginx",
                      "labels": {"name": "ingress-nginx", "owner": "helm", "status": "deployed", "version": "1"}},
         "type": "helm.sh/release.v1",
         "data": {"release": _b64(encode_helm_release(_release(
             "ingress-nginx", "ingress-nginx", "ingress-nginx", "4.10.0", 1, "deployed", "Install complete", 300,
             300, {"controller": {"replicaCount": 1}}, {"controller": {"replicaCount": 2}}, "")))}})
    info.noise.append(("Secret", "ingress-nginx", "sh.helm.release.v1.ingress-nginx.v1"))
    info.objects = n
    return info
