"""`kubectl runai-dr status`."""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.model import Names


def status(
    max_age: Annotated[str, typer.Option(
        "--max-age", help='Flag the last backup when older than this ("24h", "36h", "90m"; '
        '"0": never).', rich_help_panel="Checks")] = "24h",
    no_exec: Annotated[bool, typer.Option(
        "--no-exec", help="Do not exec psql in the database pod (no PostgreSQL version or "
        "sizes).", rich_help_panel="Checks")] = False,
    namespace: o.ClusterNamespace = "runai",
    control_plane_namespace: o.ControlPlaneNamespace = "runai-backend",
    cluster_release: o.ClusterRelease = "runai-cluster",
    control_plane_release: o.ControlPlaneRelease = "runai-backend",
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    output: o.Output = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Show what is installed, what is protected and what is missing; writes nothing.

    Sections: cluster, helm releases, database, volumes, Run:ai objects, last backup,
    permissions of the current user for every step of backup and restore; problems last,
    each with what to do.

    Exit codes: 0 healthy (notes only), 7 warnings, 8 a critical problem,
    5 cluster unreachable or credentials rejected.
    """
    common = o.Common(kubeconfig, context, request_timeout, output, no_color, verbose)
    with o.error_boundary(common):
        from datetime import datetime, timezone

        from kubectl_runai_dr import render
        from kubectl_runai_dr.ops.status import collect_status
        from kubectl_runai_dr.plan import status as plan

        threshold = o.parse_duration(max_age, flag="--max-age")
        names = Names(control_plane_namespace=control_plane_namespace,
                      cluster_namespace=namespace, control_plane_release=control_plane_release,
                      cluster_release=cluster_release)
        kube = common.connect()
        facts = collect_status(kube, names, exec_database=not no_exec)
        now = datetime.now(timezone.utc)
        problems = plan.evaluate(facts, max_age=threshold, now=now)
        doc = plan.report(facts, problems, now=now, max_age=threshold)
        if output is o.OutputFormat.table:
            from kubectl_runai_dr.cli.status_view import show_status

            out, _ = render.consoles(no_color)
            show_status(out, doc, all_permissions=verbose > 0)
        else:
            render.emit(doc, output.value)
        code = plan.exit_code(problems)
        if code:
            raise typer.Exit(int(code))
