"""The database step, as pure functions: options, pod and container choice, the argument
lists of psql / pg_dump / pg_dumpall / pg_restore, the SQL, and the row-count comparison.

Nothing here runs a program or talks to a server; components/database.py and
ops/restore_database.py do, with what these functions build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubectl_runai_dr.bundle import layout

MODES = ("pod", "local")
DEFAULT_CONTAINER = "postgresql"
DEFAULT_DATABASE = "backend"
# Databases that exist on every server and hold nothing of Run:ai's.
SYSTEM_DATABASES = frozenset({"postgres", "template0", "template1"})
SENTINEL = "__runai_dr_done__"
# How long the tool's own database work waits behind another session's lock: pg_dump's
# --lock-wait-timeout and the lock_timeout of its queries (--db-lock-wait-timeout).
DEFAULT_LOCK_WAIT = 120.0
# The longest one of the tool's own queries may run (statement_timeout; the row counts of a
# large database take the longest) (--db-statement-timeout).
DEFAULT_STATEMENT_TIMEOUT = 600.0
# A command the tool started in the database pod is ended after this long even when the
# tool could not end it itself (killed, connection lost, and the container runtime keeping
# the command's stdin open): a backstop, far beyond any dump of a Run:ai database.
COMMAND_DEADLINE = 24 * 3600


# -- options -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DbOptions:
    """The database flags (``--db-*``), as given; None = discover."""

    mode: str = "pod"  # pod: run the tools inside the database pod; local: on this machine
    namespace: str | None = None
    statefulset: str | None = None
    pod: str | None = None
    container: str | None = None
    host: str | None = None  # external or local mode
    port: int | None = None
    user: str | None = None
    databases: tuple[str, ...] = ()  # default: every database on the server but the system ones
    password_env: str | None = None  # local mode: the variable holding the password
    lock_wait_timeout: float = DEFAULT_LOCK_WAIT  # seconds; 0: wait for locks forever
    statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT  # seconds; 0: no limit

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f'--db-mode must be one of {", ".join(MODES)}, not "{self.mode}"')
        if self.lock_wait_timeout < 0 or self.statement_timeout < 0:
            raise ValueError("database timeouts cannot be negative")


# -- where the database is -------------------------------------------------------------------
@dataclass(frozen=True)
class ExternalDb:
    host: str
    port: int
    user: str
    database: str
    existing_secret: str | None
    has_password: bool  # the password is in the values (never copied here)


def _dig(values: Mapping[str, Any], *keys: str) -> Any:
    cur: Any = values
    for k in keys:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(k)
    return cur


def external_database(values: Mapping[str, Any] | None) -> ExternalDb | None:
    """The external database of the control plane, from its computed helm values, or None
    when the chart runs its own PostgreSQL (``postgresql.enabled`` is not false)."""
    if not values or _dig(values, "postgresql", "enabled") is not False:
        return None
    auth = _dig(values, "global", "postgresql", "auth") or {}
    if not isinstance(auth, Mapping):
        auth = {}
    port = auth.get("port") or 5432
    return ExternalDb(host=str(auth.get("host") or ""), port=int(port),
                      user=str(auth.get("username") or "postgres"),
                      database=str(auth.get("database") or DEFAULT_DATABASE),
                      existing_secret=auth.get("existingSecret") or None,
                      has_password=bool(auth.get("password")))


def pod_problem(pod: Mapping[str, Any]) -> str | None:
    """Why the pod cannot run a dump now (not Running, not Ready, terminating), or None."""
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return "is terminating"
    phase = status.get("phase") or "Unknown"
    if phase != "Running":
        return f"is {phase}, not Running"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return None
            why = cond.get("reason") or cond.get("message") or ""
            return "is Running but not Ready" + (f" ({why})" if why else "")
    return "is Running but not Ready (no Ready condition)"


def choose_pod(statefulset: str, pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The StatefulSet's pod to use: a Ready one, ordinal 0 first; else ordinal 0 (its
    problem is then reported); None when there is no pod."""
    if not pods:
        return None

    def ordinal(p: Mapping[str, Any]) -> int:
        name = str((p.get("metadata") or {}).get("name", ""))
        m = re.fullmatch(re.escape(statefulset) + r"-(\d+)", name)
        return int(m.group(1)) if m else 1 << 30

    ordered = sorted(pods, key=lambda p: (ordinal(p), str(p.get("metadata", {}).get("name"))))
    for p in ordered:
        if pod_problem(p) is None:
            return p
    return ordered[0]


def choose_container(pod: Mapping[str, Any], wanted: str | None) -> str:
    """``--db-container``, else the container named ``postgresql``, else the first one."""
    names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    if wanted:
        if wanted not in names:
            raise ValueError(f'container "{wanted}" is not in the pod (it has: '
                             f'{", ".join(names) or "none"})')
        return wanted
    if DEFAULT_CONTAINER in names:
        return DEFAULT_CONTAINER
    if not names:
        raise ValueError("the pod has no containers")
    return names[0]


def select_databases(present: Iterable[str], requested: Sequence[str] = ()) -> list[str]:
    """The databases to dump: the requested ones (all must exist), else every database
    but the system ones (Run:ai's ``backend``, keycloak's when separate, ...)."""
    names = sorted(set(present))
    if requested:
        missing = [d for d in requested if d not in names]
        if missing:
            raise ValueError(f'database(s) {", ".join(missing)} not found on the server '
                             f'(it has: {", ".join(names) or "none"})')
        return list(dict.fromkeys(requested))
    return [d for d in names if d not in SYSTEM_DATABASES]


# -- bundle names --------------------------------------------------------------------------
def dump_path(database: str) -> str:
    return layout.database_dump(database)


def scratch_name(database: str, token: str) -> str:
    """A scratch database for a drill: recognisable, unique, within 63 bytes."""
    base = re.sub(r"[^a-z0-9_]", "_", database.lower())[:30]
    return f"runai_dr_drill_{base}_{token}"[:63]


# -- commands ------------------------------------------------------------------------------
# Run inside the pod by `sh -c`. It takes the password from the container's own
# environment (Bitnami images), so the password never appears in the exec request
# (whose command line the API server's audit log records). PGHOST/PGPORT/PGUSER already
# set in the container are respected.
ENV_PRELUDE = (
    'if [ -n "${POSTGRES_POSTGRES_PASSWORD:-}" ]; then '
    'PGPASSWORD="$POSTGRES_POSTGRES_PASSWORD"; : "${PGUSER:=postgres}"; '
    'elif [ -n "${POSTGRES_POSTGRES_PASSWORD_FILE:-}" ]; then '
    'PGPASSWORD="$(cat "$POSTGRES_POSTGRES_PASSWORD_FILE")"; : "${PGUSER:=postgres}"; '
    'elif [ -n "${POSTGRES_PASSWORD:-}" ]; then '
    'PGPASSWORD="$POSTGRES_PASSWORD"; : "${PGUSER:=${POSTGRES_USER:-postgres}}"; '
    'elif [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then '
    'PGPASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"; : "${PGUSER:=${POSTGRES_USER:-postgres}}"; '
    "fi; "
    ': "${PGHOST:=127.0.0.1}"; : "${PGPORT:=${POSTGRESQL_PORT_NUMBER:-5432}}"; '
    "export PGPASSWORD PGUSER PGHOST PGPORT; "
)
# The password is the first line of stdin (external database reached from a pod).
STDIN_PRELUDE = "IFS= read -r PGPASSWORD; export PGPASSWORD; "
# Keep reading stdin after the command ends: if it stops early (pg_restore failing to
# connect), an undrained stdin would otherwise hang the stream and lose the exit code.
DRAIN = '"$@"; rc=$?; cat >/dev/null; exit $rc'
STDIN_MODES = ("watch", "feed", "drain")
_SETTING = re.compile(r"[a-z_]+")


def session_settings(*, statement_timeout: float | None,
                     lock_timeout: float | None) -> dict[str, int]:
    """Server settings for the tool's own sessions (``PGOPTIONS``), in milliseconds; a
    timeout of 0 or None is left out (the server's own setting applies)."""
    out = {}
    if statement_timeout:
        out["statement_timeout"] = max(1, round(statement_timeout * 1000))
    if lock_timeout:
        out["lock_timeout"] = max(1, round(lock_timeout * 1000))
    return out


def _supervise(stdin: str, deadline: int | None) -> str:
    """The command in the background, ended (SIGTERM) when the exec stream's stdin ends
    (``watch``: the client went away, or the kubelet dropped the stream) or when
    ``deadline`` seconds have passed, or when the wrapper is told to stop (SIGTERM, from
    :func:`cancel_command`). ``feed``/``drain``: the command reads the stream's stdin
    itself (its end is the end of the input); ``drain`` then reads what it left.

    Every process started here is waited for by its parent, so none is orphaned: in a
    database pod an orphan is adopted by PID 1, which is the postmaster, and the postmaster
    takes a child it did not start that exits with a status other than 0 or 1 for a crashed
    backend and restarts the whole server."""
    # The watcher: a subshell reading the stream's stdin with the shell's own ``read`` (no
    # child process that stopping it could orphan); when stdin ends, it ends the command.
    watcher = ("(while read -r _; do :; done <&3; kill -TERM $c 2>/dev/null; exit 0) "
               ">/dev/null 2>&1 & ")
    script = "exec 3<&0 </dev/null; "
    if stdin == "watch":
        script += '"$@" 3<&- & c=$!; ' + watcher + "w=$!; exec 3<&-; "
    else:
        script += '"$@" <&3 3<&- & c=$!; w=; '
    if deadline:
        # The deadline counts one-second sleeps; told to stop (SIGTERM) it ends the current
        # one and waits for it (at most a second, should the signal reach the sleep before
        # it has exec'd and be lost), so no sleep is orphaned either.
        script += ("(trap 'kill $k 2>/dev/null; wait; exit 0' TERM; k=; n=0; "
                   f"while [ $n -lt {int(deadline)} ]; do sleep 1 3<&- & k=$!; wait $k; "
                   "n=$((n + 1)); done; "
                   f'echo "runai-dr: the command ran for {int(deadline)}s (its deadline); '
                   'stopping it" >&2; kill -TERM $c 2>/dev/null; exit 0) >/dev/null & t=$!; ')
    else:
        script += "t=; "
    # The wrapper's own trap comes last, for the same reason.
    script += ("trap 'kill -TERM $c 2>/dev/null' HUP INT TERM; "
               "wait $c 2>/dev/null; rc=$?; "
               "while kill -0 $c 2>/dev/null; do wait $c 2>/dev/null; rc=$?; done; "
               "kill $w $t 2>/dev/null; until wait; do :; done; ")
    if stdin == "drain":
        script += "cat <&3 >/dev/null; "
    return script + "exit $rc"


def pod_command(argv: Sequence[str], *, password_from: str = "env",
                drain_stdin: bool = False, stdin: str | None = None, tag: str | None = None,
                settings: Mapping[str, int] | None = None,
                deadline: int | None = None) -> list[str]:
    """``sh -c SCRIPT TAG ARGV...``: the tool's arguments travel as positional parameters,
    never spliced into the script, so no quoting can go wrong.

    Supervised (``stdin`` given: see :func:`_supervise`), the command dies with its
    connection: a kubelet does not kill an exec'd process when the client goes away, and
    a pg_dump left running holds its locks. ``tag`` becomes the sessions'
    ``application_name`` (``PGAPPNAME``) and stays on the wrapper's command line, so
    :func:`cancel_command` finds both; ``settings`` go to ``PGOPTIONS``."""
    if password_from not in ("env", "stdin", "none"):
        raise ValueError(password_from)
    if stdin is not None and stdin not in STDIN_MODES:
        raise ValueError(stdin)
    script = {"env": ENV_PRELUDE, "stdin": STDIN_PRELUDE, "none": ""}[password_from]
    if tag is not None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", tag):
            raise ValueError(f"bad tag {tag!r}")
        script += 'PGAPPNAME="$0"; export PGAPPNAME; '
    if settings:
        options = " ".join(f"-c {k}={int(v)}" for k, v in settings.items()
                           if _SETTING.fullmatch(k))
        script += f'PGOPTIONS="${{PGOPTIONS:+$PGOPTIONS }}{options}"; export PGOPTIONS; '
    if stdin is not None:
        script += _supervise(stdin, deadline)
    else:
        script += DRAIN if drain_stdin else 'exec "$@"'
    return ["sh", "-c", script, tag or "runai-dr", *argv]


def run_tag(run_id: str, n: int) -> str:
    """The ``application_name`` of the ``n``th command of one run: ``run_prefix`` + a
    fixed-width number (so one tag is never the beginning of another)."""
    return f"{run_prefix(run_id)}{n:05d}"


def run_prefix(run_id: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{4,16}", run_id):
        raise ValueError(f"bad run id {run_id!r}")
    return f"runai-dr-{run_id}-"


def terminate_sql(tag: str) -> str:
    """End every session whose application_name starts with ``tag`` (a run's prefix, or one
    command's tag): their queries, their locks, their transactions."""
    return ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE left(application_name, {len(tag)}) = {quote_literal(tag)} "
            "AND pid <> pg_backend_pid();")


# Ends the supervised wrappers whose tag ($0 of ``sh -c SCRIPT TAG``, their fourth
# argument) starts with $0 here: a run's prefix or one command's tag. Each ends its command
# and helpers and waits for them (its trap). /proc is all a container is sure to have;
# busybox's grep stops at a NUL, so the arguments become lines first.
KILL_TAGGED = (
    'for d in /proc/[0-9]*; do p="${d#/proc/}"; [ "$p" = "$$" ] && continue; '
    'a="$(tr "\\0" "\\n" < "$d/cmdline" 2>/dev/null | sed -n 4p)"; '
    'case "$a" in "$0"*) kill -TERM "$p" 2>/dev/null;; esac; done; '
)


def cancel_command(tag: str, *, password_from: str = "env", **conn: Any) -> list[str]:
    """What ends a run's work in the pod (or one command's, by its tag): the supervised
    commands, then the database sessions, which a killed client does not end while they
    wait for a lock."""
    if password_from not in ("env", "stdin", "none"):
        raise ValueError(password_from)
    script = {"env": ENV_PRELUDE, "stdin": STDIN_PRELUDE, "none": ""}[password_from]
    script += KILL_TAGGED + 'PGAPPNAME=runai-dr-cancel; export PGAPPNAME; exec "$@"'
    argv = ["psql", "-X", "-q", "-A", "-t", "-w", "-c", terminate_sql(tag),
            *conn_args("postgres", **conn)]
    return ["sh", "-c", script, tag, *argv]


def conn_args(database: str, *, host: str | None = None, port: int | None = None,
              user: str | None = None) -> list[str]:
    args = []
    if host:
        args += ["-h", host]
    if port:
        args += ["-p", str(port)]
    if user:
        args += ["-U", user]
    return [*args, f"--dbname={database}"]


def pg_isready_argv(**conn: Any) -> list[str]:
    """Is the server accepting connections? (exit 0; 1 rejecting, e.g. starting; 2 no
    answer). Quiet, and bounded: it gives up after 5 seconds."""
    return ["pg_isready", "-q", "-t", "5", *conn_args("postgres", **conn)]


def psql_argv(database: str, **conn: Any) -> list[str]:
    """An interactive psql reading SQL on stdin: quiet, unaligned, tuples only."""
    return ["psql", "-X", "-q", "-A", "-t", "-w", "-v", "ON_ERROR_STOP=1",
            *conn_args(database, **conn)]


def psql_script_argv(database: str, *, stop_on_error: bool = False, **conn: Any) -> list[str]:
    """psql running a script from stdin (globals.sql)."""
    return ["psql", "-X", "-q", "-w", "-v", f"ON_ERROR_STOP={1 if stop_on_error else 0}",
            "-f", "-", *conn_args(database, **conn)]


def pg_dump_argv(database: str, snapshot: str | None, *,
                 lock_wait_timeout: float | None = DEFAULT_LOCK_WAIT, **conn: Any) -> list[str]:
    """Custom format to stdout, from the snapshot the row counts were taken in. pg_dump
    waits at most ``lock_wait_timeout`` seconds for its table locks (a session holding an
    exclusive lock would otherwise stall it, and every query queued behind it)."""
    argv = ["pg_dump", "-Fc", "-w"]
    if lock_wait_timeout:
        argv.append(f"--lock-wait-timeout={max(1, round(lock_wait_timeout * 1000))}")
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    return [*argv, *conn_args(database, **conn)]


def pg_dumpall_globals_argv(**conn: Any) -> list[str]:
    argv = ["pg_dumpall", "--globals-only", "-w"]
    if conn.get("host"):
        argv += ["-h", str(conn["host"])]
    if conn.get("port"):
        argv += ["-p", str(conn["port"])]
    if conn.get("user"):
        argv += ["-U", str(conn["user"])]
    return argv


def pg_restore_argv(database: str, *, clean: bool, owners: bool = True,
                    **conn: Any) -> list[str]:
    """pg_restore of a custom-format dump read from stdin, in one transaction (a failed
    restore leaves the database as it was). ``clean``: drop the dump's objects first.
    ``owners=False`` (drills into a scratch database): no ownership or privileges, so
    the roles need not exist."""
    argv = ["pg_restore", "-w", "--single-transaction", "--exit-on-error"]
    if clean:
        argv += ["--clean", "--if-exists"]
    if not owners:
        argv += ["--no-owner", "--no-acl"]
    return [*argv, *conn_args(database, **conn)]


# -- SQL -----------------------------------------------------------------------------------
def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


SNAPSHOT_SQL = ("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"
                "SELECT pg_export_snapshot();\n")
LIST_DATABASES_SQL = ("SELECT coalesce(json_agg(datname ORDER BY datname), '[]') "
                      "FROM pg_database WHERE datallowconn AND NOT datistemplate;\n")
INFO_SQL = (
    "SELECT json_build_object("
    "'version', current_setting('server_version'), "
    "'versionNum', current_setting('server_version_num')::int, "
    "'databaseSize', pg_database_size(current_database()), "
    "'owner', pg_get_userbyid(d.datdba), "
    "'encoding', pg_encoding_to_char(d.encoding), "
    "'largeObjects', (SELECT count(*) FROM pg_largeobject_metadata)) "
    "FROM pg_database d WHERE d.datname = current_database();\n"
)
# Exact row counts of every user table, in the session's snapshot (one query).
# Tables that belong to extensions are left out: CREATE EXTENSION recreates them.
COUNT_SQL = (
    "SELECT coalesce(json_agg(json_build_object("
    "'schema', n.nspname, 'table', c.relname, "
    "'rows', (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', "
    "n.nspname, c.relname), false, true, '')))[1]::text::bigint, "
    "'bytes', pg_total_relation_size(c.oid)) ORDER BY n.nspname, c.relname), '[]') "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p') "
    "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
    "AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.classid = 'pg_class'::regclass "
    "AND dep.objid = c.oid AND dep.deptype = 'e');\n"
)


def sql_exchange(sql: str) -> bytes:
    """SQL for an interactive psql, followed by a marker line that ends its answer."""
    return (sql + f"\\echo {SENTINEL}\n").encode()


def create_database_sql(name: str, owner: str | None, encoding: str | None) -> str:
    sql = f"CREATE DATABASE {quote_ident(name)} TEMPLATE template0"
    if encoding:
        sql += f" ENCODING {quote_literal(encoding)}"
    if owner:
        sql += f" OWNER {quote_ident(owner)}"
    return sql + ";\n"


def drop_database_sql(name: str) -> str:
    return f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE);\n"


# -- globals --------------------------------------------------------------------------------
_ROLE_STMT = re.compile(r"^(CREATE|ALTER) ROLE (\"(?:[^\"]|\"\")+\"|[^\s;]+)")


def globals_for_restore(sql: str, keep_out: Iterable[str]) -> str:
    """globals.sql without the statements about the roles in ``keep_out`` (the superuser
    the restore connects as: its password belongs to the target installation's Secret,
    and overwriting it would lock the control plane out)."""
    skip = {r.strip('"') for r in keep_out}
    out = []
    for line in sql.splitlines(keepends=True):
        m = _ROLE_STMT.match(line)
        if m and m.group(2).strip('"').replace('""', '"') in skip:
            continue
        out.append(line)
    return "".join(out)


# -- results -------------------------------------------------------------------------------
@dataclass(frozen=True)
class TableCount:
    schema: str
    table: str
    rows: int
    bytes: int = 0

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def parse_json_line(text: bytes | str) -> Any:
    """The JSON value psql printed (unaligned, tuples only): the last non-empty line."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ValueError("no answer")
    return json.loads(lines[-1])


def parse_counts(data: Any) -> list[TableCount]:
    return [TableCount(str(d["schema"]), str(d["table"]), int(d["rows"]), int(d.get("bytes", 0)))
            for d in data]


@dataclass(frozen=True)
class TableDiff:
    table: str
    expected: int | None  # None: not in the backup
    actual: int | None  # None: missing after the restore

    def describe(self) -> str:
        if self.actual is None:
            return f"{self.table}: missing (backup had {self.expected} rows)"
        if self.expected is None:
            return f"{self.table}: not in the backup ({self.actual} rows)"
        return f"{self.table}: {self.actual} rows, backup had {self.expected}"


@dataclass
class Comparison:
    database: str
    tables: int = 0
    rows: int = 0
    diffs: list[TableDiff] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diffs


def compare_counts(database: str, expected: Mapping[str, int],
                   actual: Mapping[str, int]) -> Comparison:
    """Per table: same tables, same exact row counts (``(large objects)`` included)."""
    cmp = Comparison(database, tables=len(expected), rows=sum(expected.values()))
    for name in sorted(set(expected) | set(actual)):
        e, a = expected.get(name), actual.get(name)
        if e != a:
            cmp.diffs.append(TableDiff(name, e, a))
    return cmp


LARGE_OBJECTS = "(large objects)"


def count_map(tables: Iterable[Mapping[str, Any] | TableCount], large_objects: int | None
              ) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in tables:
        if isinstance(t, TableCount):
            out[t.qualified] = t.rows
        else:
            out[f"{t['schema']}.{t['table']}"] = int(t["rows"])
    if large_objects is not None:
        out[LARGE_OBJECTS] = int(large_objects)
    return out


def non_empty_tables(counts: Mapping[str, int]) -> dict[str, int]:
    """What a restore would replace: the tables that hold rows."""
    return {k: v for k, v in counts.items() if v}
