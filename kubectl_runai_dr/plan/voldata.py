"""File-level volume data (``backup --volume-data``): what to copy, how, and how to check it (pure).

For storage without CSI snapshots (local-path, hostPath, NFS, older SAN drivers), a claim's
files are copied as a ``tar`` stream through the exec API, from a pod that mounts the claim
(its own container, an ephemeral debug container when that has no ``tar``, or a short-lived
helper pod with ``--quiesce``), into the bundle member ``volumes/data/<namespace>/<claim>.tar``.
``volumes/data.json`` records, per claim, its spec (size, access modes, storage class), the
image of the workload, the member's size and sha256 and its number of entries, which the
restore checks after extracting.

Commands run as ``sh -c SCRIPT NAME ARG``: the directory travels as a positional parameter,
never spliced into the script. GNU tar (``--sparse``, ``--numeric-owner``) is used when the
image has it, else the image's own (busybox) tar with the options both know.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from kubectl_runai_dr.conventions import LABEL_DOMAIN, MANAGED_BY_LABELS, PREFIX
from kubectl_runai_dr.plan import volumes as pv

RECORDS = "volumes/data.json"
DATA_DIR = "volumes/data"
FORMAT = "runai-dr.volume-data"
FORMAT_VERSION = 1
HELPER_MOUNT = "/runai-dr/data"
DEFAULT_DEBUG_IMAGE = "busybox:1.36"
COMMAND_DEADLINE = 24 * 3600  # a copy left behind by a client that went away ends by then
NO_TAR_EXIT = 127
PURPOSE_LABEL = f"{LABEL_DOMAIN}/purpose"
# GNU tar's warnings about files that changed while they were read (exit status 1)
_CHANGED = re.compile(r"^(?:\S*tar): (.*): (file changed as we read it|File shrank by \d+ bytes; "
                      r"padding with zeros|File removed before we read it|file changed as we read "
                      r"it)$")
_SOCKET = re.compile(r"^(?:\S*tar): (.*): socket ignored$")

# tar of the current directory to stdout; exit 127 (with a message) when there is no tar
BACKUP_SCRIPT = (
    'cd "$1" || exit 2; '
    'command -v tar >/dev/null 2>&1 || { echo "runai-dr: no tar in this container" >&2; '
    f"exit {NO_TAR_EXIT}; }}; "
    "if tar --version 2>/dev/null | grep -q 'GNU tar'; then "
    "exec tar --create --file=- --format=gnu --sparse --numeric-owner --one-file-system "
    "--exclude=./lost+found .; "
    "else exec tar -c -f - --exclude ./lost+found .; fi")
# extract stdin into the current directory, owners and modes as recorded
RESTORE_SCRIPT = (
    'cd "$1" || exit 2; '
    'command -v tar >/dev/null 2>&1 || { echo "runai-dr: no tar in this container" >&2; '
    f"exit {NO_TAR_EXIT}; }}; "
    "if tar --version 2>/dev/null | grep -q 'GNU tar'; then "
    "exec tar --extract --file=- --numeric-owner --same-owner --same-permissions; "
    "else exec tar -x -f - -p; fi")
# the number of entries (the directory itself included, as the archive's "./"), names with
# any bytes (NUL-separated), lost+found left out
COUNT_SCRIPT = ('cd "$1" || exit 2; find . ! -path ./lost+found ! -path "./lost+found/*" -print0 '
                "| tr -cd '\\000' | wc -c")
# anything besides lost+found? (one name, or nothing)
HOLDS_DATA_SCRIPT = ('cd "$1" || exit 2; find . -mindepth 1 -maxdepth 1 ! -name lost+found '
                     "| head -n 1")
CLEAR_SCRIPT = ('cd "$1" || exit 2; find . -mindepth 1 -maxdepth 1 ! -name lost+found '
                "-exec rm -rf {} +")
# the helper container's own command: it waits for the tool (a day at most), then ends
WAIT_SCRIPT = ("trap 'exit 0' TERM INT; i=0; "
               'while [ $i -lt "$1" ] && [ ! -e /tmp/runai-dr-done ]; '
               "do sleep 1; i=$((i + 1)); done")
DONE_COMMAND = ["sh", "-c", "touch /tmp/runai-dr-done"]


def script_argv(script: str, directory: str) -> list[str]:
    return ["sh", "-c", script, "runai-dr", directory]


def member_path(namespace: str, claim: str) -> str:
    return f"{DATA_DIR}/{quote(namespace, safe='-.')}/{quote(claim, safe='-.')}.tar"


def claims_in_files(files: Iterable[str]) -> list[str]:
    """``NAMESPACE/CLAIM`` of every claim whose files a bundle holds (from its member names)."""
    out = []
    for f in files:
        parts = f.split("/")
        if len(parts) == 4 and f.startswith(DATA_DIR + "/") and parts[3].endswith(".tar"):
            out.append(f"{unquote(parts[2])}/{unquote(parts[3][:-4])}")
    return sorted(out)


def protection(snapshot: bool, namespace: str, claim: str, copied: Iterable[str]) -> str:
    """How a claim is protected: CSI snapshot, file-level copy (the last backup), both, none."""
    kinds = [k for k, on in (("CSI snapshot", snapshot),
                             ("file-level", f"{namespace}/{claim}" in set(copied))) if on]
    return " + ".join(kinds) or "none"


@dataclass(frozen=True)
class Source:
    """Where a claim's files are read: a pod, its container and the claim's mount path there."""

    pod: str
    container: str
    mount_path: str
    image: str
    statefulset: str = ""


def mounting_container(pod: Mapping[str, Any], claim: str) -> tuple[str, str, str] | None:
    """(container, mountPath, image) of the first container of ``pod`` mounting ``claim`` at its
    root (no subPath), or None."""
    volumes = [v.get("name") for v in (pod.get("spec") or {}).get("volumes") or []
               if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim]
    for c in (pod.get("spec") or {}).get("containers") or []:
        for m in c.get("volumeMounts") or []:
            if m.get("name") in volumes and not m.get("subPath") and m.get("mountPath"):
                return str(c["name"]), str(m["mountPath"]), str(c.get("image", ""))
    return None


def volume_name(pod: Mapping[str, Any], claim: str) -> str | None:
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim:
            return str(v.get("name"))
    return None


def owner_statefulset(pod: Mapping[str, Any]) -> str:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "StatefulSet" and ref.get("controller"):
            return str(ref.get("name", ""))
    return ""


def select_claims(present: Iterable[str], namespace: str,
                  requested: Sequence[str]) -> list[pv.ClaimRef]:
    """The claims to copy: the ones named (``NAME`` or ``NAMESPACE/NAME``), else the documented
    Run:ai data claims present except the database's (it keeps its logical dump)."""
    if requested:
        out: list[pv.ClaimRef] = []
        for arg in requested:
            ns, name = pv.parse_claim_arg(arg, namespace)
            role = next((k.role for k in pv.KNOWN_CLAIMS if name in k.names), "extra")
            if not any(c.namespace == ns and c.name == name for c in out):
                out.append(pv.ClaimRef(ns, name, role))
        return out
    return [c for c in pv.select_claims(present, namespace) if c.role != "database"]


def tool_name_suffix(namespace: str, claim: str) -> str:
    return hashlib.sha256(f"{namespace}/{claim}".encode()).hexdigest()[:10]


def helper_pod(namespace: str, claim: str, image: str, *, purpose: str) -> dict[str, Any]:
    """A short-lived pod mounting ``claim`` at HELPER_MOUNT, running as root (ownership and
    modes are restored exactly), waiting for the tool; it is deleted when the copy ends."""
    name = f"{PREFIX}-{purpose}-{tool_name_suffix(namespace, claim)}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {**MANAGED_BY_LABELS, PURPOSE_LABEL: purpose}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "containers": [{"name": "data", "image": image,
                            "command": ["sh", "-c", WAIT_SCRIPT, "runai-dr", str(COMMAND_DEADLINE)],
                            "securityContext": {"runAsUser": 0, "runAsGroup": 0},
                            "volumeMounts": [{"name": "data", "mountPath": HELPER_MOUNT}]}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def debug_container(pod: Mapping[str, Any], claim: str, image: str,
                    mount_path: str) -> dict[str, Any]:
    """An ephemeral container for a pod whose own container has no tar: the image given by
    ``--volume-data-image``, the claim's volume at the same path, waiting for the tool."""
    existing = {c.get("name") for c in (pod.get("spec") or {}).get("ephemeralContainers") or []}
    n = 0
    while f"{PREFIX}-{n}" in existing:
        n += 1
    vol = volume_name(pod, claim)
    return {"name": f"{PREFIX}-{n}", "image": image,
            "command": ["sh", "-c", WAIT_SCRIPT, "runai-dr", str(COMMAND_DEADLINE)],
            "securityContext": {"runAsUser": 0, "runAsGroup": 0},
            "volumeMounts": [{"name": vol, "mountPath": mount_path, "readOnly": True}]}


def claim_spec(pvc: Mapping[str, Any]) -> dict[str, Any]:
    spec = pvc.get("spec") or {}
    md = pvc.get("metadata") or {}
    return {"name": str(md.get("name", "")),
            "storageClassName": spec.get("storageClassName"),
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "size": str(((spec.get("resources") or {}).get("requests") or {}).get("storage", "")),
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "labels": dict(md.get("labels") or {})}


def claim_for_restore(record: Mapping[str, Any], *,
                      storage_class: str | None = None) -> dict[str, Any]:
    claim = record.get("claim") or {}
    size = str(claim.get("size") or "")
    if not size:
        raise ValueError(f'volume data record of claim "{claim.get("name")}" has no size')
    spec: dict[str, Any] = {"accessModes": list(claim.get("accessModes") or ["ReadWriteOnce"]),
                            "resources": {"requests": {"storage": size}},
                            "volumeMode": claim.get("volumeMode") or "Filesystem"}
    cls = storage_class if storage_class is not None else claim.get("storageClassName")
    if cls:
        spec["storageClassName"] = cls
    labels = {str(k): str(v) for k, v in (claim.get("labels") or {}).items()}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": str(claim["name"]), "namespace": str(record["namespace"]),
                         "labels": labels},
            "spec": spec}


@dataclass
class TarOutcome:
    ok: bool
    changed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def judge_tar(exit_code: int | None, stderr: str) -> TarOutcome:
    """GNU tar exits 1 when files changed while it read them (the archive is complete, those
    files may be inconsistent): a success with warnings. Anything else non-zero fails."""
    changed, other = [], []
    for line in stderr.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _CHANGED.match(line)
        if m:
            changed.append(f"{m.group(1)} ({m.group(2)})")
        elif _SOCKET.match(line):
            continue
        else:
            other.append(line)
    ok = exit_code == 0 or (exit_code == 1 and not other)
    return TarOutcome(ok, changed, other)


def records_document(records: Sequence[Mapping[str, Any]], created_at: str) -> dict[str, Any]:
    return {"format": FORMAT, "formatVersion": FORMAT_VERSION, "createdAt": created_at,
            "claims": [dict(r) for r in records]}


def records_of(doc: Any) -> list[dict[str, Any]]:
    """The claims of a ``volumes/data.json`` (validated: it comes from a bundle)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    if doc.get("formatVersion") != FORMAT_VERSION:
        raise ValueError(f"format version {doc.get('formatVersion')!r} is not supported "
                         f"(this tool reads {FORMAT_VERSION})")
    claims = doc.get("claims")
    if not isinstance(claims, list):
        raise ValueError("claims: expected a list")
    out = []
    for i, r in enumerate(claims):
        where = f"claims[{i}]"
        if not isinstance(r, dict):
            raise ValueError(f"{where}: expected an object")
        for key in ("namespace", "file", "sha256", "image"):
            if not isinstance(r.get(key), str) or not r[key]:
                raise ValueError(f"{where}.{key}: expected a non-empty string")
        if not isinstance(r.get("claim"), dict) or not isinstance(r["claim"].get("name"), str):
            raise ValueError(f"{where}.claim.name: expected a string")
        for key in ("size", "entries"):
            if not isinstance(r.get(key), int) or isinstance(r.get(key), bool) or r[key] < 0:
                raise ValueError(f"{where}.{key}: expected a non-negative integer")
        if r["file"] != member_path(r["namespace"], r["claim"]["name"]):
            raise ValueError(f"{where}.file: {r['file']!r} is not where this claim's data goes")
        out.append(r)
    return out


class TarCounter:
    """Counts the entries of a tar stream as it passes (GNU, ustar and pax headers; GNU sparse
    headers with their extension blocks), reading headers only: memory stays at one block."""

    _META = frozenset(b"LKxgX")

    def __init__(self) -> None:
        self.entries = 0
        self.ended = False  # the two zero blocks that end an archive were seen
        self._skip = 0
        self._block = bytearray()
        self._ext = False
        self._after_ext = 0
        self._zeros = 0

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data)
        i, n = 0, len(view)
        while i < n:
            if self._skip:
                k = min(self._skip, n - i)
                self._skip -= k
                i += k
                continue
            k = min(512 - len(self._block), n - i)
            self._block += view[i:i + k]
            i += k
            if len(self._block) == 512:
                self._header(bytes(self._block))
                self._block.clear()
        return n

    def _header(self, h: bytes) -> None:
        if self.ended:
            return
        if self._ext:  # a GNU sparse extension block
            if h[504] == 0:
                self._ext = False
                self._skip = self._after_ext
            return
        if not any(h):
            self._zeros += 1
            if self._zeros >= 2:
                self.ended = True
            return
        self._zeros = 0
        size = _number(h[124:136])
        skip = (size + 511) // 512 * 512
        kind = h[156]
        if kind not in self._META:
            self.entries += 1
        if kind == ord("S") and h[482]:
            self._ext, self._after_ext = True, skip
            return
        self._skip = skip


def _number(field: bytes) -> int:
    """A tar numeric field: octal text, or base-256 (GNU) when the high bit is set."""
    if field and field[0] & 0x80:
        value = field[0] & 0x7F
        for b in field[1:]:
            value = value * 256 + b
        return value
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0
