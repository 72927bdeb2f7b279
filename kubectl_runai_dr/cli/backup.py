"""`kubectl runai-dr backup`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubectl_runai_dr.cli import db_options as d
from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import ExitCode, UsageError
from kubectl_runai_dr.model import Names


def backup(
    components: Annotated[list[str] | None, typer.Argument(
        help="Back up only these components (e.g. `database`); default: all.",
        show_default=False,
        callback=o.comma_list)] = None,
    output_file: Annotated[Path | None, typer.Option(
        "--output", help="Bundle file (or directory for the default name). Default: "
        "./runai-dr-<context>-<UTC time>.tar.gz", rich_help_panel="Bundle")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite an existing bundle file.", rich_help_panel="Bundle")] = False,
    include_secrets: Annotated[bool, typer.Option(
        "--include-secrets", help="Also back up TLS, CA and credential Secrets (the bundle "
        "then holds secrets).", rich_help_panel="Bundle")] = False,
    skip: Annotated[list[str] | None, typer.Option(
        "--skip", help="Skip a component (repeatable).", rich_help_panel="Bundle",
        callback=o.comma_list)] = None,
    no_database: Annotated[bool, typer.Option(
        "--no-database", help="Leave the database out (same as --skip database).",
        rich_help_panel="Bundle")] = False,
    snapshots: Annotated[bool, typer.Option(
        "--snapshots", help="Also take CSI VolumeSnapshots of the database, metrics and queue "
        "volumes (component `snapshots`, skipped without this flag) and record them.",
        rich_help_panel="Bundle")] = False,
    snapshot_class: Annotated[str | None, typer.Option(
        "--snapshot-class", help="VolumeSnapshotClass for --snapshots (default: the "
        "driver's default class).", rich_help_panel="Bundle")] = None,
    snapshot_timeout: Annotated[str, typer.Option(
        "--snapshot-timeout", help="How long to wait for the snapshots to be ready.",
        rich_help_panel="Bundle")] = "10m",
    db_mode: d.DbMode = "pod",
    db_namespace: d.DbNamespace = None,
    db_pod: d.DbPod = None,
    db_container: d.DbContainer = None,
    db_host: d.DbHost = None,
    db_port: d.DbPort = None,
    db_user: d.DbUser = None,
    db_name: d.DbName = None,
    db_password_env: d.DbPasswordEnv = None,
    keep: Annotated[int | None, typer.Option(
        "--keep", min=1, help="After a complete backup, keep only the N newest bundles of this "
        "context in the output directory (files named runai-dr-<context>-<time>.tar.gz; "
        "nothing else is touched).", rich_help_panel="Bundle")] = None,
    no_record: Annotated[bool, typer.Option(
        "--no-record", help="Do not record this backup in the cluster (ConfigMap "
        "runai-dr-last-backup, read by `status`).", rich_help_panel="Bundle")] = False,
    namespace: o.ClusterNamespace = "runai",
    control_plane_namespace: o.ControlPlaneNamespace = "runai-backend",
    cluster_release: o.ClusterRelease = "runai-cluster",
    control_plane_release: o.ControlPlaneRelease = "runai-backend",
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    fmt: Annotated[o.OutputFormat, typer.Option(
        "-o", "--format", help="Format of the summary.", rich_help_panel=o.OUT,
        case_sensitive=False)] = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Back up the Run:ai installation of the current context into one verifiable bundle.

    Exit codes: 0 complete, 3 partial (bundle written, a component failed),
    5 cluster unreachable or credentials rejected, 6 forbidden.
    """
    common = o.Common(kubeconfig, context, request_timeout, fmt, no_color, verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.components import registry
        from kubectl_runai_dr.ops.backup import BackupOptions, run_backup
        from kubectl_runai_dr.plan.backup import plan_backup

        skip = [*(skip or []), *(["database"] if no_database else [])]
        try:
            plan_backup(registry.BACKUP_STEPS, only=components or (), skip=skip,
                        aliases=registry.ALIASES)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        out, err = render.consoles(no_color)
        if include_secrets:
            render.warn(err, "--include-secrets: the bundle will hold Secret values (TLS keys, "
                        "credentials); keep it as safe as the cluster's own secrets")
        names = Names(control_plane_namespace=control_plane_namespace,
                      cluster_namespace=namespace, control_plane_release=control_plane_release,
                      cluster_release=cluster_release)
        opts = BackupOptions(output=output_file, force=force, include_secrets=include_secrets,
                             names=names, only=tuple(components or ()), skip=tuple(skip or ()),
                             record=not no_record, keep=keep,
                             db=d.db_options(db_mode, db_namespace, db_pod, db_container,
                                             db_host, db_port, db_user, db_name,
                                             db_password_env))
        if snapshots or {"snapshots", "volumes"} & set(components or ()):
            from kubectl_runai_dr.components.volumes import SnapshotOptions

            opts.snapshots = SnapshotOptions(
                snapshot_class=snapshot_class,
                timeout=o.parse_duration(snapshot_timeout, flag="--snapshot-timeout") or 600.0)
        kube = common.connect()
        progress = render.RichProgress(err)
        try:
            outcome = run_backup(kube, opts, progress=progress)
        finally:
            progress.close()
        for w in outcome.warnings:
            render.warn(err, w)
        for name in outcome.deleted:
            err.print(f"deleted old bundle {render.escape(name)} (--keep {keep})")
        if fmt is not o.OutputFormat.table:
            render.emit({"bundle": str(outcome.path), "manifest": outcome.manifest,
                         "deleted": outcome.deleted}, fmt.value)
        else:
            m = outcome.manifest
            out.print(render.table(None, ["COMPONENT", "STATUS", "OBJECTS", "SIZE", "NOTE"],
                                   render.component_rows(m)))
            size = outcome.path.stat().st_size
            out.print(f"\nbundle {render.escape(str(outcome.path))} "
                      f"({render.human_size(size)}), {render.styled(m['status'])}")
        if outcome.partial:
            failed = ", ".join(outcome.manifest["failedComponents"])
            render.warn(err, f"backup is PARTIAL: {failed} failed (see NOTE); the bundle is "
                        "marked partial. Fix the cause and run the backup again.")
            raise typer.Exit(int(ExitCode.PARTIAL))
