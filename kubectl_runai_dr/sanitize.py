"""Remove what the API server sets, so an object can be stored, compared and re-created.

A deny-list of server-set fields (as Velero does) rather than an allow-list: labels,
annotations, finalizers chosen by users and everything in ``spec`` survive. Pure functions.
"""

from __future__ import annotations

import copy
from typing import Any

SERVER_SET_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
    "ownerReferences",  # uids of owners that will not exist in a rebuilt cluster
    "generateName",
)


def strip_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """For storage: drop only ``metadata.managedFields`` (noise, often half the object)."""
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = dict(obj)
        obj["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return obj


def clean(obj: dict[str, Any], *, keep_status: bool = False) -> dict[str, Any]:
    """A copy of ``obj`` without server-set metadata and (unless asked) without status."""
    out = copy.deepcopy(obj)
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
