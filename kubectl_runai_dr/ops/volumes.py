"""Volume operations: a standalone snapshot run (with its small bundle), and the restore
plan's ``volumes`` step.

Restore, per recorded snapshot, decided from what the target cluster has:
- the VolumeSnapshot still exists (the same cluster): the claim is created with its
  original name and ``dataSource`` pointing at it;
- it does not (a new cluster): a VolumeSnapshotContent is pre-provisioned from the
  recorded ``snapshotHandle`` and driver (deletionPolicy Retain), a VolumeSnapshot of the
  recorded name bound to it, then the claim.
A claim that already exists is left alone. Then the step waits for the snapshots to be
ready and the claims to bind; a claim whose storage class binds WaitForFirstConsumer stays
Pending until the StatefulSet's pod is scheduled, which is expected, not a failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components import volumes as comp
from kubectl_runai_dr.components.base import NullProgress, Progress
from kubectl_runai_dr.components.restore_base import ObjectResult, Outcome, failure
from kubectl_runai_dr.errors import AlreadyExists, BundleError, BundleExistsError, DrError
from kubectl_runai_dr.kube.resources import (
    NAMESPACES,
    PVCS,
    STORAGECLASSES,
    VOLUMESNAPSHOTCONTENTS,
    VOLUMESNAPSHOTS,
    Resource,
)
from kubectl_runai_dr.model import Names, Status
from kubectl_runai_dr.plan import volumes as p

STEP = "volumes"


# -- snapshot (standalone) ---------------------------------------------------------------------
@dataclass
class SnapshotOutcome:
    run: comp.SnapshotRun
    bundle: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.run.to_json(), "bundle": str(self.bundle) if self.bundle else None}


def run_snapshot(kube: Any, names: Names, opts: comp.SnapshotOptions, *,
                 output: Path | None = None, write_bundle: bool = True, force: bool = False,
                 progress: Progress | None = None,
                 now: datetime | None = None) -> SnapshotOutcome:
    """Take the snapshots; then (unless ``write_bundle`` is False) write a bundle holding
    only their records, which `restore` uses like any other bundle's volumes step."""
    from kubectl_runai_dr.ops.backup import BackupOptions, run_backup, target_path

    now = now or datetime.now(timezone.utc)
    if write_bundle:
        target = target_path(output, kube.context, now)
        if target.exists() and not force:
            raise BundleExistsError(f"{target} already exists; no snapshot was taken",
                                    hint="pass --force to overwrite it, or another --output")
    run = comp.take_snapshots(kube, names, opts, progress, now=now)
    out = SnapshotOutcome(run)
    if write_bundle and run.records:
        backup = run_backup(kube, BackupOptions(
            output=output, force=force, names=names, only=("snapshots",), record=False,
            component_options={"snapshots": True, "snapshot_run": run}), progress=progress,
            now=now)
        out.bundle = backup.path
    return out


# -- restore -----------------------------------------------------------------------------------
@dataclass
class VolumeRestoreOptions:
    dry_run: bool = False
    names: Names = field(default_factory=Names)
    storage_class: str | None = None  # use this class for every claim instead of the recorded
    wait: bool = True
    timeout: float = 600.0
    poll: float = 2.0


@dataclass
class VolumeRestoreResult:
    """Per-object results (created / unchanged = exists / failed / create in a dry run)."""

    status: Status = Status.OK
    reason: str = ""
    objects: list[ObjectResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status.value, "reason": self.reason,
                "objects": [o.to_json() for o in self.objects],
                "warnings": list(self.warnings), "details": self.details}


@dataclass
class _Pending:
    record: dict[str, Any]
    vs: ObjectResult
    pvc: ObjectResult
    binding_mode: str | None
    vs_done: bool = False
    pvc_done: bool = False


def options_of(opts: Any) -> VolumeRestoreOptions:
    """The step's options: ours, or taken from the restore's settings (dry run, names)."""
    if isinstance(opts, VolumeRestoreOptions):
        return opts
    if opts is None:
        return VolumeRestoreOptions()
    return VolumeRestoreOptions(dry_run=bool(getattr(opts, "dry_run", False)),
                                names=getattr(opts, "names", None) or Names())


def restore_volumes(kube: Any, bundle: Bundle, opts: Any = None,
                    progress: Progress | None = None) -> VolumeRestoreResult:
    """Re-create the recorded claims from their snapshots (see the module docstring)."""
    o = options_of(opts)
    progress = progress or NullProgress()
    out = VolumeRestoreResult()
    if not bundle.has(layout.SNAPSHOTS):
        out.status = Status.NOT_PRESENT
        out.reason = "the bundle holds no volume snapshots (backup --snapshots)"
        return out
    try:
        records = p.records_of(bundle.read_json(layout.SNAPSHOTS))
    except ValueError as exc:
        raise BundleError(f"{bundle.path}: {layout.SNAPSHOTS}: {exc}") from exc
    comp.require_snapshot_api(kube)
    pending: list[_Pending] = []
    namespaces: set[str] = set()
    for rec in records:
        progress.update(description=f"volume {rec['namespace']}/{rec['claim']['name']}")
        if rec["namespace"] not in namespaces:
            namespaces.add(rec["namespace"])
            if not _namespace(kube, rec["namespace"], o, out):
                continue
        item = _restore_one(kube, rec, o, out)
        if item is not None:
            pending.append(item)
    if pending and o.wait and not o.dry_run:
        _wait(kube, pending, o, progress)
    db = next((r for r in records if r.get("role") == "database"), None)
    if db is not None:
        out.details["claim"] = db["claim"]["name"]
    out.details["claims"] = [f"{r['namespace']}/{r['claim']['name']}" for r in records]
    bad = [x for x in out.objects if x.outcome is Outcome.FAILED]
    if bad:
        out.status = Status.FAILED
        out.reason = "; ".join(f"{x.label}: {x.message}" for x in bad)
    return out


def _result(out: VolumeRestoreResult, res: Resource, name: str, namespace: str | None,
            outcome: Outcome, message: str = "") -> ObjectResult:
    r = ObjectResult(STEP, res.kind, name, namespace, outcome, message)
    out.objects.append(r)
    return r


def _create(kube: Any, res: Resource, obj: dict[str, Any], o: VolumeRestoreOptions,
            out: VolumeRestoreResult, message: str = "") -> ObjectResult:
    name = str(obj["metadata"]["name"])
    ns = obj["metadata"].get("namespace") if res.namespaced else None
    if o.dry_run:
        return _result(out, res, name, ns, Outcome.WOULD_CREATE, message)
    try:
        kube.create(res, obj, namespace=ns)
    except AlreadyExists:
        return _result(out, res, name, ns, Outcome.UNCHANGED, "exists (created meanwhile)")
    except DrError as exc:
        return _result(out, res, name, ns, Outcome.FAILED, failure(exc))
    return _result(out, res, name, ns, Outcome.CREATED, message)


def _namespace(kube: Any, ns: str, o: VolumeRestoreOptions, out: VolumeRestoreResult) -> bool:
    """The claims' namespace (in a new cluster it precedes the helm install). False: failed."""
    try:
        live = kube.get_or_none(NAMESPACES, ns)
    except DrError as exc:
        _result(out, NAMESPACES, ns, None, Outcome.FAILED, failure(exc))
        return False
    if live is not None:
        return True
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
    r = _create(kube, NAMESPACES, obj, o, out, "for the restored claims")
    return r.outcome is not Outcome.FAILED


def _restore_one(kube: Any, rec: dict[str, Any], o: VolumeRestoreOptions,
                 out: VolumeRestoreResult) -> _Pending | None:
    ns = str(rec["namespace"])
    claim = str(rec["claim"]["name"])
    vs_name = str(rec["volumeSnapshotName"])
    try:
        return _restore_claim(kube, rec, o, out, ns, claim, vs_name)
    except DrError as exc:  # a read failed: this claim fails, the others go on
        _result(out, PVCS, claim, ns, Outcome.FAILED, failure(exc))
        return None
    except ValueError as exc:  # a record that cannot be turned into objects
        _result(out, PVCS, claim, ns, Outcome.FAILED,
                f"snapshot record {vs_name}: {exc}")
        return None


def _restore_claim(kube: Any, rec: dict[str, Any], o: VolumeRestoreOptions,
                   out: VolumeRestoreResult, ns: str, claim: str,
                   vs_name: str) -> _Pending | None:
    live_pvc = kube.get_or_none(PVCS, claim, ns)
    if live_pvc is not None:
        if (live_pvc.get("metadata") or {}).get("deletionTimestamp"):
            _result(out, PVCS, claim, ns, Outcome.FAILED,
                    "is being deleted (Terminating); wait until it is gone and run again")
        elif p.restored_from(live_pvc, rec):
            _, msg = p.claim_binding(live_pvc, None)
            _result(out, PVCS, claim, ns, Outcome.UNCHANGED,
                    f"exists, restored from snapshot {vs_name} ({msg})")
        else:
            _result(out, PVCS, claim, ns, Outcome.UNCHANGED,
                    "exists and was not created from the snapshot: left alone")
            out.warnings.append(
                f"claim {ns}/{claim} already exists and holds other data than snapshot "
                f"{vs_name}; to restore the snapshot, uninstall what uses it, delete the "
                "claim, and run the volumes step again")
        return None
    cls_name = o.storage_class if o.storage_class is not None else rec["claim"].get(
        "storageClassName")
    binding_mode: str | None = None
    if cls_name:
        sc = kube.get_or_none(STORAGECLASSES, cls_name)
        if sc is None:
            _result(out, PVCS, claim, ns, Outcome.FAILED,
                    f'storage class "{cls_name}" does not exist in this cluster: create it '
                    f'(provisioner "{rec["driver"]}", the driver that made the snapshot) '
                    "and run the volumes step again (`restore BUNDLE --only volumes`)")
            return None
        binding_mode = sc.get("volumeBindingMode")
        if sc.get("provisioner") != rec["driver"]:
            out.warnings.append(
                f'storage class "{cls_name}" provisions with "{sc.get("provisioner")}" but '
                f'snapshot {vs_name} was taken by "{rec["driver"]}": a claim can only be '
                "restored by the driver that made the snapshot")
    live_vs = kube.get_or_none(VOLUMESNAPSHOTS, vs_name, ns)
    if live_vs is None:
        content = p.content_for_restore(rec)
        live_vsc = kube.get_or_none(VOLUMESNAPSHOTCONTENTS, content["metadata"]["name"])
        if live_vsc is None:
            r = _create(kube, VOLUMESNAPSHOTCONTENTS, content, o, out,
                        f'pre-provisioned from snapshotHandle "{rec["snapshotHandle"]}"')
            if r.outcome is Outcome.FAILED:
                return None
        else:
            handle = ((live_vsc.get("spec") or {}).get("source") or {}).get("snapshotHandle")
            if handle != rec["snapshotHandle"]:
                _result(out, VOLUMESNAPSHOTCONTENTS, content["metadata"]["name"], None,
                        Outcome.FAILED, f'exists with snapshotHandle "{handle}", not the '
                        f'recorded "{rec["snapshotHandle"]}"; delete it and run again')
                return None
            _result(out, VOLUMESNAPSHOTCONTENTS, content["metadata"]["name"], None,
                    Outcome.UNCHANGED, "exists")
        vs_result = _create(kube, VOLUMESNAPSHOTS, p.snapshot_for_restore(rec), o, out,
                            "bound to the pre-provisioned content (new cluster)")
        if vs_result.outcome is Outcome.FAILED:
            return None
    else:
        state = p.snapshot_state(live_vs)
        if state.error:
            _result(out, VOLUMESNAPSHOTS, vs_name, ns, Outcome.FAILED,
                    f"exists but failed: {state.error}")
            return None
        vs_result = _result(out, VOLUMESNAPSHOTS, vs_name, ns, Outcome.UNCHANGED,
                            "exists (same cluster): the claim is restored from it")
    pvc_result = _create(kube, PVCS, p.claim_for_restore(rec, storage_class=o.storage_class),
                         o, out, f"from snapshot {vs_name}")
    if pvc_result.outcome is Outcome.FAILED:
        return None
    return _Pending(rec, vs_result, pvc_result, binding_mode)


def _wait(kube: Any, pending: list[_Pending], o: VolumeRestoreOptions,
          progress: Progress) -> None:
    """Snapshots ready, claims bound (or Pending under WaitForFirstConsumer)."""
    deadline = time.monotonic() + o.timeout
    delay = min(o.poll, 0.25)
    total = len(pending)
    progress.update(description=f"waiting for {total} claim(s)", completed=0, total=total)
    while True:
        for item in pending:
            ns = item.record["namespace"]
            if not item.vs_done:
                vs = kube.get_or_none(VOLUMESNAPSHOTS, item.record["volumeSnapshotName"], ns)
                state = p.snapshot_state(vs or {})
                if vs is None:
                    item.vs_done = item.pvc_done = True
                    _fail(item.vs, "disappeared while waiting for it")
                elif state.error:
                    item.vs_done = item.pvc_done = True
                    _fail(item.vs, f"failed: {state.error}")
                    item.pvc.message += "; its snapshot failed, so it cannot be provisioned"
                elif state.ready:
                    item.vs_done = True
                    item.vs.message = _join(item.vs.message, "readyToUse")
            if item.vs_done and not item.pvc_done:
                pvc = kube.get_or_none(PVCS, item.record["claim"]["name"], ns) or {}
                state_, msg = p.claim_binding(pvc, item.binding_mode)
                if state_ in ("bound", "waiting"):
                    item.pvc_done = True
                    item.pvc.message = _join(item.pvc.message, msg)
        done = sum(1 for i in pending if i.vs_done and i.pvc_done)
        progress.update(completed=done, description=f"claims ready: {done}/{total}")
        if done == total or time.monotonic() >= deadline:
            break
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(o.poll, delay * 2)
    for item in pending:
        if not item.vs_done:
            _fail(item.vs, f"not readyToUse after {o.timeout:.0f}s: check the snapshot "
                           f'controller and that CSI driver "{item.record["driver"]}" is '
                           "installed and can reach the storage snapshot")
        elif not item.pvc_done:
            _fail(item.pvc, f"not bound after {o.timeout:.0f}s (see `kubectl describe pvc "
                            f"-n {item.record['namespace']} {item.record['claim']['name']}`)")


def _fail(r: ObjectResult, message: str) -> None:
    r.outcome = Outcome.FAILED
    r.message = _join(r.message, message)


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b
