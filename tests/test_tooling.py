"""The test tooling itself: the throwaway PostgreSQL server and the pinned helm/kubectl."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from kubeapi.pgserver import PgServer

ROOT = Path(__file__).resolve().parent.parent
TOOLS_BIN = ROOT / ".tools" / "bin"


def test_pg_server_accepts_queries(pg_server: PgServer) -> None:
    assert pg_server.running
    assert pg_server.psql("select 40 + 2").strip() == "42"
    assert pg_server.psql("show server_version_num").strip().startswith("15")
    assert pg_server.psql("show fsync").strip() == "off"
    assert pg_server.dsn.startswith(f"postgresql://postgres:{pg_server.password}@127.0.0.1:")
    assert str(pg_server.port) in pg_server.dsn


def test_pg_database_is_fresh_and_dropped(pg_server: PgServer, pg_database: str) -> None:
    pg_server.psql("create table t (x int); insert into t values (1), (2)", db=pg_database)
    assert pg_server.psql("select count(*) from t", db=pg_database).strip() == "2"
    names = pg_server.psql("select datname from pg_database").split()
    assert pg_database in names


def test_pg_server_starts_and_stops_with_password_auth() -> None:
    server = PgServer(host_auth="scram-sha-256").start()
    try:
        datadir = server.datadir
        assert server.psql("select current_user").strip() == "postgres"
        env = server.env()
        env.pop("PGPASSWORD")
        r = subprocess.run(
            [str(server.bindir / "psql"), "-w", "-X", "-c", "select 1"],
            env=env, capture_output=True, text=True, check=False,
        )
        assert r.returncode != 0
        assert "password" in r.stderr
    finally:
        server.stop()
    assert not server.running
    assert not datadir.exists()


def test_pg_client_programs_present(pg_server: PgServer) -> None:
    for prog in ("pg_dump", "pg_restore", "psql"):
        assert (pg_server.bindir / prog).is_file(), prog


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("kubectl", ["version", "--client"], "v1.32.3"),
        ("helm", ["version", "--short"], "v3.17.2"),
        ("helm4", ["version", "--short"], "v4.1.4"),
    ],
)
def test_pinned_binaries(name: str, args: list[str], expected: str) -> None:
    path = TOOLS_BIN / name
    assert path.is_file(), f"{path} missing: run scripts/bootstrap.sh"
    out = subprocess.run([str(path), *args], capture_output=True, text=True, check=True)
    assert expected in out.stdout


def test_tools_bin_first_on_path_under_test_script() -> None:
    """scripts/test.sh puts .tools/bin first on PATH, so `helm`/`kubectl` are the pinned ones."""
    if os.environ.get("RUNAI_DR_TEST_SH") != "1":
        pytest.skip("only meaningful under scripts/test.sh")
    assert shutil.which("kubectl") == str(TOOLS_BIN / "kubectl")
    assert shutil.which("helm") == str(TOOLS_BIN / "helm")
