"""Volume snapshots, protect, list/prune and volume restore against the loopback API server,
with tests/csi_controller.py playing the CSI snapshot controller and provisioner."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from kubeapi import ApiServer
from kubeapi.execws import BASE_PATH
from kubeapi.pgserver import PgServer
from kubeapi.seed import crd_paths, seed_runai

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components import volumes as comp
from kubectl_runai_dr.components.restore_base import RestoreSettings
from kubectl_runai_dr.conventions import BACKUP_LABEL, CLAIM_LABEL, MANAGED_BY
from kubectl_runai_dr.errors import ComponentError, UsageError
from kubectl_runai_dr.kube.client import ConnectOptions, Kube, connect
from kubectl_runai_dr.model import Names, Outcome, Result
from kubectl_runai_dr.ops import volumes as ops
from kubectl_runai_dr.ops.restore import RestoreOptions, run_restore
from kubectl_runai_dr.plan import volumes as p
from tests.csi_controller import SNAP, CsiController
from tests.e2e import cli, components, manifest_of, member

NS = "runai-backend"
DB_CLAIM = "data-runai-backend-postgresql-0"
CLAIMS = {DB_CLAIM, "data-runai-backend-thanos-receive-0",
          "data-runai-backend-redis-queue-master-0"}
FAST = comp.SnapshotOptions(timeout=10, poll=0.02)


@pytest.fixture
def srv(apiserver: ApiServer) -> ApiServer:
    seed_runai(apiserver, projects=1, rolebindings_per_project=1)
    return apiserver


@pytest.fixture
def kc(srv: ApiServer, tmp_path: Path) -> Path:
    return srv.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube(kc: Path) -> Iterator[Kube]:
    k = connect(ConnectOptions(kubeconfig=str(kc)))
    yield k
    k.close()


def _db_password(srv: ApiServer) -> str:
    secret = srv.get("v1", "Secret", "runai-backend-postgresql", NS)
    assert secret is not None
    return base64.b64decode(secret["data"]["postgres-password"]).decode()


def _pg_exec(srv: ApiServer, pg: PgServer) -> None:
    """The database pod's exec runs the real psql against the test PostgreSQL."""
    srv.set_pod_exec(NS, "runai-backend-postgresql-0",
                     env={"PATH": f"{pg.bindir}:{BASE_PATH}", "PGHOST": pg.host,
                          "PGPORT": str(pg.port)})


def _checkpoints(pg: PgServer) -> int:
    return int(pg.psql("SELECT checkpoints_req FROM pg_stat_bgwriter").strip())


def _tool_snapshots(srv: ApiServer) -> list[dict[str, Any]]:
    return [v for v in srv.list(SNAP, "VolumeSnapshot")
            if (v["metadata"].get("labels") or {}).get(MANAGED_BY) == p.TOOL]


def _methods(srv: ApiServer, method: str, fragment: str = "") -> list[str]:
    return [r.path for r in srv.requests if r.method == method and fragment in r.path]


# -- snapshot ----------------------------------------------------------------------------------
def test_snapshot_cli_records_match_objects_and_checkpoint_runs(
        srv: ApiServer, kc: Path, tmp_path: Path, pg_server: PgServer) -> None:
    _pg_exec(srv, pg_server)
    before = _checkpoints(pg_server)
    srv.clear_requests()
    out = tmp_path / "snap.tar.gz"
    with CsiController(srv, delay_steps=2).running():
        r = cli("snapshot", "--kubeconfig", str(kc), "--to", str(out), "-o", "json")
    assert r.code == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["bundle"] == str(out) and summary["checkpoint"] == "ok"
    # CHECKPOINT really ran in the database (through the pod's exec, with its own password)
    assert _checkpoints(pg_server) == before + 1
    execs = [x for x in srv.requests if x.path.endswith("/exec")]
    assert len(execs) == 1
    assert execs[0].path == f"/api/v1/namespaces/{NS}/pods/runai-backend-postgresql-0/exec"
    command = execs[0].query["command"]
    assert command[:2] == ["sh", "-c"] and command[-1] == "CHECKPOINT"
    password = _db_password(srv)
    for req in srv.requests:
        assert password not in json.dumps(req.query) and password not in req.path
        assert password.encode() not in (req.body or b"")
    # the checkpoint precedes the database snapshot's creation
    order = [x.path for x in srv.requests if x.path.endswith("/exec") or (
        x.method == "POST" and x.path.endswith("/volumesnapshots"))]
    assert order[0].endswith("/exec")
    # warnings: the class deletes its snapshots; the database volume is reclaimed on delete
    assert "deletionPolicy Delete" in r.stderr and "die with" in r.stderr
    assert "persistentVolumeReclaimPolicy Delete" in r.stderr and "protect" in r.stderr

    doc = json.loads(member(out, layout.SNAPSHOTS))
    records = p.records_of(doc)
    assert {rec["claim"]["name"] for rec in records} == CLAIMS
    m = manifest_of(out)
    assert components(m)["volumes"]["status"] == "ok" and m["status"] == "complete"
    assert {c["name"] for c in m["components"] if c["status"] != "skipped"} == {"volumes"}
    assert set(m["files"]) == {layout.SNAPSHOTS}
    assert not Bundle.open(out).verify()
    for rec in records:
        vs = srv.get(SNAP, "VolumeSnapshot", rec["volumeSnapshotName"], NS)
        assert vs is not None
        labels = vs["metadata"]["labels"]
        assert labels[MANAGED_BY] == p.TOOL and labels[BACKUP_LABEL] == doc["backupId"]
        assert labels[CLAIM_LABEL] == rec["claim"]["name"]
        assert vs["spec"] == {"volumeSnapshotClassName": "csi-aws-vsc",
                              "source": {"persistentVolumeClaimName": rec["claim"]["name"]}}
        vsc = srv.get(SNAP, "VolumeSnapshotContent", rec["volumeSnapshotContentName"])
        assert vsc is not None and vs["status"]["boundVolumeSnapshotContentName"] == \
            vsc["metadata"]["name"]
        assert rec["snapshotHandle"] == vsc["status"]["snapshotHandle"]
        assert rec["driver"] == vsc["spec"]["driver"] == "ebs.csi.aws.com"
        assert rec["deletionPolicy"] == vsc["spec"]["deletionPolicy"] == "Delete"
        assert rec["restoreSize"] == vs["status"]["restoreSize"]
        assert rec["readyToUse"] is True
        pvc = srv.get("v1", "PersistentVolumeClaim", rec["claim"]["name"], NS)
        assert pvc is not None
        assert rec["claim"]["storageClassName"] == pvc["spec"]["storageClassName"] == "gp3-csi"
        assert rec["claim"]["size"] == pvc["spec"]["resources"]["requests"]["storage"]
        assert rec["claim"]["accessModes"] == pvc["spec"]["accessModes"]
        assert rec["claim"]["volumeMode"] == pvc["spec"]["volumeMode"]
    roles = {rec["claim"]["name"]: rec["role"] for rec in records}
    assert roles[DB_CLAIM] == "database"


def test_old_claim_names_and_extra_pvc(srv: ApiServer, kube: Kube) -> None:
    """≤2.11 names (pvc-postgresql, pvc-thanos-receive) are found; --pvc adds a claim."""
    for old, new in (("pvc-postgresql", DB_CLAIM),
                     ("pvc-thanos-receive", "data-runai-backend-thanos-receive-0")):
        pvc = srv.get("v1", "PersistentVolumeClaim", new, NS)
        assert pvc is not None
        pvc["metadata"] = {"name": old, "namespace": NS}
        srv.seed(pvc)
        _force_delete_claim(srv, new)
    claims = comp.find_claims(kube, Names(), comp.SnapshotOptions(
        pvcs=("data-runai-backend-redis-queue-master-0",)))
    assert [(c.name, c.role) for c in claims] == [
        ("pvc-postgresql", "database"), ("pvc-thanos-receive", "metrics"),
        ("data-runai-backend-redis-queue-master-0", "queue")]
    only = comp.find_claims(kube, Names(), comp.SnapshotOptions(
        pvcs=("pvc-thanos-receive",), only_pvcs=True))
    assert [c.name for c in only] == ["pvc-thanos-receive"]
    with pytest.raises(UsageError, match='claim "nope" not found'):
        comp.find_claims(kube, Names(), comp.SnapshotOptions(pvcs=("nope",)))


def test_backup_with_snapshots_flag(srv: ApiServer, kc: Path, tmp_path: Path) -> None:
    out = tmp_path / "plain.tar.gz"
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(out), "--skip", "database")
    assert r.code == 0, r.stderr
    snap = components(manifest_of(out))["volumes"]
    assert snap["status"] == "skipped" and "--snapshots" in snap["reason"]
    assert _tool_snapshots(srv) == []

    out = tmp_path / "with.tar.gz"
    with CsiController(srv).running():
        r = cli("backup", "--kubeconfig", str(kc), "--to", str(out), "--skip", "database",
                "--snapshots", "--snapshot-timeout", "20s")
    assert r.code == 0, r.stderr
    m = manifest_of(out)
    snap = components(m)["volumes"]
    assert snap["status"] == "ok" and snap["objects"] == 3
    assert layout.SNAPSHOTS in snap["files"]
    assert any("deletionPolicy Delete" in w for w in snap["warnings"])
    assert components(m)["runaiconfig"]["status"] == "ok"
    assert len(p.records_of(json.loads(member(out, layout.SNAPSHOTS)))) == 3
    assert len(_tool_snapshots(srv)) == 3


def test_snapshot_error_is_a_clear_failure(srv: ApiServer, kc: Path, tmp_path: Path) -> None:
    msg = "rpc error: code = ResourceExhausted desc = SnapshotLimitExceeded"
    with CsiController(srv, fail={"data-runai-backend-thanos-receive-0": msg}).running():
        r = cli("snapshot", "--kubeconfig", str(kc), "--no-checkpoint",
                "--to", str(tmp_path / "x.tar.gz"))
    assert r.code == 1
    err = " ".join(r.stderr.split())
    m = re.search(r'VolumeSnapshot "([^"]*thanos[^"]*)" in namespace "' + NS + '" failed: '
                  + re.escape(msg), err)
    assert m, err
    # the hint is true: the failed snapshot is gone, the ready ones of the run stay
    assert "hint:" in err and "did not become ready were deleted" in err
    left = [v["metadata"]["name"] for v in _tool_snapshots(srv)]
    assert m.group(1) not in left and len(left) == 2
    assert not (tmp_path / "x.tar.gz").exists()


def test_backup_component_fails_alone(srv: ApiServer, kc: Path, tmp_path: Path) -> None:
    out = tmp_path / "b.tar.gz"
    with CsiController(srv, fail={DB_CLAIM: "boom"}).running():
        r = cli("backup", "--kubeconfig", str(kc), "--to", str(out), "--skip", "database",
                "--snapshots")
    assert r.code == 3
    m = manifest_of(out)
    assert m["failedComponents"] == ["volumes"]
    assert "failed: boom" in components(m)["volumes"]["reason"]
    assert layout.SNAPSHOTS not in m["files"]


def test_snapshot_timeout(srv: ApiServer, kube: Kube) -> None:
    with CsiController(srv, hold={DB_CLAIM}).running(), \
            pytest.raises(ComponentError) as info:
        comp.take_snapshots(kube, Names(), comp.SnapshotOptions(timeout=0.5, poll=0.05,
                                                                 checkpoint=False))
    assert re.search(r'VolumeSnapshot "runai-dr-data-runai-backend-postgresql-0-\d{8}-\d{6}" '
                     r'in namespace "runai-backend" not ready after 0s', info.value.message)
    assert "thanos" not in info.value.message  # the others were ready
    assert "--timeout" in (info.value.hint or "")


def test_no_snapshot_crds(tmp_path: Path) -> None:
    srv = ApiServer()
    srv.install_crds([x for x in crd_paths() if "csi-snapshot" not in x.name])
    srv.start()
    try:
        srv.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        srv.seed({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
                  "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                           "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-1"}}})
        srv.seed({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                  "metadata": {"name": DB_CLAIM, "namespace": NS},
                  "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv1",
                           "resources": {"requests": {"storage": "1Gi"}}},
                  "status": {"phase": "Bound"}})
        kc = srv.write_kubeconfig(tmp_path / "kc")
        r = cli("snapshot", "--kubeconfig", str(kc), "--no-bundle")
        assert r.code == 1
        err = " ".join(r.stderr.split())
        assert "does not serve the CSI snapshot API snapshot.storage.k8s.io/v1" in err
        assert "external-snapshotter" in err and "snapshot-controller" in err
        assert not [x for x in srv.requests if x.method == "POST"]
        r = cli("snapshot", "list", "--kubeconfig", str(kc))
        assert r.code == 1 and "external-snapshotter" in r.stderr
    finally:
        srv.stop()


def test_no_class_for_driver(srv: ApiServer, kc: Path) -> None:
    srv.delete_object(SNAP, "VolumeSnapshotClass", "csi-aws-vsc")
    srv.seed({"apiVersion": SNAP, "kind": "VolumeSnapshotClass",
              "metadata": {"name": "other"}, "driver": "pd.csi.storage.gke.io",
              "deletionPolicy": "Retain"})
    srv.clear_requests()
    r = cli("snapshot", "--kubeconfig", str(kc), "--no-bundle")
    assert r.code == 1
    err = " ".join(r.stderr.split())
    assert 'no VolumeSnapshotClass for CSI driver "ebs.csi.aws.com"' in err
    assert "driver: ebs.csi.aws.com, deletionPolicy: Retain" in err
    assert not [x for x in srv.requests if x.method == "POST"]  # nothing created
    r = cli("snapshot", "--kubeconfig", str(kc), "--no-bundle", "--snapshot-class", "other")
    assert r.code == 1 and 'is for driver "pd.csi.storage.gke.io"' in r.stderr


def test_retain_class_gives_no_class_warning(srv: ApiServer, kube: Kube) -> None:
    srv.seed({"apiVersion": SNAP, "kind": "VolumeSnapshotClass",
              "metadata": {"name": "ebs-retain", "annotations": {
                  p.DEFAULT_CLASS_ANNOTATION: "true"}},
              "driver": "ebs.csi.aws.com", "deletionPolicy": "Retain"})
    with CsiController(srv).running():
        run = comp.take_snapshots(kube, Names(), FAST)
    assert {r["volumeSnapshotClassName"] for r in run.records} == {"ebs-retain"}
    assert {r["deletionPolicy"] for r in run.records} == {"Retain"}
    assert not any("deletionPolicy Delete" in w for w in run.warnings)
    assert sum("persistentVolumeReclaimPolicy Delete" in w for w in run.warnings) == 1


# -- protect -----------------------------------------------------------------------------------
def test_protect_dry_run_then_real(srv: ApiServer, kc: Path) -> None:
    pvc = srv.get("v1", "PersistentVolumeClaim", DB_CLAIM, NS)
    assert pvc is not None
    pv_name = pvc["spec"]["volumeName"]
    srv.clear_requests()
    r = cli("protect", "--kubeconfig", str(kc), "--dry-run")
    assert r.code == 0, r.stderr
    assert "would set Retain" in r.stdout and pv_name in r.stdout
    assert not [x for x in srv.requests if x.method not in ("GET",)]
    pv = srv.get("v1", "PersistentVolume", pv_name)
    assert pv is not None and pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"

    r = cli("protect", "--kubeconfig", str(kc), "-o", "json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["patched"] == [pv_name]
    patches = [x for x in srv.requests if x.method == "PATCH"]
    assert [x.path for x in patches] == [f"/api/v1/persistentvolumes/{pv_name}"]
    assert json.loads(patches[0].body or b"") == p.PROTECT_PATCH
    pv = srv.get("v1", "PersistentVolume", pv_name)
    assert pv is not None and pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    srv.clear_requests()
    r = cli("protect", "--kubeconfig", str(kc))
    assert r.code == 0 and not [x for x in srv.requests if x.method == "PATCH"]
    assert "already protected" in r.stdout


# -- list and prune ----------------------------------------------------------------------------
def _three_runs(srv: ApiServer, kube: Kube) -> list[comp.SnapshotRun]:
    t0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
    runs = []
    with CsiController(srv).running():
        for i in range(3):
            runs.append(comp.take_snapshots(kube, Names(), comp.SnapshotOptions(
                timeout=10, poll=0.02, checkpoint=False), now=t0 + timedelta(days=i)))
    return runs


def test_list_and_prune(srv: ApiServer, kube: Kube, kc: Path) -> None:
    runs = _three_runs(srv, kube)
    # a snapshot someone else made is never listed nor pruned
    srv.seed({"apiVersion": SNAP, "kind": "VolumeSnapshot",
              "metadata": {"name": "manual", "namespace": NS},
              "spec": {"source": {"persistentVolumeClaimName": DB_CLAIM}}})
    r = cli("snapshot", "list", "--kubeconfig", str(kc))
    assert r.code == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "runai-dr-" in ln]
    assert len(lines) == 9 and "manual" not in r.stdout
    assert all(" yes " in ln for ln in lines)
    r = cli("snapshot", "list", "--kubeconfig", str(kc), "-o", "json")
    listed = json.loads(r.stdout)
    assert [x["backupId"] for x in listed][::3] == [run.backup_id for run in runs]

    srv.clear_requests()
    r = cli("snapshot", "prune", "--kubeconfig", str(kc), "--keep", "2", "--dry-run")
    assert r.code == 0, r.stderr
    assert r.stdout.count("would delete") == 4 and "3 would delete, 6 kept" in r.stdout
    assert not [x for x in srv.requests if x.method == "DELETE"]

    r = cli("snapshot", "prune", "--kubeconfig", str(kc), "--keep", "2")
    assert r.code == 0, r.stderr
    deleted = sorted(x.path.rsplit("/", 1)[1] for x in srv.requests if x.method == "DELETE")
    assert deleted == sorted(rec["volumeSnapshotName"] for rec in runs[0].records)
    left = {v["metadata"]["name"] for v in srv.list(SNAP, "VolumeSnapshot", NS)}
    assert "manual" in left and len(left) == 7
    r = cli("snapshot", "prune", "--kubeconfig", str(kc), "--keep", "0")
    assert r.code == 2


def test_protect_and_prune_that_could_not_change_everything_are_partial(
        srv: ApiServer, kube: Kube, kc: Path) -> None:
    """A volume protect could not patch, a snapshot prune could not delete: the command
    ran to its end, so it exits 3 (partial), like a partial backup or restore."""
    srv.deny(verb="patch", resource="persistentvolumes")
    r = cli("protect", "--kubeconfig", str(kc))
    assert r.code == 3, r.stdout + r.stderr
    assert "failed" in r.stdout and "PersistentVolume" in r.stderr
    srv.clear_denies()
    _three_runs(srv, kube)
    srv.deny(verb="delete", resource="volumesnapshots", group="snapshot.storage.k8s.io")
    r = cli("snapshot", "prune", "--kubeconfig", str(kc), "--keep", "2", "-o", "json")
    assert r.code == 3, r.stdout + r.stderr
    assert len(json.loads(r.stdout)["errors"]) == 3


# -- restore -----------------------------------------------------------------------------------
def _snapshot_bundle(srv: ApiServer, kube: Kube, tmp_path: Path) -> Path:
    with CsiController(srv).running():
        outcome = ops.run_snapshot(kube, Names(), comp.SnapshotOptions(
            timeout=10, poll=0.02, checkpoint=False), output=tmp_path / "snap.tar.gz")
    assert isinstance(outcome.bundle, Path)
    return outcome.bundle


class _Restored:
    """A volumes restore's step and the database claim it reports."""

    def __init__(self, kube: Kube, b: Bundle, **opts: Any) -> None:
        self.step = Result("volumes")
        self.claim = comp.restore_volumes(kube, b, comp.VolumeRestoreOptions(**opts), self.step)
        self.objects = self.step.objects
        self.warnings = self.step.warnings
        self.reason = "; ".join(f"{o.label}: {o.message}" for o in self.objects
                                if o.outcome is Outcome.FAILED)


def _force_delete_claim(srv: ApiServer, name: str) -> None:
    pvc = srv.get("v1", "PersistentVolumeClaim", name, NS)
    assert pvc is not None
    pvc["metadata"]["finalizers"] = []
    srv.seed(pvc)
    assert srv.delete_object("v1", "PersistentVolumeClaim", name, NS)


def test_restore_same_cluster(srv: ApiServer, kube: Kube, tmp_path: Path) -> None:
    bundle = _snapshot_bundle(srv, kube, tmp_path)
    records = p.records_of(json.loads(member(bundle, layout.SNAPSHOTS)))
    for name in (DB_CLAIM, "data-runai-backend-thanos-receive-0"):
        _force_delete_claim(srv, name)
    srv.clear_requests()
    with CsiController(srv).running(), closing(Bundle.open(bundle)) as b:
        result = _Restored(kube, b, poll=0.02, timeout=5)
    assert not result.step.failed, result.reason
    by = {(o.kind, o.name): o for o in result.objects}
    for rec in records:
        name = rec["claim"]["name"]
        if name == "data-runai-backend-redis-queue-master-0":
            assert by[("PersistentVolumeClaim", name)].outcome is Outcome.UNCHANGED
            assert "not created from the snapshot" in by[("PersistentVolumeClaim", name)].message
            continue
        o = by[("PersistentVolumeClaim", name)]
        assert o.outcome is Outcome.CREATED
        assert "WaitForFirstConsumer" in o.message and "as expected" in o.message
        assert by[("VolumeSnapshot", rec["volumeSnapshotName"])].outcome is Outcome.UNCHANGED
        pvc = srv.get("v1", "PersistentVolumeClaim", name, NS)
        assert pvc is not None
        assert pvc["spec"]["dataSource"] == {"apiGroup": "snapshot.storage.k8s.io",
                                             "kind": "VolumeSnapshot",
                                             "name": rec["volumeSnapshotName"]}
        assert pvc["spec"]["storageClassName"] == "gp3-csi"
        assert pvc["status"].get("phase", "Pending") == "Pending"
    # the same cluster: no content or snapshot was created, only claims
    posts = [x.path for x in srv.requests if x.method == "POST"]
    assert sorted(posts) == [f"/api/v1/namespaces/{NS}/persistentvolumeclaims"] * 2
    assert any("already exists" in w for w in result.warnings)
    assert result.claim == DB_CLAIM


def _new_cluster(tmp_path: Path, *, binding: str = "Immediate") -> ApiServer:
    new = ApiServer()
    new.install_crds(crd_paths())
    new.start()
    new.seed({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
              "metadata": {"name": "gp3-csi"}, "provisioner": "ebs.csi.aws.com",
              "reclaimPolicy": "Retain", "volumeBindingMode": binding})
    return new


def test_restore_new_cluster_through_the_restore_plan(srv: ApiServer, kube: Kube,
                                                      tmp_path: Path) -> None:
    bundle = _snapshot_bundle(srv, kube, tmp_path)
    records = p.records_of(json.loads(member(bundle, layout.SNAPSHOTS)))
    new = _new_cluster(tmp_path)
    try:
        nk = connect(ConnectOptions(kubeconfig=str(new.write_kubeconfig(tmp_path / "new"))))
        # dry run first: nothing is written
        outcome = run_restore(nk, RestoreOptions(
            bundle=bundle, only=("volumes",), assume_yes=True,
            settings=RestoreSettings(dry_run=True)))
        step = next(s for s in outcome.steps if s.name == "volumes")
        assert not step.failed, step.to_json()
        assert {o.outcome for o in step.objects} == {Outcome.WOULD_CREATE}
        assert not [x for x in new.requests if x.method in ("POST", "PUT", "PATCH", "DELETE")
                    and "selfsubjectaccessreviews" not in x.path]

        settings = RestoreSettings(poll=0.02, wait_timeout=10)
        with CsiController(new, pre_provisioned_size="20Gi").running():
            outcome = run_restore(nk, RestoreOptions(bundle=bundle, only=("volumes",),
                                                     assume_yes=True, settings=settings))
        step = next(s for s in outcome.steps if s.name == "volumes")
        assert not step.failed, step.to_json()
        kinds = sorted((o.kind, o.outcome.value) for o in step.objects)
        assert kinds == sorted([("Namespace", "created")]
                               + [("VolumeSnapshotContent", "created")] * 3
                               + [("VolumeSnapshot", "created")] * 3
                               + [("PersistentVolumeClaim", "created")] * 3)
        for rec in records:
            content = new.get(SNAP, "VolumeSnapshotContent",
                              p.restored_content_name(rec["volumeSnapshotName"]))
            assert content is not None
            assert content["spec"]["source"] == {"snapshotHandle": rec["snapshotHandle"]}
            assert content["spec"]["driver"] == rec["driver"]
            assert content["spec"]["deletionPolicy"] == "Retain"
            ref = content["spec"]["volumeSnapshotRef"]
            assert (ref["name"], ref["namespace"]) == (rec["volumeSnapshotName"], NS)
            vs = new.get(SNAP, "VolumeSnapshot", rec["volumeSnapshotName"], NS)
            assert vs is not None and vs["spec"]["source"] == {
                "volumeSnapshotContentName": content["metadata"]["name"]}
            pvc = new.get("v1", "PersistentVolumeClaim", rec["claim"]["name"], NS)
            assert pvc is not None and pvc["status"]["phase"] == "Bound"
            spec = pvc["spec"]
            assert spec["storageClassName"] == rec["claim"]["storageClassName"]
            assert spec["accessModes"] == rec["claim"]["accessModes"]
            assert spec["volumeMode"] == rec["claim"]["volumeMode"]
            assert p.parse_quantity(spec["resources"]["requests"]["storage"]) >= \
                p.parse_quantity(rec["restoreSize"])
            assert spec["dataSource"]["name"] == rec["volumeSnapshotName"]
        assert any("bound to volume" in o.message for o in step.objects)

        # idempotent: a second run changes nothing
        new.clear_requests()
        outcome = run_restore(nk, RestoreOptions(bundle=bundle, only=("volumes",),
                                                 assume_yes=True, settings=settings))
        step = next(s for s in outcome.steps if s.name == "volumes")
        assert not step.failed and {o.outcome for o in step.objects} == {Outcome.UNCHANGED}
        assert not [x for x in new.requests if x.method == "POST"
                    and "selfsubjectaccessreviews" not in x.path]
        nk.close()
    finally:
        new.stop()


def test_restore_new_cluster_failures(srv: ApiServer, kube: Kube, tmp_path: Path) -> None:
    """An unknown storage snapshot fails its claim; a missing storage class is named."""
    bundle = _snapshot_bundle(srv, kube, tmp_path)
    records = p.records_of(json.loads(member(bundle, layout.SNAPSHOTS)))
    db = next(r for r in records if r["role"] == "database")
    new = _new_cluster(tmp_path, binding="WaitForFirstConsumer")
    try:
        nk = connect(ConnectOptions(kubeconfig=str(new.write_kubeconfig(tmp_path / "new"))))
        new.delete_object("storage.k8s.io/v1", "StorageClass", "gp3-csi")
        with closing(Bundle.open(bundle)) as b:
            result = _Restored(nk, b, poll=0.02, timeout=2)
        assert result.step.failed
        assert 'storage class "gp3-csi" does not exist' in result.reason
        assert 'provisioner "ebs.csi.aws.com"' in result.reason and "--only volumes" in result.reason
        new.seed({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                  "metadata": {"name": "gp3-csi"}, "provisioner": "ebs.csi.aws.com",
                  "volumeBindingMode": "WaitForFirstConsumer"})
        with CsiController(new, unknown_handles={db["snapshotHandle"]}).running(), \
                closing(Bundle.open(bundle)) as b:
            result = _Restored(nk, b, poll=0.02, timeout=5)
        failed = [o for o in result.objects if o.outcome is Outcome.FAILED]
        assert [(o.kind, o.name) for o in failed] == [("VolumeSnapshot",
                                                        db["volumeSnapshotName"])]
        assert f"snapshot {db['snapshotHandle']} not found" in failed[0].message
        waiting = [o for o in result.objects if o.kind == "PersistentVolumeClaim"
                   and "WaitForFirstConsumer" in o.message]
        assert len(waiting) == 2
        nk.close()
    finally:
        new.stop()


def test_restore_volumes_cli_dry_run_and_snapshot_bundle_layout(
        srv: ApiServer, kube: Kube, kc: Path, tmp_path: Path) -> None:
    """`restore --only volumes --dry-run` with a standalone snapshot bundle."""
    bundle = _snapshot_bundle(srv, kube, tmp_path)
    _force_delete_claim(srv, DB_CLAIM)
    srv.clear_requests()
    r = cli("restore", str(bundle), "--kubeconfig", str(kc), "--only", "volumes", "--dry-run")
    assert r.code == 0, r.stdout + r.stderr
    assert DB_CLAIM in r.stdout
    assert not [x for x in srv.requests if x.method in ("POST", "PATCH", "PUT", "DELETE")
                and "selfsubjectaccessreviews" not in x.path]
