"""The restore plan's database step: `kubectl runai-dr restore database BUNDLE` delegates to
the database restore (real PostgreSQL reached through the loopback server's pod exec)."""

from __future__ import annotations

import json
from pathlib import Path

from kubeapi import ApiServer
from kubeapi.pgserver import PgServer

from tests.e2e import cli
from tests.test_database import backup, counts, env, pg  # noqa: F401 - fixtures

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def test_restore_database_through_the_plan(env: tuple[ApiServer, Path],  # noqa: F811
                                           pg: PgServer, tmp_path: Path) -> None:  # noqa: F811
    srv, kc = env
    bundle = tmp_path / "b.tar.gz"
    assert backup(kc, bundle)[0] == 0
    before = {db: counts(pg, db) for db in ("backend", "keycloak")}
    pg.psql("DELETE FROM workloads.history WHERE id > 100", db="backend")

    srv.clear_requests()
    dry = cli("restore", "database", str(bundle), "--dry-run", "--kubeconfig", str(kc),
              "-o", "json")
    assert dry.code == 0, dry.stderr
    step = next(s for s in json.loads(dry.stdout)["steps"] if s["name"] == "database")
    assert step["counts"] == {"update": 1}
    assert not [r for r in srv.requests if r.method in WRITES
                and "selfsubjectaccessreviews" not in r.path]
    assert counts(pg, "backend")["workloads.history"] == 100

    r = cli("restore", "database", str(bundle), "--yes", "--kubeconfig", str(kc), "-o", "json")
    assert r.code == 0, r.stderr
    steps = {s["name"]: s for s in json.loads(r.stdout)["steps"]}
    assert [n for n, s in steps.items() if s["ran"]] == ["preflight", "database"]
    assert {o["name"]: o["outcome"] for o in steps["database"]["objects"]} == {
        "backend": "updated", "keycloak": "updated"}
    assert {db: counts(pg, db) for db in ("backend", "keycloak")} == before
