"""The last-backup record: a small ConfigMap that `status` reads.

Kept in the control-plane namespace, or the cluster namespace on a SaaS cluster (no
control plane on site).
"""

from __future__ import annotations

import json
from typing import Any

from kubectl_runai_dr import conventions
from kubectl_runai_dr.errors import DrError
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import NotFound
from kubectl_runai_dr.model import Names

RECORD_NAME = conventions.RECORD_NAME
MANAGED_BY = conventions.MANAGED_BY_LABELS


def record_namespace(kube: KubeApi, names: Names) -> str | None:
    for ns in (names.control_plane_namespace, names.cluster_namespace):
        if kube.get_or_none(r.NAMESPACES, ns) is not None:
            return ns
    return None


def write_record(kube: KubeApi, names: Names, info: dict[str, Any]) -> str | None:
    """Create or update the record. Returns a warning instead of failing the backup."""
    try:
        ns = record_namespace(kube, names)
        if ns is None:
            return "no Run:ai namespace to keep the last-backup record in"
        data = {k: v if isinstance(v, str) else json.dumps(v) for k, v in info.items()}
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": RECORD_NAME, "namespace": ns, "labels": MANAGED_BY},
                "data": data}
        try:
            kube.patch(r.CONFIGMAPS, RECORD_NAME, {"metadata": {"labels": MANAGED_BY},
                                                   "data": data}, namespace=ns)
        except NotFound:
            kube.create(r.CONFIGMAPS, body, namespace=ns)
    except DrError as exc:
        return f"could not record the backup in ConfigMap {RECORD_NAME}: {exc.message}"
    return None


def read_record(kube: KubeApi, names: Names) -> dict[str, str] | None:
    for ns in (names.control_plane_namespace, names.cluster_namespace):
        obj = kube.get_or_none(r.CONFIGMAPS, RECORD_NAME, ns)
        if obj is not None:
            data: dict[str, str] = obj.get("data") or {}
            return {**data, "namespace": ns}
    return None
