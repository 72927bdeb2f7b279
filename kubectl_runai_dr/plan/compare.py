"""What changed between two states of a Run:ai installation, in the domain's terms (pure).

A *side* is a bundle or the live cluster. ``ops/diff.py`` reads each side's objects per
component and hands them to the ``*_data`` functions here, which reduce them to plain
comparable data (volatile fields gone: the deny-list restore uses, and ``status``); the
``*_changes`` functions compare two such reductions and say what changed:

- helm values and the RunaiConfig spec: keys added, removed or changed as dotted paths
  (``global.domain``), chart version and revision;
- projects: projects, namespaces, their labels and annotations, role bindings and the
  subjects of each binding (who gained or lost access to which project);
- templates, scheduling objects, secrets: objects added, removed, changed by path;
- database: per database and table, row counts and tables added or removed;
- volumes: snapshots recorded in one and not the other, restore sizes.

Values under secret-looking keys (``password``, ``clientSecret``, ``token``, a Secret's
data, ...) and PEM private keys are never shown: a short keyed digest stands in for them
(HMAC-SHA256 under a key the caller chooses per run), so equal digests in one report
mean equal values, while a digest cannot be compared with another run's or searched for
a guessed password.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubectl_runai_dr.conventions import SERVER_SET_METADATA
from kubectl_runai_dr.plan.database import count_map

ADDED, REMOVED, CHANGED = "added", "removed", "changed"
SIGN = {ADDED: "+", REMOVED: "-", CHANGED: "~"}

# A key whose value is secret: matched against every key of a value's path, so a whole
# subtree under a secret-looking key (``secrets: {...}``) is masked too.
SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|credential|private|api[-_]?key|access[-_]?key|"
    r"signing[-_]?key|encryption[-_]?key|^key$|[-_.]key$|salt|cookie|dsn|"
    r"connection[-_]?string", re.IGNORECASE)
PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
SHOWN_LIMIT = 200  # characters of a value kept for display (machine output: the value)
LIST_MASK = ("data", "stringData")  # a Secret's values: every one masked


@dataclass(frozen=True)
class Change:
    """One difference. ``what`` names the thing in the domain's words (value, project,
    namespace, label, subject, table, snapshot, ...), ``item`` which one (a release, a
    project, ``namespace/binding``, a database), ``path`` where inside it (a dotted
    path, a label key, a subject, a table). ``old``/``new``: display-safe values (masked
    when secret-looking), None where the side has none."""

    change: str
    what: str
    item: str
    path: str = ""
    old: Any = None
    new: Any = None
    project: str = ""  # the project a namespace, binding or subject belongs to

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"change": self.change, "what": self.what, "item": self.item}
        if self.path:
            out["path"] = self.path
        if self.change != ADDED:
            out["old"] = self.old
        if self.change != REMOVED:
            out["new"] = self.new
        if self.project:
            out["project"] = self.project
        return out


@dataclass
class ComponentDiff:
    """One component's comparison. ``a``/``b`` say what each side holds for it (``held``,
    ``not present`` when the backup found nothing, or why it cannot be compared);
    ``compared`` is False when a side does not hold it, and then nothing counts."""

    name: str
    title: str
    a: str = "held"
    b: str = "held"
    compared: bool = True
    changes: list[Change] = field(default_factory=list)
    error: str = ""  # the live side could not be read (exit code > 1)
    error_code: int = 0

    def counts(self) -> dict[str, int]:
        out = {ADDED: 0, REMOVED: 0, CHANGED: 0}
        for c in self.changes:
            out[c.change] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "title": self.title, "a": self.a,
                               "b": self.b, "compared": self.compared, **self.counts(),
                               "changes": [c.to_json() for c in self.changes]}
        if self.error:
            out["error"] = self.error
        return out


# -- values ------------------------------------------------------------------------------
def secret_key(key: str) -> bool:
    return bool(SECRET_KEY.search(key))


def digest(value: Any, key: bytes) -> str:
    """A short keyed digest of a secret value: ``<secret:0123456789ab>``."""
    data = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    mac = hmac.new(key, data.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return f"<secret:{mac.hexdigest()[:12]}>"


def printable(text: str, limit: int = SHOWN_LIMIT) -> str:
    """Text from a bundle or the cluster made safe to print: no control characters or
    direction overrides, bounded."""
    text = _CONTROLS.sub("", text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def shown(value: Any, *, secret: bool, key: bytes) -> Any:
    """A value as a report shows it: masked when secret (or a PEM private key), else
    scalars as they are and strings made printable; lists and maps as compact JSON."""
    if value is None:
        return None
    if secret or (isinstance(value, str) and PEM_PRIVATE.search(value)):
        return digest(value, key)
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return printable(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if PEM_PRIVATE.search(text) or _holds_secret(value):
        return digest(value, key)
    return printable(text)


def _holds_secret(value: Any) -> bool:
    """A list or map with a secret-looking key anywhere inside, or an entry named like
    one (``{"name": "DB_PASSWORD", "value": ...}``, as in a container's env)."""
    if isinstance(value, dict):
        if any(secret_key(str(k)) for k in value):
            return True
        name = value.get("name")
        if isinstance(name, str) and secret_key(name) and len(value) > 1:
            return True
        return any(_holds_secret(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_secret(v) for v in value)
    return False


def _join(prefix: str, key: Any) -> str:
    key = printable(str(key), 120)
    if "." in key or not key:
        key = f'"{key}"'
        return f"{prefix}[{key}]" if prefix else f"[{key}]"
    return f"{prefix}.{key}" if prefix else key


def _leaves(value: Any, prefix: str, secret: bool) -> Iterable[tuple[str, Any, bool]]:
    """(path, value, secret) of every leaf under a map (an empty map is a leaf)."""
    if isinstance(value, dict) and value:
        for k in sorted(value, key=str):
            yield from _leaves(value[k], _join(prefix, k), secret or secret_key(str(k)))
    else:
        yield prefix, value, secret


def value_changes(a: Any, b: Any, *, what: str, item: str, key: bytes, prefix: str = "",
                  secret: bool = False, project: str = "") -> list[Change]:
    """Keys added, removed and changed between two values, as dotted paths to the leaves.
    Maps are compared key by key; lists and scalars whole."""
    out: list[Change] = []

    def walk(x: Any, y: Any, path: str, masked: bool) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y), key=str):
                sub, sub_masked = _join(path, k), masked or secret_key(str(k))
                if k not in y:
                    for p, v, m in _leaves(x[k], sub, sub_masked):
                        out.append(Change(REMOVED, what, item, p,
                                          old=shown(v, secret=m, key=key), project=project))
                elif k not in x:
                    for p, v, m in _leaves(y[k], sub, sub_masked):
                        out.append(Change(ADDED, what, item, p,
                                          new=shown(v, secret=m, key=key), project=project))
                else:
                    walk(x[k], y[k], sub, sub_masked)
        elif isinstance(x, dict) or isinstance(y, dict):  # a map for a scalar: by leaves
            for p, v, m in _leaves(x, path, masked):
                out.append(Change(REMOVED, what, item, p, old=shown(v, secret=m, key=key),
                                  project=project))
            for p, v, m in _leaves(y, path, masked):
                out.append(Change(ADDED, what, item, p, new=shown(v, secret=m, key=key),
                                  project=project))
        elif x != y or type(x) is not type(y):
            out.append(Change(CHANGED, what, item, path, shown(x, secret=masked, key=key),
                              shown(y, secret=masked, key=key), project=project))

    walk(a, b, prefix, secret)
    return out


def _keyed(a: Mapping[str, Any], b: Mapping[str, Any], what: str, key: bytes,
           inner: Any = None, project: Mapping[str, str] | None = None) -> list[Change]:
    """Items added and removed between two maps of items; ``inner(name, x, y)`` gives the
    changes of an item both hold (default: its value by path)."""
    out: list[Change] = []
    project = project or {}
    for name in sorted(set(a) | set(b)):
        p = project.get(name, "")
        if name not in b:
            out.append(Change(REMOVED, what, name, project=p))
        elif name not in a:
            out.append(Change(ADDED, what, name, project=p))
        elif a[name] != b[name]:
            out.extend(inner(name, a[name], b[name]) if inner else value_changes(
                a[name], b[name], what=what, item=name, key=key, project=p))
    return out


# -- reductions: objects to comparable data ----------------------------------------------
def object_data(obj: Mapping[str, Any]) -> dict[str, Any]:
    """What an object says that users chose: its metadata but for its name and the
    server-set fields (the deny-list restore uses: uid, resourceVersion, timestamps,
    managedFields, ...), and its content (spec, data, ...) without status. Not a copy:
    the result shares the object's values."""
    meta = obj.get("metadata") or {}
    out: dict[str, Any] = {k: v for k, v in meta.items()
                           if v not in (None, {}, []) and k not in _NOT_COMPARED_META}
    out.update((k, v) for k, v in obj.items() if k not in _NOT_COMPARED_TOP)
    return out


_NOT_COMPARED_META = frozenset({*SERVER_SET_METADATA, "name", "namespace"})
_NOT_COMPARED_TOP = frozenset({"apiVersion", "kind", "metadata", "status"})


def _name(obj: Mapping[str, Any], *, namespaced: bool = False) -> str:
    """``name``, or ``namespace/name`` for a namespaced object when asked."""
    meta = obj.get("metadata") or {}
    name = printable(str(meta.get("name", "")), 253)
    ns = meta.get("namespace")
    return f"{printable(str(ns), 63)}/{name}" if namespaced and ns else name


def helm_data(info: Mapping[str, Any] | None, values: Any) -> dict[str, Any]:
    """A release: chart, versions, revision and the user-supplied values."""
    info = info or {}
    return {"chart": str(info.get("chart", "")), "chartVersion": str(info.get("chartVersion", "")),
            "appVersion": str(info.get("appVersion", "")), "revision": info.get("revision"),
            "values": values if isinstance(values, dict) else {}}


def runaiconfig_data(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    spec = (obj or {}).get("spec")
    return {"spec": spec if isinstance(spec, dict) else {}} if obj is not None else {}


def objects_data(objs: Iterable[Mapping[str, Any]], *, namespaced: bool = False,
                 kind: bool = False) -> dict[str, dict[str, Any]]:
    """Objects by name (``namespace/name``; ``Kind name`` with ``kind``)."""
    out: dict[str, dict[str, Any]] = {}
    for obj in objs:
        name = _name(obj, namespaced=namespaced)
        out[f"{obj.get('kind', '')} {name}" if kind else name] = object_data(obj)
    return out


QUEUE_LABEL = "runai/queue"


def subject_text(s: Mapping[str, Any]) -> str:
    ns = s.get("namespace")
    if ns:
        return f"{s.get('kind', '')} {ns}/{s.get('name', '')}"
    return f"{s.get('kind', '')} {s.get('name', '')}"


def projects_data(projects: Iterable[Mapping[str, Any]], namespaces: Iterable[Mapping[str, Any]],
                  rolebindings: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Projects, their namespaces (labels, annotations, project) and the role bindings in
    them (role and subjects)."""
    ns_out: dict[str, Any] = {}
    for ns in namespaces:
        meta = ns.get("metadata") or {}
        labels = meta.get("labels") or {}
        ns_out[str(meta.get("name", ""))] = {
            "project": str(labels.get(QUEUE_LABEL, "")), "labels": dict(labels),
            "annotations": dict(meta.get("annotations") or {})}
    rb_out: dict[str, Any] = {}
    for rb in rolebindings:
        ref = rb.get("roleRef") or {}
        subjects = sorted({subject_text(s) for s in rb.get("subjects") or []
                           if isinstance(s, dict)})
        rb_out[_name(rb, namespaced=True)] = {
            "role": f"{ref.get('kind', '')} {ref.get('name', '')}", "subjects": subjects,
            "labels": dict((rb.get("metadata") or {}).get("labels") or {})}
    return {"projects": {_name(p): object_data(p) for p in projects},
            "namespaces": ns_out, "rolebindings": rb_out}


def database_data(meta: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """Per database, the row count of every table recorded at dump time (large objects
    as the table ``(large objects)``, as restore and drill count them)."""
    return {str(d["name"]): count_map(d.get("tables") or [], d.get("largeObjects"))
            for d in meta.get("databases") or []}


def volumes_data(snapshots: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Snapshots by ``namespace/name``: the claim they hold, its role and size."""
    out: dict[str, dict[str, Any]] = {}
    for s in snapshots:
        out[f"{s.get('namespace', '')}/{s.get('name', '')}"] = {
            "claim": str(s.get("claim", "")), "role": str(s.get("role", "")),
            "size": str(s.get("size", "")), "ready": bool(s.get("ready", False))}
    return out


# -- comparisons --------------------------------------------------------------------------
def helm_changes(release: str, a: Mapping[str, Any], b: Mapping[str, Any],
                 key: bytes) -> list[Change]:
    """``a``/``b``: :func:`helm_data`, or empty when there is no such release."""
    if not a and not b:
        return []
    if not a or not b:
        which = b or a
        return [Change(ADDED if b else REMOVED, "release", release,
                       **{"new" if b else "old": f"{which['chart']} {which['chartVersion']}"})]
    out: list[Change] = []
    for field_name, what in (("chart", "chart"), ("chartVersion", "chart version"),
                             ("appVersion", "app version"), ("revision", "revision")):
        if a[field_name] != b[field_name]:
            out.append(Change(CHANGED, what, release, "", a[field_name], b[field_name]))
    return out + value_changes(a["values"], b["values"], what="value", item=release, key=key)


def runaiconfig_changes(name: str, a: Mapping[str, Any], b: Mapping[str, Any],
                        key: bytes) -> list[Change]:
    if not a and not b:
        return []
    if not a or not b:
        return [Change(ADDED if b else REMOVED, "RunaiConfig", name)]
    return value_changes(a["spec"], b["spec"], what="spec", item=name, key=key)


def objects_changes(what: str, a: Mapping[str, Any], b: Mapping[str, Any],
                    key: bytes, *, mask_data: bool = False) -> list[Change]:
    """Objects added, removed and changed by path (``mask_data``: a Secret's values)."""
    def inner(name: str, x: Any, y: Any) -> list[Change]:
        out: list[Change] = []
        for k in sorted(set(x) | set(y)):
            masked = mask_data and k in LIST_MASK
            out.extend(value_changes({k: x[k]} if k in x else {}, {k: y[k]} if k in y else {},
                                     what=what, item=name, key=key, secret=masked))
        return out

    return _keyed(a, b, what, key, inner)


def projects_changes(a: Mapping[str, Any], b: Mapping[str, Any], key: bytes) -> list[Change]:
    out = _keyed(a.get("projects", {}), b.get("projects", {}), "project", key)
    ns_a, ns_b = a.get("namespaces", {}), b.get("namespaces", {})
    project_of = {n: v["project"] for side in (ns_a, ns_b) for n, v in side.items()}

    def ns_inner(name: str, x: Any, y: Any) -> list[Change]:
        p = project_of.get(name, "")
        return [*value_changes(x["labels"], y["labels"], what="label", item=name, key=key,
                               project=p),
                *value_changes(x["annotations"], y["annotations"], what="annotation",
                               item=name, key=key, project=p)]

    out += _keyed(ns_a, ns_b, "namespace", key, ns_inner, project_of)
    rb_project = {n: project_of.get(n.split("/", 1)[0], "")
                  for n in {*a.get("rolebindings", {}), *b.get("rolebindings", {})}}

    def rb_inner(name: str, x: Any, y: Any) -> list[Change]:
        p = rb_project[name]
        out: list[Change] = []
        if x["role"] != y["role"]:
            out.append(Change(CHANGED, "role", name, "", x["role"], y["role"], project=p))
        gone = set(x["subjects"]) - set(y["subjects"])
        came = set(y["subjects"]) - set(x["subjects"])
        out += [Change(REMOVED, "subject", name, s, project=p) for s in sorted(gone)]
        out += [Change(ADDED, "subject", name, s, project=p) for s in sorted(came)]
        out += value_changes(x["labels"], y["labels"], what="label", item=name, key=key,
                             project=p)
        return out

    out += _keyed(a.get("rolebindings", {}), b.get("rolebindings", {}), "rolebinding", key,
                  rb_inner, rb_project)
    return out


def database_changes(a: Mapping[str, Mapping[str, int]], b: Mapping[str, Mapping[str, int]],
                     key: bytes) -> list[Change]:
    def inner(name: str, x: Mapping[str, int], y: Mapping[str, int]) -> list[Change]:
        out: list[Change] = []
        for t in sorted(set(x) | set(y)):
            if t not in y:
                out.append(Change(REMOVED, "table", name, t, old=x[t]))
            elif t not in x:
                out.append(Change(ADDED, "table", name, t, new=y[t]))
            elif x[t] != y[t]:
                out.append(Change(CHANGED, "rows", name, t, x[t], y[t]))
        return out

    return _keyed(a, b, "database", key, inner)


def volumes_changes(a: Mapping[str, Any], b: Mapping[str, Any], key: bytes) -> list[Change]:
    def inner(name: str, x: Any, y: Any) -> list[Change]:
        out = []
        if x["size"] != y["size"]:
            out.append(Change(CHANGED, "size", name, x["claim"], x["size"], y["size"]))
        if x["claim"] != y["claim"]:
            out.append(Change(CHANGED, "claim", name, "", x["claim"], y["claim"]))
        return out

    out = []
    for c in _keyed(a, b, "snapshot", key, inner):
        side = a if c.change == REMOVED else b
        if c.change != CHANGED:  # name the claim and size of a snapshot one side lacks
            s = side[c.item]
            c = Change(c.change, c.what, c.item, s["claim"],
                       **{"old" if c.change == REMOVED else "new": s["size"]})
        out.append(c)
    return out
