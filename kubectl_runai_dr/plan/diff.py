"""Compare an object from the bundle (cleaned) with the live one: create, unchanged or
update, and a readable diff (pure).

The live object carries what the server and controllers add (defaults, extra labels,
status). Only what the bundle's object says is compared: the live object is projected onto
the bundle object's shape (maps key by key; lists and scalars whole), so a default the
server filled in is not drift, while a changed or missing label, subject or spec field is.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from kubectl_runai_dr.conventions import SERVER_SET_METADATA

_IGNORED_TOP = ("status",)
_IGNORED_META = SERVER_SET_METADATA


class Action(str, Enum):
    CREATE = "create"
    UNCHANGED = "unchanged"
    UPDATE = "update"


@dataclass(frozen=True)
class Decision:
    action: Action
    diff: str = ""  # unified diff (live → bundle) when action is UPDATE
    changed: list[str] = field(default_factory=list)  # dotted paths that differ


def comparable(obj: dict[str, Any]) -> dict[str, Any]:
    """The parts of an object a restore writes: no status, no server-set metadata."""
    out = {k: v for k, v in obj.items() if k not in _IGNORED_TOP}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _IGNORED_META}
    out["metadata"] = meta
    return out


def project(live: Any, shape: Any) -> Any:
    """``live`` restricted to the keys that ``shape`` has (recursively through maps)."""
    if isinstance(shape, dict) and isinstance(live, dict):
        return {k: project(live[k], v) for k, v in shape.items() if k in live}
    return live


def changed_paths(desired: Any, live: Any, prefix: str = "") -> list[str]:
    """Dotted paths where ``live`` lacks or differs from what ``desired`` says."""
    if isinstance(desired, dict) and isinstance(live, dict):
        out: list[str] = []
        for key, value in desired.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in live:
                out.append(path)
            else:
                out.extend(changed_paths(value, live[key], path))
        return out
    return [] if desired == live else [prefix or "(object)"]


def decide(desired: dict[str, Any], live: dict[str, Any] | None) -> Decision:
    """``desired``: the cleaned bundle object; ``live``: the object in the cluster or None."""
    if live is None:
        return Decision(Action.CREATE)
    want = comparable(desired)
    have = project(comparable(live), want)
    paths = changed_paths(want, have)
    if not paths:
        return Decision(Action.UNCHANGED)
    return Decision(Action.UPDATE, unified(redact(have), redact(want),
                                           label=object_label(desired)), paths)


def redact(obj: Any) -> Any:
    """A Secret with each value replaced by a short digest: a diff shows which keys changed,
    never a secret value. Other objects are returned as they are."""
    if not isinstance(obj, dict) or obj.get("kind") != "Secret":
        return obj
    out = dict(obj)
    for field_name in ("data", "stringData"):
        values = obj.get(field_name)
        if isinstance(values, dict):
            out[field_name] = {k: "<redacted sha256:" + hashlib.sha256(
                str(v).encode()).hexdigest()[:12] + ">" for k, v in values.items()}
    return out


def unified(live: Any, desired: Any, *, label: str) -> str:
    """A unified diff of the YAML renderings, ``live`` → ``desired``."""
    import yaml  # on use: the registry is imported by help and completion

    a = yaml.safe_dump(live, sort_keys=True, default_flow_style=False).splitlines()
    b = yaml.safe_dump(desired, sort_keys=True, default_flow_style=False).splitlines()
    lines = difflib.unified_diff(a, b, fromfile=f"live/{label}", tofile=f"bundle/{label}",
                                 lineterm="", n=2)
    return "\n".join(lines)


def object_label(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    kind = str(obj.get("kind", "object"))
    ns = meta.get("namespace")
    return f"{kind}/{ns}/{meta.get('name')}" if ns else f"{kind}/{meta.get('name')}"


def update_patch(desired: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch that makes the live object say what ``desired`` says.

    Labels and annotations are merged (others' keys stay); spec-like fields are set.
    """
    meta = desired.get("metadata") or {}
    patch: dict[str, Any] = {k: v for k, v in desired.items()
                             if k not in ("apiVersion", "kind", "metadata", "status")}
    pmeta = {k: meta[k] for k in ("labels", "annotations") if meta.get(k)}
    if pmeta:
        patch["metadata"] = pmeta
    return patch
