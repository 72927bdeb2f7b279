"""The database step's pure parts: argument lists, pod/container choice, SQL, comparisons."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import pytest

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.kube.exec import exec_query, parse_status
from kubectl_runai_dr.plan import database as p


def _pod(name: str, phase: str = "Running", ready: str = "True", **meta: str) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta},
            "spec": {"containers": [{"name": "metrics"}, {"name": "postgresql"}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}}


def test_pg_dump_argv_custom_format_from_snapshot_without_password() -> None:
    assert p.pg_dump_argv("backend", "00000003-1B-1") == [
        "pg_dump", "-Fc", "-w", "--lock-wait-timeout=120000", "--snapshot=00000003-1B-1",
        "--dbname=backend"]
    assert p.pg_dump_argv("kc", None, lock_wait_timeout=2.5, host="db", port=5433,
                          user="u") == [
        "pg_dump", "-Fc", "-w", "--lock-wait-timeout=2500", "-h", "db", "-p", "5433", "-U",
        "u", "--dbname=kc"]
    assert "--lock-wait-timeout" not in " ".join(p.pg_dump_argv("kc", None, lock_wait_timeout=0))


def test_pg_restore_argv() -> None:
    assert p.pg_restore_argv("backend", clean=True) == [
        "pg_restore", "-w", "--single-transaction", "--exit-on-error", "--clean", "--if-exists",
        "--dbname=backend"]
    assert p.pg_restore_argv("scratch", clean=False, owners=False) == [
        "pg_restore", "-w", "--single-transaction", "--exit-on-error", "--no-owner", "--no-acl",
        "--dbname=scratch"]
    assert p.pg_dumpall_globals_argv() == ["pg_dumpall", "--globals-only", "-w"]
    assert p.psql_script_argv("postgres")[:6] == ["psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=0"]


def test_pod_command_passes_arguments_as_positional_parameters() -> None:
    argv = ["pg_restore", "--dbname=we'ird $(db)"]
    cmd = p.pod_command(argv, drain_stdin=True)
    assert cmd[:2] == ["sh", "-c"] and cmd[3:] == ["runai-dr", *argv]
    assert cmd[2].endswith('"$@"; rc=$?; cat >/dev/null; exit $rc')
    assert "POSTGRES_POSTGRES_PASSWORD" in cmd[2]
    assert p.pod_command(["x"], password_from="stdin")[2].startswith("IFS= read -r PGPASSWORD")
    # the script really runs the arguments untouched and keeps their exit code
    r = subprocess.run([*p.pod_command(["sh", "-c", 'printf %s "$1"; exit 7', "-", "a'b $c"],
                                       password_from="none", drain_stdin=True)],
                       input=b"x" * 100000, capture_output=True, check=False)
    assert (r.returncode, r.stdout) == (7, b"a'b $c")


def test_env_prelude_takes_the_password_from_the_environment() -> None:
    script = p.ENV_PRELUDE + 'printf "%s|%s|%s" "$PGPASSWORD" "$PGUSER" "$PGPORT"'
    env = {"PATH": "/usr/bin:/bin", "POSTGRES_PASSWORD": "app", "POSTGRES_USER": "runai"}
    out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True).stdout
    assert out == "app|runai|5432"
    env["POSTGRES_POSTGRES_PASSWORD"] = "super"
    env["POSTGRESQL_PORT_NUMBER"] = "6543"
    out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True).stdout
    assert out == "super|postgres|6543"


def test_exec_query_and_status() -> None:
    q = exec_query(["pg_dump", "-Fc"], container="postgresql", stdin=False)
    assert q == [("command", "pg_dump"), ("command", "-Fc"), ("container", "postgresql"),
                 ("stdin", "false"), ("stdout", "true"), ("stderr", "true"), ("tty", "false")]
    assert parse_status(b'{"status":"Success"}') == (0, "")
    fail = (b'{"status":"Failure","message":"command terminated with non-zero exit code",'
            b'"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}')
    assert parse_status(fail)[0] == 3
    assert parse_status(b'{"status":"Failure","message":"container not found"}') == (
        None, "container not found")


def test_pod_problem_and_choice() -> None:
    assert p.pod_problem(_pod("a")) is None
    assert p.pod_problem(_pod("a", phase="Pending")) == "is Pending, not Running"
    assert "not Ready" in (p.pod_problem(_pod("a", ready="False")) or "")
    assert p.pod_problem(_pod("a", deletionTimestamp="x")) == "is terminating"
    pods = [_pod("pg-1"), _pod("pg-0", ready="False"), _pod("pg-2")]
    chosen = p.choose_pod("pg", pods)
    assert chosen is not None and chosen["metadata"]["name"] == "pg-1"
    chosen = p.choose_pod("pg", [_pod("pg-1", ready="False"), _pod("pg-0", ready="False")])
    assert chosen is not None and chosen["metadata"]["name"] == "pg-0"
    assert p.choose_pod("pg", []) is None
    assert p.choose_container(_pod("a"), None) == "postgresql"
    assert p.choose_container(_pod("a"), "metrics") == "metrics"
    with pytest.raises(ValueError, match="not in the pod"):
        p.choose_container(_pod("a"), "nope")


def test_select_databases() -> None:
    present = ["postgres", "backend", "keycloak", "template1"]
    assert p.select_databases(present) == ["backend", "keycloak"]
    assert p.select_databases(present, ["keycloak"]) == ["keycloak"]
    with pytest.raises(ValueError, match="other"):
        p.select_databases(present, ["other"])


def test_external_database_from_values() -> None:
    assert p.external_database({"postgresql": {"enabled": True}}) is None
    assert p.external_database({}) is None
    ext = p.external_database({"postgresql": {"enabled": False}, "global": {"postgresql": {
        "auth": {"host": "db.example", "port": 5433, "username": "runai",
                 "existingSecret": "pg"}}}})
    assert ext == p.ExternalDb("db.example", 5433, "runai", "backend", "pg", False)


def test_layout_names() -> None:
    assert layout.database_dump("backend") == "database/backend.dump"
    assert layout.database_dump("a/../b") == "database/a%2F..%2Fb.dump"
    assert p.scratch_name("Back-End", "ab12").startswith("runai_dr_drill_back_end_ab12")
    assert len(p.scratch_name("x" * 100, "ab12")) <= 63


def test_globals_for_restore_leaves_out_the_connecting_superuser() -> None:
    sql = ("CREATE ROLE keycloak;\nALTER ROLE keycloak WITH LOGIN PASSWORD 'SCRAM';\n"
           "CREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER PASSWORD 'SCRAM';\n"
           'CREATE ROLE "odd""name";\n')
    out = p.globals_for_restore(sql, ["postgres", 'odd"name'])
    assert out == "CREATE ROLE keycloak;\nALTER ROLE keycloak WITH LOGIN PASSWORD 'SCRAM';\n"


def test_compare_counts_reports_each_table() -> None:
    ok = p.compare_counts("backend", {"public.a": 3, p.LARGE_OBJECTS: 1},
                          {"public.a": 3, p.LARGE_OBJECTS: 1})
    assert ok.ok and ok.tables == 2 and ok.rows == 4
    bad = p.compare_counts("backend", {"public.a": 3, "public.b": 1},
                           {"public.a": 2, "public.c": 5})
    assert [d.describe() for d in bad.diffs] == [
        "public.a: 2 rows, backup had 3", "public.b: missing (backup had 1 rows)",
        "public.c: not in the backup (5 rows)"]
    assert p.non_empty_tables({"a": 0, "b": 2}) == {"b": 2}


def test_sql_quoting_and_options() -> None:
    assert p.create_database_sql('we"ird', "own'er", "UTF8") == (
        'CREATE DATABASE "we""ird" TEMPLATE template0 ENCODING \'UTF8\' OWNER "own\'er";\n')
    assert p.drop_database_sql("x") == 'DROP DATABASE IF EXISTS "x" WITH (FORCE);\n'
    assert p.parse_json_line(b"\n[1, 2]\n") == [1, 2]
    with pytest.raises(ValueError, match="db-mode"):
        p.DbOptions(mode="remote")
    o = p.DbOptions(pod="x", port=5433, databases=("backend",))
    assert (o.pod, o.port, o.databases) == ("x", 5433, ("backend",))


# -- commands that die with their connection --------------------------------------------------
def _session_members(sid: int) -> list[str]:
    """Command lines of the processes still in session ``sid``."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # zombies too: an orphan nobody reaped
                out.append((d / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, IndexError, ValueError):
            continue
    return out


def _start(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def _stdin(proc: subprocess.Popen[bytes]) -> IO[bytes]:
    assert proc.stdin is not None  # _start pipes it
    return proc.stdin


def _finish(proc: subprocess.Popen[bytes], limit: float = 10) -> tuple[int, bytes, bytes]:
    rc = proc.wait(timeout=limit)
    assert proc.stdout is not None and proc.stderr is not None  # _start pipes them
    out, err = proc.stdout.read(), proc.stderr.read()
    time.sleep(0.2)
    assert _session_members(proc.pid) == [], "left behind"
    return rc, out, err


def _supervised(argv: list[str], stdin: str, *, settings: dict[str, int] | None = None,
                deadline: int | None = None) -> list[str]:
    return p.pod_command(argv, password_from="none", stdin=stdin, tag="runai-dr-abcd-00001",
                         settings=settings, deadline=deadline)


def test_supervised_command_keeps_its_exit_code_and_ends_with_its_stdin() -> None:
    proc = _start(_supervised(["sh", "-c", 'echo "$PGAPPNAME|$PGOPTIONS"; exit 3'], "watch",
                              settings={"statement_timeout": 600000, "lock_timeout": 1000}))
    assert _finish(proc)[:2] == (3, b"runai-dr-abcd-00001|-c statement_timeout=600000 "
                                    b"-c lock_timeout=1000\n")
    # the client goes away: the exec stream's stdin ends, so does the command
    proc = _start(_supervised(["sleep", "300"], "watch", deadline=3600))
    time.sleep(0.3)
    started = time.monotonic()
    _stdin(proc).close()
    rc, _, _ = _finish(proc)
    assert rc == 128 + signal.SIGTERM and time.monotonic() - started < 3


def test_supervised_command_ends_at_its_deadline_or_with_its_wrapper() -> None:
    proc = _start(_supervised(["sleep", "300"], "watch", deadline=1))
    rc, _, err = _finish(proc)
    assert rc == 128 + signal.SIGTERM and b"its deadline" in err
    proc = _start(_supervised(["sleep", "300"], "feed", deadline=3600))
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGTERM)  # what cancel_command does to the wrapper
    assert _finish(proc)[0] == 128 + signal.SIGTERM


def test_supervised_command_reading_stdin_gets_all_of_it() -> None:
    data = os.urandom(300000)
    proc = _start(_supervised(["sh", "-c", "head -c 100 >/dev/null; exit 4"], "drain",
                              deadline=3600))
    _stdin(proc).write(data)
    _stdin(proc).close()
    assert _finish(proc)[0] == 4  # the rest was drained, the exit code kept
    proc = _start(_supervised(["sha256sum"], "feed"))
    out = proc.communicate(data, timeout=10)[0]
    import hashlib

    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_cancel_command_ends_the_tagged_wrappers_only() -> None:
    from kubectl_runai_dr.kube.exec import bounded_stdin_command

    mine = [_start(_supervised(["sleep", "300"], mode, deadline=3600))
            for mode in ("watch", "feed")]
    # exec v4: the wrapper behind `head -c SIZE |`; only the wrapper is signalled, so the
    # outer shell still waits for it (nothing orphaned)
    v4 = _start(bounded_stdin_command(_supervised(["sleep", "300"], "drain", deadline=3600),
                                      10))
    other = _start(p.pod_command(["sleep", "300"], password_from="none", stdin="watch",
                                 tag="runai-dr-ffff-00001"))
    time.sleep(0.3)
    cancel = p.cancel_command("runai-dr-abcd-", password_from="none")
    assert cancel[3] == "runai-dr-abcd-" and cancel[4] == "psql"
    assert p.terminate_sql("runai-dr-abcd-") in cancel
    # the pod-side part, with a stand-in for psql
    subprocess.run([*cancel[:4], "true"], check=True, timeout=30)
    for proc in mine:
        assert _finish(proc)[0] == 128 + signal.SIGTERM
    _stdin(v4).close()
    assert _finish(v4)[0] == 128 + signal.SIGTERM
    assert other.poll() is None
    _stdin(other).close()
    _finish(other)


def test_run_tags_and_session_settings() -> None:
    assert p.run_tag("ab12cd34", 7) == "runai-dr-ab12cd34-00007"
    assert p.run_tag("ab12cd34", 7).startswith(p.run_prefix("ab12cd34"))
    with pytest.raises(ValueError):
        p.run_prefix("x'; DROP")
    assert p.terminate_sql("runai-dr-ab-") == (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
        "left(application_name, 12) = 'runai-dr-ab-' AND pid <> pg_backend_pid();")
    assert p.session_settings(statement_timeout=600, lock_timeout=0.5) == {
        "statement_timeout": 600000, "lock_timeout": 500}
    assert p.session_settings(statement_timeout=0, lock_timeout=None) == {}
    with pytest.raises(ValueError):
        p.pod_command(["x"], tag="bad tag")
    with pytest.raises(ValueError):
        p.DbOptions(lock_wait_timeout=-1)
