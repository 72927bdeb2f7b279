"""Validation like the API server's: object names, labels, CRD schemas with pruning, CEL rules."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .selectors import label_key_error, label_value_error

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                 "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                 "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
               "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
               "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")

MAX_ANNOTATIONS = 256 * 1024
MAX_DATA = 1024 * 1024


@dataclass
class Cause:
    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def as_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}

    def text(self) -> str:
        return f"{self.field}: {self.message}"


def _quote(v: Any) -> str:
    return json.dumps(v) if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause(field, f"Invalid value: {_quote(value)}: {detail}", "FieldValueInvalid")


def required(field: str, detail: str = "") -> Cause:
    return Cause(field, "Required value" + (f": {detail}" if detail else ""), "FieldValueRequired")


def forbidden(field: str, detail: str) -> Cause:
    return Cause(field, f"Forbidden: {detail}", "FieldValueForbidden")


def name_error(name: str, style: str) -> str | None:
    if style == "label":
        if len(name) > 63:
            return "must be no more than 63 characters"
        return None if DNS1123_LABEL.match(name) else LABEL_MSG
    if style == "dns1035":
        if len(name) > 63:
            return "must be no more than 63 characters"
        return None if DNS1035_LABEL.match(name) else DNS1035_MSG
    if style == "path":
        if name in (".", ".."):
            return f"may not be '{name}'"
        for bad in ("/", "%"):
            if bad in name:
                return f"may not contain '{bad}'"
        return None
    if len(name) > 253:
        return "must be no more than 253 characters"
    return None if DNS1123_SUBDOMAIN.match(name) else SUBDOMAIN_MSG


NAME_STYLE = {"namespaces": "label", "services": "dns1035", "roles": "path", "rolebindings": "path",
              "clusterroles": "path", "clusterrolebindings": "path"}


def validate_metadata(obj: dict[str, Any], plural: str, *, creating: bool) -> list[Cause]:
    causes: list[Cause] = []
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return [required("metadata.name", "name or generateName is required")]
    name = md.get("name")
    if not name:
        causes.append(required("metadata.name", "name or generateName is required"))
    elif not isinstance(name, str):
        causes.append(invalid("metadata.name", name, "must be a string"))
    else:
        err = name_error(name, NAME_STYLE.get(plural, "subdomain"))
        if err:
            causes.append(invalid("metadata.name", name, err))
    labels = md.get("labels") or {}
    if not isinstance(labels, dict):
        causes.append(invalid("metadata.labels", labels, "must be a map"))
    else:
        for k, v in labels.items():
            e = label_key_error(k)
            if e:
                causes.append(invalid("metadata.labels", k, e))
            if not isinstance(v, str):
                causes.append(invalid("metadata.labels", v, "must be a string"))
                continue
            e = label_value_error(v)
            if e:
                causes.append(invalid("metadata.labels", v, e))
    ann = md.get("annotations") or {}
    if isinstance(ann, dict):
        total = 0
        for k, v in ann.items():
            e = label_key_error(k)
            if e:
                causes.append(invalid("metadata.annotations", k, e))
            total += len(k) + len(v if isinstance(v, str) else str(v))
        if total > MAX_ANNOTATIONS:
            causes.append(Cause("metadata.annotations",
                                f"Too long: may not be more than {MAX_ANNOTATIONS} bytes", "FieldValueTooLong"))
    return causes


STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
               "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def _sts_fixed(spec: dict[str, Any]) -> dict[str, Any]:
    """The part of a StatefulSet spec an update may not change, as the apiserver compares it (defaults
    applied: a claim template's volumeMode, its TypeMeta and empty status do not count)."""
    out = {k: v for k, v in spec.items() if k not in STS_MUTABLE}
    vcts = []
    for t in out.get("volumeClaimTemplates") or []:
        t = {k: v for k, v in (t or {}).items() if k not in ("apiVersion", "kind", "status")}
        t["spec"] = {"volumeMode": "Filesystem", **(t.get("spec") or {})}
        vcts.append(t)
    out["volumeClaimTemplates"] = vcts
    return out


def validate_builtin(obj: dict[str, Any], plural: str, old: dict[str, Any] | None) -> list[Cause]:
    """The checks the built-in types' validators make that matter to backup and restore."""
    causes: list[Cause] = []
    if plural in ("configmaps", "secrets"):
        total = 0
        for field in ("data", "binaryData") if plural == "configmaps" else ("data",):
            d = obj.get(field) or {}
            if not isinstance(d, dict):
                causes.append(invalid(field, d, "must be a map"))
                continue
            for k, v in d.items():
                if not CONFIG_KEY.match(k) or len(k) > 253:
                    causes.append(invalid(f"{field}[{k}]", k, "a valid config key must consist of alphanumeric "
                                          "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                                          "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"))
                total += len(v) if isinstance(v, str) else 0
        if plural == "secrets":
            total = sum(len(v) * 3 // 4 for v in (obj.get("data") or {}).values() if isinstance(v, str))
        if total > MAX_DATA:
            causes.append(Cause("data", f"Too long: must have at most {MAX_DATA} bytes", "FieldValueTooLong"))
        if plural == "secrets":
            t = obj.get("type") or "Opaque"
            data = obj.get("data") or {}
            need = {"kubernetes.io/tls": ("tls.crt", "tls.key"),
                    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
                    "kubernetes.io/dockercfg": (".dockercfg",)}.get(t, ())
            for k in need:
                if k not in data:
                    causes.append(required(f"data[{k}]"))
            if old is not None and (old.get("type") or "Opaque") != t:
                causes.append(invalid("type", t, "field is immutable"))
        if old is not None and old.get("immutable"):
            for f in ("data", "binaryData", "stringData"):
                if (obj.get(f) or {}) != (old.get(f) or {}):
                    causes.append(forbidden(f, "field is immutable when `immutable` is set"))
    if plural in ("rolebindings", "clusterrolebindings"):
        rr = obj.get("roleRef")
        if not isinstance(rr, dict) or not rr.get("name"):
            causes.append(required("roleRef.name"))
        elif rr.get("kind") not in ("Role", "ClusterRole"):
            causes.append(Cause("roleRef.kind", f'Unsupported value: {_quote(rr.get("kind"))}: supported values: '
                                '"Role", "ClusterRole"', "FieldValueNotSupported"))
        elif plural == "clusterrolebindings" and rr.get("kind") != "ClusterRole":
            causes.append(Cause("roleRef.kind", f'Unsupported value: "{rr.get("kind")}": supported values: '
                                '"ClusterRole"', "FieldValueNotSupported"))
        if old is not None and old.get("roleRef") != rr:
            causes.append(invalid("roleRef", rr, "cannot change roleRef"))
        for i, s in enumerate(obj.get("subjects") or []):
            if not isinstance(s, dict) or not s.get("name"):
                causes.append(required(f"subjects[{i}].name"))
            elif s.get("kind") not in ("ServiceAccount", "User", "Group"):
                causes.append(Cause(f"subjects[{i}].kind", f'Unsupported value: {_quote(s.get("kind"))}: '
                                    'supported values: "ServiceAccount", "User", "Group"', "FieldValueNotSupported"))
    if plural in ("cronjobs", "jobs"):
        from .batch import validate as validate_batch

        causes.extend(validate_batch(obj, plural, old))
    if plural in ("statefulsets", "deployments"):
        spec = obj.get("spec") or {}
        sel = (spec.get("selector") or {}).get("matchLabels")
        if not spec.get("selector"):
            causes.append(required("spec.selector"))
        tlabels = (((spec.get("template") or {}).get("metadata") or {}).get("labels")) or {}
        if isinstance(sel, dict) and any(tlabels.get(k) != v for k, v in sel.items()):
            causes.append(invalid("spec.template.metadata.labels", tlabels,
                                  "`selector` does not match template `labels`"))
        if old is not None and (old.get("spec") or {}).get("selector") != spec.get("selector"):
            causes.append(invalid("spec.selector", spec.get("selector"), "field is immutable"))
        if plural == "statefulsets" and old is not None and _sts_fixed(old.get("spec") or {}) != _sts_fixed(spec):
            causes.append(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', "
                                    "'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
                                    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
    if plural == "pods":
        spec = obj.get("spec") or {}
        if not spec.get("containers"):
            causes.append(required("spec.containers"))
    if plural == "persistentvolumeclaims" and old is not None:
        o, n = dict(old.get("spec") or {}), dict(obj.get("spec") or {})
        for d in (o, n):
            d.pop("resources", None)
            d.pop("volumeAttributesClassName", None)
        if o.get("volumeName") and not n.get("volumeName"):
            n["volumeName"] = o["volumeName"]
        if not o.get("volumeName"):
            o.pop("volumeName", None)
            n.pop("volumeName", None)
        if o != n:
            causes.append(forbidden("spec", "spec is immutable after creation except resources.requests and "
                                    "volumeAttributesClassName for bound claims"))
    return causes


EPHEMERAL_FORBIDDEN = ("ports", "resources", "lifecycle", "livenessProbe", "readinessProbe", "startupProbe",
                       "resizePolicy")


def validate_ephemeral(pod: dict[str, Any], new: Any) -> list[Cause]:
    """An update through pods/ephemeralcontainers: existing ephemeral containers stay as they are,
    new ones need a unique name and an image, no ports/probes/resources, and only the pod's volumes."""
    if not isinstance(new, list):
        return [invalid("spec.ephemeralContainers", new, "must be a list")]
    spec = pod.get("spec") or {}
    old = {c.get("name"): c for c in spec.get("ephemeralContainers") or []}
    taken = {c.get("name") for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]}
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    causes: list[Cause] = []
    seen: set[Any] = set()
    for i, c in enumerate(new):
        f = f"spec.ephemeralContainers[{i}]"
        if not isinstance(c, dict):
            causes.append(invalid(f, c, "must be an object"))
            continue
        name = c.get("name")
        if name in old:
            if old[name] != c:
                causes.append(forbidden(f, "existing ephemeral containers may not be changed"))
            seen.add(name)
            continue
        why = name_error(str(name), "label") if name else None
        if not name or why:
            causes.append(required(f"{f}.name") if not name else invalid(f"{f}.name", name, str(why)))
        elif name in taken or name in seen:
            causes.append(Cause(f"{f}.name", f"Duplicate value: \"{name}\"", "FieldValueDuplicate"))
        seen.add(name)
        if not c.get("image"):
            causes.append(required(f"{f}.image"))
        for k in EPHEMERAL_FORBIDDEN:
            if c.get(k):
                causes.append(forbidden(f"{f}.{k}", "cannot be set for an Ephemeral Container"))
        for j, m in enumerate(c.get("volumeMounts") or []):
            if m.get("name") not in volumes:
                causes.append(Cause(f"{f}.volumeMounts[{j}].name", f"Not found: \"{m.get('name')}\"",
                                    "FieldValueNotFound"))
    for name in old:
        if name not in seen:
            causes.append(forbidden("spec.ephemeralContainers", f"ephemeral container {name!r} may not be removed"))
    return causes


# ---------------------------------------------------------------- CRD schemas

_TYPE_NAMES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _type_ok(value: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    py = _TYPE_NAMES.get(t)
    return py is None or (isinstance(value, py) and not (py is not bool and isinstance(value, bool)))


def _json_type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


def prune_and_default(value: Any, schema: dict[str, Any], path: str, unknown: list[str], root: bool = False) -> Any:
    """Drop fields the schema does not know (like the API server does), apply defaults.
    Unknown field paths are collected for fieldValidation=Strict/Warn."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        if schema.get("x-kubernetes-embedded-resource") or root:
            keep = {"apiVersion", "kind", "metadata"}
        else:
            keep = set()
        out: dict[str, Any] = {}
        for k, v in value.items():
            sub_path = f"{path}.{k}" if path else k
            if k in keep:
                out[k] = v
            elif props is not None and k in props:
                out[k] = prune_and_default(v, props[k], sub_path, unknown)
            elif isinstance(addl, dict):
                out[k] = prune_and_default(v, addl, sub_path, unknown)
            elif addl is True or preserve or k in keep:
                out[k] = v
            else:
                unknown.append(sub_path)
        for k, sub in (props or {}).items():
            if k not in out and isinstance(sub, dict) and "default" in sub:
                out[k] = json.loads(json.dumps(sub["default"]))
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_and_default(v, schema["items"], f"{path}[{i}]", unknown) for i, v in enumerate(value)]
    return value


def validate_schema(value: Any, schema: dict[str, Any], path: str, causes: list[Cause]) -> None:
    if not isinstance(schema, dict):
        return
    if value is None:
        if not schema.get("nullable") and schema.get("type"):
            causes.append(invalid(path, None, f"{path} in body must be of type {schema['type']}: \"null\""))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, (int, str)) and not isinstance(value, bool)):
            causes.append(invalid(path, value, f"{path} in body must be of type integer-or-string: "
                                  f"\"{_json_type(value)}\""))
            return
    else:
        t = schema.get("type")
        if t and not _type_ok(value, t):
            causes.append(Cause(path, f"Invalid value: \"{_json_type(value)}\": {path} in body must be of type "
                                f"{t}: \"{_json_type(value)}\"", "FieldValueTypeInvalid"))
            return
    if "enum" in schema and value not in schema["enum"]:
        causes.append(Cause(path, f"Unsupported value: {_quote(value)}: supported values: "
                            + ", ".join(_quote(e) for e in schema["enum"]), "FieldValueNotSupported"))
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            causes.append(invalid(path, value, f"{path} in body should match '{schema['pattern']}'"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append(Cause(path, f"Too long: may not be more than {schema['maxLength']} bytes",
                                "FieldValueTooLong"))
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(invalid(path, value, f"{path} in body should be at least {schema['minLength']} chars long"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            causes.append(invalid(path, value, f"{path} in body should be greater than or equal to {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            causes.append(invalid(path, value, f"{path} in body should be less than or equal to {schema['maximum']}"))
    if isinstance(value, dict):
        for r in schema.get("required") or []:
            if r not in value:
                causes.append(required(f"{path}.{r}" if path else r))
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            if k in props:
                validate_schema(v, props[k], sub, causes)
            elif isinstance(addl, dict):
                validate_schema(v, addl, sub, causes)
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append(Cause(path, f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                                "FieldValueTooMany"))
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(invalid(path, value, f"{path} in body should have at least {schema['minItems']} items"))
        if isinstance(schema.get("items"), dict):
            for i, v in enumerate(value):
                validate_schema(v, schema["items"], f"{path}[{i}]", causes)


# ---------------------------------------------------------------- CEL rules as Python checks

_MISSING = object()


class UnsupportedRule(Exception):
    pass


def _has(obj: Any, field: str) -> bool:
    return isinstance(obj, dict) and field in obj


def _compile_rule(rule: str) -> tuple[Callable[[Any, Any], bool], bool]:
    """Returns (check(self, oldSelf), is_transition_rule). Only the rule shapes the fixture CRDs use."""
    r = " ".join(rule.split())
    if r == "self == oldSelf":
        return (lambda s, o: s == o), True
    m = re.fullmatch(r"!has\(oldSelf\.(\w+)\) \|\| has\(self\.(\w+)\)", r)
    if m and m.group(1) == m.group(2):
        f = m.group(1)
        return (lambda s, o: not _has(o, f) or _has(s, f)), True
    m = re.fullmatch(r"\(has\(self\.(\w+)\) && !has\(self\.(\w+)\)\) \|\| \(!has\(self\.(\w+)\) && has\(self\.(\w+)\)\)", r)
    if m and m.group(1) == m.group(3) and m.group(2) == m.group(4):
        a, b = m.group(1), m.group(2)
        return (lambda s, o: _has(s, a) != _has(s, b)), False
    m = re.fullmatch(r"has\(self\.(\w+)\) && has\(self\.(\w+)\)", r)
    if m:
        # CEL escapes property names that are reserved words: __namespace__ is "namespace"
        a, b = (x[2:-2] if x.startswith("__") and x.endswith("__") else x for x in m.groups())
        return (lambda s, o: _has(s, a) and _has(s, b)), False
    if r == "size(self) > 0":
        return (lambda s, o: len(s) > 0), False
    raise UnsupportedRule(rule)


def check_rule_supported(rule: str) -> None:
    _compile_rule(rule)


def collect_rules(schema: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        for r in schema.get("x-kubernetes-validations") or []:
            out.append((path, r))
        for k, sub in (schema.get("properties") or {}).items():
            out.extend(collect_rules(sub, f"{path}.{k}" if path else k))
        if isinstance(schema.get("items"), dict):
            out.extend(collect_rules(schema["items"], f"{path}[]"))
        if isinstance(schema.get("additionalProperties"), dict):
            out.extend(collect_rules(schema["additionalProperties"], f"{path}{{}}"))
    return out


def _values_at(obj: Any, path: str) -> list[tuple[str, Any]]:
    """Concrete (field path, value) pairs for a rule path (lists expand)."""
    cur: list[tuple[str, Any]] = [("", obj)]
    if not path:
        return cur
    for part in re.findall(r"[^.\[\]{}]+|\[\]|\{\}", path):
        nxt: list[tuple[str, Any]] = []
        for p, v in cur:
            if part == "[]":
                if isinstance(v, list):
                    nxt.extend((f"{p}[{i}]", x) for i, x in enumerate(v))
            elif part == "{}":
                if isinstance(v, dict):
                    nxt.extend((f"{p}[{k}]", x) for k, x in v.items())
            elif isinstance(v, dict) and part in v:
                nxt.append((f"{p}.{part}" if p else part, v[part]))
        cur = nxt
    return cur


def _value_at(obj: Any, field: str) -> Any:
    cur = obj
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", field):
        if part.startswith("["):
            idx = int(part[1:-1])
            if not isinstance(cur, list) or idx >= len(cur):
                return _MISSING
            cur = cur[idx]
        else:
            if not isinstance(cur, dict) or part not in cur:
                return _MISSING
            cur = cur[part]
    return cur


def validate_cel(obj: dict[str, Any], old: dict[str, Any] | None, schema: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for path, rule in collect_rules(schema):
        check, transition = _compile_rule(rule["rule"])
        for field, value in _values_at(obj, path):
            old_value = _value_at(old, field) if old is not None else _MISSING
            if transition and old_value is _MISSING:
                continue
            if not check(value, None if old_value is _MISSING else old_value):
                msg = rule.get("message") or f"failed rule: {rule['rule']}"
                causes.append(Cause((rule.get("fieldPath") and field + rule["fieldPath"]) or field,
                                    f"Invalid value: \"{_json_type(value)}\": {msg}",
                                    rule.get("reason") or "FieldValueInvalid"))
    return causes
