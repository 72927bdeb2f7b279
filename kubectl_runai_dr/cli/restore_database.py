"""`kubectl runai-dr restore-database BUNDLE`: the database alone, verified."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from kubectl_runai_dr.cli import db_options as d
from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import ExitCode


def restore_database(
    bundle: Annotated[Path, typer.Argument(help="The bundle file.", show_default=False)],
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Replace a database that holds data without asking.")] = False,
    no_roles: Annotated[bool, typer.Option(
        "--no-roles", help="Do not recreate the roles (globals.sql) first.")] = False,
    db_mode: d.DbMode = "pod",
    db_namespace: d.DbNamespace = None,
    db_pod: d.DbPod = None,
    db_container: d.DbContainer = None,
    db_host: d.DbHost = None,
    db_port: d.DbPort = None,
    db_user: d.DbUser = None,
    db_name: d.DbName = None,
    db_password_env: d.DbPasswordEnv = None,
    control_plane_namespace: o.ControlPlaneNamespace = "runai-backend",
    control_plane_release: o.ControlPlaneRelease = "runai-backend",
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    output: o.Output = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Restore the database from a bundle into the control plane's PostgreSQL, then check
    every table's row count against the backup.

    Roles first, then each database: pg_restore --clean --if-exists into the existing one
    (in one transaction) or into a new one. A database that holds data is only replaced
    after confirmation (or --yes). Exit codes: 0 restored and verified, 1 failed or
    verification found differences, 130 declined.
    """
    common = o.Common(kubeconfig, context, request_timeout, output, no_color, verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.bundle.reader import Bundle
        from kubectl_runai_dr.components.database import (
            DatabaseRestoreOptions,
        )
        from kubectl_runai_dr.components.database import (
            restore_database as run,
        )
        from kubectl_runai_dr.model import Names

        out, err = render.consoles(no_color)
        db = d.db_options(db_mode, db_namespace, db_pod, db_container, db_host, db_port,
                          db_user, db_name, db_password_env)

        def confirm(replaced: dict[str, dict[str, int]]) -> bool:
            rows = [[render.escape(f"{db_}: {t}"), str(n)]
                    for db_, tables in replaced.items() for t, n in sorted(tables.items())]
            err.print(render.table("This restore REPLACES these tables' rows",
                                   ["TABLE", "ROWS NOW"], rows[:50]))
            if len(rows) > 50:
                err.print(f"... and {len(rows) - 50} more tables")
            if not sys.stdin.isatty():
                return False
            return typer.confirm("Replace them with the bundle's data?", default=False,
                                 err=True)

        names = Names(control_plane_namespace=control_plane_namespace,
                      control_plane_release=control_plane_release)
        opts = DatabaseRestoreOptions(db=db, names=names, yes=yes, roles=not no_roles,
                                      confirm=confirm)
        b = Bundle.open(bundle)
        kube = common.connect()
        progress = render.RichProgress(err)
        try:
            result = run(kube, b, opts, progress)
        finally:
            progress.close()
            b.close()
        render_result(result.to_json(), output, out, err)
        if not result.ok:
            raise typer.Exit(int(ExitCode.ERROR))


def render_result(data: dict[str, Any], output: o.OutputFormat, out: Any, err: Any) -> None:
    """The per-database table (restore and drill), or the JSON/YAML document."""
    from kubectl_runai_dr import render

    if output is not o.OutputFormat.table:
        render.emit(data, output.value)
        return
    rows = []
    for db in data["databases"]:
        note = "; ".join(db["differences"][:10]) or "row counts match the backup"
        rows.append([render.escape(db["database"]), db["action"],
                     render.styled("ok" if db["ok"] else "failed"), str(db["tables"]),
                     str(db["rows"]), render.escape(note)])
    out.print(render.table(None, ["DATABASE", "ACTION", "CHECK", "TABLES", "ROWS", "NOTE"],
                           rows))
    out.print(f"\ntarget: {render.escape(data['target'])}")
    for w in data["warnings"]:
        render.warn(err, w)
    if not data["ok"]:
        render.warn(err, "the restored data differs from the backup (see NOTE)")
