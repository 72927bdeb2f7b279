"""`kubectl runai-dr restore BUNDLE` (and `restore database BUNDLE`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import ExitCode, UsageError
from kubectl_runai_dr.model import Names

RESTORE = "Restore"
HELM = "Re-installation (helm)"


def restore(
    target: Annotated[str, typer.Argument(
        metavar="BUNDLE", help="The bundle to restore. `restore database BUNDLE` restores "
        "only the database (same as --only database).", show_default=False)],
    bundle_arg: Annotated[str | None, typer.Argument(
        metavar="[BUNDLE]", help="The bundle, after a step name (`database`).",
        show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan and, for every object, create / unchanged / update "
        "with a diff against the cluster; write nothing.", rich_help_panel=RESTORE)] = False,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Run only these steps (comma list or repeated): volumes, secrets, "
        "control-plane, database, cluster, runaiconfig, templates, namespaces.",
        rich_help_panel=RESTORE,
        callback=o.comma_list)] = None,
    skip: Annotated[list[str] | None, typer.Option(
        "--skip", help="Leave out these steps (comma list or repeated).", rich_help_panel=RESTORE,
        callback=o.comma_list)] = None,
    existing: Annotated[str, typer.Option(
        "--existing", help="Objects that already exist: `skip` leaves them alone and reports "
        "drift; `update` makes them match the bundle.", rich_help_panel=RESTORE)] = "skip",
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Do not ask for confirmation (scripts).",
        rich_help_panel=RESTORE)] = False,
    project: Annotated[list[str] | None, typer.Option(
        "--project", help="Restore only these projects' namespaces (repeatable).",
        rich_help_panel=RESTORE,
        callback=o.comma_list)] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=32, help="Parallel requests for namespaces and role bindings.",
        rich_help_panel=RESTORE)] = 8,
    run_helm: Annotated[bool, typer.Option(
        "--run-helm", help="Run the printed helm commands (helm must be on PATH) and wait for "
        "each release to be deployed.", rich_help_panel=HELM)] = False,
    values_dir: Annotated[Path | None, typer.Option(
        "--values-dir", help="Where the values files for helm are written (default: "
        "./runai-dr-values; they hold secrets).", rich_help_panel=HELM)] = None,
    existing_claim: Annotated[str | None, typer.Option(
        "--existing-claim", help="PersistentVolumeClaim of a restored database volume for the "
        "control plane (postgresql.primary.persistence.existingClaim).",
        rich_help_panel=HELM)] = None,
    control_plane_chart: Annotated[str | None, typer.Option(
        "--control-plane-chart", help="Chart reference or local chart for the control plane "
        "(air-gapped sites).", rich_help_panel=HELM)] = None,
    cluster_chart: Annotated[str | None, typer.Option(
        "--cluster-chart", help="Chart reference or local chart for the cluster.",
        rich_help_panel=HELM)] = None,
    control_plane_repo: Annotated[str | None, typer.Option(
        "--control-plane-repo", help="Helm repository URL of the control-plane chart.",
        rich_help_panel=HELM)] = None,
    cluster_repo: Annotated[str | None, typer.Option(
        "--cluster-repo", help="Helm repository URL of the cluster chart.",
        rich_help_panel=HELM)] = None,
    wait_timeout: Annotated[str, typer.Option(
        "--wait-timeout", "--helm-timeout", help='How long to wait, after each helm step, for '
        "a release to be deployed and for what the next steps need (the database pod Ready "
        'and PostgreSQL answering, the chart\'s CRDs served), e.g. "15m".',
        rich_help_panel=HELM)] = "15m",
    namespace: o.ClusterNamespace = "runai",
    control_plane_namespace: o.ControlPlaneNamespace = "runai-backend",
    cluster_release: o.ClusterRelease = "runai-cluster",
    control_plane_release: o.ControlPlaneRelease = "runai-backend",
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    fmt: Annotated[o.OutputFormat, typer.Option(
        "-o", "--format", help="Format of the report.", rich_help_panel=o.OUT,
        case_sensitive=False)] = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Restore a Run:ai installation from a bundle, in the documented recovery order.

    Steps: preflight, volumes, secrets, control-plane (helm), database, cluster (helm),
    runaiconfig, templates, namespaces. Every step is idempotent: after a failure, run the
    same command again. Exit codes: 0 done, 3 some objects failed, 4 invalid bundle, 5 unreachable,
    6 forbidden, 130 not confirmed.
    """
    common = o.Common(kubeconfig, context, request_timeout, fmt, no_color, verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.cli import restore_view as view
        from kubectl_runai_dr.components import registry
        from kubectl_runai_dr.components.restore_base import Existing, RestoreSettings
        from kubectl_runai_dr.ops.restore import Preflight, RestoreOptions, run_restore
        from kubectl_runai_dr.plan.restore import check_selection

        only_steps = list(only or ())
        if bundle_arg is not None:
            if target != "database":
                raise UsageError(f'unexpected argument "{bundle_arg}"',
                                 hint="usage: restore BUNDLE, or restore database BUNDLE")
            only_steps.append("database")
            bundle = bundle_arg
        else:
            bundle = target
        try:
            check_selection(registry.RESTORE_STEPS, registry.canonical(only_steps),
                            registry.canonical(skip or ()))
            policy = Existing(existing)
        except ValueError as exc:
            raise UsageError(str(exc) if "step" in str(exc) else
                             f'--existing must be skip or update, not "{existing}"') from None
        names = Names(control_plane_namespace=control_plane_namespace,
                      cluster_namespace=namespace, control_plane_release=control_plane_release,
                      cluster_release=cluster_release)
        charts = {k: v for k, v in ((control_plane_release, control_plane_chart),
                                    (cluster_release, cluster_chart)) if v}
        repos = {k: v for k, v in ((control_plane_release, control_plane_repo),
                                   (cluster_release, cluster_repo)) if v}
        settings = RestoreSettings(
            names=names, dry_run=dry_run, existing=policy, projects=tuple(project or ()),
            workers=workers, run_helm=run_helm,
            wait_timeout=o.parse_duration(wait_timeout, flag="--wait-timeout") or 0.0,
            values_dir=values_dir, kubeconfig=kubeconfig, existing_claim=existing_claim,
            chart_overrides=charts, repo_overrides=repos)
        opts = RestoreOptions(bundle=Path(bundle), settings=settings, only=tuple(only_steps),
                              skip=tuple(skip or ()), assume_yes=yes)
        out, err = render.consoles(no_color)
        table = fmt is o.OutputFormat.table

        def confirm(pf: Preflight) -> bool:
            view.show_preflight(err, pf)
            for w in pf.warnings:
                render.warn(err, w)
            for n in pf.notes:
                err.print(f"[dim]note:[/] {render.escape(n)}")
            if not sys.stdin.isatty():
                raise UsageError("restore needs a confirmation and the input is not a terminal",
                                 hint="check the target above and pass --yes")
            return typer.confirm(f'Restore into context "{pf.context}" ({pf.server})?',
                                 default=False, err=True)

        kube = common.connect()
        progress = render.RichProgress(err)
        try:
            outcome = run_restore(kube, opts, confirm=confirm, progress=progress)
        finally:
            progress.close()
        if table:
            if dry_run or yes:
                view.show_preflight(out, outcome.preflight)
                for w in outcome.preflight.warnings:
                    render.warn(err, w)
                for n in outcome.preflight.notes:
                    err.print(f"[dim]note:[/] {render.escape(n)}")
            view.show_outcome(out, outcome, verbose=verbose)
            if dry_run:
                out.print("\n[bold]dry run[/]: nothing was written")
        else:
            render.emit(outcome.to_json(), fmt.value)
        if outcome.failed:
            render.warn(err, "restore finished with failures in: "
                        + ", ".join(outcome.failed_steps))
            err.print(f"[yellow]hint:[/] {render.escape(outcome.hint)}")
            raise typer.Exit(int(ExitCode.PARTIAL))
