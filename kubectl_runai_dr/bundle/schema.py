"""The manifest's schema, checked once when a bundle is opened (pure).

Every reader (inspect, verify, restore, helm values, namespaces, rotation) relies on the
types checked here, so a manifest that is not what the writer makes is refused up front,
with the field named (``components[2].status``), instead of failing later with a Python
error. Keys this version does not know are allowed (a newer tool of the same format
version may add some).
"""

from __future__ import annotations

import re
from typing import Any, cast

from kubectl_runai_dr.bundle.layout import FORMAT, FORMAT_VERSION, MANIFEST
from kubectl_runai_dr.model import Status

_SHA256 = re.compile(r"[0-9a-f]{64}")
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
MAX_PATH = 1024
STATUSES = ("complete", "partial")
_SOURCE_REQUIRED = ("context", "server")
_SOURCE_OPTIONAL = ("kubernetesVersion", "runaiVersion", "controlPlaneNamespace",
                    "clusterNamespace", "controlPlaneRelease", "clusterRelease")


class ManifestError(ValueError):
    """``field``: what is wrong with it."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class NotABundle(ManifestError):
    """The manifest is not a runai-dr manifest at all."""


class NewerFormat(ManifestError):
    """Written by a newer tool: its format version is higher than this one reads."""


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _want(ok: bool, field: str, expected: str, value: Any) -> None:
    if not ok:
        raise ManifestError(field, f"is {_kind(value)}, expected {expected}")


def _obj(m: dict[str, Any], key: str, field: str) -> dict[str, Any]:
    value: Any = m.get(key)
    _want(isinstance(value, dict), field, "an object", value)
    return cast(dict[str, Any], value)


def _str(m: dict[str, Any], key: str, field: str, *, required: bool = True) -> None:
    if key in m or required:
        _want(isinstance(m.get(key), str), field, "a string", m.get(key))


def _str_list(m: dict[str, Any], key: str, field: str, *, required: bool = True) -> None:
    if key not in m and not required:
        return
    value: Any = m.get(key)
    _want(isinstance(value, list), field, "a list of strings", value)
    for i, item in enumerate(value):
        _want(isinstance(item, str), f"{field}[{i}]", "a string", item)


def check_path(path: str) -> str | None:
    """Why ``path`` cannot name a file in a bundle, or None when it can."""
    if not path or len(path) > MAX_PATH:
        return "is empty or too long"
    if path == MANIFEST:
        return "is the manifest's own name"
    if path.startswith("/") or "\\" in path or "\0" in path:
        return "is not a relative path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "has an empty, '.' or '..' part"
    return None


def validate_manifest(m: Any) -> None:
    """Raise :class:`ManifestError` naming the first field that is not as written."""
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise NotABundle("format", f"is not {FORMAT}")
    version: Any = m.get("formatVersion")
    _want(_is_int(version), "formatVersion", "an integer", version)
    if version < 1:
        raise ManifestError("formatVersion", f"is {version}, not a format version")
    if version > FORMAT_VERSION:
        raise NewerFormat("formatVersion", f"{version}; this tool reads up to {FORMAT_VERSION}")
    tool = _obj(m, "tool", "tool")
    for key in ("name", "version"):
        _str(tool, key, f"tool.{key}")
    _str(tool, "commit", "tool.commit", required=False)
    _str(m, "createdAt", "createdAt")
    if not _STAMP.fullmatch(m["createdAt"]):
        raise ManifestError("createdAt", "is not a UTC time (YYYY-MM-DDTHH:MM:SSZ)")
    if m.get("status") not in STATUSES:
        raise ManifestError("status", f"must be {' or '.join(STATUSES)}")
    _str_list(m, "failedComponents", "failedComponents")
    _str_list(m, "includedComponents", "includedComponents", required=False)
    _str_list(m, "excludedComponents", "excludedComponents", required=False)
    source = _obj(m, "source", "source")
    for key in _SOURCE_REQUIRED:
        _str(source, key, f"source.{key}")
    for key in _SOURCE_OPTIONAL:
        _str(source, key, f"source.{key}", required=False)
    secrets = m.get("containsSecrets")
    _want(isinstance(secrets, bool), "containsSecrets", "true or false", secrets)

    files = _obj(m, "files", "files")
    for path, entry in files.items():
        where = f"files[{path[:80]}]"
        why = check_path(path)
        if why:
            raise ManifestError(where, f"names a path that {why}")
        _want(isinstance(entry, dict), where, "an object", entry)
        _want(_is_int(entry.get("size")) and entry["size"] >= 0, f"{where}.size",
              "a size in bytes", entry.get("size"))
        sha = entry.get("sha256")
        _want(isinstance(sha, str) and bool(_SHA256.fullmatch(sha)), f"{where}.sha256",
              "64 lowercase hexadecimal digits", sha)

    components: Any = m.get("components")
    _want(isinstance(components, list), "components", "a list", components)
    statuses = {s.value for s in Status}
    names: set[str] = set()
    for i, c in enumerate(components):
        where = f"components[{i}]"
        _want(isinstance(c, dict), where, "an object", c)
        _str(c, "name", f"{where}.name")
        if not c["name"] or c["name"] in names:
            raise ManifestError(f"{where}.name", "is empty or appears twice")
        names.add(c["name"])
        if c.get("status") not in statuses:
            raise ManifestError(f"{where}.status", "must be one of " + ", ".join(
                sorted(statuses)))
        objects = c.get("objects", 0)
        _want(_is_int(objects) and objects >= 0, f"{where}.objects", "a count", objects)
        _str_list(c, "files", f"{where}.files", required=False)
        for j, f in enumerate(c.get("files", [])):
            if f not in files:
                raise ManifestError(f"{where}.files[{j}]", "is not in the files table")
        _str(c, "reason", f"{where}.reason", required=False)
        _str_list(c, "warnings", f"{where}.warnings", required=False)
        if "details" in c:
            _obj(c, "details", f"{where}.details")
    for key in ("failedComponents", "includedComponents", "excludedComponents"):
        for j, name in enumerate(m.get(key, [])):
            if name not in names:
                raise ManifestError(f"{key}[{j}]", "is not one of the components")
