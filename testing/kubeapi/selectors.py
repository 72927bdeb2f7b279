"""Label and field selectors, parsed the way the API server parses them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Matcher = Callable[[dict[str, Any]], bool]

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class SelectorError(ValueError):
    pass


def label_key_error(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _NAME_PART.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start "
                "and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
                "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return None


def label_value_error(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _LABEL_VALUE.match(value):
        return ("a valid label must be an empty string or consist of alphanumeric characters, '-', "
                "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
                "or 'my_value',  or '12345', regex used for validation is "
                "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    return None


def _split_top(s: str) -> list[str]:
    """Split on commas not inside parentheses."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_REQ = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[^\s=!(),]+)\s*"
    r"(?:(?P<op>==|=|!=|\bnotin\b|\bin\b)\s*(?P<val>.*?))?\s*$"
)


def parse_label_selector(sel: str) -> Matcher:
    sel = sel.strip()
    if not sel:
        return lambda labels: True
    reqs: list[Matcher] = []
    for part in _split_top(sel):
        if not part.strip():
            raise SelectorError("unable to parse requirement: found '', expected: identifier")
        m = _REQ.match(part)
        if not m:
            raise SelectorError(f"unable to parse requirement: invalid selector {part!r}")
        neg, key, op, val = m.group("neg"), m.group("key"), m.group("op"), m.group("val")
        err = label_key_error(key)
        if err:
            raise SelectorError(f"unable to parse requirement: values[0][{key}]: Invalid value: "
                                f"\"{key}\": {err}")
        if neg:
            if op:
                raise SelectorError(f"unable to parse requirement: found '{op}', expected: ',' or 'end of string'")
            reqs.append(_lacks(key))
            continue
        if not op:
            reqs.append(_has(key))
            continue
        if op in ("in", "notin"):
            val = val.strip()
            if not (val.startswith("(") and val.endswith(")")):
                raise SelectorError(f"unable to parse requirement: found '{val}', expected: '('")
            values = {v.strip() for v in val[1:-1].split(",")}
            for v in values:
                e = label_value_error(v)
                if e:
                    raise SelectorError(f"unable to parse requirement: values[0][{key}]: Invalid value: \"{v}\": {e}")
            reqs.append(_in(key, values) if op == "in" else _notin(key, values))
            continue
        val = val.strip()
        e = label_value_error(val)
        if e:
            raise SelectorError(f"unable to parse requirement: values[0][{key}]: Invalid value: \"{val}\": {e}")
        reqs.append(_equals(key, val) if op in ("=", "==") else _not_equals(key, val))

    def match(labels: dict[str, Any]) -> bool:
        return all(r(labels) for r in reqs)

    return match


# One requirement of a label selector, on the labels.
def _has(key: str) -> Matcher:
    return lambda labels: key in labels


def _lacks(key: str) -> Matcher:
    return lambda labels: key not in labels


def _in(key: str, values: set[str]) -> Matcher:
    return lambda labels: key in labels and labels[key] in values


def _notin(key: str, values: set[str]) -> Matcher:
    return lambda labels: key not in labels or labels[key] not in values


def _equals(key: str, value: str) -> Matcher:
    return lambda labels: labels.get(key) == value


def _not_equals(key: str, value: str) -> Matcher:
    return lambda labels: labels.get(key) != value


def _field_value(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for p in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(p)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, dict) and path == "source":
        return str(cur.get("component", ""))
    return str(cur)


def parse_field_selector(sel: str, supported: tuple[str, ...], namespaced: bool) -> Callable[[dict[str, Any]], bool]:
    """Matcher on whole objects; raises SelectorError for unsupported fields (400 like a real server)."""
    sel = sel.strip()
    if not sel:
        return lambda obj: True
    allowed = {"metadata.name", "metadata.namespace", *supported}
    reqs: list[Callable[[dict[str, Any]], bool]] = []
    for part in sel.split(","):
        m = re.match(r"^\s*([^=!\s]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError(f"invalid selector: '{sel}'; can't understand '{part}'")
        key, op, val = m.groups()
        if key not in allowed:
            raise SelectorError(f'field label not supported: {key}')
        reqs.append(_field_not_equals(key, val) if op == "!=" else _field_equals(key, val))
    return lambda obj: all(r(obj) for r in reqs)


def _field_equals(path: str, value: str) -> Matcher:
    return lambda obj: _field_value(obj, path) == value


def _field_not_equals(path: str, value: str) -> Matcher:
    return lambda obj: _field_value(obj, path) != value
