"""`kubectl runai-dr status` against the loopback API server (and real PostgreSQL through
the loopback exec)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from kubeapi import ApiServer
from kubeapi.pgserver import PgServer
from kubeapi.seed import BACKEND_NS, CLUSTER_NS, seed_runai

from kubectl_runai_dr.components.helm import decode_release_payload, encode_release_payload
from kubectl_runai_dr.kube.client import ConnectOptions, connect
from kubectl_runai_dr.ops.backup import BackupOptions, run_backup
from kubectl_runai_dr.ops.record import RECORD_NAME
from tests.e2e import cli

DB_POD = "runai-backend-postgresql-0"
DB_CLAIM = "data-runai-backend-postgresql-0"
SSAR_PATH = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def status(kc: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    r = cli("status", "--kubeconfig", str(kc), "-o", "json", *args)
    assert r.stdout.startswith("{"), (r.stdout, r.stderr)
    return r.code, json.loads(r.stdout), r.stderr


def problems(doc: dict[str, Any], severity: str | None = None) -> list[str]:
    return [f"{p['section']}: {p['message']}" for p in doc["problems"]
            if severity is None or p["severity"] == severity]


def record_backup(srv: ApiServer, kc: Path, tmp_path: Path, *, encrypted: bool = True) -> None:
    """A real `backup` run (no database dump: the seed's pod has no PostgreSQL) so the
    last-backup record exists, written the way backup writes it; encrypted (age) unless
    said otherwise, as a healthy installation's backups are."""
    from kubectl_runai_dr.storage.age import Sealing, keygen, load_recipients

    sealing = Sealing(recipients=tuple(load_recipients([keygen()[1]], []))) if encrypted \
        else None
    kube = connect(ConnectOptions(kubeconfig=str(kc)))
    out = run_backup(kube, BackupOptions(output=tmp_path / "b.tar.gz",
                                         skip=("database", "volumes"), sealing=sealing))
    assert out.manifest["status"] == "complete" and not out.warnings
    for ns in (BACKEND_NS, CLUSTER_NS):  # recorded as a backup with the database would be
        record = srv.get("v1", "ConfigMap", RECORD_NAME, ns)
        if record is not None:
            left_out = json.loads(record["data"]["excludedComponents"])
            record["data"]["excludedComponents"] = json.dumps(
                [c for c in left_out if c != "database"])
            srv.seed(record)


def retain_database_volume(srv: ApiServer) -> str:
    pvc = srv.get("v1", "PersistentVolumeClaim", DB_CLAIM, BACKEND_NS)
    assert pvc is not None
    pv_name = pvc["spec"]["volumeName"]
    pv = srv.get("v1", "PersistentVolume", pv_name)
    assert pv is not None and pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    pv["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    srv.seed(pv)
    return str(pv_name)


def write_record(srv: ApiServer, ns: str, *, age: timedelta, result: str = "complete",
                 failed: list[str] | None = None) -> None:
    when = (datetime.now(timezone.utc) - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    srv.seed({"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": RECORD_NAME, "namespace": ns,
                           "labels": {"app.kubernetes.io/managed-by": "kubectl-runai-dr"}},
              "data": {"time": when, "bundle": "runai-dr-old.tar.gz", "result": result,
                       "failedComponents": json.dumps(failed or []), "toolVersion": "0.1.0"}})


@pytest.fixture
def seeded(apiserver: ApiServer, tmp_path: Path) -> tuple[ApiServer, Path]:
    seed_runai(apiserver, projects=5, rolebindings_per_project=7)
    return apiserver, apiserver.write_kubeconfig(tmp_path / "kubeconfig")


def test_healthy_installation(seeded: tuple[ApiServer, Path], tmp_path: Path,
                              pg_server: PgServer) -> None:
    srv, kc = seeded
    # The seed's database volume is reclaimed on Delete, which status rightly flags:
    # a healthy installation has it on Retain.
    retain_database_volume(srv)
    srv.set_pod_exec(BACKEND_NS, DB_POD, env={
        "PGHOST": pg_server.host, "PGPORT": str(pg_server.port), "PGUSER": pg_server.user,
        "POSTGRES_POSTGRES_PASSWORD": pg_server.password})
    record_backup(srv, kc, tmp_path)
    srv.seed({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
              "metadata": {"name": "runai-dr-db-1", "namespace": BACKEND_NS,
                           "creationTimestamp": "2025-01-15T08:00:00Z",
                           "labels": {"app.kubernetes.io/managed-by": "kubectl-runai-dr"}},
              "spec": {"source": {"persistentVolumeClaimName": DB_CLAIM},
                       "volumeSnapshotClassName": "csi-aws-vsc"},
              "status": {"readyToUse": True}})
    srv.clear_requests()

    code, doc, stderr = status(kc)

    assert code == 0, (problems(doc), stderr)
    assert doc["problems"] == [] and doc["summary"]["healthy"] is True
    c = doc["cluster"]
    assert c["installation"] == "control plane and cluster (self-hosted)"
    assert c["context"] == "loopback" and c["kubernetesVersion"].startswith("v1.")
    rels = {r["name"]: r for r in doc["releases"]["releases"]}
    assert rels["runai-backend"]["revision"] == 4 and rels["runai-backend"]["status"] == "deployed"
    assert rels["runai-backend"]["chart"] == "control-plane"
    assert rels["runai-cluster"]["chartVersion"] == "2.16.79"
    assert rels["runai-cluster"]["lastDeployed"].startswith("20")
    db = doc["database"]
    assert db["ready"] is True and db["pod"] == DB_POD and db["query"] == "ok"
    server_version = pg_server.psql("SHOW server_version").strip()
    assert db["version"] == server_version
    sizes = {d["name"]: d["bytes"] for d in db["databases"]}
    assert "postgres" in sizes and sizes["postgres"] > 1_000_000
    claims = {cl["role"]: cl for cl in doc["volumes"]["claims"]}
    assert set(claims) == {"database", "thanos", "redis-queue"}
    dbc = claims["database"]
    assert (dbc["name"], dbc["size"], dbc["storageClass"], dbc["driver"], dbc["reclaimPolicy"],
            dbc["snapshotClass"]) == (DB_CLAIM, "20Gi", "gp3-csi", "ebs.csi.aws.com", "Retain",
                                      "csi-aws-vsc")
    assert dbc["latestSnapshot"]["name"] == "runai-dr-db-1"
    assert dbc["latestSnapshot"]["ageSeconds"] > 0
    assert claims["thanos"]["latestSnapshot"] is None
    ru = doc["runai"]
    assert (ru["runaiconfig"], ru["projects"], ru["projectNamespaces"], ru["rolebindings"],
            ru["templates"], ru["projectsWithoutNamespace"]) == (True, 5, 5, 35, 3, [])
    b = doc["backup"]
    assert b["found"] is True and b["result"] == "complete" and b["namespace"] == BACKEND_NS
    assert b["bundle"] == "b.tar.gz" and 0 <= b["ageSeconds"] < 600
    perms = doc["permissions"]["checks"]
    assert perms and all(p["allowed"] is True for p in perms)
    assert {(p["command"], p["step"]) for p in perms} >= {("backup", "database"),
                                                          ("restore", "namespaces")}

    # Nothing written: reads, permission questions, and the one exec (a websocket GET).
    writes = [(r.method, r.path) for r in srv.requests
              if r.method != "GET" and r.path != SSAR_PATH]
    assert writes == []
    execs = [r for r in srv.requests if r.path.endswith("/exec")]
    assert len(execs) == 1 and execs[0].path.endswith(f"/pods/{DB_POD}/exec")
    assert pg_server.password not in json.dumps(execs[0].query)
    # Fetched once: no object or list read twice (discovery aside).
    reads = [(r.path, json.dumps(r.query, sort_keys=True)) for r in srv.requests
             if r.method == "GET" and not re.fullmatch(r"/apis/[^/]+(/[^/]+)?", r.path)]
    assert len(reads) == len(set(reads)), sorted(x for x in reads if reads.count(x) > 1)
    ssars = [r for r in srv.requests if r.path == SSAR_PATH]
    asked = {(x["verb"], x["resource"], x.get("subresource", ""), x.get("namespace", ""))
             for x in (json.loads(r.body or b"{}")["spec"]["resourceAttributes"] for r in ssars)}
    assert len(ssars) == len(asked)  # each question asked once
    assert ("create", "pods", "exec", BACKEND_NS) in asked


def test_table_view_sections_and_no_exec(seeded: tuple[ApiServer, Path],
                                         tmp_path: Path) -> None:
    srv, kc = seeded
    record_backup(srv, kc, tmp_path)
    srv.clear_requests()
    r = cli("status", "--kubeconfig", str(kc), "--no-exec")
    assert r.code == 7, r.stdout + r.stderr  # the seed's Delete volume: a warning only
    titles = [t for t in ("Cluster", "Helm releases", "Database", "Volumes", "Run:ai",
                          "Last backup", "Permissions", "Problems") if t in r.stdout]
    assert len(titles) == 8
    positions = [r.stdout.index(t) for t in titles]
    assert positions == sorted(positions)  # problems come last
    assert "what to do: `kubectl runai-dr protect`" in r.stdout
    assert "not asked (--no-exec)" in r.stdout
    assert not any(x.path.endswith("/exec") for x in srv.requests)
    assert "Traceback" not in r.stderr


def test_saas_cluster(apiserver: ApiServer, tmp_path: Path) -> None:
    seed_runai(apiserver, projects=3, control_plane=False)
    kc = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    code, doc, _ = status(kc)
    assert code == 8 and problems(doc, "critical") == [
        "backup: no backup recorded in this cluster (ConfigMap runai-dr-last-backup)"]
    record_backup(apiserver, kc, tmp_path)

    code, doc, _ = status(kc)

    assert code == 0, problems(doc)
    assert doc["cluster"]["installation"] == "cluster only (SaaS control plane)"
    rels = {r["name"]: r for r in doc["releases"]["releases"]}
    assert rels["runai-backend"]["found"] is False and rels["runai-cluster"]["found"] is True
    assert doc["database"]["applicable"] is False and doc["volumes"]["applicable"] is False
    assert doc["backup"]["namespace"] == CLUSTER_NS
    perms = doc["permissions"]["checks"]
    na = {(p["command"], p["step"]) for p in perms if p["allowed"] is None}
    assert na == {("backup", "control-plane"), ("backup", "database"),
                  ("backup", "volumes"), ("restore", "volumes"),
                  ("restore", "control-plane"), ("restore", "database")}
    record = [p for p in perms if p["step"] == "record" and p["verb"] == "create"]
    assert record[0]["namespace"] == CLUSTER_NS and record[0]["allowed"] is True
    assert not any(r.path.endswith("/exec") for r in apiserver.requests)
    table = cli("status", "--kubeconfig", str(kc))
    assert table.code == 0 and "cluster only (SaaS control plane)" in table.stdout
    assert "no control plane here" in table.stdout


def test_missing_permissions_degrade_sections(seeded: tuple[ApiServer, Path],
                                              tmp_path: Path) -> None:
    srv, kc = seeded
    record_backup(srv, kc, tmp_path)
    srv.add_user("viewer-token", "viewer")
    rbac = "rbac.authorization.k8s.io"
    srv.deny(verb="list", resource="secrets", namespace=BACKEND_NS, user="viewer")
    srv.deny(verb="create", resource="pods/exec", namespace=BACKEND_NS, user="viewer")
    srv.deny(verb="list", resource="rolebindings", group=rbac, user="viewer")
    srv.deny(verb="create", resource="namespaces", user="viewer")
    viewer = srv.write_kubeconfig(tmp_path / "viewer", token="viewer-token")

    code, doc, _ = status(viewer)

    assert code == 8, problems(doc)
    # helm: the control plane's release is unknown, the cluster's is read
    rels = {r["name"]: r for r in doc["releases"]["releases"]}
    assert rels["runai-backend"]["found"] is None and rels["runai-backend"]["error"]["forbidden"]
    assert rels["runai-cluster"]["status"] == "deployed"
    # database: ready, but no version (no exec); the other sections still read
    assert doc["database"]["ready"] is True
    assert doc["database"]["query"] == "unknown (exec not permitted)"
    assert doc["database"]["version"] is None
    assert doc["runai"]["rolebindings"] is None and doc["runai"]["projects"] == 5
    assert doc["runai"]["errors"][0]["forbidden"] is True
    assert doc["volumes"]["claims"][0]["reclaimPolicy"] == "Delete"
    assert doc["backup"]["found"] is True
    denied = {(p["command"], p["step"], p["verb"], p["resource"], p["namespace"])
              for p in doc["permissions"]["checks"] if p["allowed"] is False}
    assert denied == {
        ("backup", "control-plane", "list", "secrets", BACKEND_NS),
        ("backup", "database", "create", "pods/exec", BACKEND_NS),
        ("backup", "volumes", "create", "pods/exec", BACKEND_NS),  # CHECKPOINT
        ("backup", "namespaces", "list", f"rolebindings.{rbac}", "(all namespaces)"),
        ("restore", "control-plane", "list", "secrets", BACKEND_NS),
        ("restore", "volumes", "create", "namespaces", "(cluster)"),
        ("restore", "volumes", "create", "pods/exec", BACKEND_NS),  # volume data
        ("restore", "secrets", "create", "namespaces", "(cluster)"),
        ("restore", "control-plane", "create", "namespaces", "(cluster)"),
        ("restore", "cluster", "create", "namespaces", "(cluster)"),
        ("restore", "database", "create", "pods/exec", BACKEND_NS),
        ("restore", "namespaces", "create", "namespaces", "(cluster)"),
        ("restore", "namespaces", "list", f"rolebindings.{rbac}", "(all namespaces)"),
    }
    crit = problems(doc, "critical")
    assert any(p.startswith("permissions: backup step database: you may not create pods/exec")
               for p in crit)
    assert any("backup step control-plane" in p for p in crit)
    assert any(p.startswith("permissions: restore step") for p in problems(doc, "warning"))
    assert any(p.startswith("helm: ") and "forbidden" in p for p in problems(doc, "warning"))
    # the viewer's requests: nothing written either
    assert [r for r in srv.requests if r.user == "viewer" and r.method != "GET"
            and r.path != SSAR_PATH] == []

    table = cli("status", "--kubeconfig", str(viewer))
    assert table.code == 8 and "Traceback" not in table.stderr
    assert "unknown (exec not permitted)" in table.stdout
    assert re.search(r"backup\s+│\s+database\s+│\s+create\s+│\s+pods/exec\s+│\s+"
                     rf"{BACKEND_NS}\s+│\s+no", table.stdout)
    assert "could not read" in table.stdout


def test_ssar_not_permitted_leaves_permissions_unknown(seeded: tuple[ApiServer, Path],
                                                       tmp_path: Path) -> None:
    srv, kc = seeded
    # Every authenticated user may ask (system:basic-user), unless a cluster removed it.
    srv.inject_fault(method="POST", path_regex="selfsubjectaccessreviews$", status=403,
                     times=None)
    srv.clear_requests()
    code, doc, _ = status(kc, "--no-exec")
    assert all(p["allowed"] is None for p in doc["permissions"]["checks"])
    assert doc["permissions"]["userCanReview"] is False
    ssars = [r for r in srv.requests if r.path == SSAR_PATH]
    assert len(ssars) == 1  # asked once, then gave up
    assert any(p.startswith("permissions: ") for p in problems(doc, "warning"))
    assert code == 8  # still no backup recorded


def _add_revision(srv: ApiServer, release: str, ns: str, revision: int, status: str,
                  config: dict[str, Any] | None = None) -> None:
    """A newer helm revision, stored as helm stores it (Secret driver)."""
    base = srv.get("v1", "Secret", f"sh.helm.release.v1.{release}.v4", ns)
    assert base is not None
    raw = decode_release_payload(base["data"]["release"], from_secret=True)
    raw["version"], raw["info"]["status"] = revision, status
    if config is not None:
        raw["config"] = config
    raw["info"]["description"] = "Upgrade failed: timed out waiting for the condition"
    raw["info"]["last_deployed"] = "2025-01-15T10:00:00.000000000Z"
    srv.seed({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
              "metadata": {"name": f"sh.helm.release.v1.{release}.v{revision}", "namespace": ns,
                           "labels": {"name": release, "owner": "helm", "status": status,
                                      "version": str(revision)}},
              "data": {"release": encode_release_payload(raw, for_secret=True)}})


@pytest.mark.parametrize("release_status", ["failed", "pending-upgrade"])
def test_failed_or_pending_release(seeded: tuple[ApiServer, Path], tmp_path: Path,
                                   release_status: str) -> None:
    srv, kc = seeded
    retain_database_volume(srv)
    record_backup(srv, kc, tmp_path)
    _add_revision(srv, "runai-backend", BACKEND_NS, 5, release_status)

    code, doc, _ = status(kc, "--no-exec")

    assert code == 8
    rel = doc["releases"]["releases"][0]
    assert (rel["revision"], rel["status"], rel["deployedRevision"], rel["flagged"]) == (
        5, release_status, 4, True)
    assert rel["lastDeployed"].startswith("2025-01-15T10:00")
    crit = [p for p in doc["problems"] if p["severity"] == "critical"]
    assert len(crit) == 1 and crit[0]["section"] == "helm"
    assert release_status in crit[0]["message"] and "revision 5" in crit[0]["message"]
    assert "helm history runai-backend -n runai-backend" in crit[0]["hint"]
    table = cli("status", "--kubeconfig", str(kc), "--no-exec")
    assert re.search(rf"runai-backend\s+│.*5 \(deployed: 4\)\s+│\s+{release_status}",
                     table.stdout)


def test_delete_reclaim_policy_is_a_warning(seeded: tuple[ApiServer, Path],
                                            tmp_path: Path) -> None:
    srv, kc = seeded
    record_backup(srv, kc, tmp_path)
    code, doc, _ = status(kc, "--no-exec")
    assert code == 7
    [warning] = doc["problems"]
    pv = doc["volumes"]["claims"][0]["volume"]
    assert warning["severity"] == "warning" and "reclaim policy Delete" in warning["message"]
    assert DB_CLAIM in warning["message"] and pv in warning["message"]
    assert warning["hint"].endswith(f"kubectl patch pv {pv} -p "
                                    "'{\"spec\":{\"persistentVolumeReclaimPolicy\":\"Retain\"}}'")
    assert "kubectl runai-dr protect" in warning["hint"]
    retain_database_volume(srv)
    assert status(kc, "--no-exec")[0] == 0


def test_stale_and_partial_backup(seeded: tuple[ApiServer, Path]) -> None:
    srv, kc = seeded
    retain_database_volume(srv)
    write_record(srv, BACKEND_NS, age=timedelta(days=3))

    code, doc, _ = status(kc, "--no-exec")

    assert code == 8
    [p] = doc["problems"]
    assert p["section"] == "backup" and p["severity"] == "critical"
    assert "3d old (older than 1d)" in p["message"] and "runai-dr-old.tar.gz" in p["message"]
    assert doc["backup"]["ageSeconds"] > 3 * 86400 - 60
    assert status(kc, "--no-exec", "--max-age", "4d")[0] == 0
    assert status(kc, "--no-exec", "--max-age", "0")[0] == 0  # 0: never too old
    table = cli("status", "--kubeconfig", str(kc), "--no-exec")
    assert "3d" in table.stdout and "older than 1d" in table.stdout

    write_record(srv, BACKEND_NS, age=timedelta(hours=1), result="partial",
                 failed=["database"])
    code, doc, _ = status(kc, "--no-exec")
    assert code == 8 and problems(doc) == [
        "backup: the last backup is partial (database failed): runai-dr-old.tar.gz"]


def test_projects_without_namespace_and_bad_max_age(seeded: tuple[ApiServer, Path]) -> None:
    srv, kc = seeded
    retain_database_volume(srv)
    write_record(srv, BACKEND_NS, age=timedelta(minutes=5))
    assert srv.delete_object("v1", "Namespace", "runai-proj-0003")
    srv.finalize_namespace("runai-proj-0003")
    code, doc, _ = status(kc, "--no-exec")
    assert code == 7
    assert doc["runai"]["projectsWithoutNamespace"] == [
        {"project": "proj-0003", "namespace": "runai-proj-0003"}]
    assert doc["runai"]["projectNamespaces"] == 4 and doc["runai"]["rolebindings"] == 28
    r = cli("status", "--kubeconfig", str(kc), "--max-age", "soon")
    assert r.code == 2 and "--max-age" in r.stderr


def test_unreachable_server_exits_5(tmp_path: Path) -> None:
    srv = ApiServer().start()
    kc = srv.write_kubeconfig(tmp_path / "kc")
    srv.stop()
    r = cli("status", "--kubeconfig", str(kc), "--request-timeout", "5s")
    assert r.code == 5 and r.stdout == ""
    assert "error:" in r.stderr and "Traceback" not in r.stderr


def test_names_are_flags(seeded: tuple[ApiServer, Path]) -> None:
    _srv, kc = seeded
    code, doc, _ = status(kc, "--no-exec", "--control-plane-namespace", "elsewhere")
    assert doc["cluster"]["controlPlane"] is False
    assert doc["database"]["applicable"] is False
    assert [r["namespace"] for r in doc["releases"]["releases"]] == ["elsewhere", CLUSTER_NS]
    assert code == 8  # no record where it is looked for


def test_external_database_from_values(seeded: tuple[ApiServer, Path]) -> None:
    srv, kc = seeded
    retain_database_volume(srv)
    write_record(srv, BACKEND_NS, age=timedelta(minutes=5))
    _add_revision(srv, "runai-backend", BACKEND_NS, 5, "deployed", config={
        "postgresql": {"enabled": False},
        "global": {"postgresql": {"auth": {"host": "db.example.com", "port": 5433}}}})
    srv.clear_requests()
    code, doc, _ = status(kc)
    assert code == 0, problems(doc)
    db = doc["database"]
    assert (db["externalHost"], db["externalPort"], db["pod"]) == ("db.example.com", 5433, "")
    assert problems(doc, "info") == [
        "database: the control plane uses an external database (db.example.com:5433)"]
    assert not any(r.path.endswith("/exec") for r in srv.requests)
    table = cli("status", "--kubeconfig", str(kc))
    assert "external" in table.stdout and "db.example.com:5433" in table.stdout


def test_without_the_snapshot_api(seeded: tuple[ApiServer, Path]) -> None:
    srv, kc = seeded
    for plural in ("volumesnapshots", "volumesnapshotcontents", "volumesnapshotclasses"):
        assert srv.delete_object("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                                 f"{plural}.snapshot.storage.k8s.io")
    retain_database_volume(srv)
    write_record(srv, BACKEND_NS, age=timedelta(minutes=1))
    code, doc, _ = status(kc, "--no-exec")
    assert code == 0, problems(doc)
    assert doc["volumes"]["snapshotCrds"] is False
    assert all(c["snapshotClass"] is None and c["latestSnapshot"] is None
               for c in doc["volumes"]["claims"])
    assert problems(doc, "info") == [
        "volumes: the volume snapshot API (snapshot.storage.k8s.io) is not installed: "
        "volumes cannot be snapshotted"]


def test_table_lists_only_permissions_not_granted_unless_verbose(seeded: tuple[ApiServer, Path],
                                                                 tmp_path: Path) -> None:
    srv, _ = seeded
    srv.add_user("viewer-token", "viewer")
    srv.deny(verb="create", resource="namespaces", user="viewer")
    viewer = srv.write_kubeconfig(tmp_path / "viewer", token="viewer-token")
    r = cli("status", "--kubeconfig", str(viewer), "--no-exec")
    perms = r.stdout.split("Permissions")[1].split("Problems")[0]
    rows = [ln for ln in perms.splitlines() if ln.strip().startswith(("backup", "restore"))]
    assert rows and all(" create " in ln and "namespaces" in ln for ln in rows)
    granted = re.search(r"(\d+) of (\d+) granted", perms)
    assert granted, perms
    total = int(granted.group(2))
    assert f"{total - len(rows)} of {total} granted" in perms
    r = cli("status", "--kubeconfig", str(viewer), "--no-exec", "-v")
    perms = r.stdout.split("Permissions")[1].split("Problems")[0]
    assert len([ln for ln in perms.splitlines()
                if ln.strip().startswith(("backup", "restore"))]) >= total
