"""`kubectl runai-dr verify BUNDLE`: format, structure and every checksum."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kubectl_runai_dr.cli import db_options as d
from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import ExitCode, UsageError


def verify(
    bundle: Annotated[Path, typer.Argument(help="The bundle file.")],
    drill: Annotated[bool, typer.Option(
        "--drill", help="Also restore the database dumps into a scratch database on the live "
        "server (or --target), check every table's row count, and drop it.",
        rich_help_panel="Drill")] = False,
    target: Annotated[str | None, typer.Option(
        "--target", help="The database pod for the drill, [NAMESPACE/]POD (default: the "
        "control plane's PostgreSQL).", rich_help_panel="Drill", show_default=False)] = None,
    db_container: d.DbContainer = None,
    db_mode: d.DbMode = "pod",
    db_host: d.DbHost = None,
    db_port: d.DbPort = None,
    db_user: d.DbUser = None,
    db_name: d.DbName = None,
    db_password_env: d.DbPasswordEnv = None,
    control_plane_namespace: o.ControlPlaneNamespace = "runai-backend",
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    output: o.Output = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Check a bundle: format version, structure and the sha256 of every file.

    With --drill, the database dumps are also restored into scratch databases on the live
    server and checked table by table (then dropped): the restore test a backup needs.

    Exit codes: 0 valid, 4 corrupt, truncated or tampered (the wrong file is named),
    1 the drill failed or found differences.
    """
    common = o.Common(kubeconfig, context, request_timeout, output=output, no_color=no_color,
                      verbose=verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.bundle.reader import Bundle

        b = Bundle.open(bundle)
        problems = b.verify()
        files = b.files
        data = {
            "bundle": str(bundle),
            "valid": not problems,
            "status": b.manifest.get("status"),
            "files": len(files),
            "bytes": sum(f["size"] for f in files.values()),
            "problems": [{"file": p.file, "message": p.message} for p in problems],
        }
        out, err = render.consoles(no_color)
        if output is not o.OutputFormat.table:
            render.emit(data, output.value)
        elif problems:
            err.print(render.table("Problems", ["FILE", "PROBLEM"],
                                   [[render.escape(p.file), render.escape(p.message)]
                                    for p in problems]))
            err.print(f"[bold red]error:[/] {render.escape(str(bundle))} is not valid: "
                      f"{len(problems)} problem(s), first: {render.escape(problems[0].file)} "
                      f"{render.escape(problems[0].message)}")
        else:
            out.print(f"{render.escape(str(bundle))}: valid ({data['files']} files, "
                      f"{render.human_size(float(data['bytes']))} checked)")
            if data["status"] == "partial":
                render.warn(err, "the bundle is valid but PARTIAL: some components failed "
                            "at backup time (`kubectl runai-dr inspect` shows which)")
        if problems:
            raise typer.Exit(int(ExitCode.INVALID_BUNDLE))
        if drill:
            _drill(b, common, target, control_plane_namespace, d.component_options(
                db_mode, None, None, db_container, db_host, db_port, db_user, db_name,
                db_password_env))


def _drill(b: Any, common: o.Common, target: str | None, control_plane_namespace: str,
           db_flags: dict[str, Any]) -> None:
    from kubectl_runai_dr import render
    from kubectl_runai_dr.cli.restore_database import render_result
    from kubectl_runai_dr.model import Names
    from kubectl_runai_dr.ops.restore_database import DatabaseRestoreOptions
    from kubectl_runai_dr.ops.restore_database import drill as run_drill
    from kubectl_runai_dr.plan.database import DbOptions

    if target:
        ns, _, pod = target.rpartition("/")
        db_flags.update(db_pod=pod, db_namespace=ns or None)
    try:
        db = DbOptions.from_component_options(db_flags)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    out, err = render.consoles(common.no_color)
    kube = common.connect()
    progress = render.RichProgress(err)
    try:
        result = run_drill(kube, b, DatabaseRestoreOptions(
            db=db, names=Names(control_plane_namespace=control_plane_namespace)), progress)
    finally:
        progress.close()
    if common.output is o.OutputFormat.table:
        out.print("\n[bold]drill[/]: restored into scratch databases, checked, dropped")
    render_result(result.to_json(), common.output, out, err)
    if not result.ok:
        raise typer.Exit(int(ExitCode.ERROR))
