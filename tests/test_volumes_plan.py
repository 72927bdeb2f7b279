"""The pure part of volume snapshots and volume restore (plan/volumes.py), without a server."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from kubectl_runai_dr.conventions import BACKUP_LABEL, CLAIM_LABEL, MANAGED_BY, ROLE_LABEL
from kubectl_runai_dr.plan import volumes as p

NS = "runai-backend"


# -- claims --------------------------------------------------------------------------------------
def test_select_claims_new_names_first_then_old_then_extra() -> None:
    present = ["data-runai-backend-postgresql-0", "pvc-postgresql", "pvc-thanos-receive",
               "unrelated"]
    got = p.select_claims(present, NS, extra=["unrelated", "other-ns/x", "pvc-postgresql"])
    assert [(c.namespace, c.name, c.role) for c in got] == [
        (NS, "data-runai-backend-postgresql-0", "database"),
        (NS, "pvc-thanos-receive", "metrics"),
        (NS, "unrelated", "extra"),
        ("other-ns", "x", "extra"),
        (NS, "pvc-postgresql", "database"),
    ]
    assert p.select_claims(["pvc-postgresql"], NS) == [p.ClaimRef(NS, "pvc-postgresql",
                                                                  "database")]
    assert p.select_claims([], NS) == []


def test_select_claims_only_extra_and_bad_argument() -> None:
    present = ["data-runai-backend-postgresql-0", "data-runai-backend-redis-queue-master-0"]
    got = p.select_claims(present, NS, extra=["data-runai-backend-redis-queue-master-0"],
                          only_extra=True)
    assert [(c.name, c.role) for c in got] == [("data-runai-backend-redis-queue-master-0",
                                                "queue")]
    for bad in ("a/b/c", "ns/", ""):
        with pytest.raises(ValueError, match="--pvc"):
            p.select_claims(present, NS, extra=[bad])


def _pvc(**spec: Any) -> dict[str, Any]:
    base = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}},
            "storageClassName": "gp3", "volumeMode": "Filesystem", "volumeName": "pv-1"}
    base.update(spec)
    return {"metadata": {"name": "c", "namespace": NS, "labels": {"app": "pg"}},
            "spec": base, "status": {"phase": "Bound"}}


def _pv(driver: str | None = "ebs.csi.aws.com", reclaim: str = "Delete") -> dict[str, Any]:
    spec: dict[str, Any] = {"persistentVolumeReclaimPolicy": reclaim}
    if driver:
        spec["csi"] = {"driver": driver, "volumeHandle": "vol-1"}
    return {"metadata": {"name": "pv-1"}, "spec": spec}


def test_claim_of_and_problems() -> None:
    ref = p.ClaimRef(NS, "c", "database")
    claim = p.claim_of(ref, _pvc(), _pv())
    assert (claim.storage_class, claim.size, claim.access_modes, claim.volume_mode,
            claim.driver, claim.reclaim_policy) == ("gp3", "20Gi", ("ReadWriteOnce",),
                                                    "Filesystem", "ebs.csi.aws.com", "Delete")
    assert p.claim_problem(claim) is None
    assert "not a CSI volume" in (p.claim_problem(p.claim_of(ref, _pvc(), _pv(None))) or "")
    pending = _pvc(volumeName=None)
    pending["status"] = {"phase": "Pending"}
    assert p.claim_problem(p.claim_of(ref, pending, None)) == "is Pending, not Bound"
    block = p.claim_of(ref, _pvc(volumeMode="Block"), _pv())
    assert block.volume_mode == "Block" and block.to_json()["volumeMode"] == "Block"


# -- classes and warnings ----------------------------------------------------------------------
def _cls(name: str, driver: str = "ebs.csi.aws.com", policy: str = "Retain",
         default: bool = False) -> p.SnapshotClass:
    return p.SnapshotClass(name, driver, policy, default)


def test_choose_class() -> None:
    a, b = _cls("a"), _cls("b", default=True)
    other = _cls("gke", driver="pd.csi.storage.gke.io", default=True)
    assert p.choose_class("ebs.csi.aws.com", [a, b, other]) == b  # the default
    assert p.choose_class("ebs.csi.aws.com", [a, other]) == a  # the only one
    assert p.choose_class("ebs.csi.aws.com", [a, b], "a") == a  # asked for
    with pytest.raises(p.NoClass, match="none is the default"):
        p.choose_class("ebs.csi.aws.com", [a, _cls("c")])
    with pytest.raises(p.NoClass, match="several default"):
        p.choose_class("ebs.csi.aws.com", [_cls("x", default=True), _cls("y", default=True)])
    with pytest.raises(p.NoClass, match='no VolumeSnapshotClass for CSI driver "ebs'):
        p.choose_class("ebs.csi.aws.com", [other])
    with pytest.raises(p.NoClass, match=r'is for driver "pd\.csi'):
        p.choose_class("ebs.csi.aws.com", [a, other], "gke")
    with pytest.raises(p.NoClass, match='"nope" does not exist'):
        p.choose_class("ebs.csi.aws.com", [a], "nope")
    obj = {"metadata": {"name": "v", "annotations": {p.DEFAULT_CLASS_ANNOTATION: "true"}},
           "driver": "d", "deletionPolicy": "Delete"}
    assert p.SnapshotClass.of(obj) == p.SnapshotClass("v", "d", "Delete", True)
    assert "deletionPolicy: Retain" in p.class_example("ebs.csi.aws.com")


def test_warnings() -> None:
    assert "die with the cluster" in (p.class_warning(_cls("d", policy="Delete")) or "")
    assert p.class_warning(_cls("r")) is None
    ref = p.ClaimRef(NS, "c", "database")
    assert "kubectl runai-dr protect" in (p.reclaim_warning(p.claim_of(ref, _pvc(), _pv()))
                                          or "")
    assert p.reclaim_warning(p.claim_of(ref, _pvc(), _pv(reclaim="Retain"))) is None


def test_protections() -> None:
    pvcs = [_pvc(), {"metadata": {"name": "unbound", "namespace": NS}, "spec": {}}]
    got = p.protections(pvcs, {"pv-1": _pv()})
    assert got == [p.Protection("pv-1", f"{NS}/c", "Delete")] and got[0].needed
    assert not p.protections(pvcs, {"pv-1": _pv(reclaim="Retain")})[0].needed


# -- quantities ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "n"), [
    ("20Gi", 20 * 2**30), ("1G", 10**9), ("21474836480", 21474836480), (5, 5),
    ("1.5Gi", 3 * 2**29), ("1e3", 1000), ("100m", 1), ("1k", 1000)])
def test_parse_quantity(text: Any, n: int) -> None:
    assert p.parse_quantity(text) == n


def test_parse_quantity_rejects_and_larger() -> None:
    for bad in ("20 GB", "Gi", "", True):
        with pytest.raises(ValueError):
            p.parse_quantity(bad)
    assert p.larger_quantity("8Gi", "21474836480") == "21474836480"
    assert p.larger_quantity("20Gi", "21474836480") == "20Gi"  # equal: keep the claim's
    assert p.larger_quantity("20Gi", "") == "20Gi" and p.larger_quantity("", "1Gi") == "1Gi"


# -- snapshot objects and records ------------------------------------------------------------
def test_volume_snapshot_object() -> None:
    claim = p.claim_of(p.ClaimRef(NS, "data-runai-backend-postgresql-0", "database"), _pvc(),
                       _pv())
    bid = p.backup_id(datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc))
    assert bid == "20250304-050607"
    vs = p.volume_snapshot(claim, _cls("vsc"), bid)
    assert vs["metadata"]["name"] == "runai-dr-data-runai-backend-postgresql-0-20250304-050607"
    assert vs["metadata"]["labels"] == {
        MANAGED_BY: p.TOOL, CLAIM_LABEL: "data-runai-backend-postgresql-0",
        BACKUP_LABEL: bid, ROLE_LABEL: "database"}
    assert vs["spec"] == {"volumeSnapshotClassName": "vsc",
                          "source": {"persistentVolumeClaimName": claim.name}}
    long = "x" * 300
    name = p.snapshot_name(long, bid)
    assert len(name) <= 253 and name.endswith("-" + bid)
    assert len(p.volume_snapshot(
        p.claim_of(p.ClaimRef(NS, long, "extra"), _pvc(), _pv()), _cls("v"), bid)[
        "metadata"]["labels"][CLAIM_LABEL]) <= 63


def test_snapshot_state_and_record() -> None:
    claim = p.claim_of(p.ClaimRef(NS, "c", "database"), _pvc(), _pv())
    vs = {"metadata": {"name": "s", "namespace": NS, "uid": "u",
                       "labels": {BACKUP_LABEL: "b"}},
          "status": {"readyToUse": True, "boundVolumeSnapshotContentName": "snapcontent-u",
                     "restoreSize": "20Gi", "creationTime": "2025-01-01T00:00:00Z"}}
    vsc = {"metadata": {"name": "snapcontent-u"},
           "spec": {"driver": "ebs.csi.aws.com", "deletionPolicy": "Retain"},
           "status": {"snapshotHandle": "snap-1", "restoreSize": 21474836480}}
    rec = p.snapshot_record(claim, _cls("vsc"), vs, vsc)
    assert {k: rec[k] for k in ("volumeSnapshotName", "volumeSnapshotContentName", "driver",
                                "snapshotHandle", "restoreSize", "deletionPolicy",
                                "backupId", "role")} == {
        "volumeSnapshotName": "s", "volumeSnapshotContentName": "snapcontent-u",
        "driver": "ebs.csi.aws.com", "snapshotHandle": "snap-1", "restoreSize": "20Gi",
        "deletionPolicy": "Retain", "backupId": "b", "role": "database"}
    assert rec["claim"]["accessModes"] == ["ReadWriteOnce"]
    assert p.snapshot_state({"status": {"error": {"message": "quota"}}}).error == "quota"
    assert p.snapshot_state({"status": {"error": {"time": "t"}}}).error
    assert not p.snapshot_state({}).ready
    doc = p.records_document([rec], "b", "2025-01-01T00:00:00Z")
    assert p.records_of(doc) == [rec]
    with pytest.raises(ValueError, match="lacks snapshotHandle"):
        p.records_of({**doc, "snapshots": [{**rec, "snapshotHandle": ""}]})
    with pytest.raises(ValueError, match="newer"):
        p.records_of({**doc, "version": p.RECORDS_VERSION + 1})
    with pytest.raises(ValueError, match="not a snapshot record"):
        p.records_of({"kind": "List"})


def test_checkpoint_command_keeps_the_password_in_the_pod() -> None:
    cmd = p.checkpoint_command()
    assert cmd[:2] == ["sh", "-c"] and cmd[-2:] == ["-c", "CHECKPOINT"]
    script = cmd[2]
    assert 'PGPASSWORD="$POSTGRES_POSTGRES_PASSWORD"' in script  # expanded inside the pod
    assert "--dbname=postgres" in cmd and "-w" in cmd  # never prompts


def test_pod_for_claim() -> None:
    def pod(name: str, claim: str, ready: bool) -> dict[str, Any]:
        return {"metadata": {"name": name},
                "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {
                    "claimName": claim}}]},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True" if ready else "False"}]}}
    pods = [pod("a", "c", False), pod("b", "c", True), pod("z", "other", True)]
    assert (p.pod_for_claim("c", pods) or {})["metadata"]["name"] == "b"
    assert p.pod_for_claim("none", pods) is None


# -- prune ---------------------------------------------------------------------------------------
def _listed(claim: str, day: int, ready: bool = True, error: str = "") -> p.Listed:
    return p.Listed(NS, f"{claim}-{day}", claim, f"2025010{day}-000000", "x", ready, error,
                    "1Gi", f"2025-01-0{day}T00:00:00Z", "")


def test_prune_selection_per_claim() -> None:
    snaps = [_listed("a", d) for d in (1, 2, 3, 4)] + [_listed("b", d) for d in (1, 2)]
    got = p.prune_selection(snaps, 2)
    assert [s.name for s in got.delete] == ["a-1", "a-2"]
    assert sorted(s.name for s in got.keep) == ["a-3", "a-4", "b-1", "b-2"]


def test_prune_keeps_newer_unready_and_counts_only_ready() -> None:
    snaps = [_listed("a", 1), _listed("a", 2), _listed("a", 3, ready=False, error="boom"),
             _listed("a", 4, ready=False)]
    got = p.prune_selection(snaps, 1)
    assert [s.name for s in got.delete] == ["a-1"]  # a-2 is the newest ready one
    assert p.prune_selection(snaps, 3).delete == []  # fewer ready than --keep: nothing goes
    with pytest.raises(ValueError, match="at least 1"):
        p.prune_selection(snaps, 0)


def test_listed_and_is_tools() -> None:
    vs = {"metadata": {"name": "n", "namespace": NS, "creationTimestamp": "t",
                       "labels": {MANAGED_BY: p.TOOL, BACKUP_LABEL: "b"},
                       "annotations": {p.CLAIM_ANNOTATION: "full-claim"}},
          "spec": {"source": {"persistentVolumeClaimName": "full-claim"}},
          "status": {"readyToUse": True, "restoreSize": "1Gi"}}
    assert p.is_tools(vs) and not p.is_tools({"metadata": {"labels": {MANAGED_BY: p.TOOL}}})
    item = p.listed(vs)
    assert (item.claim, item.backup_id, item.ready, item.restore_size) == (
        "full-claim", "b", True, "1Gi")


# -- restore objects -----------------------------------------------------------------------------
def _record(**kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "role": "database", "volumeSnapshotName": "runai-dr-c-b", "namespace": NS,
        "volumeSnapshotContentName": "snapcontent-u", "driver": "ebs.csi.aws.com",
        "snapshotHandle": "snap-1", "restoreSize": "25Gi", "deletionPolicy": "Retain",
        "backupId": "20250101-000000",
        "claim": {"name": "c", "namespace": NS, "storageClassName": "gp3", "size": "20Gi",
                  "accessModes": ["ReadWriteOnce"], "volumeMode": "Block",
                  "labels": {"app": "pg"}}}
    rec.update(kw)
    return rec


def test_restore_objects_new_cluster() -> None:
    rec = _record()
    vsc = p.content_for_restore(rec)
    assert vsc["metadata"]["name"] == "runai-dr-restore-runai-dr-c-b"
    assert vsc["spec"] == {
        "deletionPolicy": "Retain", "driver": "ebs.csi.aws.com",
        "source": {"snapshotHandle": "snap-1"}, "sourceVolumeMode": "Block",
        "volumeSnapshotRef": {"apiVersion": p.SNAPSHOT_API, "kind": "VolumeSnapshot",
                              "name": "runai-dr-c-b", "namespace": NS}}
    vs = p.snapshot_for_restore(rec)
    assert vs["metadata"]["name"] == "runai-dr-c-b" and vs["metadata"]["namespace"] == NS
    assert vs["spec"] == {"source": {"volumeSnapshotContentName": vsc["metadata"]["name"]}}
    pvc = p.claim_for_restore(rec)
    assert pvc["metadata"]["name"] == "c" and pvc["metadata"]["labels"]["app"] == "pg"
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "25Gi"}},
        "volumeMode": "Block", "storageClassName": "gp3",
        "dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                       "name": "runai-dr-c-b"}}
    assert p.claim_for_restore(rec, storage_class="fast")["spec"]["storageClassName"] == "fast"
    small = _record(restoreSize="10Gi")
    assert p.claim_for_restore(small)["spec"]["resources"]["requests"]["storage"] == "20Gi"
    with pytest.raises(ValueError, match="neither"):
        p.claim_for_restore(_record(restoreSize="", claim={"name": "c", "size": ""}))


def test_claim_binding_and_restored_from() -> None:
    bound = {"spec": {"volumeName": "pv-9"}, "status": {"phase": "Bound"}}
    assert p.claim_binding(bound, None) == ("bound", 'bound to volume "pv-9"')
    pending = {"status": {"phase": "Pending"}}
    state, msg = p.claim_binding(pending, "WaitForFirstConsumer")
    assert state == "waiting" and "as expected" in msg
    assert p.claim_binding(pending, "Immediate")[0] == "pending"
    rec = _record()
    assert p.restored_from({"spec": {"dataSource": {"kind": "VolumeSnapshot",
                                                    "name": "runai-dr-c-b"}}}, rec)
    assert not p.restored_from({"spec": {}}, rec)
