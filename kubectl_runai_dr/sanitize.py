"""Remove what the API server sets, so an object can be stored, compared and re-created.

A deny-list of server-set fields (as Velero does) rather than an allow-list: labels,
annotations, finalizers chosen by users and everything in ``spec`` survive. Pure functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kubectl_runai_dr.conventions import SERVER_SET_METADATA


def copy_json(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): several times faster than
    ``copy.deepcopy``, which matters for tens of thousands of objects."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def strip_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """For storage: drop only ``metadata.managedFields`` (noise, often half the object)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = dict(obj)
        obj["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return obj


def clean(obj: dict[str, Any], *, keep_status: bool = False) -> dict[str, Any]:
    """A copy of ``obj`` without server-set metadata and (unless asked) without status."""
    out: dict[str, Any] = copy_json(obj)
    meta = out.get("metadata") or {}
    for key in SERVER_SET_METADATA:
        meta.pop(key, None)
    for key in ("labels", "annotations"):
        if key in meta and not meta[key]:
            del meta[key]
    out["metadata"] = meta
    if not keep_status:
        out.pop("status", None)
    return out


# -- per-kind restore actions (Velero's RestoreItemAction: applies_to + execute) -----------
# Each action takes an object already passed through `clean` and returns the object to
# write, or a reason to leave it out (something the cluster creates by itself).

PVC_BIND_ANNOTATIONS = (
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.kubernetes.io/selected-node",
    "volume.kubernetes.io/storage-provisioner",
    "volume.beta.kubernetes.io/storage-provisioner",
)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# ConfigMaps a controller puts in every namespace: restoring them races with it.
CONTROLLER_CONFIGMAPS = ("kube-root-ca.crt", "openshift-service-ca.crt")


@dataclass(frozen=True)
class Skip:
    """Do not restore this object; ``reason`` says why (it is recreated by the cluster)."""

    reason: str


Cleaned = dict[str, Any] | Skip


class RestoreAction:
    """One per-kind fix. Subclasses set ``kinds`` and implement ``execute`` (pure)."""

    name = ""
    kinds: tuple[str, ...] = ()

    def applies_to(self, obj: dict[str, Any]) -> bool:
        return obj.get("kind") in self.kinds

    def execute(self, obj: dict[str, Any], ctx: RestoreCleanContext) -> Cleaned:
        raise NotImplementedError


@dataclass(frozen=True)
class RestoreCleanContext:
    """What an action may need to know: namespace mapping (old → new)."""

    namespace_map: dict[str, str] = field(default_factory=dict)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = obj.setdefault("metadata", {})
    return meta


def _drop_empty(d: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key in d and not d[key]:
            del d[key]


class NamespaceAction(RestoreAction):
    """spec.finalizers belong to the server ("kubernetes"); the name label is set by it."""

    name = "namespace"
    kinds = ("Namespace",)

    def execute(self, obj: dict[str, Any], ctx: RestoreCleanContext) -> Cleaned:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.pop("finalizers", None)
            if not spec:
                obj.pop("spec", None)
        obj.pop("status", None)
        meta = _meta(obj)
        labels = meta.get("labels") or {}
        if labels.get("kubernetes.io/metadata.name") == meta.get("name"):
            labels.pop("kubernetes.io/metadata.name")
        _drop_empty(meta, "labels")
        return obj


class RoleBindingAction(RestoreAction):
    """Subjects keep pointing at the right namespaces when namespaces are mapped."""

    name = "rolebinding"
    kinds = ("RoleBinding", "ClusterRoleBinding")

    def execute(self, obj: dict[str, Any], ctx: RestoreCleanContext) -> Cleaned:
        if not ctx.namespace_map:
            return obj
        for subject in obj.get("subjects") or []:
            ns = subject.get("namespace")
            if ns in ctx.namespace_map:
                subject["namespace"] = ctx.namespace_map[ns]
        return obj


class PvcAction(RestoreAction):
    """Bind state belongs to the old cluster's volumes and nodes: let the new one bind."""

    name = "persistentvolumeclaim"
    kinds = ("PersistentVolumeClaim",)

    def execute(self, obj: dict[str, Any], ctx: RestoreCleanContext) -> Cleaned:
        meta = _meta(obj)
        annotations = meta.get("annotations") or {}
        for key in PVC_BIND_ANNOTATIONS:
            annotations.pop(key, None)
        _drop_empty(meta, "annotations")
        spec = obj.get("spec") or {}
        spec.pop("volumeName", None)
        return obj


class ServiceAction(RestoreAction):
    """clusterIP(s) and node ports are allocated by the server; keep only chosen ones."""

    name = "service"
    kinds = ("Service",)

    def execute(self, obj: dict[str, Any], ctx: RestoreCleanContext) -> Cleaned:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return obj
        if spec.get("clusterIP") not in ("None",):
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
        chosen = _explicit_node_ports(_meta(obj).get("annotations") or {})
        for port in spec.get("ports") or []:
            if "nodePort" in port and port["nodePort"] not in chosen:
                del port["nodePort"]
        if "healthCheckNodePort" in spec and spec["healthCheckNodePort"] not in chosen:
            del spec["healthCheckNodePort"]
        return obj


def _explicit_node_ports(annotations: dict[str, str]) -> set[int]:
    """Node ports the user set (they appear in kubectl's last-applied configuration)."""
    raw = annotations.get(LAST_APPLIED)
    if not raw:
        return set()
    try:
        applied = json.loads(raw)
    except ValueError:
        return set()
    spec = applied.get("spec") if isinstance(applied, dict) else None
    if not isinstance(spec, dict):
        return set()
    ports = {p["nodePort"] for p in spec.get("ports") or []
             if isinstance(p, dict) and isinstance(p.get("nodePort"), int)}
    if isinstance(spec.get("healthCheckNodePort"), int):
        ports.add(spec["healthCheckNodePort"])
    return ports


class ConfigMapAction(RestoreAction):
    """The root CA bundle is published into every namespace by a controller."""

    name = "configmap"
    kinds = ("ConfigMap",)

    def execute(self, obj: dict[str, Any], ctx: RestoreCleanContext) -> Cleaned:
        if _meta(obj).get("name") in CONTROLLER_CONFIGMAPS:
            return Skip("published into every namespace by the cluster")
        return obj


class SecretAction(RestoreAction):
    """Service-account tokens are minted by the new cluster, never restored."""

    name = "secret"
    kinds = ("Secret",)

    def execute(self, obj: dict[str, Any], ctx: RestoreCleanContext) -> Cleaned:
        if obj.get("type") == "kubernetes.io/service-account-token":
            return Skip("service-account tokens are issued by the new cluster")
        return obj


class ServiceAccountAction(RestoreAction):
    """Token secrets listed on a ServiceAccount belong to the old cluster."""

    name = "serviceaccount"
    kinds = ("ServiceAccount",)

    def execute(self, obj: dict[str, Any], ctx: RestoreCleanContext) -> Cleaned:
        name = _meta(obj).get("name", "")
        secrets = [s for s in obj.get("secrets") or []
                   if not str(s.get("name", "")).startswith(f"{name}-token-")]
        if secrets:
            obj["secrets"] = secrets
        else:
            obj.pop("secrets", None)
        return obj


RESTORE_ACTIONS: tuple[RestoreAction, ...] = (
    NamespaceAction(), RoleBindingAction(), PvcAction(), ServiceAction(), ConfigMapAction(),
    SecretAction(), ServiceAccountAction(),
)


def clean_for_restore(obj: dict[str, Any], ctx: RestoreCleanContext | None = None,
                      *, keep_status: bool = False) -> Cleaned:
    """The object as it should be written to a new cluster, or :class:`Skip`.

    The deny-list (:func:`clean`) first, then every per-kind action that applies.
    """
    ctx = ctx or RestoreCleanContext()
    out: Cleaned = clean(obj, keep_status=keep_status)
    for action in RESTORE_ACTIONS:
        if isinstance(out, Skip):
            break
        if action.applies_to(out):
            out = action.execute(out, ctx)
    return out
