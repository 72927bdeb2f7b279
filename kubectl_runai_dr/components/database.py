"""The control plane's PostgreSQL: pg_dump -Fc of every Run:ai database, plus the roles.

Per database, one psql session opens a REPEATABLE READ transaction and exports its
snapshot; the exact row count of every table is taken in that transaction and pg_dump
runs with ``--snapshot``, so counts and dump describe the same instant. The dump streams
frame by frame into the bundle (size and sha256 computed on the way); it is only kept
when pg_dump exits 0 and the output is a complete custom-format archive.
"""

from __future__ import annotations

from typing import Any

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.components.base import BackupContext
from kubectl_runai_dr.components.dbrun import Runner, failure, locate
from kubectl_runai_dr.errors import ComponentError
from kubectl_runai_dr.model import ComponentResult, Status
from kubectl_runai_dr.plan import database as p

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


def backup(ctx: BackupContext, result: ComponentResult) -> None:
    try:
        opts = p.DbOptions.from_component_options(ctx.options)
    except ValueError as exc:
        raise ComponentError(str(exc)) from exc
    located = locate(ctx.kube, ctx.names, opts)
    if located.runner is None:
        result.status = Status.NOT_PRESENT
        result.reason = located.reason
        return
    meta = dump(located.runner, ctx, result, opts)
    meta["source"] = located.details or {}
    ctx.out.write_json(layout.DATABASE_METADATA, meta)
    result.files.append(layout.DATABASE_METADATA)


def dump(runner: Runner, ctx: BackupContext, result: ComponentResult,
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
    result.objects = tables
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
            res = runner.run(p.pg_dump_argv(db, snapshot, **runner.conn), stdout=head,
                             on_stdout=moved)
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
