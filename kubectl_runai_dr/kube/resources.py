"""Kubernetes resource types the tool touches, and the pure path builder."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``rolebindings.rbac.authorization.k8s.io``, ``namespaces`` for the core group."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [base]
        if self.namespaced and namespace is not None:
            parts.append(f"/namespaces/{quote(namespace, safe='')}")
        parts.append(f"/{self.plural}")
        if name is not None:
            parts.append(f"/{quote(name, safe='')}")
            if subresource:
                parts.append(f"/{subresource}")
        return "".join(parts)

    def describe(self, namespace: str | None = None, name: str | None = None) -> str:
        """Human wording for messages: ``rolebindings "x" in namespace "runai-a"``."""
        text = self.group_resource
        if name:
            text += f' "{name}"'
        if self.namespaced and namespace:
            text += f' in namespace "{namespace}"'
        return text


NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", True)
SECRETS = Resource("", "v1", "secrets", "Secret", True)
PODS = Resource("", "v1", "pods", "Pod", True)
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
PVS = Resource("", "v1", "persistentvolumes", "PersistentVolume", False)
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet", True)
ROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True)
CLUSTERROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role", True)
STORAGECLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False)
SSAR = Resource("authorization.k8s.io", "v1", "selfsubjectaccessreviews",
                "SelfSubjectAccessReview", False)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                "CustomResourceDefinition", False)
EVENTS = Resource("", "v1", "events", "Event", True)
RUNAICONFIGS = Resource("run.ai", "v1", "runaiconfigs", "RunaiConfig", True)
# projects.run.ai serves several versions; the version actually used comes from discovery.
PROJECTS = Resource("run.ai", "v2", "projects", "Project", False)
VOLUMESNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots",
                           "VolumeSnapshot", True)
VOLUMESNAPSHOTCONTENTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents",
                                  "VolumeSnapshotContent", False)
VOLUMESNAPSHOTCLASSES = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshotclasses",
                                 "VolumeSnapshotClass", False)
# `schedule`: the in-cluster CronJob and what it runs as.
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount", True)
CLUSTERROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings",
                               "ClusterRoleBinding", False)
CRONJOBS = Resource("batch", "v1", "cronjobs", "CronJob", True)
JOBS = Resource("batch", "v1", "jobs", "Job", True)
