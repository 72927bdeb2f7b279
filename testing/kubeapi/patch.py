"""JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """An invalid patch document (answered 422 or 400 by the caller)."""


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


def _unescape(tok: str) -> str:
    return tok.replace("~1", "/").replace("~0", "~")


def _resolve(doc: Any, path: str) -> tuple[Any, str | int]:
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    toks = [_unescape(t) for t in path[1:].split("/")]
    cur = doc
    for t in toks[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"doc is missing path: {path!r}")
            cur = cur[t]
        elif isinstance(cur, list):
            try:
                cur = cur[int(t)]
            except (ValueError, IndexError) as e:
                raise PatchError(f"doc is missing path: {path!r}") from e
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    last = toks[-1]
    if isinstance(cur, list):
        if last == "-":
            return cur, len(cur)
        try:
            return cur, int(last)
        except ValueError as e:
            raise PatchError(f"invalid array index {last!r}") from e
    return cur, last


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("invalid json patch operation")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"missing value for {kind}")
        if path == "" and kind in ("add", "replace"):
            doc = copy.deepcopy(op["value"])
            continue
        if kind == "move" or kind == "copy":
            src_parent, src_key = _resolve(doc, op["from"])
            try:
                value = src_parent[src_key]
            except (KeyError, IndexError) as e:
                raise PatchError(f"missing from path {op['from']!r}") from e
            if kind == "move":
                del src_parent[src_key]
            parent, key = _resolve(doc, path)
            _add(parent, key, copy.deepcopy(value), path)
            continue
        parent, key = _resolve(doc, path)
        if kind == "add":
            _add(parent, key, copy.deepcopy(op["value"]), path)
        elif kind == "remove":
            try:
                del parent[key]
            except (KeyError, IndexError) as e:
                raise PatchError(f"unable to remove nonexistent key: {path}: missing value") from e
        elif kind == "replace":
            if isinstance(parent, dict) and key not in parent:
                raise PatchError(f"replace operation does not apply: doc is missing key: {path}: missing value")
            if isinstance(parent, list) and isinstance(key, int) and not 0 <= key < len(parent):
                raise PatchError(f"replace operation does not apply: doc is missing key: {path}")
            parent[key] = copy.deepcopy(op["value"])
        elif kind == "test":
            try:
                cur = parent[key]
            except (KeyError, IndexError) as e:
                raise PatchError(f"testing value {path} failed: missing") from e
            if cur != op["value"]:
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc


def _add(parent: Any, key: Any, value: Any, path: str) -> None:
    if isinstance(parent, list):
        if not (0 <= key <= len(parent)):
            raise PatchError(f"add operation does not apply: doc is missing path: {path!r}")
        parent.insert(key, value)
    elif isinstance(parent, dict):
        parent[key] = value
    else:
        raise PatchError(f"add operation does not apply: doc is missing path: {path!r}")


# Strategic merge: list fields merged by a key, as declared by the Kubernetes Go types.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "secrets": "name",  # ServiceAccount.secrets
}
# ports: containerPort in containers, port in service specs
PRIMITIVE_SET_LISTS = {"finalizers"}


def _merge_key_for(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def strategic_merge(target: Any, patch: Any, field: str = "") -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            if isinstance(result.get(name), list):
                result[name] = [x for x in result[name] if x not in v]
            continue
        if v is None:
            result.pop(k, None)
        elif isinstance(v, list):
            result[k] = _merge_list(result.get(k), v, k)
        elif isinstance(v, dict):
            merged = strategic_merge(result.get(k), v, k)
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        else:
            result[k] = v
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(current: Any, patch: list[Any], field: str) -> list[Any]:
    if not isinstance(current, list):
        current = []
    if field in PRIMITIVE_SET_LISTS:
        out = list(current)
        for x in patch:
            if x not in out:
                out.append(x)
        return out
    key = _merge_key_for(field, patch + current)
    if key is None or not all(isinstance(i, dict) for i in patch):
        if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
            return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
        return copy.deepcopy(patch)
    if any(i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if "$patch" not in i]
    out = [copy.deepcopy(i) for i in current]
    for item in patch:
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        idx = next((n for n, c in enumerate(out) if isinstance(c, dict) and c.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(strategic_merge({}, item, field))
        else:
            out[idx] = strategic_merge(out[idx], item, field)
    return out


def apply_merge(target: Any, patch: Any, field: str = "") -> Any:
    """A simple server-side apply: strategic merge without deletions by null."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if isinstance(v, dict):
            result[k] = apply_merge(result.get(k), v, k)
        elif isinstance(v, list):
            result[k] = _merge_list(result.get(k), v, k)
        else:
            result[k] = copy.deepcopy(v)
    return result
