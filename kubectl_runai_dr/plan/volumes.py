"""Volume snapshots and volume recovery, as pure functions.

Which claims to snapshot (the inventory's names, old and new), which VolumeSnapshotClass
serves a claim's CSI driver, the objects to create (the tool's labelled VolumeSnapshots,
and for a restore: claims from a snapshot, or a pre-provisioned VolumeSnapshotContent and
VolumeSnapshot where the snapshot objects are gone), the records kept in the bundle, the
warnings (snapshots or volumes that die with the cluster), prune selection and the
CHECKPOINT command. Nothing here talks to a server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from kubectl_runai_dr.conventions import (
    BACKUP_LABEL,
    CLAIM_LABEL,
    MANAGED_BY,
    MANAGER,
    RESTORED_LABEL,
    ROLE_LABEL,
)
from kubectl_runai_dr.plan import database as db

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
SNAPSHOT_API = f"{SNAPSHOT_GROUP}/v1"
RECORDS_KIND = "RunaiDrVolumeSnapshots"
RECORDS_VERSION = 1

# Labels on every object the tool creates: `snapshot list` and `prune` only see these.
TOOL = MANAGER
CLAIM_ANNOTATION = CLAIM_LABEL  # the full name (labels stop at 63)
TOOL_SELECTOR = f"{MANAGED_BY}={TOOL}"

DEFAULT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class"

INSTALL_SNAPSHOTTER_HINT = (
    "install the CSI external-snapshotter: its CRDs (VolumeSnapshot, VolumeSnapshotContent, "
    "VolumeSnapshotClass from kubernetes-csi/external-snapshotter client/config/crd) and the "
    "snapshot-controller (deploy/kubernetes/snapshot-controller), and a CSI driver with "
    "snapshot support; or back up the database with pg_dump only (`backup database`)")


# -- which claims ----------------------------------------------------------------------------
@dataclass(frozen=True)
class KnownClaim:
    role: str
    names: tuple[str, ...]  # newest first
    what: str


# The claims the Run:ai documentation says to back up, by chart generation (newest first).
KNOWN_CLAIMS: tuple[KnownClaim, ...] = (
    KnownClaim("database", ("data-runai-backend-postgresql-0", "pvc-postgresql"),
               "the control plane's PostgreSQL"),
    KnownClaim("metrics", ("data-runai-backend-thanos-receive-0", "pvc-thanos-receive"),
               "the Thanos receive metrics store"),
    KnownClaim("queue", ("data-runai-backend-redis-queue-master-0",), "the redis queue"),
)
ROLE_ORDER = {k.role: i for i, k in enumerate(KNOWN_CLAIMS)}


@dataclass(frozen=True)
class ClaimRef:
    namespace: str
    name: str
    role: str

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_claim_arg(text: str, default_namespace: str) -> tuple[str, str]:
    """``--pvc NAME`` or ``--pvc NAMESPACE/NAME`` → (namespace, name)."""
    text = text.strip()
    ns, _, name = text.rpartition("/")
    if not name or "/" in ns:
        raise ValueError(f'--pvc "{text}": expected NAME or NAMESPACE/NAME')
    return (ns or default_namespace), name


def select_claims(present: Iterable[str], namespace: str, *, extra: Sequence[str] = (),
                  only_extra: bool = False) -> list[ClaimRef]:
    """The claims to snapshot: for each documented role the first name present in
    ``namespace`` (new name before old), then the ``--pvc`` claims (role "extra" unless
    they are a documented name). ``only_extra``: the ``--pvc`` claims alone."""
    have = set(present)
    chosen: list[ClaimRef] = []
    if not only_extra:
        for known in KNOWN_CLAIMS:
            for name in known.names:
                if name in have:
                    chosen.append(ClaimRef(namespace, name, known.role))
                    break
    for arg in extra:
        ns, name = parse_claim_arg(arg, namespace)
        if any(c.namespace == ns and c.name == name for c in chosen):
            continue
        role = next((k.role for k in KNOWN_CLAIMS if name in k.names), "extra")
        chosen.append(ClaimRef(ns, name, role))
    return chosen


# -- quantities --------------------------------------------------------------------------------
_SUFFIX: dict[str, int | Decimal] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def parse_quantity(value: Any) -> int:
    """A Kubernetes quantity ("20Gi", "1G", "21474836480", 5e9) in bytes (rounded up)."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    m = _QUANTITY.match(text)
    if not m:
        raise ValueError(f'not a quantity: "{text}"')
    try:
        number = Decimal(m.group(1) + (m.group(2) or ""))
    except InvalidOperation as exc:
        raise ValueError(f'not a quantity: "{text}"') from exc
    total = number * Decimal(_SUFFIX[m.group(3) or ""])
    whole = int(total)
    return whole + 1 if total > whole else whole


def larger_quantity(a: Any, b: Any) -> str:
    """The larger of two quantities, as the original text of that one (a on a tie)."""
    if b in (None, ""):
        return str(a)
    if a in (None, ""):
        return str(b)
    return str(a) if parse_quantity(a) >= parse_quantity(b) else str(b)


# -- claims and classes ----------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """A claim to snapshot and what a restore needs to re-create it."""

    namespace: str
    name: str
    role: str
    storage_class: str | None
    size: str  # spec.resources.requests.storage
    access_modes: tuple[str, ...]
    volume_mode: str
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    volume_name: str = ""
    driver: str = ""  # the bound PersistentVolume's CSI driver ("" = not CSI / not bound)
    reclaim_policy: str = ""
    phase: str = ""

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "namespace": self.namespace,
                "storageClassName": self.storage_class, "size": self.size,
                "accessModes": list(self.access_modes), "volumeMode": self.volume_mode,
                "labels": dict(self.labels), "volumeName": self.volume_name,
                "reclaimPolicy": self.reclaim_policy}


def claim_of(ref: ClaimRef, pvc: Mapping[str, Any], pv: Mapping[str, Any] | None) -> Claim:
    spec = pvc.get("spec") or {}
    meta = pvc.get("metadata") or {}
    pv_spec = (pv or {}).get("spec") or {}
    labels = {k: str(v) for k, v in (meta.get("labels") or {}).items()}
    return Claim(
        namespace=ref.namespace, name=ref.name, role=ref.role,
        storage_class=spec.get("storageClassName"),
        size=str(((spec.get("resources") or {}).get("requests") or {}).get("storage", "")),
        access_modes=tuple(spec.get("accessModes") or ()),
        volume_mode=str(spec.get("volumeMode") or "Filesystem"),
        labels=labels, volume_name=str(spec.get("volumeName") or ""),
        driver=str((pv_spec.get("csi") or {}).get("driver") or ""),
        reclaim_policy=str(pv_spec.get("persistentVolumeReclaimPolicy") or ""),
        phase=str((pvc.get("status") or {}).get("phase") or ""))


def claim_problem(claim: Claim) -> str | None:
    """Why the claim cannot be snapshotted with CSI, or None."""
    if claim.phase and claim.phase != "Bound":
        return f"is {claim.phase}, not Bound"
    if not claim.volume_name:
        return "is not bound to a volume"
    if not claim.driver:
        return (f'is bound to volume "{claim.volume_name}", which is not a CSI volume '
                "(in-tree or local volumes cannot be snapshotted with VolumeSnapshots)")
    return None


@dataclass(frozen=True)
class SnapshotClass:
    name: str
    driver: str
    deletion_policy: str
    default: bool

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> SnapshotClass:
        ann = (obj.get("metadata") or {}).get("annotations") or {}
        return cls(str(obj["metadata"]["name"]), str(obj.get("driver", "")),
                   str(obj.get("deletionPolicy", "")),
                   str(ann.get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true")


class NoClass(ValueError):
    """No usable VolumeSnapshotClass; the message says what to create."""


def choose_class(driver: str, classes: Sequence[SnapshotClass],
                 requested: str | None = None) -> SnapshotClass:
    """``--snapshot-class`` (it must serve the driver), else the driver's default class,
    else its only class."""
    if requested:
        found = next((c for c in classes if c.name == requested), None)
        if found is None:
            have = ", ".join(sorted(c.name for c in classes)) or "none"
            raise NoClass(f'VolumeSnapshotClass "{requested}" does not exist (classes: {have})')
        if found.driver != driver:
            raise NoClass(f'VolumeSnapshotClass "{requested}" is for driver "{found.driver}", '
                          f'not "{driver}"')
        return found
    mine = sorted((c for c in classes if c.driver == driver), key=lambda c: c.name)
    defaults = [c for c in mine if c.default]
    if len(defaults) == 1:
        return defaults[0]
    if len(defaults) > 1:
        raise NoClass(f'driver "{driver}" has several default VolumeSnapshotClasses '
                      f"({', '.join(c.name for c in defaults)}); choose one with "
                      "--snapshot-class")
    if len(mine) == 1:
        return mine[0]
    if mine:
        raise NoClass(f'driver "{driver}" has several VolumeSnapshotClasses and none is the '
                      f"default ({', '.join(c.name for c in mine)}); choose one with "
                      "--snapshot-class")
    raise NoClass(f'no VolumeSnapshotClass for CSI driver "{driver}"')


def class_example(driver: str) -> str:
    """A VolumeSnapshotClass to create, for hints (Retain: snapshots survive the cluster)."""
    return (f"create one: `apiVersion: {SNAPSHOT_API}, kind: VolumeSnapshotClass, "
            f"metadata: {{name: {driver.split('.')[0]}-snapclass}}, driver: {driver}, "
            "deletionPolicy: Retain`, or pass --snapshot-class")


# -- warnings ----------------------------------------------------------------------------------
def class_warning(cls: SnapshotClass) -> str | None:
    if cls.deletion_policy == "Delete":
        return (f'VolumeSnapshotClass "{cls.name}" has deletionPolicy Delete: the storage '
                "snapshots are deleted with their VolumeSnapshot objects, so they die with "
                "the cluster (a deleted namespace or lost cluster takes them along); use a "
                "class with deletionPolicy Retain for disaster recovery")
    return None


def reclaim_warning(claim: Claim) -> str | None:
    if claim.reclaim_policy == "Delete":
        return (f'PersistentVolume "{claim.volume_name}" of claim {claim.label} has '
                "persistentVolumeReclaimPolicy Delete: deleting the claim (helm uninstall, a "
                "deleted namespace) destroys the data; `kubectl runai-dr protect` sets it "
                "to Retain")
    return None


@dataclass(frozen=True)
class Protection:
    volume: str
    claim: str  # namespace/name
    policy: str

    @property
    def needed(self) -> bool:
        return self.policy == "Delete"


def protections(pvcs: Iterable[Mapping[str, Any]],
                pvs: Mapping[str, Mapping[str, Any]]) -> list[Protection]:
    """Each bound claim's volume and its reclaim policy (pvs: by name)."""
    out: list[Protection] = []
    for pvc in pvcs:
        meta = pvc.get("metadata") or {}
        vol = str((pvc.get("spec") or {}).get("volumeName") or "")
        pv = pvs.get(vol)
        if not vol or pv is None:
            continue
        policy = str((pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "")
        out.append(Protection(vol, f"{meta.get('namespace')}/{meta.get('name')}", policy))
    return sorted(out, key=lambda p: p.claim)


PROTECT_PATCH: dict[str, Any] = {"spec": {"persistentVolumeReclaimPolicy": "Retain"}}


# -- the snapshots -----------------------------------------------------------------------------
def backup_id(now: datetime) -> str:
    """``20250102-030405``: sortable, valid in names and label values."""
    return now.astimezone(timezone.utc).strftime("%Y%m%d-%H%M%S")


def _label_value(text: str) -> str:
    """A valid label value from ``text`` (≤63 characters, alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)


def snapshot_name(claim: str, bid: str) -> str:
    """``runai-dr-<claim>-<backup id>``, within the 253 characters of a name."""
    suffix = f"-{bid}"
    return f"runai-dr-{claim}"[: 253 - len(suffix)].rstrip("-.") + suffix


def volume_snapshot(claim: Claim, cls: SnapshotClass, bid: str) -> dict[str, Any]:
    return {
        "apiVersion": SNAPSHOT_API, "kind": "VolumeSnapshot",
        "metadata": {
            "name": snapshot_name(claim.name, bid), "namespace": claim.namespace,
            "labels": {MANAGED_BY: TOOL, CLAIM_LABEL: _label_value(claim.name),
                       BACKUP_LABEL: bid, ROLE_LABEL: claim.role},
            "annotations": {CLAIM_ANNOTATION: claim.name},
        },
        "spec": {"volumeSnapshotClassName": cls.name,
                 "source": {"persistentVolumeClaimName": claim.name}},
    }


@dataclass(frozen=True)
class SnapshotState:
    """Where a VolumeSnapshot stands."""

    ready: bool
    error: str = ""
    content: str = ""
    restore_size: str = ""
    creation_time: str = ""


def snapshot_state(vs: Mapping[str, Any]) -> SnapshotState:
    status = vs.get("status") or {}
    err = status.get("error") or {}
    message = str(err.get("message") or "") if isinstance(err, Mapping) else str(err)
    if isinstance(err, Mapping) and err and not message:
        message = "the snapshot controller reported an error without a message"
    size = status.get("restoreSize")
    return SnapshotState(ready=bool(status.get("readyToUse")), error=message,
                         content=str(status.get("boundVolumeSnapshotContentName") or ""),
                         restore_size="" if size is None else str(size),
                         creation_time=str(status.get("creationTime") or ""))


def snapshot_record(claim: Claim, cls: SnapshotClass, vs: Mapping[str, Any],
                    vsc: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the bundle keeps per snapshot: enough to re-create the volume anywhere the
    storage snapshot (``snapshotHandle``) is reachable."""
    meta = vs.get("metadata") or {}
    state = snapshot_state(vs)
    vsc = vsc or {}
    vsc_spec = vsc.get("spec") or {}
    vsc_status = vsc.get("status") or {}
    handle = vsc_status.get("snapshotHandle") or (vsc_spec.get("source") or {}).get(
        "snapshotHandle") or ""
    restore_size = state.restore_size or (str(vsc_status["restoreSize"])
                                          if vsc_status.get("restoreSize") is not None else "")
    return {
        "role": claim.role,
        "volumeSnapshotName": str(meta.get("name", "")),
        "namespace": str(meta.get("namespace", claim.namespace)),
        "volumeSnapshotUid": str(meta.get("uid", "")),
        "volumeSnapshotContentName": state.content or str((vsc.get("metadata") or {})
                                                          .get("name", "")),
        "volumeSnapshotClassName": cls.name,
        "driver": str(vsc_spec.get("driver") or cls.driver or claim.driver),
        "snapshotHandle": str(handle),
        "restoreSize": restore_size,
        "deletionPolicy": str(vsc_spec.get("deletionPolicy") or cls.deletion_policy),
        "creationTime": state.creation_time,
        "readyToUse": state.ready,
        "backupId": str((meta.get("labels") or {}).get(BACKUP_LABEL, "")),
        "claim": claim.to_json(),
    }


def records_document(records: Sequence[Mapping[str, Any]], bid: str,
                     created: str) -> dict[str, Any]:
    return {"kind": RECORDS_KIND, "version": RECORDS_VERSION, "backupId": bid,
            "createdAt": created, "snapshots": list(records)}


def records_of(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The snapshot records of a bundle's volumes/snapshots.json (checked)."""
    if document.get("kind") != RECORDS_KIND:
        raise ValueError(f"not a snapshot record document (kind {document.get('kind')!r})")
    if int(document.get("version", 0)) > RECORDS_VERSION:
        raise ValueError(f"snapshot records version {document.get('version')} is newer than "
                         f"this tool understands ({RECORDS_VERSION}); use a newer kubectl "
                         "runai-dr")
    out = []
    for rec in document.get("snapshots") or []:
        missing = [k for k in ("volumeSnapshotName", "namespace", "driver", "snapshotHandle",
                               "claim") if not rec.get(k)]
        if missing:
            name = rec.get("volumeSnapshotName") or "?"
            raise ValueError(f'snapshot record "{name}" lacks {", ".join(missing)}')
        out.append(dict(rec))
    return out


# -- CHECKPOINT ---------------------------------------------------------------------------------
CHECKPOINT_ARGV = ["psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "--dbname=postgres",
                   "-c", "CHECKPOINT"]


def checkpoint_command() -> list[str]:
    """``sh -c`` running ``psql -c CHECKPOINT`` with the password taken from the container's
    own environment inside the pod (never on the command line, which the audit log keeps)."""
    return db.pod_command(CHECKPOINT_ARGV, password_from="env")


def pod_for_claim(claim: str, pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The pod that mounts ``claim`` (a Ready one first)."""
    users = [p for p in pods
             if any((v.get("persistentVolumeClaim") or {}).get("claimName") == claim
                    for v in (p.get("spec") or {}).get("volumes") or [])]
    users.sort(key=lambda p: (db.pod_problem(p) is not None,
                              str((p.get("metadata") or {}).get("name", ""))))
    return users[0] if users else None


# -- list and prune ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Listed:
    namespace: str
    name: str
    claim: str
    backup_id: str
    role: str
    ready: bool
    error: str
    restore_size: str
    created: str  # metadata.creationTimestamp
    content: str

    def to_json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "claim": self.claim,
                "backupId": self.backup_id, "role": self.role, "readyToUse": self.ready,
                "error": self.error, "restoreSize": self.restore_size,
                "creationTimestamp": self.created, "content": self.content}


def listed(vs: Mapping[str, Any]) -> Listed:
    meta = vs.get("metadata") or {}
    labels = meta.get("labels") or {}
    ann = meta.get("annotations") or {}
    source = ((vs.get("spec") or {}).get("source") or {})
    claim = str(ann.get(CLAIM_ANNOTATION) or source.get("persistentVolumeClaimName")
                or labels.get(CLAIM_LABEL, ""))
    state = snapshot_state(vs)
    return Listed(namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")),
                  claim=claim, backup_id=str(labels.get(BACKUP_LABEL, "")),
                  role=str(labels.get(ROLE_LABEL, "")), ready=state.ready, error=state.error,
                  restore_size=state.restore_size,
                  created=str(meta.get("creationTimestamp", "")), content=state.content)


def is_tools(vs: Mapping[str, Any]) -> bool:
    labels = (vs.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY) == TOOL and bool(labels.get(BACKUP_LABEL))


def sort_key(s: Listed) -> tuple[str, str, str]:
    return (s.created, s.backup_id, s.name)


@dataclass(frozen=True)
class PruneDecision:
    delete: list[Listed]
    keep: list[Listed]


def prune_selection(snapshots: Sequence[Listed], keep: int) -> PruneDecision:
    """Per source claim, keep the ``keep`` newest ready snapshots and anything newer than
    the oldest of them (in progress or failed: shown, not touched); delete the older ones.
    A claim with fewer than ``keep`` ready snapshots loses nothing."""
    if keep < 1:
        raise ValueError("--keep must be at least 1 (prune never deletes the newest snapshot)")
    by_claim: dict[tuple[str, str], list[Listed]] = {}
    for s in snapshots:
        by_claim.setdefault((s.namespace, s.claim), []).append(s)
    delete: list[Listed] = []
    kept: list[Listed] = []
    for _, items in sorted(by_claim.items()):
        items = sorted(items, key=sort_key, reverse=True)  # newest first
        ready_seen = 0
        cut: int | None = None
        for i, s in enumerate(items):
            if s.ready:
                ready_seen += 1
                if ready_seen == keep:
                    cut = i
                    break
        if cut is None:
            kept += items
            continue
        kept += items[: cut + 1]
        delete += items[cut + 1:]
    return PruneDecision(sorted(delete, key=sort_key), sorted(kept, key=sort_key))


# -- restore -----------------------------------------------------------------------------------
def restored_content_name(vs_name: str) -> str:
    """The pre-provisioned VolumeSnapshotContent's name: new, so it never collides with a
    retained content of the source cluster still bound to the old VolumeSnapshot."""
    return f"runai-dr-restore-{vs_name}"[:253].rstrip("-.")


def restore_labels(record: Mapping[str, Any]) -> dict[str, str]:
    return {MANAGED_BY: TOOL, RESTORED_LABEL: _label_value(str(record["volumeSnapshotName"])),
            BACKUP_LABEL: _label_value(str(record.get("backupId") or "")) or "unknown",
            ROLE_LABEL: _label_value(str(record.get("role") or "extra")) or "extra"}


def content_for_restore(record: Mapping[str, Any]) -> dict[str, Any]:
    """A pre-provisioned VolumeSnapshotContent for the recorded storage snapshot, bound in
    advance to the VolumeSnapshot of the same name as the recorded one. Retain: deleting
    the restored objects must never delete the backup."""
    vs_name = str(record["volumeSnapshotName"])
    spec: dict[str, Any] = {
        "deletionPolicy": "Retain",
        "driver": str(record["driver"]),
        "source": {"snapshotHandle": str(record["snapshotHandle"])},
        "volumeSnapshotRef": {"apiVersion": SNAPSHOT_API, "kind": "VolumeSnapshot",
                              "name": vs_name, "namespace": str(record["namespace"])},
    }
    mode = (record.get("claim") or {}).get("volumeMode")
    if mode:
        spec["sourceVolumeMode"] = mode
    return {"apiVersion": SNAPSHOT_API, "kind": "VolumeSnapshotContent",
            "metadata": {"name": restored_content_name(vs_name),
                         "labels": restore_labels(record)},
            "spec": spec}


def snapshot_for_restore(record: Mapping[str, Any]) -> dict[str, Any]:
    """The VolumeSnapshot bound to :func:`content_for_restore`'s content."""
    vs_name = str(record["volumeSnapshotName"])
    labels = restore_labels(record)
    claim = str((record.get("claim") or {}).get("name", ""))
    return {"apiVersion": SNAPSHOT_API, "kind": "VolumeSnapshot",
            "metadata": {"name": vs_name, "namespace": str(record["namespace"]),
                         "labels": {**labels, CLAIM_LABEL: _label_value(claim)},
                         "annotations": {CLAIM_ANNOTATION: claim}},
            "spec": {"source": {"volumeSnapshotContentName": restored_content_name(vs_name)}}}


def claim_for_restore(record: Mapping[str, Any], *,
                      storage_class: str | None = None) -> dict[str, Any]:
    """The claim, with its original name, from the VolumeSnapshot (``dataSource``):
    storage class, access modes and volume mode as recorded, size ≥ the snapshot's."""
    claim = record.get("claim") or {}
    size = larger_quantity(claim.get("size") or "", record.get("restoreSize") or "")
    if not size:
        raise ValueError(f'snapshot record "{record.get("volumeSnapshotName")}" has neither '
                         "a claim size nor a restoreSize")
    spec: dict[str, Any] = {
        "accessModes": list(claim.get("accessModes") or ["ReadWriteOnce"]),
        "resources": {"requests": {"storage": size}},
        "volumeMode": claim.get("volumeMode") or "Filesystem",
        "dataSource": {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot",
                       "name": str(record["volumeSnapshotName"])},
    }
    cls = storage_class if storage_class is not None else claim.get("storageClassName")
    if cls is not None:
        spec["storageClassName"] = cls
    labels = {k: v for k, v in (claim.get("labels") or {}).items()}
    labels.update(restore_labels(record))
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": str(claim["name"]), "namespace": str(record["namespace"]),
                         "labels": labels},
            "spec": spec}


def claim_binding(pvc: Mapping[str, Any], binding_mode: str | None) -> tuple[str, str]:
    """("bound" | "waiting" | "pending", message) for a restored claim."""
    phase = str((pvc.get("status") or {}).get("phase") or "Pending")
    if phase == "Bound":
        vol = (pvc.get("spec") or {}).get("volumeName") or "?"
        return "bound", f'bound to volume "{vol}"'
    if phase == "Lost":
        return "pending", "the claim is Lost (its volume is gone)"
    if binding_mode == "WaitForFirstConsumer":
        return "waiting", ("Pending as expected: its storage class binds with "
                           "WaitForFirstConsumer, so the volume is provisioned from the "
                           "snapshot when the StatefulSet's pod is scheduled")
    return "pending", f"still {phase}"


def restored_from(pvc: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    src = (pvc.get("spec") or {}).get("dataSource") or (pvc.get("spec") or {}).get(
        "dataSourceRef") or {}
    return src.get("kind") == "VolumeSnapshot" and src.get("name") == record.get(
        "volumeSnapshotName")
