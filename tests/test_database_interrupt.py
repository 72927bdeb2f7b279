"""The database step behind a table lock, interrupted, timed out or killed: it ends within
seconds, and what it started (pg_dump and psql in the pod, their database sessions) ends
with it. Real PostgreSQL; the loopback server's exec, like a kubelet, does not kill a
command whose client went away."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubeapi import ApiServer
from kubeapi.pgserver import PgServer

from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.client import ConnectOptions, connect
from kubectl_runai_dr.model import Status
from kubectl_runai_dr.ops.backup import BackupOptions, BackupOutcome, run_backup
from kubectl_runai_dr.plan.database import DbOptions
from tests import test_database as base
from tests.e2e import ROOT
from tests.test_database import set_exec

pg = base.pg  # the fixtures: a real PostgreSQL behind the loopback server's database pod
env = base.env

LOCKED = "workloads.history"


class Locker:
    """Another session asking for ACCESS EXCLUSIVE on a table and keeping it (an open psql
    transaction); ``wait=False`` does not wait until it is granted."""

    def __init__(self, pg: PgServer, table: str = LOCKED, db: str = "backend", *,
                 wait: bool = True) -> None:
        self.proc = subprocess.Popen(
            [str(pg.bindir / "psql"), "-X", "-q", "-A", "-t", "-h", pg.host, "-p", str(pg.port),
             "-U", pg.user, "-d", db, "-v", "ON_ERROR_STOP=1"],
            env={**pg.env(), "PGAPPNAME": "test-locker"},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"BEGIN; LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE; "
                              "SELECT 'locked';\n")
        self.proc.stdin.flush()
        if wait:
            assert self.granted(30)

    def granted(self, limit: float) -> bool:
        """Whether the lock is held (waiting for it at most ``limit`` seconds)."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], limit)
        return bool(ready) and self.proc.stdout.readline().strip() == "locked"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("COMMIT;\n\\q\n")
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def locker(pg: PgServer) -> Iterator[Callable[..., Locker]]:
    made: list[Locker] = []

    def make(*args: str, wait: bool = True) -> Locker:
        made.append(Locker(pg, *args, wait=wait))
        return made[-1]

    yield make
    for lk in made:
        lk.release()


def tool_sessions(pg: PgServer) -> list[str]:
    """The database sessions still there but the test's own: the tool's (named after their
    command's tag), with what they wait for."""
    out = pg.psql("SELECT application_name || ' ' || coalesce(wait_event_type, '-') "
                  "FROM pg_stat_activity WHERE backend_type = 'client backend' "
                  "AND pid <> pg_backend_pid() AND application_name <> 'test-locker'")
    return [ln for ln in out.splitlines() if ln.strip()]


def tool_processes(pg: PgServer) -> list[str]:
    """Processes started for the tool in this test's "pod" (this machine; they have the
    pod's environment, which points at this test's server): the supervised wrappers, their
    helpers, pg_dump and psql."""
    marker = f"PGPORT={pg.port}".encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            environ = (d / "environ").read_bytes().split(b"\0")
            if marker not in environ or b"PGAPPNAME=test-locker" in environ:
                continue
            args = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        found.append(b" ".join(args).decode(errors="replace")[:200])
    return found


def wait_for(what: Callable[[], object], limit: float, step: float = 0.1) -> float:
    started = time.monotonic()
    while not what():
        assert time.monotonic() - started < limit, f"not after {limit}s"
        time.sleep(step)
    return time.monotonic() - started


def nothing_left(pg: PgServer, limit: float = 10) -> float:
    try:
        return wait_for(lambda: not tool_sessions(pg) and not tool_processes(pg), limit)
    except AssertionError:
        raise AssertionError(f"left after {limit}s: sessions {tool_sessions(pg)}, "
                             f"processes {tool_processes(pg)}") from None


def start_cli(kc: Path, cwd: Path, *extra: str, **environ: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "PYTHONPATH": str(ROOT), **environ}
    return subprocess.Popen([sys.executable, "-m", "kubectl_runai_dr", "backup", "database",
                             "--kubeconfig", str(kc), "--no-record", *extra], cwd=cwd, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def bounded_backup(kube: KubeApi, limit: float, opts: BackupOptions) -> tuple[BackupOutcome, float]:
    """run_backup in a thread: a hang fails the test instead of stopping the suite."""
    import threading

    out: list[BackupOutcome] = []
    started = time.monotonic()
    t = threading.Thread(target=lambda: out.append(run_backup(kube, opts)), daemon=True)
    t.start()
    t.join(limit)
    assert out, f"backup still running after {limit}s"
    return out[0], time.monotonic() - started


def locker_waits(pg: PgServer) -> bool:
    """The test's other session waits for its lock."""
    return pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                   "'test-locker' AND wait_event_type = 'Lock'").strip() == "1"


def blocked(pg: PgServer) -> bool:
    """A session of the tool waits for a lock."""
    return any(s.endswith(" Lock") for s in tool_sessions(pg))


# -- behind a lock ---------------------------------------------------------------------------
def test_lock_wait_timeout_ends_a_blocked_backup(env: tuple[ApiServer, Path],
                                                 pg: PgServer, tmp_path: Path,
                                                 locker: Callable[..., Locker]) -> None:
    _srv, kc = env
    locker()
    kube = connect(ConnectOptions(kubeconfig=str(kc)))
    out, took = bounded_backup(kube, 30, BackupOptions(
        output=tmp_path / "b.tar.gz", only=("database",), record=False,
        db=DbOptions(lock_wait_timeout=1.5)))
    assert took < 15
    db = next(r for r in out.results if r.name == "database")
    assert db.status is Status.FAILED and "lock timeout" in db.reason, db.reason
    nothing_left(pg)


def test_request_timeout_bounds_every_exec_read(env: tuple[ApiServer, Path],
                                                pg: PgServer, tmp_path: Path,
                                                locker: Callable[..., Locker]) -> None:
    """The reported hang: --request-timeout 10s, and no progress for 90 s behind a lock."""
    _srv, kc = env
    locker()
    kube = connect(ConnectOptions(kubeconfig=str(kc), request_timeout=2))
    out, took = bounded_backup(kube, 30, BackupOptions(
        output=tmp_path / "b.tar.gz", only=("database",), record=False))
    assert took < 15
    db = next(r for r in out.results if r.name == "database")
    assert db.status is Status.FAILED
    assert "no answer for 2s (--request-timeout)" in db.reason, db.reason
    nothing_left(pg)  # the query that waited was ended in the database too


@pytest.mark.parametrize(("sig", "mode"), [(signal.SIGINT, "pod"), (signal.SIGTERM, "pod"),
                                           (signal.SIGINT, "local")])
def test_one_interrupt_ends_a_blocked_backup_and_what_it_started(
        env: tuple[ApiServer, Path], pg: PgServer, tmp_path: Path,
        locker: Callable[..., Locker], sig: signal.Signals, mode: str) -> None:
    """Ctrl-C (or SIGTERM) while the row counts wait behind a lock: one signal ends the run
    within seconds, exit 130, no bundle, and no session or process of the tool is left."""
    _srv, kc = env
    lock = locker()
    if mode == "local":
        cli = start_cli(kc, tmp_path, "--db-mode", "local", "--db-host", pg.host, "--db-port",
                        str(pg.port), "--db-user", pg.user,
                        PATH=f"{pg.bindir}:{os.environ['PATH']}", PGPASSWORD=base.PASSWORD)
    else:
        cli = start_cli(kc, tmp_path)
    try:
        wait_for(lambda: blocked(pg), 30)
        started = time.monotonic()
        cli.send_signal(sig)
        _out, err = cli.communicate(timeout=20)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert time.monotonic() - started < 8
    assert cli.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.tar.gz*"))
    nothing_left(pg, 5)
    lock.release()  # the other session was left alone, and the table is free again
    pg.psql(f"BEGIN; SET LOCAL lock_timeout = '2s'; LOCK TABLE {LOCKED} IN ACCESS EXCLUSIVE "
            "MODE; COMMIT", db="backend")


# -- a client that goes away ------------------------------------------------------------------
def _gated_pg_dump(tmp_path: Path, pg: PgServer) -> tuple[Path, Path]:
    """A pg_dump that waits for a file to exist, then is the real pg_dump."""
    bindir, gate = tmp_path / "fakebin", tmp_path / "go"
    bindir.mkdir()
    fake = bindir / "pg_dump"
    fake.write_text(f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n"
                    f'exec {pg.bindir}/pg_dump "$@"\n')
    fake.chmod(0o755)
    return bindir, gate


def test_a_killed_backup_leaves_no_pg_dump_holding_locks(
        env: tuple[ApiServer, Path], pg: PgServer, tmp_path: Path,
        locker: Callable[..., Locker]) -> None:
    """SIGKILL: the tool cannot clean up. Its pg_dump waits for a lock (behind another
    session's ACCESS EXCLUSIVE request, itself behind the tool's snapshot session) when its
    client dies; the pod ends pg_dump anyway (its exec stream's stdin ends), and the
    snapshot session with it, so the other session gets its lock."""
    srv, kc = env
    bindir, gate = _gated_pg_dump(tmp_path, pg)
    set_exec(srv, pg, bindir)
    cli = start_cli(kc, tmp_path)
    try:
        wait_for(lambda: any("pg_dump" in r.query.get("command", [])
                             for r in list(srv.requests) if r.path.endswith("/exec")), 30)
        lock = locker(wait=False)  # queued behind the row counts' locks
        # pg_dump may start only once that request waits: before, it would get its own
        # ACCESS SHARE locks first, dump, and never wait (a race a busy machine lost)
        wait_for(lambda: locker_waits(pg), 30)
        gate.touch()  # pg_dump starts, and queues behind the ACCESS EXCLUSIVE request
        wait_for(lambda: blocked(pg), 30)
        cli.kill()
        cli.wait(timeout=10)
        started = time.monotonic()
        assert lock.granted(15)
        took = nothing_left(pg, 10)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert time.monotonic() - started < 10 and took < 10


# -- on this machine (--db-mode local) ------------------------------------------------------
def test_local_mode_has_the_same_bounds(env: tuple[ApiServer, Path], pg: PgServer,
                                        tmp_path: Path, locker: Callable[..., Locker],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The PostgreSQL client of this machine: a backup works, and behind a lock it gives up
    after --db-lock-wait-timeout and leaves no session waiting."""
    _srv, kc = env
    monkeypatch.setenv("PATH", f"{pg.bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("PGPASSWORD", base.PASSWORD)
    kube = connect(ConnectOptions(kubeconfig=str(kc)))
    local = DbOptions(mode="local", host=pg.host, port=pg.port, user=pg.user,
                      lock_wait_timeout=1.5)
    out, _took = bounded_backup(kube, 60, BackupOptions(
        output=tmp_path / "a.tar.gz", only=("database",), record=False, db=local))
    db = next(r for r in out.results if r.name == "database")
    assert db.status is Status.OK, db.reason
    locker()
    out, took = bounded_backup(kube, 30, BackupOptions(
        output=tmp_path / "b.tar.gz", only=("database",), record=False, db=local))
    assert took < 15
    db = next(r for r in out.results if r.name == "database")
    assert db.status is Status.FAILED and "lock timeout" in db.reason, db.reason
    nothing_left(pg)


def test_sigterm_during_a_drill_drops_its_scratch_database(
        env: tuple[ApiServer, Path], pg: PgServer, tmp_path: Path) -> None:
    """verify --drill stopped by SIGTERM while pg_restore runs: exit 130, the scratch
    database is dropped, and nothing of the drill is left in the pod or the database."""
    srv, kc = env
    bundle = tmp_path / "b.tar.gz"
    assert base.backup(kc, bundle)[0] == 0
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    fake = bindir / "pg_restore"  # a pg_restore that never gets going
    fake.write_text(f"#!/bin/sh\nwhile [ ! -e {tmp_path}/go ]; do sleep 0.05; done\n"
                    f'exec {pg.bindir}/pg_restore "$@"\n')
    fake.chmod(0o755)
    set_exec(srv, pg, bindir)
    env_ = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    cli = subprocess.Popen([sys.executable, "-m", "kubectl_runai_dr", "verify", str(bundle),
                            "--drill", "--kubeconfig", str(kc)], cwd=tmp_path, env=env_,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any("pg_restore" in r.query.get("command", [])
                             for r in list(srv.requests) if r.path.endswith("/exec")), 30)
        assert pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE "
                       "'runai_dr_drill%'").strip() == "1"
        started = time.monotonic()
        cli.send_signal(signal.SIGTERM)
        _out, err = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert time.monotonic() - started < 10
    assert cli.returncode == 130, err
    assert pg.psql("SELECT count(*) FROM pg_database WHERE datname LIKE "
                   "'runai_dr_drill%'").strip() == "0"
    nothing_left(pg, 5)
