"""The control plane's PostgreSQL: backed up with pg_dump -Fc of every Run:ai database plus
the roles, restored with pg_restore and verified, and drilled into scratch databases.

Backup: per database, one psql session opens a REPEATABLE READ transaction and exports its
snapshot; the exact row count of every table is taken in that transaction and pg_dump
runs with ``--snapshot``, so counts and dump describe the same instant. The dump streams
frame by frame into the bundle (size and sha256 computed on the way); it is only kept
when pg_dump exits 0 and the output is a complete custom-format archive.

Restore: roles first (globals.sql without the connecting superuser), then per database
pg_restore from the dump streamed on stdin (in one transaction; ``--clean --if-exists``
when the database exists, else into a freshly created one), then the table list and
exact row counts are compared with those recorded at backup time.

Drill: each dump into a scratch database on the live server, the same comparison, and
the scratch database dropped whatever happens.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components.base import BackupContext, Component, NullProgress, Progress
from kubectl_runai_dr.components.dbrun import Runner, failure, locate
from kubectl_runai_dr.components.restore_base import RestoreContext
from kubectl_runai_dr.errors import Aborted, BundleError, ComponentError, UsageError
from kubectl_runai_dr.interrupts import terminate_as_interrupt
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.model import Names, ObjectResult, Outcome, Result, Status
from kubectl_runai_dr.plan import database as p
from kubectl_runai_dr.plan import permissions as perm
from kubectl_runai_dr.plan.restore import DATABASE_READY

DUMP_MAGIC = b"PGDMP"


class _Head:
    """Wraps the bundle file: remembers the first bytes (the archive's magic)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.head = b""

    def write(self, data: bytes | memoryview) -> None:
        if len(self.head) < 5:
            self.head += bytes(data[: 5 - len(self.head)])
        self.out.write(data)


def backup(ctx: BackupContext, result: Result) -> None:
    opts = ctx.db
    located = locate(ctx.kube, ctx.names, opts)
    if located.runner is None:
        result.status = Status.NOT_PRESENT
        result.reason = located.reason
        return
    meta = dump(located.runner, ctx, result, opts)
    meta["source"] = located.details or {}
    ctx.out.write_json(layout.DATABASE_METADATA, meta)
    result.files.append(layout.DATABASE_METADATA)


def dump(runner: Runner, ctx: BackupContext, result: Result,
         opts: p.DbOptions) -> dict[str, Any]:
    admin = runner.session("postgres")
    try:
        present = p.parse_json_line(admin.query(p.LIST_DATABASES_SQL))
        server = p.parse_json_line(admin.query(p.INFO_SQL))
    finally:
        admin.close()
    try:
        selected = p.select_databases(present, opts.databases)
    except ValueError as exc:
        raise ComponentError(f"{runner.where}: {exc}", hint="check --db-name") from exc
    if not selected:
        raise ComponentError(f"{runner.where}: the server has no Run:ai database "
                             f"(databases: {', '.join(present)})",
                             hint="name them with --db-name")
    if p.DEFAULT_DATABASE not in selected and not opts.databases:
        result.warnings.append(f'no "{p.DEFAULT_DATABASE}" database on the server; dumped '
                               f"{', '.join(selected)}")
    meta: dict[str, Any] = {
        "server": {"version": server["version"], "versionNum": server["versionNum"]},
        "format": "pg_dump custom (-Fc)",
        "globals": layout.DATABASE_GLOBALS,
        "databases": [],
    }
    ctx.progress.update(description="database: roles (pg_dumpall --globals-only)")
    with ctx.out.open(layout.DATABASE_GLOBALS) as f:
        res = runner.run(p.pg_dumpall_globals_argv(**runner.conn), stdout=f)
        if not res.ok:
            raise failure("pg_dumpall --globals-only", runner.where, res)
    result.files.append(layout.DATABASE_GLOBALS)
    tables = rows = 0
    for db in selected:
        entry = _dump_one(runner, ctx, db)
        meta["databases"].append(entry)
        result.files.append(entry["file"])
        tables += len(entry["tables"])
        rows += sum(t["rows"] for t in entry["tables"])
    result.count = tables
    result.details = {
        "serverVersion": server["version"],
        "databases": {d["name"]: {"tables": len(d["tables"]), "dumpBytes": d["size"],
                                  "databaseBytes": d["databaseSize"]}
                      for d in meta["databases"]},
        "rows": rows,
    }
    return meta


def _dump_one(runner: Runner, ctx: BackupContext, db: str) -> dict[str, Any]:
    path = p.dump_path(db)
    session = runner.session(db)
    try:
        snapshot = p.parse_json_line(
            b'"' + session.query(p.SNAPSHOT_SQL).strip().splitlines()[-1] + b'"')
        info = p.parse_json_line(session.query(p.INFO_SQL))
        counts = p.parse_counts(p.parse_json_line(session.query(p.COUNT_SQL)))
        done = [0]
        step = 8 * 1024 * 1024

        def moved(n: int) -> None:
            before = done[0]
            done[0] += n
            if done[0] // step != before // step:
                ctx.progress.update(description=f"database {db}: {done[0] >> 20} MiB")

        ctx.progress.update(description=f"database {db}: pg_dump")
        with ctx.out.open(path) as f:
            head = _Head(f)
            argv = p.pg_dump_argv(db, snapshot, lock_wait_timeout=runner.lock_wait_timeout,
                                  **runner.conn)
            res = runner.run(argv, stdout=head, on_stdout=moved)
            if not res.ok:
                raise failure(f'pg_dump of database "{db}"', runner.where, res)
            if head.head != DUMP_MAGIC:
                raise ComponentError(
                    f'pg_dump of database "{db}" in {runner.where} wrote no custom-format '
                    f"archive (starts with {head.head!r})",
                    hint="check that the pod's pg_dump is PostgreSQL's and -Fc works")
        session.query("COMMIT;\n")
    finally:
        session.close()
    written = ctx.out.files[path]
    return {
        "name": db,
        "file": path,
        "size": written["size"],
        "sha256": written["sha256"],
        "snapshot": snapshot,
        "owner": info["owner"],
        "encoding": info["encoding"],
        "databaseSize": info["databaseSize"],
        "largeObjects": info["largeObjects"],
        "tables": [{"schema": t.schema, "table": t.table, "rows": t.rows, "bytes": t.bytes}
                   for t in counts],
    }


# -- restore and drill ---------------------------------------------------------------------
_CHUNK = 1024 * 1024


@dataclass
class DatabaseRestoreOptions:
    db: p.DbOptions = field(default_factory=p.DbOptions)
    names: Names = field(default_factory=Names)
    yes: bool = False
    roles: bool = True
    # asked when a target database holds data; gets {database: {table: rows}}
    confirm: Callable[[dict[str, dict[str, int]]], bool] | None = None


@dataclass
class DatabaseOutcome:
    name: str
    action: str  # "replaced", "created", "drilled"
    comparison: p.Comparison
    dump_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"database": self.name, "action": self.action, "ok": self.comparison.ok,
                "tables": self.comparison.tables, "rows": self.comparison.rows,
                "dumpBytes": self.dump_bytes,
                "differences": [d.describe() for d in self.comparison.diffs]}


@dataclass
class DatabaseRestoreResult:
    target: str
    databases: list[DatabaseOutcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(d.comparison.ok for d in self.databases)

    @property
    def reason(self) -> str:
        bad = [f"{d.name}: " + "; ".join(x.describe() for x in d.comparison.diffs[:5])
               for d in self.databases if not d.comparison.ok]
        return ("verification after restore found differences: " + " | ".join(bad)) if bad else ""

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "warnings": list(self.warnings),
                "databases": [d.to_json() for d in self.databases]}


def read_metadata(bundle: Bundle) -> dict[str, Any]:
    if not bundle.has(layout.DATABASE_METADATA):
        # asking to restore or drill what the bundle does not hold is a usage error
        raise UsageError(f"{bundle.path} holds no database dump",
                         hint="`kubectl runai-dr inspect` shows its components; back up "
                              "with `kubectl runai-dr backup database`")
    meta: dict[str, Any] = bundle.read_json(layout.DATABASE_METADATA)
    return meta


def verified_chunks(fh: IO[bytes], expected_sha256: str, name: str) -> Iterator[bytes]:
    """The member's bytes; the last chunk is only released once the whole member matched
    its sha256, so a corrupt dump never reaches pg_restore's end of input."""
    sha = hashlib.sha256()
    held: bytes | None = None
    while data := fh.read(_CHUNK):
        sha.update(data)
        if held is not None:
            yield held
        held = data
    if sha.hexdigest() != expected_sha256:
        raise BundleError(f"{name} in the bundle does not match its checksum",
                          hint="the bundle is corrupt; nothing was committed (one transaction)")
    if held is not None:
        yield held


def _runner(kube: KubeApi, opts: DatabaseRestoreOptions) -> Runner:
    located = locate(kube, opts.names, opts.db)
    if located.runner is None:
        raise ComponentError(f"no database to restore into: {located.reason}",
                             hint="install the control plane first, or name the pod with "
                                  "--db-pod / --db-namespace")
    return located.runner


def _counts(runner: Runner, database: str) -> dict[str, int]:
    s = runner.session(database)
    try:
        tables = p.parse_counts(p.parse_json_line(s.query(p.COUNT_SQL)))
        info = p.parse_json_line(s.query(p.INFO_SQL))
    finally:
        s.close()
    return p.count_map(tables, info["largeObjects"])


def _existing(runner: Runner) -> set[str]:
    s = runner.session("postgres")
    try:
        return set(p.parse_json_line(s.query(p.LIST_DATABASES_SQL)))
    finally:
        s.close()


def _admin(runner: Runner, sql: str) -> None:
    s = runner.session("postgres")
    try:
        s.query(sql)
    finally:
        s.close()


def _restore_dump(runner: Runner, bundle: Bundle, entry: dict[str, Any], target_db: str, *,
                  clean: bool, owners: bool, progress: Progress) -> None:
    path = entry["file"]
    expected = bundle.files.get(path, {}).get("sha256") or entry["sha256"]
    progress.update(description=f"database {entry['name']}: pg_restore into {target_db}")
    with bundle.open_member(path) as fh:
        res = runner.run(p.pg_restore_argv(target_db, clean=clean, owners=owners, **runner.conn),
                         stdin=verified_chunks(fh, expected, path),
                         stdin_size=int(bundle.files.get(path, {}).get("size", entry["size"])))
    if not res.ok:
        raise failure(f'pg_restore of database "{entry["name"]}" into "{target_db}"',
                      runner.where, res)


def _compare(runner: Runner, entry: dict[str, Any], target_db: str) -> p.Comparison:
    expected = p.count_map(entry["tables"], entry.get("largeObjects"))
    cmp = p.compare_counts(target_db, expected, _counts(runner, target_db))
    cmp.database = entry["name"]
    return cmp


def replace_plan(runner: Runner, meta: dict[str, Any]) -> dict[str, dict[str, int]]:
    """What the restore would replace: per existing target database, its tables with rows."""
    present = _existing(runner)
    plan: dict[str, dict[str, int]] = {}
    for entry in meta["databases"]:
        if entry["name"] in present:
            rows = p.non_empty_tables(_counts(runner, entry["name"]))
            if rows:
                plan[entry["name"]] = rows
    return plan


def restore_database(kube: KubeApi, bundle: Bundle | Path,
                     opts: DatabaseRestoreOptions | None = None,
                     progress: Progress | None = None) -> DatabaseRestoreResult:
    """Restore every database of the bundle into the target server and verify it.

    Also the restore plan's database step: ``opts`` None means defaults (and a target
    holding data is then refused: pass ``DatabaseRestoreOptions(yes=...)``)."""
    progress = progress or NullProgress()
    opts = opts or DatabaseRestoreOptions()
    if not isinstance(bundle, Bundle):
        bundle = Bundle.open(bundle)
    meta = read_metadata(bundle)
    runner = _runner(kube, opts)
    result = DatabaseRestoreResult(target=runner.where)
    wanted = opts.db.databases
    entries = [d for d in meta["databases"] if not wanted or d["name"] in wanted]
    if wanted and len(entries) != len(set(wanted)):
        have = ", ".join(d["name"] for d in meta["databases"])
        raise UsageError(f"--db-name: the bundle has only: {have}")
    present = _existing(runner)
    replaced = replace_plan(runner, {"databases": entries})
    if replaced and not opts.yes and not (opts.confirm is not None and opts.confirm(replaced)):
        what = "; ".join(f"{db}: {len(t)} tables with {sum(t.values())} rows"
                         for db, t in replaced.items())
        raise Aborted(f"the target database already holds data ({what}); nothing was changed",
                      hint="pass --yes to replace it with the bundle's data")
    if opts.roles and bundle.has(layout.DATABASE_GLOBALS):
        _restore_roles(runner, bundle, result)
    for entry in entries:
        name = entry["name"]
        exists = name in present
        if not exists:
            _admin(runner, p.create_database_sql(name, entry.get("owner"), entry.get("encoding")))
        _restore_dump(runner, bundle, entry, name, clean=exists, owners=True, progress=progress)
        result.databases.append(DatabaseOutcome(name, "replaced" if exists else "created",
                                                _compare(runner, entry, name),
                                                dump_bytes=int(entry.get("size", 0))))
    return result


def _restore_roles(runner: Runner, bundle: Bundle, result: DatabaseRestoreResult) -> None:
    """Roles before the databases (owners and grants refer to them). The connecting
    superuser is left out: its password is the target's. "already exists" is expected."""
    sql = bundle.read_bytes(layout.DATABASE_GLOBALS).decode()
    skip = {"postgres", *([runner.conn["user"]] if runner.conn.get("user") else [])}
    script = p.globals_for_restore(sql, skip).encode()
    res = runner.run(p.psql_script_argv("postgres", **runner.conn), stdin=[script],
                     stdin_size=len(script))
    if res.exit_code is None:
        raise failure("psql (roles from globals.sql)", runner.where, res)
    for line in res.stderr_tail.splitlines():
        if "ERROR" in line and "already exists" not in line:
            result.warnings.append(f"roles: {line.strip()}")


def drill(kube: KubeApi, bundle: Bundle, opts: DatabaseRestoreOptions | None = None,
          progress: Progress | None = None) -> DatabaseRestoreResult:
    """Restore each dump into a scratch database, compare, drop it. Changes nothing else:
    no roles, no ownership (``--no-owner --no-acl``)."""
    progress = progress or NullProgress()
    opts = opts or DatabaseRestoreOptions()
    meta = read_metadata(bundle)
    runner = _runner(kube, opts)
    result = DatabaseRestoreResult(target=runner.where)
    token = secrets.token_hex(4)
    with terminate_as_interrupt():  # SIGTERM as Ctrl-C: the scratch database is dropped
        for entry in meta["databases"]:
            if opts.db.databases and entry["name"] not in opts.db.databases:
                continue
            scratch = p.scratch_name(entry["name"], token)
            _admin(runner, p.create_database_sql(scratch, None, entry.get("encoding")))
            try:
                _restore_dump(runner, bundle, entry, scratch, clean=False, owners=False,
                              progress=progress)
                cmp = _compare(runner, entry, scratch)
            finally:
                _admin(runner, p.drop_database_sql(scratch))
            result.databases.append(DatabaseOutcome(entry["name"], "drilled", cmp,
                                                    dump_bytes=int(entry.get("size", 0))))
    return result


def restore(ctx: RestoreContext, step: Result) -> None:
    """The restore plan's ``database`` step. The restore as a whole was confirmed (or
    --yes): replacing the data is part of it."""
    ns = ctx.settings.names.control_plane_namespace
    if ctx.settings.dry_run:
        step.add(ObjectResult(step.name, "Database", "(from the bundle)", ns,
                              Outcome.WOULD_UPDATE, "pg_restore of the saved dump into the "
                              "control plane's PostgreSQL (not simulated in a dry run)"))
        return
    out = restore_database(ctx.kube, ctx.bundle, DatabaseRestoreOptions(
        db=ctx.db, names=ctx.settings.names, yes=ctx.confirmed), ctx.progress)
    for w in out.warnings:
        step.warn(w)
    for d in out.databases:
        c = d.comparison
        if c.ok:
            step.add(ObjectResult(step.name, "Database", d.name, ns, Outcome.UPDATED
                                  if d.action == "replaced" else Outcome.CREATED,
                                  f"{c.tables} tables, {c.rows} rows verified"))
        else:
            step.add(ObjectResult(step.name, "Database", d.name, ns, Outcome.FAILED,
                                  "verification after restore found differences: " + "; ".join(
                                      x.describe() for x in c.diffs[:5])))


# -- the component -----------------------------------------------------------------------------
def _holds(files: Collection[str], names: Names) -> bool:
    return any(f.startswith(layout.DATABASE_DIR + "/") for f in files)


COMPONENT = Component(
    name="database", title="database",
    saves="`pg_dump -Fc` of every Run:ai database and the roles, run inside the database pod "
          "and streamed, with every table's row count",
    reason="load the saved database into the control plane's PostgreSQL before the cluster "
           "connects to it",
    backup=backup, restore=restore, holds_data=_holds, control_plane=True,
    needs=(DATABASE_READY,), backup_needs=perm.DATABASE_POD, restore_needs=perm.DATABASE_POD,
)


# -- live row counts (`diff BUNDLE`) ---------------------------------------------------------
def live_row_counts(kube: KubeApi, names: Names, opts: p.DbOptions
                    ) -> tuple[dict[str, dict[str, int]] | None, str]:
    """Per Run:ai database on the live server, the exact row count of every table (and
    its large objects), counted in the pod as the backup counts them; (None, why) when
    there is no database to count."""
    located = locate(kube, names, opts)
    if located.runner is None:
        return None, located.reason
    runner = located.runner
    with terminate_as_interrupt():  # SIGTERM as Ctrl-C: the run's sessions are ended
        try:
            selected = p.select_databases(_existing(runner), opts.databases)
        except ValueError as exc:
            raise ComponentError(f"{runner.where}: {exc}", hint="check --db-name") from exc
        return {db: _counts(runner, db) for db in selected}, ""
