"""A stand-in for the CSI snapshot controller, the CSI driver and the volume provisioner,
working on a loopback API server's store (tests only).

    csi = CsiController(srv)          # csi.step() does one pass; or:
    with csi.running(): ...           # a thread calling step() every few milliseconds

One pass:
- a VolumeSnapshot with ``source.persistentVolumeClaimName`` and no status yet gets a
  VolumeSnapshotContent (``snapcontent-<uid>``: the claim's volume handle, the class's
  driver and deletionPolicy, ``volumeSnapshotRef`` with the uid) and its status
  (``boundVolumeSnapshotContentName``, ``creationTime``, ``restoreSize``, ``readyToUse``);
  ``fail={claim: message}`` sets ``status.error`` instead, ``hold={claim}`` keeps it
  not ready forever, ``delay_steps=N`` makes every snapshot ready only after N passes;
- a pre-provisioned VolumeSnapshot (``source.volumeSnapshotContentName``) is bound when the
  content exists and its ``volumeSnapshotRef`` names it (``unknown_handles`` report the
  driver's "snapshot not found" error);
- a claim with a VolumeSnapshot ``dataSource`` gets a PersistentVolume and is Bound once
  the snapshot is ready, unless its storage class binds WaitForFirstConsumer.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kubeapi import ApiServer
from kubeapi.server import now

from kubectl_runai_dr.plan.volumes import parse_quantity

SNAP = "snapshot.storage.k8s.io/v1"


@dataclass
class CsiController:
    srv: ApiServer
    fail: dict[str, str] = field(default_factory=dict)  # claim -> status.error.message
    hold: set[str] = field(default_factory=set)  # claims whose snapshots never get ready
    delay_steps: int = 0
    unknown_handles: set[str] = field(default_factory=set)
    pre_provisioned_size: str = "20Gi"
    errors: list[BaseException] = field(default_factory=list)
    _waited: dict[str, int] = field(default_factory=dict)

    # -- one pass ---------------------------------------------------------------------------
    def step(self) -> None:
        for vs in self.srv.list(SNAP, "VolumeSnapshot"):
            status = vs.get("status") or {}
            if status.get("readyToUse") or status.get("error"):
                continue
            src = vs["spec"]["source"]
            if "persistentVolumeClaimName" in src:
                self._dynamic(vs, src["persistentVolumeClaimName"])
            else:
                self._pre_provisioned(vs, src["volumeSnapshotContentName"])
        for pvc in self.srv.list("v1", "PersistentVolumeClaim"):
            ds = (pvc.get("spec") or {}).get("dataSource") or {}
            if ds.get("kind") == "VolumeSnapshot" and (pvc.get("status") or {}).get(
                    "phase") != "Bound":
                self._provision(pvc, ds["name"])

    def _ready_now(self, key: str) -> bool:
        seen = self._waited.get(key, 0)
        self._waited[key] = seen + 1
        return seen >= self.delay_steps

    def _dynamic(self, vs: dict[str, Any], claim: str) -> None:
        ns, name, uid = vs["metadata"]["namespace"], vs["metadata"]["name"], vs["metadata"]["uid"]
        pvc = self.srv.get("v1", "PersistentVolumeClaim", claim, ns)
        content = f"snapcontent-{uid}"
        if claim in self.fail:
            vs["status"] = {"readyToUse": False, "error": {
                "message": self.fail[claim], "time": now()}}
            self.srv.seed(vs)
            return
        if pvc is None:
            vs["status"] = {"readyToUse": False, "error": {
                "message": f'failed to get input parameters to create snapshot {name}: '
                           f'"persistentvolumeclaim \\"{claim}\\" not found"', "time": now()}}
            self.srv.seed(vs)
            return
        pv = self.srv.get("v1", "PersistentVolume", pvc["spec"]["volumeName"])
        assert pv is not None
        cls = self.srv.get(SNAP, "VolumeSnapshotClass", vs["spec"]["volumeSnapshotClassName"])
        assert cls is not None, "the tool must name an existing class"
        size = str(pvc["spec"]["resources"]["requests"]["storage"])
        handle = f"snap-{uuid.uuid5(uuid.NAMESPACE_URL, uid).hex[:17]}"
        ready = claim not in self.hold and self._ready_now(uid)
        if self.srv.get(SNAP, "VolumeSnapshotContent", content) is None:
            self.srv.seed({
                "apiVersion": SNAP, "kind": "VolumeSnapshotContent",
                "metadata": {"name": content},
                "spec": {"deletionPolicy": cls["deletionPolicy"], "driver": cls["driver"],
                         "source": {"volumeHandle": pv["spec"]["csi"]["volumeHandle"]},
                         "sourceVolumeMode": pvc["spec"].get("volumeMode", "Filesystem"),
                         "volumeSnapshotClassName": cls["metadata"]["name"],
                         "volumeSnapshotRef": {"apiVersion": SNAP, "kind": "VolumeSnapshot",
                                               "name": name, "namespace": ns, "uid": uid}},
                "status": {"creationTime": 1700000000000000000, "readyToUse": ready,
                           "restoreSize": parse_quantity(size), "snapshotHandle": handle}})
        elif ready:
            vsc = self.srv.get(SNAP, "VolumeSnapshotContent", content)
            assert vsc is not None
            vsc["status"]["readyToUse"] = True
            self.srv.seed(vsc)
        vs["status"] = {"boundVolumeSnapshotContentName": content, "creationTime": now(),
                        "readyToUse": ready, "restoreSize": size}
        self.srv.seed(vs)

    def _pre_provisioned(self, vs: dict[str, Any], content_name: str) -> None:
        ns, name = vs["metadata"]["namespace"], vs["metadata"]["name"]
        vsc = self.srv.get(SNAP, "VolumeSnapshotContent", content_name)
        if vsc is None:
            return  # the real controller waits for the content
        ref = vsc["spec"]["volumeSnapshotRef"]
        if ref.get("name") != name or ref.get("namespace") != ns:
            vs["status"] = {"readyToUse": False, "error": {
                "message": f"VolumeSnapshotContent {content_name} is bound to another "
                           "snapshot", "time": now()}}
            self.srv.seed(vs)
            return
        handle = vsc["spec"]["source"]["snapshotHandle"]
        if handle in self.unknown_handles:
            vsc["status"] = {"readyToUse": False, "error": {
                "message": f"rpc error: code = NotFound desc = snapshot {handle} not found",
                "time": now()}}
            self.srv.seed(vsc)
            vs["status"] = {"boundVolumeSnapshotContentName": content_name, "readyToUse": False,
                            "error": vsc["status"]["error"]}
            self.srv.seed(vs)
            return
        if not self._ready_now(vs["metadata"]["uid"]):
            return
        vsc["spec"]["volumeSnapshotRef"]["uid"] = vs["metadata"]["uid"]
        vsc["status"] = {"creationTime": 1700000000000000000, "readyToUse": True,
                         "restoreSize": parse_quantity(self.pre_provisioned_size),
                         "snapshotHandle": handle}
        self.srv.seed(vsc)
        vs["status"] = {"boundVolumeSnapshotContentName": content_name, "creationTime": now(),
                        "readyToUse": True, "restoreSize": self.pre_provisioned_size}
        self.srv.seed(vs)

    def _provision(self, pvc: dict[str, Any], snapshot: str) -> None:
        ns = pvc["metadata"]["namespace"]
        vs = self.srv.get(SNAP, "VolumeSnapshot", snapshot, ns)
        if vs is None or not (vs.get("status") or {}).get("readyToUse"):
            return
        cls_name = pvc["spec"].get("storageClassName")
        cls = self.srv.get("storage.k8s.io/v1", "StorageClass", cls_name) if cls_name else None
        if cls is not None and cls.get("volumeBindingMode") == "WaitForFirstConsumer":
            return  # provisioned when a pod using the claim is scheduled
        pv_name = f"pvc-{pvc['metadata']['uid']}"
        size = pvc["spec"]["resources"]["requests"]["storage"]
        self.srv.seed({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
            "spec": {"accessModes": pvc["spec"]["accessModes"], "capacity": {"storage": size},
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                  "name": pvc["metadata"]["name"], "namespace": ns,
                                  "uid": pvc["metadata"]["uid"]},
                     "csi": {"driver": (cls or {}).get("provisioner", "ebs.csi.aws.com"),
                             "volumeHandle": f"vol-{pvc['metadata']['uid'][:12]}"},
                     "persistentVolumeReclaimPolicy": (cls or {}).get("reclaimPolicy",
                                                                      "Delete"),
                     "storageClassName": cls_name or "", "volumeMode": pvc["spec"].get(
                         "volumeMode", "Filesystem")},
            "status": {"phase": "Bound"}})
        pvc["spec"]["volumeName"] = pv_name
        pvc["status"] = {"phase": "Bound", "accessModes": pvc["spec"]["accessModes"],
                         "capacity": {"storage": size}}
        self.srv.seed(pvc)

    # -- in a thread --------------------------------------------------------------------------
    @contextlib.contextmanager
    def running(self, interval: float = 0.01) -> Iterator[CsiController]:
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    self.step()
                except BaseException as exc:  # reported when the block ends
                    self.errors.append(exc)
                    return
                stop.wait(interval)

        t = threading.Thread(target=loop, name="csi-controller", daemon=True)
        t.start()
        try:
            yield self
        finally:
            stop.set()
            t.join(timeout=5)
        if self.errors:
            raise self.errors[0]
