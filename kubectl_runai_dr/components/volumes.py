"""CSI VolumeSnapshots of the database, metrics and queue volumes; list, prune, protect.

``take_snapshots`` finds the claims (the inventory's names, old and new, plus ``--pvc``),
checks everything before creating anything (snapshot CRDs served, each claim bound to a
CSI volume, a VolumeSnapshotClass for each driver), runs ``CHECKPOINT`` in the database
pod right before the database snapshot, creates the tool's labelled VolumeSnapshots and
waits for ``readyToUse``. The records it returns go into the bundle
(``volumes/snapshots.json``) through the ``volumes`` component, whose restore re-creates
the claims from them.

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
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.bundle.manifest import utc_stamp
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components.base import BackupContext, Component, NullProgress, Progress
from kubectl_runai_dr.components.restore_base import RestoreContext, failure
from kubectl_runai_dr.errors import BundleError, ComponentError, DrError, UsageError
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import AlreadyExists
from kubectl_runai_dr.kube.resources import (
    NAMESPACES,
    PODS,
    PVCS,
    PVS,
    STORAGECLASSES,
    VOLUMESNAPSHOTCLASSES,
    VOLUMESNAPSHOTCONTENTS,
    VOLUMESNAPSHOTS,
    Resource,
)
from kubectl_runai_dr.model import Names, ObjectResult, Outcome, Result, Status
from kubectl_runai_dr.plan import database as db
from kubectl_runai_dr.plan import permissions as perm
from kubectl_runai_dr.plan import volumes as p

STEP = "volumes"
DEFAULT_TIMEOUT = 600.0
DEFAULT_POLL = 2.0


@dataclass(frozen=True)
class SnapshotOptions:
    pvcs: tuple[str, ...] = ()  # --pvc NAME or NAMESPACE/NAME (added to the documented ones)
    only_pvcs: bool = False  # --only-pvc: the --pvc claims alone
    snapshot_class: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    poll: float = DEFAULT_POLL
    checkpoint: bool = True


@dataclass
class SnapshotRun:
    """What one snapshot run made: the records for the bundle, and what to tell the user."""

    backup_id: str
    created_at: str
    records: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reason: str = ""  # why there is nothing to snapshot (records empty)
    checkpoint: str = ""  # "ok", "skipped: ..." or "failed: ..."

    def document(self) -> dict[str, Any]:
        return p.records_document(self.records, self.backup_id, self.created_at)

    def to_json(self) -> dict[str, Any]:
        return {**self.document(), "warnings": list(self.warnings),
                **({"reason": self.reason} if self.reason else {}),
                **({"checkpoint": self.checkpoint} if self.checkpoint else {})}


# -- preflight -----------------------------------------------------------------------------------
def require_snapshot_api(kube: KubeApi) -> None:
    """The three snapshot.storage.k8s.io/v1 resources must be served."""
    missing = []
    versions = kube.group_versions(p.SNAPSHOT_GROUP)
    for res in (VOLUMESNAPSHOTS, VOLUMESNAPSHOTCONTENTS, VOLUMESNAPSHOTCLASSES):
        served = kube.served(res) if "v1" in versions else None
        if served is None or served.version != "v1":
            missing.append(res.group_resource)
    if missing:
        older = (f" (the server has only {', '.join(versions)})" if versions else "")
        raise ComponentError(
            f"the cluster does not serve the CSI snapshot API {p.SNAPSHOT_API}: "
            f"{', '.join(missing)} missing{older}",
            hint=p.INSTALL_SNAPSHOTTER_HINT)


def find_claims(kube: KubeApi, names: Names, opts: SnapshotOptions) -> list[p.Claim]:
    """The claims to snapshot, each with its bound volume's driver and reclaim policy."""
    ns = names.control_plane_namespace
    listed = {str(c["metadata"]["name"]): c for c in kube.list(PVCS, namespace=ns)}
    try:
        refs = p.select_claims(listed, ns, extra=opts.pvcs, only_extra=opts.only_pvcs)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    claims = []
    for ref in refs:
        pvc = listed.get(ref.name) if ref.namespace == ns else kube.get_or_none(
            PVCS, ref.name, ref.namespace)
        if pvc is None:
            raise UsageError(f'claim "{ref.name}" not found in namespace "{ref.namespace}"',
                             hint=f"check --pvc (`kubectl get pvc -n {ref.namespace}`)")
        vol = (pvc.get("spec") or {}).get("volumeName")
        pv = kube.get_or_none(PVS, vol) if vol else None
        claims.append(p.claim_of(ref, pvc, pv))
    return claims


def snapshot_classes(kube: KubeApi) -> list[p.SnapshotClass]:
    return [p.SnapshotClass.of(c) for c in kube.list(VOLUMESNAPSHOTCLASSES)]


def plan_classes(claims: Sequence[p.Claim], classes: Sequence[p.SnapshotClass],
                 requested: str | None) -> dict[str, p.SnapshotClass]:
    """claim label → class; every problem at once, as one error saying what to do."""
    problems = [f"claim {c.label} {why}" for c in claims if (why := p.claim_problem(c))]
    if problems:
        raise ComponentError("cannot snapshot: " + "; ".join(problems),
                             hint="snapshot only bound CSI volumes (leave others out of "
                                  "--pvc); back the database up with pg_dump (`backup "
                                  "database`) where its volume is not CSI")
    chosen: dict[str, p.SnapshotClass] = {}
    missing: list[str] = []
    hints: list[str] = []
    for c in claims:
        try:
            chosen[c.label] = p.choose_class(c.driver, classes, requested)
        except p.NoClass as exc:
            missing.append(f"claim {c.label}: {exc}")
            hint = p.class_example(c.driver)
            if hint not in hints:
                hints.append(hint)
    if missing:
        raise ComponentError("no usable VolumeSnapshotClass: " + "; ".join(missing),
                             hint="; ".join(hints))
    return chosen


# -- CHECKPOINT ------------------------------------------------------------------------------
def checkpoint(kube: KubeApi, claim: p.Claim) -> tuple[bool, str]:
    """Run CHECKPOINT in the pod that mounts the database claim. (done, what happened);
    a failure is reported, not raised: the snapshot stays crash-consistent without it."""
    from kubectl_runai_dr.kube import exec as kexec

    after = ("the snapshot is still crash-consistent (PostgreSQL replays its WAL when "
             "started from it), only less recent")
    pod = p.pod_for_claim(claim.name, kube.list(PODS, namespace=claim.namespace))
    if pod is None:
        return False, f"no pod mounts claim {claim.label}: CHECKPOINT skipped (the database "\
                      "is not running, its volume is at rest)"
    name = str(pod["metadata"]["name"])
    problem = db.pod_problem(pod)
    if problem:
        return False, f'database pod "{name}" {problem}: CHECKPOINT skipped; {after}'
    try:
        container = db.choose_container(pod, None)
        res = kexec.run(kube, claim.namespace, name, p.checkpoint_command(),
                        container=container, timeout=300)
    except (DrError, ValueError) as exc:
        return False, f'CHECKPOINT in pod "{name}" failed: {exc}; {after}'
    if not res.ok:
        tail = res.stderr_tail.strip()[-500:] or "(no error output)"
        return False, f'CHECKPOINT in pod "{name}" {res.describe()}: {tail}; {after}'
    return True, f'CHECKPOINT done in pod "{name}" (container "{container}")'


# -- snapshots -----------------------------------------------------------------------------
def take_snapshots(kube: KubeApi, names: Names, opts: SnapshotOptions,
                   progress: Progress | None = None, *,
                   now: datetime | None = None) -> SnapshotRun:
    progress = progress or NullProgress()
    now = now or datetime.now(timezone.utc)
    run = SnapshotRun(backup_id=p.backup_id(now), created_at=utc_stamp(now))
    claims = find_claims(kube, names, opts)
    if not claims:
        run.reason = (f'no Run:ai volume claims in namespace "{names.control_plane_namespace}" '
                      "(database, Thanos receive, redis queue); name others with --pvc")
        return run
    require_snapshot_api(kube)
    classes = plan_classes(claims, snapshot_classes(kube), opts.snapshot_class)
    for cls in {c.name: c for c in classes.values()}.values():
        if (w := p.class_warning(cls)) is not None:
            run.warnings.append(w)
    for c in claims:
        if (w := p.reclaim_warning(c)) is not None:
            run.warnings.append(w)
    # The database first, right after its CHECKPOINT; then the others.
    ordered = sorted(claims, key=lambda c: (p.ROLE_ORDER.get(c.role, 99), c.label))
    created: list[tuple[p.Claim, dict[str, Any]]] = []
    for claim in ordered:
        if claim.role == "database":
            if opts.checkpoint:
                progress.update(description=f"CHECKPOINT before snapshot of {claim.label}")
                done, what = checkpoint(kube, claim)
                run.checkpoint = "ok" if done else what
                if not done:
                    run.warnings.append(what)
            else:
                run.checkpoint = "skipped (--no-checkpoint)"
        vs = p.volume_snapshot(claim, classes[claim.label], run.backup_id)
        progress.update(description=f"snapshot of {claim.label}")
        created.append((claim, kube.create(VOLUMESNAPSHOTS, vs, namespace=claim.namespace)))
    ready = wait_ready(kube, [vs for _, vs in created], timeout=opts.timeout, poll=opts.poll,
                       progress=progress, cleanup=True)
    for claim, vs in created:
        live = ready[(vs["metadata"]["namespace"], vs["metadata"]["name"])]
        content_name = p.snapshot_state(live).content
        vsc = kube.get_or_none(VOLUMESNAPSHOTCONTENTS, content_name) if content_name else None
        record = p.snapshot_record(claim, classes[claim.label], live, vsc)
        if not record["snapshotHandle"]:
            raise ComponentError(
                f'VolumeSnapshot "{record["volumeSnapshotName"]}" is ready but its content '
                f'"{content_name}" has no snapshotHandle: it could not be restored elsewhere',
                hint="check the CSI driver's snapshotter (`kubectl get volumesnapshotcontent "
                     f"{content_name} -o yaml`)")
        run.records.append(record)
    return run


def _duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def wait_ready(kube: KubeApi, snapshots: Sequence[Mapping[str, Any]], *, timeout: float,
               poll: float = DEFAULT_POLL, progress: Progress | None = None,
               cleanup: bool = False) -> dict[tuple[str, str], dict[str, Any]]:
    """Wait until every VolumeSnapshot is readyToUse. A ``status.error`` or the timeout is
    a ComponentError naming each snapshot that did not make it; with ``cleanup`` those
    (this run's own) are deleted first, so no failed snapshot is left behind, while the
    ready ones stay (``snapshot prune`` rotates them)."""
    progress = progress or NullProgress()
    pending = [(str(s["metadata"]["namespace"]), str(s["metadata"]["name"])) for s in snapshots]
    total = len(pending)
    ready: dict[tuple[str, str], dict[str, Any]] = {}
    failed: dict[tuple[str, str], str] = {}
    deadline = time.monotonic() + timeout
    delay = min(poll, 0.25)  # quick first looks (small volumes are ready at once), then poll
    progress.update(description=f"waiting for {total} snapshot(s) to be ready",
                    completed=0, total=total)
    while pending:
        for key in list(pending):
            live = kube.get(VOLUMESNAPSHOTS, key[1], key[0])
            state = p.snapshot_state(live)
            if state.error:
                failed[key] = state.error
                pending.remove(key)
            elif state.ready:
                ready[key] = live
                pending.remove(key)
        progress.update(completed=len(ready) + len(failed),
                        description=f"snapshots ready: {len(ready)}/{total}"
                        + (f", failed: {len(failed)}" if failed else ""))
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(poll, delay * 2)
    if failed or pending:
        parts = [f'VolumeSnapshot "{n}" in namespace "{ns}" failed: {msg}'
                 for (ns, n), msg in failed.items()]
        parts += [f'VolumeSnapshot "{n}" in namespace "{ns}" not ready after '
                  f"{_duration(timeout)}" for ns, n in pending]
        hint = ("see `kubectl describe volumesnapshot -n NAMESPACE NAME` and the CSI "
                "driver's snapshotter logs; ")
        if pending:
            hint += "a slow storage backend needs a longer --timeout; "
        if cleanup:
            left = []
            for ns, n in [*failed, *pending]:
                try:
                    kube.delete(VOLUMESNAPSHOTS, n, namespace=ns)
                except DrError as exc:
                    left.append(f"{ns}/{n} ({exc.message})")
            hint += ("the snapshots that did not become ready were deleted"
                     + (f", except {', '.join(left)}: delete them with kubectl" if left
                        else "") + "; the ready ones of this run were kept "
                     "(`kubectl runai-dr snapshot prune` rotates them)")
        else:
            hint += "the snapshots were left in place (kubectl delete removes them)"
        raise ComponentError("; ".join(parts), hint=hint)
    return ready


# -- the backup component ------------------------------------------------------------------
def backup(ctx: BackupContext, result: Result) -> None:
    """Component ``volumes`` (opt-in: ``backup --snapshots`` and/or ``--volume-data``): CSI
    snapshots, recorded; the files of claims (components/voldata.py)."""
    if ctx.volume_data is None:
        _backup_snapshots(ctx, result)
        return
    if ctx.snapshots is not None or ctx.snapshot_run is not None:
        _backup_snapshots(ctx, result)
    from kubectl_runai_dr.components import voldata

    copied = voldata.backup(ctx, result, ctx.volume_data)
    if copied:
        if result.status is Status.NOT_PRESENT:
            result.status, result.reason = Status.OK, ""
        result.count = (result.count or 0) + copied
    elif not result.files:
        result.status = Status.NOT_PRESENT
        result.reason = (result.reason or f'no Run:ai data claims in namespace '
                         f'"{ctx.names.control_plane_namespace}" to copy; name them after '
                         "--volume-data")


def _backup_snapshots(ctx: BackupContext, result: Result) -> None:
    run = ctx.snapshot_run
    if run is None:
        run = take_snapshots(ctx.kube, ctx.names, ctx.snapshots or SnapshotOptions(),
                             ctx.progress)
    result.warnings += run.warnings
    if not run.records:
        result.status = Status.NOT_PRESENT
        result.reason = run.reason
        return
    ctx.out.write_json(layout.SNAPSHOTS, run.document())
    result.files.append(layout.SNAPSHOTS)
    result.count = len(run.records)
    result.details = {
        "backupId": run.backup_id,
        "checkpoint": run.checkpoint,
        "snapshots": [{"name": r["volumeSnapshotName"], "namespace": r["namespace"],
                       "claim": r["claim"]["name"], "restoreSize": r["restoreSize"],
                       "deletionPolicy": r["deletionPolicy"]} for r in run.records],
    }


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
class _Pending:
    record: dict[str, Any]
    vs: ObjectResult
    pvc: ObjectResult
    binding_mode: str | None
    vs_done: bool = False
    pvc_done: bool = False


def restore_volumes(kube: KubeApi, bundle: Bundle, o: VolumeRestoreOptions, out: Result,
                    progress: Progress | None = None) -> str | None:
    """Re-create the recorded claims from their snapshots (see the module docstring), each
    object's outcome into ``out``. Returns the database's claim name, if recorded."""
    progress = progress or NullProgress()
    if not bundle.has(layout.SNAPSHOTS):
        out.skip("the bundle holds no volume snapshots (backup --snapshots)")
        return None
    try:
        records = p.records_of(bundle.read_json(layout.SNAPSHOTS))
    except ValueError as exc:
        raise BundleError(f"{bundle.path}: {layout.SNAPSHOTS}: {exc}") from exc
    require_snapshot_api(kube)
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
    db_rec = next((r for r in records if r.get("role") == "database"), None)
    return str(db_rec["claim"]["name"]) if db_rec is not None else None


def restore(ctx: RestoreContext, step: Result) -> None:
    """The restore plan's ``volumes`` step: claims from snapshots, then claims from files."""
    from kubectl_runai_dr.components import voldata

    s = ctx.settings
    has_data = voldata.holds_data(ctx.bundle.files)
    if ctx.bundle.has(layout.SNAPSHOTS) or not has_data:
        claim = restore_volumes(ctx.kube, ctx.bundle, VolumeRestoreOptions(
            dry_run=s.dry_run, names=s.names, timeout=s.wait_timeout or DEFAULT_TIMEOUT,
            poll=s.poll, storage_class=s.storage_class), step, ctx.progress)
        if claim:
            ctx.database_claim = claim
    if has_data:
        voldata.restore(ctx.kube, ctx.bundle, voldata.DataRestoreOptions(
            dry_run=s.dry_run, names=s.names, storage_class=s.storage_class,
            image=s.volume_data_image, existing=s.existing,
            timeout=s.wait_timeout or DEFAULT_TIMEOUT), step, ctx.progress)


def _result(out: Result, res: Resource, name: str, namespace: str | None,
            outcome: Outcome, message: str = "") -> ObjectResult:
    r = out.add(ObjectResult(STEP, res.kind, name, namespace, outcome, message))
    return r


def _create(kube: KubeApi, res: Resource, obj: dict[str, Any], o: VolumeRestoreOptions,
            out: Result, message: str = "") -> ObjectResult:
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


def _namespace(kube: KubeApi, ns: str, o: VolumeRestoreOptions, out: Result) -> bool:
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


def _restore_one(kube: KubeApi, rec: dict[str, Any], o: VolumeRestoreOptions,
                 out: Result) -> _Pending | None:
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


def _restore_claim(kube: KubeApi, rec: dict[str, Any], o: VolumeRestoreOptions,
                   out: Result, ns: str, claim: str,
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
            out.warn(
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
            out.warn(
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


def _wait(kube: KubeApi, pending: list[_Pending], o: VolumeRestoreOptions,
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


# -- list and prune ------------------------------------------------------------------------
def list_snapshots(kube: KubeApi) -> list[p.Listed]:
    """The tool's VolumeSnapshots in every namespace, oldest first."""
    require_snapshot_api(kube)
    items = [p.listed(vs) for vs in kube.list(VOLUMESNAPSHOTS, label_selector=p.TOOL_SELECTOR)
             if p.is_tools(vs)]
    return sorted(items, key=p.sort_key)


@dataclass
class PruneOutcome:
    decision: p.PruneDecision
    dry_run: bool
    deleted: list[p.Listed] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"dryRun": self.dry_run,
                "delete": [s.to_json() for s in self.decision.delete],
                "keep": [s.to_json() for s in self.decision.keep],
                "deleted": [f"{s.namespace}/{s.name}" for s in self.deleted],
                "errors": list(self.errors)}


def prune(kube: KubeApi, keep: int, *, dry_run: bool = False) -> PruneOutcome:
    """Delete the oldest of the tool's snapshots, keeping ``keep`` ready ones per claim.
    What happens to the storage snapshot follows each content's deletionPolicy."""
    try:
        decision = p.prune_selection(list_snapshots(kube), keep)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    out = PruneOutcome(decision, dry_run)
    if dry_run:
        return out
    for s in decision.delete:
        try:
            kube.delete(VOLUMESNAPSHOTS, s.name, namespace=s.namespace)
            out.deleted.append(s)
        except DrError as exc:
            out.errors.append(f'VolumeSnapshot "{s.name}" in namespace "{s.namespace}": '
                              f"{exc.message}")
    return out


# -- protect ---------------------------------------------------------------------------------
@dataclass
class ProtectOutcome:
    volumes: list[p.Protection]
    dry_run: bool
    patched: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"dryRun": self.dry_run,
                "volumes": [{"volume": v.volume, "claim": v.claim, "reclaimPolicy": v.policy,
                             "needsProtection": v.needed} for v in self.volumes],
                "patched": list(self.patched), "errors": list(self.errors)}


def protect(kube: KubeApi, names: Names, *, extra: Sequence[str] = (),
            dry_run: bool = False) -> ProtectOutcome:
    """Set persistentVolumeReclaimPolicy Retain on the volumes of the control plane's
    claims (every claim in its namespace, plus ``--pvc``) that have Delete."""
    ns = names.control_plane_namespace
    pvcs = list(kube.list(PVCS, namespace=ns))
    for arg in extra:
        try:
            cns, name = p.parse_claim_arg(arg, ns)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        if cns == ns and any(c["metadata"]["name"] == name for c in pvcs):
            continue
        pvc = kube.get_or_none(PVCS, name, cns)
        if pvc is None:
            raise UsageError(f'claim "{name}" not found in namespace "{cns}"',
                             hint=f"check --pvc (`kubectl get pvc -n {cns}`)")
        pvcs.append(pvc)
    pvs: dict[str, dict[str, Any]] = {}
    for c in pvcs:
        vol = (c.get("spec") or {}).get("volumeName")
        if vol and vol not in pvs and (pv := kube.get_or_none(PVS, vol)) is not None:
            pvs[vol] = pv
    out = ProtectOutcome(p.protections(pvcs, pvs), dry_run)
    if dry_run:
        return out
    for v in out.volumes:
        if not v.needed:
            continue
        try:
            kube.patch(PVS, v.volume, p.PROTECT_PATCH)
            out.patched.append(v.volume)
        except DrError as exc:
            out.errors.append(f'PersistentVolume "{v.volume}" (claim {v.claim}): {exc.message}')
    return out


# -- the component -----------------------------------------------------------------------------

def _holds(files: Collection[str], names: Names) -> bool:
    from kubectl_runai_dr.plan.voldata import RECORDS

    return layout.SNAPSHOTS in files or RECORDS in files


_P = perm
COMPONENT = Component(
    name="volumes", aliases=("snapshots",), title="volumes from snapshots",
    saves="records of CSI VolumeSnapshots of the database, Thanos and redis-queue volumes "
          "(the snapshots stay in the storage); with --volume-data, the files of the Thanos "
          "and other data claims as tar streams, with each claim's spec",
    reason="the database and metrics volumes must exist before the control plane that "
           "mounts them is installed",
    backup=backup, restore=restore, holds_data=_holds, opt_in="--snapshots",
    control_plane=True, backup_needs=(*_P.SNAPSHOT_NEEDS, *_P.VOLUME_DATA_BACKUP),
    restore_needs=(_P.need("get", _P.CORE, "namespaces", _P.CLUSTER_SCOPED),
                   _P.need("create", _P.CORE, "namespaces", _P.CLUSTER_SCOPED, _P.WRITE),
                   _P.need("get", _P.CORE, "persistentvolumeclaims", _P.CONTROL_PLANE),
                   _P.need("create", _P.CORE, "persistentvolumeclaims", _P.CONTROL_PLANE,
                           _P.WRITE),
                   _P.need("get", "storage.k8s.io", "storageclasses", _P.CLUSTER_SCOPED),
                   _P.need("get", _P.SNAPSHOT, "volumesnapshots", _P.CONTROL_PLANE),
                   _P.need("create", _P.SNAPSHOT, "volumesnapshots", _P.CONTROL_PLANE,
                           _P.WRITE),
                   _P.need("get", _P.SNAPSHOT, "volumesnapshotcontents", _P.CLUSTER_SCOPED),
                   _P.need("create", _P.SNAPSHOT, "volumesnapshotcontents",
                           _P.CLUSTER_SCOPED, _P.WRITE),
                   *_P.VOLUME_DATA_RESTORE),
)
