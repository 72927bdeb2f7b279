"""Rebuild from nothing: the whole documented recovery, end to end, into an empty cluster.

Through the CLI as an administrator runs it, with the real helm binary and a real
PostgreSQL behind the database pod: an installation made by `helm upgrade --install` of the
stand-in charts (the cluster chart brings the Run:ai CRDs, the control-plane chart the
database StatefulSet), data in several databases (bytea, large objects, a second role),
projects with labels, annotations and role bindings, templates, a changed RunaiConfig;
back up; wipe everything (releases, namespaces, CRDs, the database's volume); a dry run
that writes nothing and exits 0; `restore --run-helm` with the local charts; every
component equal to before; a second run changes nothing. The loopback server is as slow
as a cluster: the database pod is Pending, then Running, then Ready (PostgreSQL starting
on an empty data directory), CRDs are served only once Established.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeapi import ApiServer
from kubeapi.pgbackend import PostgresBackend, add_postgres_backend
from kubeapi.pgserver import PgServer

from kubectl_runai_dr.sanitize import clean
from tests.e2e import cli
from tests.test_kubeapi_controllers import CHARTS, default_class, needs_tools, tool, until

CP_NS, CL_NS = "runai-backend", "runai"
DB_POD = "runai-backend-postgresql-0"
PROJECTS = ("team-a", "team-b", "vision")
WRITES = {"POST", "PUT", "PATCH", "DELETE"}
CP_VALUES = {"global": {"domain": "runai.example.com"},
             "postgresql": {"auth": {"postgresPassword": "Pg-pass-1"}},
             "tenantsManager": {"config": {"adminPassword": "t3nant-secret"}}}
CL_VALUES = {"cluster": {"uid": "3f2a5b1e-7c1d-4e8a-9b62-0d4c1f9e8a77",
                         "url": "https://runai.example.com"},
             "controlPlane": {"url": "https://runai.example.com", "clientSecret": "c1ient-s3cret"}}

pytestmark = needs_tools


# -- the installation ------------------------------------------------------------------------
def _helm_install(env: dict[str, str], kc: Path, tmp: Path, release: str, ns: str, chart: str,
                  values: dict[str, Any]) -> None:
    vf = tmp / f"{release}.yaml"
    vf.write_text(yaml.safe_dump(values))
    tool(env, kc, "helm", "upgrade", "--install", release, str(CHARTS / chart), "--namespace", ns,
         "--create-namespace", "--values", str(vf))


def _database(pg: PostgresBackend) -> PgServer:
    server = pg.server_for(CP_NS, DB_POD)
    assert server is not None and server.running
    return server


def _load_data(db: PgServer) -> None:
    db.psql("CREATE ROLE keycloak LOGIN PASSWORD 'kc-pass'")
    db.psql("CREATE DATABASE keycloak OWNER keycloak")
    db.psql("""
        CREATE SCHEMA workloads;
        CREATE TABLE workloads.history (id serial PRIMARY KEY, name text, payload bytea,
                                        at timestamptz DEFAULT now());
        INSERT INTO workloads.history (name, payload)
            SELECT 'job-' || g, decode(md5(g::text) || md5((g * 7)::text), 'hex')
            FROM generate_series(1, 500) g;
        CREATE TABLE public.projects (id int PRIMARY KEY, name text UNIQUE, quota numeric);
        INSERT INTO public.projects VALUES (1, 'team-a', 2.5), (2, 'team-b', 4), (3, 'vision', 8);
        SELECT lo_from_bytea(0, convert_to(repeat('model-weights-', 2000), 'UTF8'));
        SELECT lo_from_bytea(0, '\\x00ff00ff'::bytea);
    """, db="backend")
    db.psql("CREATE TABLE realm (id text PRIMARY KEY, enabled bool);"
            "INSERT INTO realm VALUES ('runai', true), ('master', false);"
            "ALTER TABLE realm OWNER TO keycloak", db="keycloak")


def _db_state(db: PgServer) -> dict[str, Any]:
    """Per database: every table's rows as a digest, large objects' contents, owners."""
    out: dict[str, Any] = {}
    for name in ("backend", "keycloak"):
        tables = db.psql("SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n "
                         "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN "
                         "('pg_catalog', 'information_schema') ORDER BY 1", db=name).split()
        state = {t: db.psql(f"SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, '|' "
                            f"ORDER BY x::text)), '') FROM {t} x", db=name) for t in tables}
        state["largeObjects"] = db.psql(
            "SELECT count(*) || ':' || coalesce(md5(string_agg(md5(lo_get(oid)), '|' ORDER BY "
            "oid)), '') FROM pg_largeobject_metadata", db=name)
        state["owner"] = db.psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE "
                                 f"datname = '{name}'")
        out[name] = state
    return out


def _seed_objects(srv: ApiServer) -> None:
    """What the control plane would have synced and administrators added by hand."""
    for p in PROJECTS:
        ns = f"runai-{p}"
        srv.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": ns, "labels": {"runai/queue": p, "team": p.split("-")[0]},
            "annotations": {"runai.example.com/owner": f"{p}@example.com"}}})
        for role in ("runai-job-executor", "runai-project-controller"):
            srv.seed({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                      "metadata": {"name": f"{role}-binding", "namespace": ns},
                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role},
                      "subjects": [{"kind": "User", "name": f"lead@{p}.example.com",
                                    "apiGroup": "rbac.authorization.k8s.io"},
                                   {"kind": "ServiceAccount", "name": "runai", "namespace": CL_NS}]})
    for i in range(2):
        srv.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": f"template-{i}", "namespace": CL_NS, "labels": {"runai/template": "true"}},
            "data": {"name": f"t{i}", "description": "a template", "values": f"gpu: {i + 1}\n"}})


def _objects(srv: ApiServer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in PROJECTS:
        ns = f"runai-{p}"
        obj = srv.get("v1", "Namespace", ns)
        if obj is not None:
            c = clean(obj)
            c["metadata"].get("labels", {}).pop("kubernetes.io/metadata.name", None)
            out[f"ns/{ns}"] = c
        for rb in srv.list("rbac.authorization.k8s.io/v1", "RoleBinding", ns):
            out[f"rb/{ns}/{rb['metadata']['name']}"] = clean(rb)
    for cm in srv.list("v1", "ConfigMap", CL_NS):
        if (cm["metadata"].get("labels") or {}).get("runai/template") == "true":
            out[f"cm/{cm['metadata']['name']}"] = clean(cm)
    return out


def _runaiconfig_spec(srv: ApiServer) -> Any:
    try:
        rc = srv.get("run.ai/v1", "RunaiConfig", "runai", CL_NS)
    except KeyError:  # the CRD is gone
        return None
    return rc["spec"] if rc else None


def _helm_values(env: dict[str, str], kc: Path) -> dict[str, Any]:
    out = {}
    for release, ns in (("runai-backend", CP_NS), ("runai-cluster", CL_NS)):
        r = tool(env, kc, "helm", "get", "values", release, "-n", ns, "-o", "json")
        out[release] = json.loads(r.stdout)
    return out


def _state(srv: ApiServer, env: dict[str, str], kc: Path, pg: PostgresBackend) -> dict[str, Any]:
    return {"helm": _helm_values(env, kc), "database": _db_state(_database(pg)),
            "runaiconfig": _runaiconfig_spec(srv), "objects": _objects(srv)}


def _wipe(srv: ApiServer, env: dict[str, str], kc: Path, pg: PostgresBackend) -> None:
    """The disaster: releases, every namespace and CRD of Run:ai, the database's volume."""
    tool(env, kc, "helm", "uninstall", "runai-cluster", "-n", CL_NS)
    tool(env, kc, "helm", "uninstall", "runai-backend", "-n", CP_NS)
    pg.wait_stopped(CP_NS, DB_POD)
    namespaces = [CP_NS, CL_NS, *(f"runai-{p}" for p in PROJECTS)]
    tool(env, kc, "kubectl", "delete", "namespace", *namespaces, "--wait=true", "--timeout=60s")
    crds = [c["metadata"]["name"] for c in srv.list("apiextensions.k8s.io/v1", "CustomResourceDefinition")
            if c["spec"]["group"] in ("run.ai", "scheduling.run.ai")]
    tool(env, kc, "kubectl", "delete", "crd", *crds, "--wait=true", "--timeout=60s")
    until(lambda: not [pv for pv in srv.list("v1", "PersistentVolume")], timeout=30,
          what="the database volume reclaimed")
    assert all(srv.get("v1", "Namespace", n) is None for n in namespaces)


@pytest.fixture
def installation(tmp_path: Path, tool_env: dict[str, str]) -> Any:
    srv = ApiServer()  # no Run:ai CRDs: the cluster chart brings them
    srv.crd_establish_delay = 0.5
    srv.pod_schedule_delay = srv.pod_start_delay = 0.3
    srv.pod_ready_delay = 0.5
    default_class(srv)
    pg = add_postgres_backend(srv)
    srv.start()
    try:
        kc = srv.write_kubeconfig(tmp_path / "kubeconfig")
        _helm_install(tool_env, kc, tmp_path, "runai-backend", CP_NS, "control-plane", CP_VALUES)
        _helm_install(tool_env, kc, tmp_path, "runai-cluster", CL_NS, "runai-cluster", CL_VALUES)
        srv.wait_pod_ready(CP_NS, DB_POD, timeout=60)
        _load_data(_database(pg))
        _seed_objects(srv)
        tool(tool_env, kc, "kubectl", "patch", "runaiconfig", "runai", "-n", CL_NS, "--type", "merge",
             "-p", json.dumps({"spec": {"project-controller": {"createNamespaces": False,
                                                               "createRoleBindings": True}}}))
        yield srv, kc, pg
    finally:
        srv.stop()


def _restore(bundle: Path, kc: Path, env: dict[str, str], tmp: Path, *extra: str) -> Any:
    return cli("restore", str(bundle), "--yes", "--run-helm",
               "--control-plane-chart", str(CHARTS / "control-plane"),
               "--cluster-chart", str(CHARTS / "runai-cluster"),
               "--values-dir", str(tmp / "values"), "--kubeconfig", str(kc), *extra, env=env)


def _writes(srv: ApiServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in srv.requests
            if r.method in WRITES and "selfsubjectaccessreviews" not in r.path]


def test_rebuild_from_nothing(installation: Any, tmp_path: Path, tool_env: dict[str, str]) -> None:
    srv, kc, pg = installation
    before = _state(srv, tool_env, kc, pg)
    assert before["runaiconfig"]["project-controller"]["createNamespaces"] is False
    assert len(before["objects"]) == len(PROJECTS) * 3 + 2
    assert before["database"]["backend"]["largeObjects"].startswith("2:")

    bundle = tmp_path / "b.tar.gz"
    r = cli("backup", "--to", str(bundle), "--no-record", "--kubeconfig", str(kc), env=tool_env)
    assert r.code == 0, r.stderr + r.stdout

    _wipe(srv, tool_env, kc, pg)
    assert pg.server_for(CP_NS, DB_POD) is None or not pg.server_for(CP_NS, DB_POD).running

    # the rehearsal: a dry run into the empty cluster models what earlier steps create
    srv.clear_requests()
    dry = _restore(bundle, kc, tool_env, tmp_path, "--dry-run", "-o", "json")
    assert dry.code == 0, dry.stderr + dry.stdout
    report = json.loads(dry.stdout)
    steps = {s["name"]: s for s in report["steps"]}
    assert report["failed"] is False and report["preflight"]["sameCluster"] is False
    assert "Run:ai objects: none (an empty cluster)" in report["preflight"]["detected"]
    assert steps["control-plane"]["counts"] == {"create": 1}
    assert steps["cluster"]["counts"] == {"create": 1}
    for name in ("database", "runaiconfig", "templates"):
        assert steps[name]["after"] in ("control-plane", "cluster"), steps[name]
    assert steps["templates"]["counts"] == {"create": 2}
    assert steps["namespaces"]["counts"] == {"create": len(PROJECTS) * 3}
    assert _writes(srv) == []
    assert not (tmp_path / "values").exists()

    # the real run: helm installs, the restore waits for the database and the CRDs
    r = _restore(bundle, kc, tool_env, tmp_path, "-o", "json")
    assert r.code == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    steps = {s["name"]: s for s in report["steps"]}
    assert [n for n, s in steps.items() if s["ran"]] == [
        "preflight", "control-plane", "database", "cluster", "runaiconfig", "templates",
        "namespaces"]
    assert steps["control-plane"]["counts"] == {"created": 1}
    assert steps["database"]["waitedSeconds"] > 0.5  # Pending -> Running -> Ready -> pg_isready
    # the re-installed PostgreSQL starts with an empty `backend` (POSTGRES_DATABASE): replaced
    assert {o["name"]: o["outcome"] for o in steps["database"]["objects"]} == {
        "backend": "updated", "keycloak": "created"}
    assert steps["runaiconfig"]["counts"] == {"updated": 1}  # merged into the chart's object
    assert report["recoveryTimeSeconds"] >= sum(s.get("durationSeconds", 0)
                                                for s in report["steps"]) - 0.5
    after = _state(srv, tool_env, kc, pg)
    assert after["helm"] == before["helm"]
    assert after["database"] == before["database"]
    assert after["runaiconfig"] == before["runaiconfig"]
    assert after["objects"] == before["objects"]

    # again: nothing to do for the cluster's objects, the data stays the same
    srv.clear_requests()
    again = _restore(bundle, kc, tool_env, tmp_path, "-o", "json")
    assert again.code == 0, again.stderr + again.stdout
    steps = {s["name"]: s for s in json.loads(again.stdout)["steps"]}
    for name in ("control-plane", "cluster", "runaiconfig", "templates", "namespaces"):
        assert set(steps[name]["counts"]) == {"unchanged"}, steps[name]
    assert [w for w in _writes(srv) if "/pods/" not in w] == []  # exec only (the database)
    assert _state(srv, tool_env, kc, pg) == before

    # the table ends with the measured recovery time
    table = _restore(bundle, kc, tool_env, tmp_path, "--only", "templates")
    assert table.code == 0, table.stderr
    assert "recovery time" in table.stdout


def test_database_that_never_becomes_ready(installation: Any, tmp_path: Path,
                                           tool_env: dict[str, str]) -> None:
    """No storage for the re-installed database: its pod stays Pending. The wait gives up
    after --wait-timeout, says what it waited for and why the pod is Pending, and how to
    resume; the restore exits 3."""
    srv, kc, pg = installation
    bundle = tmp_path / "b.tar.gz"
    assert cli("backup", "--to", str(bundle), "--no-record", "--kubeconfig", str(kc),
               env=tool_env).code == 0
    _wipe(srv, tool_env, kc, pg)
    srv.delete_object("storage.k8s.io/v1", "StorageClass", "standard")
    t0 = time.monotonic()
    r = _restore(bundle, kc, tool_env, tmp_path, "--wait-timeout", "4s")
    assert r.code == 3, r.stdout + r.stderr
    text = " ".join((r.stdout + r.stderr).split())
    assert "gave up after" in text and "waiting for the control plane's database" in text
    assert f'pod "{DB_POD}"' in text and "Pending" in text and "PodScheduled=False" in text
    assert "--only database,cluster,runaiconfig,templates,namespaces" in text
    assert time.monotonic() - t0 < 120


def test_cluster_chart_without_crds(installation: Any, tmp_path: Path,
                                    tool_env: dict[str, str]) -> None:
    """A cluster chart that brings no RunaiConfig CRD: a clear message naming the cause
    (not just "gave up"), and how to resume."""
    srv, kc, pg = installation
    bundle = tmp_path / "b.tar.gz"
    assert cli("backup", "--to", str(bundle), "--no-record", "--kubeconfig", str(kc),
               env=tool_env).code == 0
    _wipe(srv, tool_env, kc, pg)
    chart = tmp_path / "runai-cluster"
    subprocess.run(["cp", "-r", str(CHARTS / "runai-cluster"), str(chart)], check=True)
    subprocess.run(["rm", "-rf", str(chart / "crds"), str(chart / "templates" / "runaiconfig.yaml")],
                   check=True)
    r = cli("restore", str(bundle), "--yes", "--run-helm", "--skip", "control-plane,database",
            "--cluster-chart", str(chart), "--values-dir", str(tmp_path / "values"),
            "--kubeconfig", str(kc), "--wait-timeout", "3s", env=tool_env)
    assert r.code == 3, r.stdout + r.stderr
    text = " ".join((r.stdout + r.stderr).split())
    assert "the cluster chart installed no RunaiConfig CRD (runaiconfigs.run.ai)" in text
    assert "kubectl apply" in text and "gave up after" not in text
