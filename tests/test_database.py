"""Database backup, restore and drill: real PostgreSQL 15 reached through the loopback API
server's pod exec, so the real exec client, pg_dump, pg_restore and psql run."""

from __future__ import annotations

import json
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubeapi import ApiServer
from kubeapi.pgserver import PgServer

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.model import Status
from kubectl_runai_dr.ops.backup import BackupOptions, run_backup
from tests.e2e import cli, components, manifest_of, member

PASSWORD = "pg-Secr3t-for-tests"  # the seeded Secret's postgres-password (seed_runai default)
NS, POD = "runai-backend", "runai-backend-postgresql-0"
BYTEA = bytes([0xFF, 0xFE, 0x00, 0x80, 0xC3, 0x28])  # not UTF-8, with a NUL


@pytest.fixture(scope="module")
def pg() -> Iterator[PgServer]:
    """A server that requires the password on TCP: the dump only works if the password
    from the container's environment (the pod spec's secretKeyRef) is used."""
    with PgServer(password=PASSWORD, host_auth="scram-sha-256") as server:
        yield server


def load_data(pg: PgServer) -> None:
    for db in ("backend", "keycloak"):
        pg.drop_database(db)
    pg.psql("DROP ROLE IF EXISTS keycloak")
    pg.psql("CREATE ROLE keycloak LOGIN PASSWORD 'kc-pass'")
    pg.create_database("backend")
    pg.create_database("keycloak")
    pg.psql(f"""
        CREATE SCHEMA grafana; CREATE SCHEMA workloads;
        CREATE TABLE grafana.dashboard (id int PRIMARY KEY, data bytea);
        INSERT INTO grafana.dashboard VALUES (1, '\\x{BYTEA.hex()}'), (2, NULL);
        CREATE TABLE public.projects (id serial PRIMARY KEY, name text);
        INSERT INTO public.projects (name) SELECT 'p' || g FROM generate_series(1, 500) g;
        CREATE TABLE workloads.history (id bigint, at timestamptz DEFAULT now());
        INSERT INTO workloads.history SELECT g FROM generate_series(1, 1234) g;
        SELECT lo_from_bytea(0, '\\x{BYTEA.hex()}'); SELECT lo_from_bytea(0, 'second');
        """, db="backend")
    pg.psql("""CREATE TABLE user_entity (id text PRIMARY KEY, email text);
               INSERT INTO user_entity VALUES ('a', 'a@x'), ('b', 'b@x'), ('c', 'c@x');
               ALTER TABLE user_entity OWNER TO keycloak;""", db="keycloak")


@pytest.fixture
def env(runai_server: ApiServer, pg: PgServer, tmp_path: Path) -> tuple[ApiServer, Path]:
    load_data(pg)
    set_exec(runai_server, pg)
    return runai_server, runai_server.write_kubeconfig(tmp_path / "kubeconfig")


def set_exec(srv: ApiServer, pg: PgServer, fake_bin: Path | None = None) -> None:
    path = f"{pg.bindir}:/usr/bin:/bin"
    if fake_bin is not None:
        path = f"{fake_bin}:{path}"
    srv.set_pod_exec(NS, POD, env={"PGHOST": pg.host, "PGPORT": str(pg.port), "PATH": path})


def counts(pg: PgServer, db: str) -> dict[str, int]:
    out = pg.psql("SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n "
                  "ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN "
                  "('pg_catalog', 'information_schema') ORDER BY 1", db=db)
    return {t: int(pg.psql(f"SELECT count(*) FROM {t}", db=db)) for t in out.split()}


def backup(kc: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    r = cli("backup", "database", "--kubeconfig", str(kc), "--to", str(out), "--no-record",
            *extra)
    return r.code, r.stdout, r.stderr


# -- backup ----------------------------------------------------------------------------------
def test_backup_dumps_every_runai_database_with_exact_counts(
        env: tuple[ApiServer, Path], pg: PgServer, tmp_path: Path) -> None:
    _srv, kc = env
    bundle = tmp_path / "b.tar.gz"
    code, _out, err = backup(kc, bundle)
    assert code == 0, err
    m = manifest_of(bundle)
    db = components(m)["database"]
    assert db["status"] == "ok"
    assert set(db["files"]) == {layout.DATABASE_METADATA, layout.DATABASE_GLOBALS,
                                "database/backend.dump", "database/keycloak.dump"}
    meta = json.loads(member(bundle, layout.DATABASE_METADATA))
    assert meta["server"]["versionNum"] // 10000 == 15
    by_name = {d["name"]: d for d in meta["databases"]}
    assert sorted(by_name) == ["backend", "keycloak"]
    for name, d in by_name.items():
        recorded = {f"{t['schema']}.{t['table']}": t["rows"] for t in d["tables"]}
        assert recorded == counts(pg, name)
        assert d["snapshot"] and d["sha256"] == m["files"][d["file"]]["sha256"]
        assert d["size"] == m["files"][d["file"]]["size"] > 0
        assert member(bundle, d["file"]).startswith(b"PGDMP")
    assert by_name["backend"]["largeObjects"] == 2
    assert {"grafana.dashboard", "workloads.history"} <= {
        f"{t['schema']}.{t['table']}" for t in by_name["backend"]["tables"]}
    assert b"CREATE ROLE keycloak" in member(bundle, layout.DATABASE_GLOBALS)
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600


def test_password_is_never_on_a_command_line_or_in_output(
        env: tuple[ApiServer, Path], tmp_path: Path) -> None:
    srv, kc = env
    srv.clear_requests()
    bundle = tmp_path / "b.tar.gz"
    code, out, err = backup(kc, bundle, "-v")
    assert code == 0, err
    execs = [r for r in srv.requests if r.path.endswith("/exec")]
    assert len(execs) >= 4  # psql sessions, pg_dumpall, one pg_dump per database
    for r in execs:
        assert PASSWORD not in json.dumps(r.query) and PASSWORD not in r.path
        assert r.query.get("command", [""])[0] == "sh"
    assert any("pg_dump" in r.query["command"] for r in execs)
    assert PASSWORD not in out + err
    assert PASSWORD.encode() not in member(bundle, layout.DATABASE_METADATA)


def test_no_database_flag_and_absent_database(env: tuple[ApiServer, Path],
                                              tmp_path: Path) -> None:
    srv, kc = env
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(tmp_path / "a.tar.gz"),
            "--no-database", "--no-record")
    assert r.code == 0, r.stderr
    skipped = components(manifest_of(tmp_path / "a.tar.gz")).get("database")
    assert skipped is None or (skipped["status"] == "skipped" and not skipped["files"])
    srv.delete_object("apps/v1", "StatefulSet", "runai-backend-postgresql", NS)
    code, _o, err = backup(kc, tmp_path / "b.tar.gz")
    assert code == 0, err
    assert components(manifest_of(tmp_path / "b.tar.gz"))["database"]["status"] == "not present"


def _fake(tmp_path: Path, script: str) -> Path:
    d = tmp_path / "fakebin"
    d.mkdir(exist_ok=True)
    f = d / "pg_dump"
    f.write_text("#!/bin/sh\n" + script)
    f.chmod(0o755)
    return d


def _assert_failed(bundle: Path, *needles: str) -> None:
    m = manifest_of(bundle)
    db = components(m)["database"]
    assert db["status"] == "failed" and m["status"] == "partial"
    for n in needles:
        assert n in db["reason"], db["reason"]
    assert not [f for f in m["files"] if f.startswith("database/")]


def test_pg_dump_failure_keeps_no_dump(env: tuple[ApiServer, Path], pg: PgServer,
                                      tmp_path: Path) -> None:
    srv, kc = env
    fake = _fake(tmp_path, 'printf "PGDMP partial"\necho "pg_dump: error: query failed: '
                           'disk full on the server" >&2\nexit 1\n')
    set_exec(srv, pg, fake)
    bundle = tmp_path / "b.tar.gz"
    code, _o, err = backup(kc, bundle)
    assert code == 3, err
    _assert_failed(bundle, "pg_dump", "exited with code 1", "disk full on the server")


def test_pg_dump_killed_mid_dump(env: tuple[ApiServer, Path], pg: PgServer,
                                 tmp_path: Path) -> None:
    srv, kc = env
    fake = _fake(tmp_path, 'printf "PGDMP some bytes"\necho "pg_dump: dumping contents" >&2\n'
                           "kill -9 $$\n")
    set_exec(srv, pg, fake)
    bundle = tmp_path / "b.tar.gz"
    code, _o, err = backup(kc, bundle)
    assert code == 3, err
    _assert_failed(bundle, "pg_dump", "dumping contents")


# stopping the server leaves the emulated container's process to asyncio's finalizers
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_connection_broken_mid_dump(env: tuple[ApiServer, Path], pg: PgServer,
                                    tmp_path: Path) -> None:
    """The API server goes away while pg_dump streams: no exit status, nothing kept."""
    srv, kc = env
    fake = _fake(tmp_path, 'printf "PGDMP some bytes"\nsleep 20\n')
    set_exec(srv, pg, fake)
    from kubectl_runai_dr.kube.client import ConnectOptions, connect

    kube = connect(ConnectOptions(kubeconfig=str(kc)))

    def breaker() -> None:
        deadline = time.time() + 15
        while time.time() < deadline:
            if any(r.path.endswith("/exec") and "pg_dump" in r.query.get("command", [])
                   for r in list(srv.requests)):
                time.sleep(0.5)
                srv.stop()
                return
            time.sleep(0.05)

    t = threading.Thread(target=breaker)
    t.start()
    started = time.time()
    outcome = run_backup(kube, BackupOptions(output=tmp_path / "b.tar.gz", only=("database",),
                                             record=False))
    t.join()
    assert time.time() - started < 15
    db = next(r for r in outcome.results if r.name == "database")
    assert db.status is Status.FAILED
    assert "did not finish" in db.reason and "pg_dump" in db.reason
    assert isinstance(outcome.path, Path)
    assert not [f for f in manifest_of(outcome.path)["files"] if f.startswith("database/")]


def test_pod_not_ready_or_missing_is_a_clear_error(env: tuple[ApiServer, Path],
                                                   tmp_path: Path) -> None:
    srv, kc = env
    code, _o, _err = backup(kc, tmp_path / "a.tar.gz", "--db-pod", "nope")
    assert code == 3
    _assert_failed(tmp_path / "a.tar.gz", 'database pod "nope" not found')
    pod = srv.get("v1", "Pod", POD, NS)
    assert pod is not None
    pod["status"]["conditions"] = [{"type": "Ready", "status": "False",
                                    "reason": "ContainersNotReady"}]
    srv.seed(pod)
    started = time.time()
    code, _o, _err = backup(kc, tmp_path / "b.tar.gz")
    assert code == 3 and time.time() - started < 10
    _assert_failed(tmp_path / "b.tar.gz", POD, "not Ready", "ContainersNotReady")


# -- restore and drill -----------------------------------------------------------------------
def test_restore_round_trip_with_confirmation(env: tuple[ApiServer, Path], pg: PgServer,
                                              tmp_path: Path) -> None:
    _srv, kc = env
    bundle = tmp_path / "b.tar.gz"
    assert backup(kc, bundle)[0] == 0
    before = {db: counts(pg, db) for db in ("backend", "keycloak")}
    pg.psql("DELETE FROM workloads.history WHERE id > 100; UPDATE grafana.dashboard "
            "SET data = 'x'; SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata",
            db="backend")
    pg.drop_database("keycloak")

    r = cli("restore-database", str(bundle), "--kubeconfig", str(kc))
    assert r.code == 2, r.stderr  # a restore asks first, and this input is no terminal
    assert "needs a confirmation" in r.stderr and "--yes" in r.stderr
    assert counts(pg, "backend")["workloads.history"] == 100  # nothing changed

    r = cli("restore", "--only", "database", str(bundle), "--kubeconfig", str(kc), "--yes",
            "-o", "json")
    assert r.code == 0, r.stderr
    assert _database_step(r.stdout) == {"backend": "updated", "keycloak": "created"}
    assert {db: counts(pg, db) for db in ("backend", "keycloak")} == before
    assert pg.psql("SELECT encode(data, 'hex') FROM grafana.dashboard WHERE id = 1",
                   db="backend").strip() == BYTEA.hex()
    assert pg.psql("SELECT string_agg(encode(lo_get(oid), 'hex'), ',' ORDER BY oid) "
                   "FROM pg_largeobject_metadata", db="backend").strip() == (
        BYTEA.hex() + "," + b"second".hex())
    assert pg.psql("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = "
                   "'keycloak'").strip() == "postgres"
    assert pg.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'user_entity'",
                   db="keycloak").strip() == "keycloak"


def test_restore_into_a_fresh_server_recreates_roles(env: tuple[ApiServer, Path],
                                                     pg: PgServer, tmp_path: Path) -> None:
    srv, kc = env
    bundle = tmp_path / "b.tar.gz"
    assert backup(kc, bundle)[0] == 0
    before = counts(pg, "keycloak")
    with PgServer(password=PASSWORD, host_auth="scram-sha-256") as fresh:
        set_exec(srv, fresh)
        srv.clear_requests()
        r = cli("restore-database", str(bundle), "--kubeconfig", str(kc), "--yes", "-v")
        assert r.code == 0, r.stderr + r.stdout
        assert "rows verified" in r.stdout  # -v lists the created databases too
        assert counts(fresh, "keycloak") == before
        assert fresh.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'keycloak'"
                          ).strip() == "1"
    # over v5 the close frame ends stdin: pg_restore reads the stream itself, with no
    # `head -c` (one more process and pipe in the pod) in front of it
    restores = [q for q in srv.requests if q.path.endswith("/exec")
                and "pg_restore" in q.query.get("command", [])]
    assert restores and all(q.status == 101 for q in restores)
    assert all("head" not in " ".join(q.query["command"][:3]) for q in restores)


def test_verify_drill_restores_into_a_scratch_database_and_drops_it(
        env: tuple[ApiServer, Path], pg: PgServer, tmp_path: Path) -> None:
    srv, kc = env
    bundle = tmp_path / "b.tar.gz"
    assert backup(kc, bundle)[0] == 0
    r = cli("verify", str(bundle), "--drill", "--kubeconfig", str(kc), "--target", f"{NS}/{POD}")
    assert r.code == 0, r.stderr + r.stdout
    assert "drill" in r.stdout and "backend" in r.stdout and "keycloak" in r.stdout
    drills = [r.query["command"] for r in srv.requests if r.path.endswith("/exec")
              and "pg_restore" in r.query.get("command", [])]
    assert len(drills) == 2 and all("--no-owner" in c for c in drills)
    assert pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'runai_dr_drill%'"
                   ).strip() == "0"


def _database_step(stdout: str) -> dict[str, str]:
    """What restore's JSON report says it did per database."""
    steps = {s["name"]: s for s in json.loads(stdout)["steps"]}
    return {o["name"]: o["outcome"] for o in steps["database"]["objects"]}


def _tamper(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backup recorded one row more than its dump holds."""
    from kubectl_runai_dr.components import database as rd

    real = rd.read_metadata

    def tampered(b: Bundle) -> dict[str, Any]:
        meta = real(b)
        for d in meta["databases"]:
            for t in d["tables"]:
                if t["table"] == "projects":
                    t["rows"] += 1
        return meta

    monkeypatch.setattr(rd, "read_metadata", tampered)


def test_drill_reports_a_difference(env: tuple[ApiServer, Path], pg: PgServer,
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dump that does not hold what the backup recorded fails the drill, per table:
    partial (3), as the same difference after a restore."""
    _srv, kc = env
    bundle = tmp_path / "b.tar.gz"
    assert backup(kc, bundle)[0] == 0
    _tamper(monkeypatch)
    r = cli("verify", str(bundle), "--drill", "--kubeconfig", str(kc))
    assert r.code == 3, r.stdout + r.stderr
    assert "public.projects: 500 rows, backup had 501" in r.stdout
    r = cli("verify", str(bundle), "--drill", "--kubeconfig", str(kc), "-o", "json")
    data = json.loads(r.stdout)  # one document: the checksums and the drill
    assert r.code == 3 and data["valid"] and not data["drill"]["ok"]


def test_restore_database_is_restore_only_database(env: tuple[ApiServer, Path], pg: PgServer,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`restore-database` is `restore --only database`: the same report and exit codes,
    also when the restored data differs from the backup (3, partial)."""
    _srv, kc = env
    bundle = tmp_path / "b.tar.gz"
    assert backup(kc, bundle)[0] == 0
    args = (str(bundle), "--kubeconfig", str(kc), "--yes", "-o", "json")
    alias = cli("restore-database", *args)
    full = cli("restore", "--only", "database", *args)
    assert alias.code == full.code == 0, alias.stderr + full.stderr
    shape = [(s["name"], s["ran"]) for s in json.loads(alias.stdout)["steps"]]
    assert shape == [(s["name"], s["ran"]) for s in json.loads(full.stdout)["steps"]]
    assert _database_step(alias.stdout) == _database_step(full.stdout) == {
        "backend": "updated", "keycloak": "updated"}
    _tamper(monkeypatch)
    for cmd in (("restore-database",), ("restore", "--only", "database"),
                ("restore", "database")):
        r = cli(*cmd, *args[:-2])
        assert r.code == 3, r.stdout + r.stderr
        assert "public.projects: 500 rows, backup had 501" in r.stdout
        assert "restore finished with failures in: database" in r.stderr


@pytest.mark.slow
def test_large_database_streams_in_bounded_memory(env: tuple[ApiServer, Path], pg: PgServer,
                                                  tmp_path: Path) -> None:
    """A database of more than 200 MB: dumped, checked by a drill, restored."""
    _srv, kc = env
    pg.psql("CREATE TABLE big (id bigint, payload bytea); INSERT INTO big SELECT g, "
            "decode(repeat(md5(g::text) || md5((g * 7)::text), 8), 'hex') "
            "FROM generate_series(1, 1000000) g", db="backend")
    size = int(pg.psql("SELECT pg_database_size('backend')"))
    assert size > 200 * 1024 * 1024
    bundle = tmp_path / "big.tar.gz"
    code, _o, err = backup(kc, bundle)
    assert code == 0, err
    meta = json.loads(member(bundle, layout.DATABASE_METADATA))
    backend = next(d for d in meta["databases"] if d["name"] == "backend")
    assert {t["table"]: t["rows"] for t in backend["tables"]}["big"] == 1000000
    r = cli("verify", str(bundle), "--drill", "--kubeconfig", str(kc), "--db-name", "backend")
    assert r.code == 0, r.stderr + r.stdout
    pg.drop_database("backend")



def test_restore_over_exec_v4_reads_exactly_the_dump(env: tuple[ApiServer, Path],
                                                     pg: PgServer, tmp_path: Path) -> None:
    """Clusters before Kubernetes 1.30 serve only exec v4, which cannot end stdin: the
    restore feeds each command exactly its input's size instead."""
    srv, kc = env
    bundle = tmp_path / "b.tar.gz"
    assert backup(kc, bundle)[0] == 0
    before = counts(pg, "keycloak")
    srv.exec_protocols = ("v4.channel.k8s.io",)
    try:
        with PgServer(password=PASSWORD, host_auth="scram-sha-256") as fresh:
            set_exec(srv, fresh)
            srv.clear_requests()
            r = cli("restore-database", str(bundle), "--kubeconfig", str(kc), "--yes")
            assert r.code == 0, r.stderr + r.stdout
            assert counts(fresh, "keycloak") == before
            execs = [q for q in srv.requests if q.path.endswith("/exec")]
            refused = [q for q in execs if q.status == 403]
            restores = [q.query["command"] for q in execs if q.status == 101
                        and "pg_restore" in q.query.get("command", [])]
            # the first command fed a known input (the roles' script) was asked for over v5
            # alone; the server refused the upgrade (a bare 403, as a kubelet's handshake
            # answers); from then on every such command went over v4 behind head -c
            assert len(refused) == 1 and "head" not in " ".join(refused[0].query["command"])
            assert restores and all(c[:3] == ["sh", "-c", 'head -c "$0" | "$@"']
                                    for c in restores)
            set_exec(srv, pg)
    finally:
        srv.exec_protocols = ("v5.channel.k8s.io", "v4.channel.k8s.io")


def test_connection_refused_shows_the_cause_not_the_wrapper(env: tuple[ApiServer, Path],
                                                            pg: PgServer,
                                                            tmp_path: Path) -> None:
    """The database server is down: the reason is psql's own words (line breaks kept) and
    how it ended, never the `sh -c` wrapper script the kubelet's message quotes."""
    srv, kc = env
    srv.set_pod_exec(NS, POD, env={"PGHOST": "127.0.0.1", "PGPORT": "1",
                                   "PATH": f"{pg.bindir}:/usr/bin:/bin"})
    bundle = tmp_path / "b.tar.gz"
    code, out, err = backup(kc, bundle)
    assert code in (1, 3), err
    text = out + err
    assert "Connection refused" in text or "connection refused" in text.lower()
    assert "sh -c" not in text and "error executing command" not in text
    if bundle.exists():
        reason = components(manifest_of(bundle))["database"]["reason"]
        assert "error executing command" not in reason and "IFS=" not in reason
        assert "psql" in reason
