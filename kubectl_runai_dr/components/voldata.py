"""File-level volume data: ``backup --volume-data`` and its restore in the ``volumes`` step.

For each claim (the Thanos receive claim and the other Run:ai data claims but the
database's, or those named) the files are streamed as ``tar`` through the exec API straight
into the bundle member (``BundleWriter.open``: size and sha256 recorded, memory flat):

- from the container of the running pod that mounts it;
- when that container has no ``tar``: from an ephemeral debug container added to the pod
  (``--volume-data-image``), mounting the same volume read-only;
- with ``--quiesce``, or when no pod mounts the claim: the StatefulSet is scaled to zero
  (``--quiesce`` only; scaled back on every exit path, Ctrl-C and SIGTERM included) and a
  short-lived helper pod mounting the claim does the copy, then is deleted.

Without ``--quiesce`` the copy is of a live volume: Thanos blocks are immutable once written,
the write-ahead log and head block may change; the files GNU tar reports as changed during
the copy are listed as warnings.

Restore (``volumes`` step, before the control plane is installed): the claim is created
with its recorded spec (``--storage-class`` overrides the class), a helper pod mounting it
(the workload's recorded image, or ``--volume-data-image``) receives the tar stream, checked
against its sha256 as it flows (a corrupt member never reaches tar's end of input), then
the number of entries on the volume is compared with the archive's, and the helper pod is
deleted. A claim that already holds data is left alone unless ``--existing update``.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from kubectl_runai_dr.bundle.manifest import utc_stamp
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components.base import BackupContext, NullProgress, Progress
from kubectl_runai_dr.components.restore_base import Existing, failure
from kubectl_runai_dr.errors import BundleError, ComponentError, DrError, UsageError
from kubectl_runai_dr.kube import exec as kexec
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import AlreadyExists, NotFound
from kubectl_runai_dr.kube.resources import NAMESPACES, PODS, PVCS, STATEFULSETS, STORAGECLASSES
from kubectl_runai_dr.model import Names, ObjectResult, Outcome, Result
from kubectl_runai_dr.plan import database as db
from kubectl_runai_dr.plan import voldata as p
from kubectl_runai_dr.plan import volumes as pv

STEP = "volumes"
CANCEL_TIMEOUT = 15.0


@dataclass(frozen=True)
class VolumeDataOptions:
    claims: tuple[str, ...] = ()  # --volume-data CLAIM...: NAME or NAMESPACE/NAME
    image: str = p.DEFAULT_DEBUG_IMAGE  # --volume-data-image: debug container / helper fallback
    quiesce: bool = False
    timeout: float = 600.0  # a pod, an ephemeral container, a scale-down
    poll: float = 0.5


class _NoTar(Exception):
    """The container has no tar (exit 127)."""


# -- exec --------------------------------------------------------------------------------------
def _run(kube: KubeApi, ns: str, pod: str, container: str, script: str, directory: str, *,
         stdout: Any = None, stdin: Iterable[bytes] | None = None, stdin_size: int | None = None,
         keep_stdout_tail: int = 0) -> kexec.ExecResult:
    """``script`` in the container, supervised (it ends with its connection, or after a day),
    ended in the pod when it fails or is interrupted."""
    tag = f"runai-dr-vd-{secrets.token_hex(4)}"
    feeding = stdin is not None
    argv = db.pod_command(p.script_argv(script, directory), password_from="none",
                          stdin="drain" if feeding else "watch", tag=tag,
                          deadline=p.COMMAND_DEADLINE)
    timeout = getattr(kube, "request_timeout", None) or None
    try:
        res = kexec.run(kube, ns, pod, argv, container=container, stdout=stdout,
                        stdin=stdin if feeding else [], stdin_size=stdin_size if feeding else None,
                        end_stdin=feeding, timeout=timeout, keep_stdout_tail=keep_stdout_tail)
    except BaseException:
        _cancel(kube, ns, pod, container, tag)
        raise
    if res.exit_code is None:
        _cancel(kube, ns, pod, container, tag)
    return res


def _cancel(kube: KubeApi, ns: str, pod: str, container: str, tag: str) -> None:
    with contextlib.suppress(Exception):  # best effort: the command also ends with its stream
        kexec.run(kube, ns, pod, ["sh", "-c", db.KILL_TAGGED + "exit 0", tag],
                  container=container, timeout=CANCEL_TIMEOUT)


def _small(kube: KubeApi, ns: str, pod: str, container: str, script: str, directory: str,
           what: str) -> str:
    res = _run(kube, ns, pod, container, script, directory, keep_stdout_tail=4096)
    if not res.ok:
        raise ComponentError(f'{what} in pod "{pod}" (namespace "{ns}", container "{container}") '
                             f"{res.describe()}: {res.stderr_tail.strip()[-500:] or '(no output)'}",
                             hint="check the pod (`kubectl describe pod`) and run again")
    return res.stdout_tail.decode("utf-8", "replace").strip()


class _Sink:
    """The tar stream, written to the bundle member and counted as it passes."""

    def __init__(self, f: Any, progress: Progress, label: str) -> None:
        self.f = f
        self.counter = p.TarCounter()
        self.bytes = 0
        self.progress = progress
        self.label = label

    def write(self, data: bytes | memoryview) -> None:
        self.f.write(data)
        self.counter.write(data)
        before, self.bytes = self.bytes, self.bytes + len(data)
        if self.bytes >> 26 != before >> 26:
            self.progress.update(description=f"volume data {self.label}: {self.bytes >> 20} MiB")


# -- waits -------------------------------------------------------------------------------------
def _wait(what: str, check: Callable[[], str | None], o: VolumeDataOptions | float,
          hint: str) -> None:
    """Poll ``check`` (None: done; text: the state) until done or the timeout."""
    timeout = o.timeout if isinstance(o, VolumeDataOptions) else o
    poll = o.poll if isinstance(o, VolumeDataOptions) else 0.5
    deadline = time.monotonic() + timeout
    delay = min(poll, 0.1)
    while True:
        state = check()
        if state is None:
            return
        if time.monotonic() >= deadline:
            raise ComponentError(f"{what}: not done after {timeout:.0f}s ({state})", hint=hint)
        time.sleep(delay)
        delay = min(poll, delay * 2)


def _pod_running(kube: KubeApi, ns: str, name: str, container: str, *,
                 ephemeral: bool = False) -> Callable[[], str | None]:
    def check() -> str | None:
        pod = kube.get_or_none(PODS, name, ns)
        if pod is None:
            raise ComponentError(f'pod "{name}" in namespace "{ns}" disappeared')
        status = pod.get("status") or {}
        key = "ephemeralContainerStatuses" if ephemeral else "containerStatuses"
        cs = next((c for c in status.get(key) or [] if c.get("name") == container), None)
        state = (cs or {}).get("state") or {}
        if "running" in state:
            return None
        if "terminated" in state:
            t = state["terminated"]
            raise ComponentError(
                f'container "{container}" of pod "{name}" ended (exit code {t.get("exitCode")}, '
                f'{t.get("reason", "")}{": " + str(t.get("message")) if t.get("message") else ""})',
                hint="check its image (--volume-data-image) and `kubectl describe pod -n "
                     f"{ns} {name}`")
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
            raise ComponentError(
                f'container "{container}" of pod "{name}": {waiting.get("reason")} '
                f'{waiting.get("message", "")}'.strip(),
                hint="give an image this cluster can pull with --volume-data-image")
        conds = {c.get("type"): c for c in status.get("conditions") or []}
        sched = conds.get("PodScheduled") or {}
        if sched.get("status") == "False":
            return f"not scheduled: {sched.get('message', '')}"
        return str(waiting.get("reason") or status.get("phase") or "pending")

    return check


# -- helper pods -------------------------------------------------------------------------------
def _delete_pod(kube: KubeApi, ns: str, name: str) -> None:
    with contextlib.suppress(NotFound):
        kube.delete(PODS, name, namespace=ns)


def _start_helper(kube: KubeApi, ns: str, claim: str, image: str, purpose: str,
                  o: VolumeDataOptions | float) -> str:
    pod = p.helper_pod(ns, claim, image, purpose=purpose)
    name = str(pod["metadata"]["name"])
    if kube.get_or_none(PODS, name, ns) is not None:  # left by an interrupted run
        _delete_pod(kube, ns, name)
        _wait(f'old helper pod "{name}" to go', lambda: None if kube.get_or_none(
            PODS, name, ns) is None else "terminating", o, "delete it with kubectl")
    kube.create(PODS, pod, namespace=ns)
    try:
        _wait(f'helper pod "{name}" (namespace "{ns}", claim "{claim}") to run',
              _pod_running(kube, ns, name, "data"), o,
              f"see `kubectl describe pod -n {ns} {name}`; a claim mounted ReadWriteOnce by a "
              "pod on another node cannot be mounted here (use --quiesce)")
    except BaseException:
        _delete_pod(kube, ns, name)
        raise
    return name


# -- backup ------------------------------------------------------------------------------------
def _copy(kube: KubeApi, ctx: BackupContext, ns: str, pod: str, container: str,
          directory: str, member: str, label: str) -> tuple[p.TarOutcome, int]:
    """tar of ``directory`` in the container into the bundle member; raises _NoTar."""
    with ctx.out.open(member) as f:
        sink = _Sink(f, ctx.progress, label)
        res = _run(kube, ns, pod, container, p.BACKUP_SCRIPT, directory, stdout=sink)
        if res.exit_code == p.NO_TAR_EXIT and sink.bytes == 0:
            raise _NoTar(res.stderr_tail)
        judged = p.judge_tar(res.exit_code, res.stderr_tail)
        if not judged.ok:
            raise ComponentError(
                f'tar of claim {label} in pod "{pod}" (container "{container}") '
                f"{res.describe()}: {'; '.join(judged.problems)[-1500:] or res.status_message}",
                hint="fix the cause shown above and run again; nothing partial was kept")
        if not sink.counter.ended:
            raise ComponentError(f'tar of claim {label} in pod "{pod}" ended without the end '
                                 "of its archive", hint="run again; nothing partial was kept")
    return judged, sink.counter.entries


def _via_debug(kube: KubeApi, ctx: BackupContext, o: VolumeDataOptions, ns: str,
               pod: Mapping[str, Any], claim: str, mount: str, member: str,
               label: str) -> tuple[p.TarOutcome, int, str]:
    name = str(pod["metadata"]["name"])
    spec = p.debug_container(pod, claim, o.image, mount)
    existing = list((pod.get("spec") or {}).get("ephemeralContainers") or [])
    ctx.progress.update(description=f"volume data {label}: debug container in {name}")
    kube.patch(PODS, name, {"spec": {"ephemeralContainers": [*existing, spec]}}, namespace=ns,
               patch_type="strategic", subresource="ephemeralcontainers")
    _wait(f'debug container "{spec["name"]}" in pod "{name}" to run',
          _pod_running(kube, ns, name, spec["name"], ephemeral=True), o,
          f"see `kubectl describe pod -n {ns} {name}`; ephemeral containers need Kubernetes "
          "1.25+ and an image the cluster can pull (--volume-data-image)")
    try:
        judged, entries = _copy(kube, ctx, ns, name, spec["name"], mount, member, label)
    except _NoTar as exc:
        raise ComponentError(f'the debug image "{o.image}" has no tar either',
                             hint="give an image with tar and sh with --volume-data-image") from exc
    finally:  # it ends itself (it waits for this file, or a day at most)
        with contextlib.suppress(Exception):
            kexec.run(kube, ns, name, p.DONE_COMMAND, container=spec["name"],
                      timeout=CANCEL_TIMEOUT)
    return judged, entries, spec["name"]


def _via_helper(kube: KubeApi, ctx: BackupContext, o: VolumeDataOptions, ns: str, claim: str,
                image: str, member: str, label: str) -> tuple[p.TarOutcome, int, str]:
    images = [image] if image == o.image else [image, o.image]
    for img in images:
        if not img:
            continue
        ctx.progress.update(description=f"volume data {label}: helper pod ({img})")
        name = _start_helper(kube, ns, claim, img, "backup", o)
        try:
            judged, entries = _copy(kube, ctx, ns, name, "data", p.HELPER_MOUNT, member, label)
            return judged, entries, img
        except _NoTar:
            continue
        finally:
            _delete_pod(kube, ns, name)
    raise ComponentError(f"no tar in the images tried for claim {label}: {', '.join(images)}",
                         hint="give an image with tar and sh with --volume-data-image")


@contextlib.contextmanager
def _scaled_down(kube: KubeApi, ns: str, sts: str, o: VolumeDataOptions,
                 warn: Callable[[str], None]) -> Any:
    """The StatefulSet at zero replicas while the block runs, then back (every exit path)."""
    live = kube.get(STATEFULSETS, sts, ns)
    replicas = (live.get("spec") or {}).get("replicas")
    replicas = 1 if replicas is None else int(replicas)
    prefix = f"{sts}-"
    kube.patch(STATEFULSETS, sts, {"spec": {"replicas": 0}}, namespace=ns, subresource="scale")
    try:
        def gone() -> str | None:
            left = [x["metadata"]["name"] for x in kube.list(PODS, namespace=ns)
                    if str(x["metadata"]["name"]).startswith(prefix)
                    and p.owner_statefulset(x) == sts]
            return None if not left else f"pods left: {', '.join(sorted(left))}"

        _wait(f'StatefulSet "{sts}" to scale to zero', gone, o,
              f"check `kubectl get pods -n {ns}`")
        yield replicas
    finally:
        try:
            kube.patch(STATEFULSETS, sts, {"spec": {"replicas": replicas}}, namespace=ns,
                       subresource="scale")
        except DrError as exc:
            warn(f'StatefulSet "{sts}" (namespace "{ns}") could NOT be scaled back to '
                 f"{replicas}: {exc.message}; run `kubectl scale statefulset -n {ns} {sts} "
                 f"--replicas={replicas}`")
            raise


def _copy_claim(ctx: BackupContext, o: VolumeDataOptions, ref: pv.ClaimRef,
                pvc: dict[str, Any], result: Result) -> dict[str, Any]:
    kube, ns, claim = ctx.kube, ref.namespace, ref.name
    label = ref.label
    member = p.member_path(ns, claim)
    pods = [x for x in kube.list(PODS, namespace=ns)
            if not (x.get("metadata") or {}).get("deletionTimestamp")]
    pod = pv.pod_for_claim(claim, pods)
    mounted = p.mounting_container(pod, claim) if pod is not None else None
    image = mounted[2] if mounted else ""
    source: dict[str, Any] = {}
    if o.quiesce or pod is None:
        sts = p.owner_statefulset(pod) if pod is not None else ""
        if pod is not None and not sts:
            raise ComponentError(f'--quiesce: pod "{pod["metadata"]["name"]}" mounting claim '
                                 f"{label} belongs to no StatefulSet",
                                 hint="stop what uses the claim yourself, then back up")
        if sts:
            with _scaled_down(kube, ns, sts, o, result.warn) as replicas:
                judged, entries, used = _via_helper(kube, ctx, o, ns, claim, image, member, label)
            source = {"via": "helper-pod", "statefulset": sts, "replicas": replicas,
                      "quiesced": True}
        else:
            judged, entries, used = _via_helper(kube, ctx, o, ns, claim, image or o.image,
                                                member, label)
            source = {"via": "helper-pod", "quiesced": True}  # nothing mounts it: at rest
        source["image"] = used
        image = image or used
    else:
        assert pod is not None
        name = str(pod["metadata"]["name"])
        problem = db.pod_problem(pod)
        if problem:
            raise ComponentError(f'pod "{name}" mounting claim {label} {problem}',
                                 hint="wait until it runs, or use --quiesce")
        if mounted is None:  # mounted only through a subPath, or by no regular container
            mount = p.HELPER_MOUNT
            judged, entries, cname = _via_debug(kube, ctx, o, ns, pod, claim, mount, member, label)
            source = {"via": "debug-container", "pod": name, "container": cname, "image": o.image}
        else:
            cname, mount, image = mounted
            try:
                ctx.progress.update(description=f"volume data {label}: tar in {name}")
                judged, entries = _copy(kube, ctx, ns, name, cname, mount, member, label)
                source = {"via": "container", "pod": name, "container": cname}
            except _NoTar:
                judged, entries, dbg = _via_debug(kube, ctx, o, ns, pod, claim, mount, member,
                                                  label)
                source = {"via": "debug-container", "pod": name, "container": dbg,
                          "image": o.image}
        source.update(mountPath=mount, quiesced=False)
    if judged.changed:
        shown = judged.changed[:20]
        more = len(judged.changed) - len(shown)
        result.warn(f"claim {label}: {len(judged.changed)} file(s) changed while they were "
                    f"copied (copied as they were; --quiesce stops the workload for a "
                    f"consistent copy): {', '.join(shown)}" + (f" and {more} more" if more else ""))
    written = ctx.out.files[member]
    return {"namespace": ns, "role": ref.role, "claim": p.claim_spec(pvc), "file": member,
            "size": int(written["size"]), "sha256": str(written["sha256"]), "entries": entries,
            "image": image or o.image, "source": source, "changed": judged.changed[:200]}


def backup(ctx: BackupContext, result: Result, o: VolumeDataOptions) -> int:
    """Copy the claims' files into the bundle; returns how many claims were copied."""
    ns = ctx.names.control_plane_namespace
    listed = {str(c["metadata"]["name"]): c for c in ctx.kube.list(PVCS, namespace=ns)}
    try:
        refs = p.select_claims(listed, ns, o.claims)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if not refs:
        return 0
    records = []
    for ref in refs:
        pvc = listed.get(ref.name) if ref.namespace == ns else ctx.kube.get_or_none(
            PVCS, ref.name, ref.namespace)
        if pvc is None:
            raise UsageError(f'claim "{ref.name}" not found in namespace "{ref.namespace}"',
                             hint=f"check --volume-data (`kubectl get pvc -n {ref.namespace}`)")
        ctx.progress.update(description=f"volume data {ref.label}")
        records.append(_copy_claim(ctx, o, ref, pvc, result))
    created = utc_stamp(datetime.now(timezone.utc))
    ctx.out.write_json(p.RECORDS, p.records_document(records, created))
    result.files += [p.RECORDS, *(r["file"] for r in records)]
    result.details["volumeData"] = [
        {"namespace": r["namespace"], "claim": r["claim"]["name"], "bytes": r["size"],
         "entries": r["entries"], "via": r["source"]["via"], "changed": len(r["changed"])}
        for r in records]
    return len(records)


# -- restore -----------------------------------------------------------------------------------
@dataclass
class DataRestoreOptions:
    dry_run: bool = False
    names: Names = field(default_factory=Names)
    storage_class: str | None = None
    image: str | None = None  # --volume-data-image: instead of the recorded workload image
    existing: Existing = Existing.skip
    timeout: float = 600.0


def _verified(fh: Any, expected: str, name: str) -> Iterable[bytes]:
    from kubectl_runai_dr.components.database import verified_chunks

    return verified_chunks(fh, expected, name)


def _add(out: Result, kind: str, name: str, ns: str, outcome: Outcome, msg: str) -> ObjectResult:
    return out.add(ObjectResult(STEP, kind, name, ns, outcome, msg))


def restore(kube: KubeApi, bundle: Bundle, o: DataRestoreOptions, out: Result,
            progress: Progress | None = None) -> None:
    progress = progress or NullProgress()
    try:
        records = p.records_of(bundle.read_json(p.RECORDS))
    except ValueError as exc:
        raise BundleError(f"{bundle.path}: {p.RECORDS}: {exc}") from exc
    for rec in records:
        ns, claim = str(rec["namespace"]), str(rec["claim"]["name"])
        progress.update(description=f"volume data {ns}/{claim}")
        try:
            _restore_one(kube, bundle, rec, o, out, progress)
        except DrError as exc:
            _add(out, "VolumeData", claim, ns, Outcome.FAILED, failure(exc))
        except ValueError as exc:
            _add(out, "VolumeData", claim, ns, Outcome.FAILED, f"record: {exc}")


def _restore_one(kube: KubeApi, bundle: Bundle, rec: dict[str, Any], o: DataRestoreOptions,
                 out: Result, progress: Progress) -> None:
    ns, claim = str(rec["namespace"]), str(rec["claim"]["name"])
    member = str(rec["file"])
    entry = bundle.files.get(member)
    if entry is None:
        raise BundleError(f"{bundle.path}: {member} is recorded in {p.RECORDS} but not in the "
                          "bundle", hint="the bundle is incomplete: use another one")
    live_ns = kube.get_or_none(NAMESPACES, ns)
    if live_ns is None and not o.dry_run:
        with contextlib.suppress(AlreadyExists):
            kube.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": ns}})
            _add(out, "Namespace", ns, "", Outcome.CREATED, "for the restored claims")
    live = kube.get_or_none(PVCS, claim, ns) if live_ns is not None else None
    size_text = f"{int(entry['size']) >> 20} MiB, {rec['entries']} entries"
    if live is None:
        desired = p.claim_for_restore(rec, storage_class=o.storage_class)
        cls = desired["spec"].get("storageClassName")
        if cls and kube.get_or_none(STORAGECLASSES, cls) is None:
            _add(out, "PersistentVolumeClaim", claim, ns, Outcome.FAILED,
                 f'storage class "{cls}" does not exist in this cluster: create it or choose '
                 "another with --storage-class, and run the volumes step again")
            return
        if o.dry_run:
            _add(out, "PersistentVolumeClaim", claim, ns, Outcome.WOULD_CREATE,
                 f"with the recorded spec ({desired['spec']['resources']['requests']['storage']}"
                 f", class {cls or '(default)'})")
            _add(out, "VolumeData", claim, ns, Outcome.WOULD_CREATE,
                 f"files from the bundle ({size_text}) through a helper pod")
            return
        kube.create(PVCS, desired, namespace=ns)
        _add(out, "PersistentVolumeClaim", claim, ns, Outcome.CREATED,
             "with the recorded spec, for the files from the bundle")
    elif (live.get("metadata") or {}).get("deletionTimestamp"):
        _add(out, "PersistentVolumeClaim", claim, ns, Outcome.FAILED,
             "is being deleted (Terminating); wait until it is gone and run again")
        return
    elif o.dry_run:
        _add(out, "VolumeData", claim, ns, Outcome.WOULD_UPDATE if o.existing is Existing.update
             else Outcome.UNCHANGED, "the claim exists: its files are replaced (--existing "
             "update)" if o.existing is Existing.update else "the claim exists: left alone if "
             "it holds data (--existing update replaces it)")
        return
    image = o.image or str(rec["image"])
    progress.update(description=f"volume data {ns}/{claim}: helper pod")
    pod = _start_helper(kube, ns, claim, image, "restore", o.timeout)
    try:
        held = _small(kube, ns, pod, "data", p.HOLDS_DATA_SCRIPT, p.HELPER_MOUNT,
                      "looking for data on the claim")
        if held:
            if o.existing is not Existing.update:
                _add(out, "VolumeData", claim, ns, Outcome.UNCHANGED,
                     "the claim already holds data: left alone (--existing update replaces it)")
                return
            _small(kube, ns, pod, "data", p.CLEAR_SCRIPT, p.HELPER_MOUNT,
                   "clearing the claim")
        progress.update(description=f"volume data {ns}/{claim}: {size_text}")
        with bundle.open_member(member) as fh:
            res = _run(kube, ns, pod, "data", p.RESTORE_SCRIPT, p.HELPER_MOUNT,
                       stdin=_verified(fh, str(entry["sha256"]), member),
                       stdin_size=int(entry["size"]))
        if not res.ok:
            raise ComponentError(
                f'tar extracting into claim {ns}/{claim} (pod "{pod}") {res.describe()}: '
                f"{res.stderr_tail.strip()[-1500:] or '(no error output)'}",
                hint="check the image (--volume-data-image: it needs sh and tar) and the "
                     "claim's free space, then run again with --existing update")
        count = _small(kube, ns, pod, "data", p.COUNT_SCRIPT, p.HELPER_MOUNT,
                       "counting the restored entries")
        if not count.isdigit() or int(count) != int(rec["entries"]):
            _add(out, "VolumeData", claim, ns, Outcome.FAILED,
                 f"{count} entries on the claim after the restore, {rec['entries']} in the "
                 "archive")
            return
        _add(out, "VolumeData", claim, ns, Outcome.UPDATED if held else Outcome.CREATED,
             f"{size_text} restored, checksum and entry count verified")
    finally:
        _delete_pod(kube, ns, pod)


def holds_data(files: Iterable[str]) -> bool:
    return p.RECORDS in set(files)
