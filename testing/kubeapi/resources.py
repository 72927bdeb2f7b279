"""Resource types the loopback API server knows: built-ins and those from CRDs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
CRD_GROUP = "apiextensions.k8s.io"


@dataclass
class ResourceType:
    group: str
    versions: list[str]  # served versions, preferred first
    storage_version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    subresources: tuple[str, ...] = ()
    has_generation: bool = False
    # delete answers with the object (True) or with a Status (False)
    return_deleted_object: bool = False
    # custom resources: schema per version, CEL rules, the CRD's name
    crd_name: str | None = None
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    field_selectors: tuple[str, ...] = ()
    list_kind: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def is_custom(self) -> bool:
        return self.crd_name is not None

    def api_version(self, version: str | None = None) -> str:
        v = version or self.storage_version
        return f"{self.group}/{v}" if self.group else v

    def qualified(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind_name(self) -> str:
        return self.list_kind or f"{self.kind}List"


def _b(group: str, version: str, plural: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
    singular = kw.pop("singular", kind.lower())
    return ResourceType(group=group, versions=[version], storage_version=version, plural=plural,
                        singular=singular, kind=kind, namespaced=namespaced, **kw)


POD_FIELDS = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
              "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
              "status.nominatedNodeName")
EVENT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")


def builtin_types() -> list[ResourceType]:
    return [
        _b("", "v1", "namespaces", "Namespace", False, verbs=["create", "delete", "get", "list", "patch", "update", "watch"],
           short_names=["ns"], subresources=("status", "finalize"), return_deleted_object=True,
           field_selectors=("status.phase",)),
        _b("", "v1", "configmaps", "ConfigMap", True, short_names=["cm"]),
        _b("", "v1", "secrets", "Secret", True, field_selectors=("type",)),
        _b("", "v1", "pods", "Pod", True, short_names=["po"], categories=["all"],
           subresources=("status", "exec", "log", "ephemeralcontainers"), return_deleted_object=True, has_generation=True,
           field_selectors=POD_FIELDS),
        _b("", "v1", "services", "Service", True, short_names=["svc"], categories=["all"],
           verbs=["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
           subresources=("status",), return_deleted_object=True),
        _b("", "v1", "serviceaccounts", "ServiceAccount", True, short_names=["sa"],
           return_deleted_object=True),
        _b("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, short_names=["pvc"],
           subresources=("status",), return_deleted_object=True),
        _b("", "v1", "persistentvolumes", "PersistentVolume", False, short_names=["pv"],
           subresources=("status",), return_deleted_object=True),
        _b("", "v1", "events", "Event", True, short_names=["ev"], field_selectors=EVENT_FIELDS),
        _b("apps", "v1", "statefulsets", "StatefulSet", True, short_names=["sts"], categories=["all"],
           subresources=("status", "scale"), has_generation=True),
        _b("apps", "v1", "deployments", "Deployment", True, short_names=["deploy"], categories=["all"],
           subresources=("status", "scale"), has_generation=True),
        _b("batch", "v1", "cronjobs", "CronJob", True, short_names=["cj"], categories=["all"],
           subresources=("status",), has_generation=True),
        _b("batch", "v1", "jobs", "Job", True, categories=["all"], subresources=("status",),
           has_generation=True),
        _b("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        _b("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        _b("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        _b("storage.k8s.io", "v1", "storageclasses", "StorageClass", False, short_names=["sc"],
           return_deleted_object=True),
        _b(CRD_GROUP, "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
           short_names=["crd", "crds"], subresources=("status",), has_generation=True,
           return_deleted_object=True, categories=["api-extensions"]),
        _b("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
           verbs=["create"]),
    ]


def type_from_crd(crd: dict[str, Any]) -> ResourceType:
    spec = crd["spec"]
    names = spec["names"]
    served = [v for v in spec["versions"] if v.get("served")]
    storage = [v["name"] for v in spec["versions"] if v.get("storage")]
    subres: set[str] = set()
    schemas: dict[str, dict[str, Any]] = {}
    for v in served:
        if "status" in (v.get("subresources") or {}):
            subres.add("status")
        if "scale" in (v.get("subresources") or {}):
            subres.add("scale")
        schemas[v["name"]] = ((v.get("schema") or {}).get("openAPIV3Schema")) or {}
    served_names = sort_versions([v["name"] for v in served])
    return ResourceType(
        group=spec["group"], versions=served_names, storage_version=storage[0] if storage else served_names[0],
        plural=names["plural"], singular=names.get("singular") or names["kind"].lower(),
        kind=names["kind"], namespaced=spec["scope"] == "Namespaced",
        short_names=list(names.get("shortNames") or []), categories=list(names.get("categories") or []),
        subresources=tuple(sorted(subres)), has_generation=True, return_deleted_object=True,
        crd_name=crd["metadata"]["name"], schemas=schemas, list_kind=names.get("listKind") or "",
    )


def _version_priority(v: str) -> tuple[int, int, int, str]:
    """Kubernetes version priority: GA > beta > alpha, higher numbers first."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", v)
    if not m:
        return (3, 0, 0, v)
    major = int(m.group(1))
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, v)


def sort_versions(versions: list[str]) -> list[str]:
    return sorted(versions, key=_version_priority)
