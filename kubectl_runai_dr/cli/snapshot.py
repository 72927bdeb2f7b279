"""`kubectl runai-dr snapshot` (take snapshots now), `snapshot list`, `snapshot prune`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import ExitCode

SNAP = "Snapshots"

snapshot_app = typer.Typer(
    name="snapshot",
    help="CSI VolumeSnapshots of the database, metrics and queue volumes.\n\n"
    "`kubectl runai-dr snapshot [OPTIONS]` (no subcommand) takes the snapshots now: "
    "CHECKPOINT in the database pod, one VolumeSnapshot per claim (labelled "
    "app.kubernetes.io/managed-by=kubectl-runai-dr), wait until readyToUse, then a small "
    "bundle holding only their records (driver, snapshotHandle, size, the claim's class, "
    "access and volume modes), which `restore` uses to re-create the volumes here or in a "
    "new cluster.\n\n"
    "`snapshot list` shows the tool's snapshots with age and readiness; "
    "`snapshot prune --keep N` deletes the oldest.",
    context_settings={"help_option_names": ["-h", "--help"]},
)

Pvc = Annotated[list[str] | None, typer.Option(
    "--pvc", help="A claim to include, as NAME (control-plane namespace) or NAMESPACE/NAME; "
    "repeatable. Added to the documented claims (database, Thanos receive, redis queue) "
    "unless --only-pvc.", rich_help_panel=SNAP, show_default=False,
        callback=o.comma_list)]


@snapshot_app.callback(invoke_without_command=True)
def snapshot(
    ctx: typer.Context,
    pvc: Pvc = None,
    only_pvc: Annotated[bool, typer.Option(
        "--only-pvc", help="Snapshot only the --pvc claims (override the discovery).",
        rich_help_panel=SNAP)] = False,
    snapshot_class: Annotated[str | None, typer.Option(
        "--snapshot-class", help="VolumeSnapshotClass to use (default: the default class "
        "of each claim's CSI driver, or its only class).", rich_help_panel=SNAP)] = None,
    timeout: Annotated[str, typer.Option(
        "--timeout", help='How long to wait for the snapshots to be readyToUse ("10m").',
        rich_help_panel=SNAP)] = "10m",
    no_checkpoint: Annotated[bool, typer.Option(
        "--no-checkpoint", help="Do not run CHECKPOINT in the database pod first.",
        rich_help_panel=SNAP)] = False,
    output_file: Annotated[Path | None, typer.Option(
        "--output", help="Bundle file (or directory) for the snapshot records. Default: "
        "./runai-dr-<context>-<UTC time>.tar.gz", rich_help_panel="Bundle")] = None,
    no_bundle: Annotated[bool, typer.Option(
        "--no-bundle", help="Write no bundle (the snapshots are still listed by `snapshot "
        "list`, but `restore` needs a bundle that records them).",
        rich_help_panel="Bundle")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite an existing bundle file.", rich_help_panel="Bundle")] = False,
    control_plane_namespace: o.ControlPlaneNamespace = "runai-backend",
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    fmt: Annotated[o.OutputFormat, typer.Option(
        "-o", "--format", help="Format of the summary.", rich_help_panel=o.OUT,
        case_sensitive=False)] = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Take the snapshots now (no subcommand); the options apply to this only."""
    if ctx.invoked_subcommand is not None:
        return
    common = o.Common(kubeconfig, context, request_timeout, fmt, no_color, verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.components.volumes import SnapshotOptions
        from kubectl_runai_dr.model import Names
        from kubectl_runai_dr.ops.volumes import run_snapshot

        wait = o.parse_duration(timeout, flag="--timeout") or 600.0
        opts = SnapshotOptions(pvcs=tuple(pvc or ()), only_pvcs=only_pvc,
                               snapshot_class=snapshot_class, timeout=wait,
                               checkpoint=not no_checkpoint)
        out, err = render.consoles(no_color)
        kube = common.connect()
        progress = render.RichProgress(err)
        progress.start("volume snapshots")
        try:
            outcome = run_snapshot(kube, Names(control_plane_namespace=control_plane_namespace),
                                   opts, output=output_file, write_bundle=not no_bundle,
                                   force=force, progress=progress)
        finally:
            progress.close()
        run = outcome.run
        for w in run.warnings:
            render.warn(err, w)
        if fmt is not o.OutputFormat.table:
            render.emit(outcome.to_json(), fmt.value)
            return
        if not run.records:
            out.print(render.escape(run.reason))
            return
        rows = [[render.escape(r["namespace"]), render.escape(r["volumeSnapshotName"]),
                 render.escape(r["claim"]["name"]), render.escape(str(r["restoreSize"])),
                 render.escape(r["deletionPolicy"]), render.escape(r["snapshotHandle"])]
                for r in run.records]
        out.print(render.table(None, ["NAMESPACE", "SNAPSHOT", "CLAIM", "SIZE",
                                      "DELETION POLICY", "HANDLE"], rows))
        if run.checkpoint:
            out.print(f"\ndatabase CHECKPOINT: {render.escape(run.checkpoint)}")
        if outcome.bundle is not None:
            out.print(f"bundle {render.escape(str(outcome.bundle))} (snapshot records only)")


@snapshot_app.command("list")
def list_(
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    output: o.Output = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """The tool's VolumeSnapshots in every namespace, oldest first, with age and readiness."""
    common = o.Common(kubeconfig, context, request_timeout, output, no_color, verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.components.volumes import list_snapshots

        out, _ = render.consoles(no_color)
        items = list_snapshots(common.connect())
        if output is not o.OutputFormat.table:
            render.emit([s.to_json() for s in items], output.value)
            return
        if not items:
            out.print("no snapshots made by kubectl runai-dr")
            return
        rows = [[render.escape(s.namespace), render.escape(s.name), render.escape(s.claim),
                 render.escape(s.backup_id),
                 render.styled("failed") if s.error else ("yes" if s.ready else "no"),
                 render.escape(s.restore_size or "-"), render.human_age(s.created),
                 render.escape(s.error)] for s in items]
        out.print(render.table(None, ["NAMESPACE", "NAME", "CLAIM", "BACKUP", "READY", "SIZE",
                                      "AGE", "ERROR"], rows))


@snapshot_app.command()
def prune(
    keep: Annotated[int, typer.Option(
        "--keep", help="Ready snapshots to keep per claim (the newest); at least 1.",
        min=1)] = ...,  # type: ignore[assignment]
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would be deleted; delete nothing.")] = False,
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    output: o.Output = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Delete the oldest of the tool's snapshots, keeping the newest N ready ones per claim.

    Snapshots newer than those (in progress or failed) are kept. Whether the storage
    snapshot goes too follows its content's deletionPolicy.
    """
    common = o.Common(kubeconfig, context, request_timeout, output, no_color, verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.components.volumes import prune as do_prune

        out, err = render.consoles(no_color)
        result = do_prune(common.connect(), keep, dry_run=dry_run)
        if output is not o.OutputFormat.table:
            render.emit(result.to_json(), output.value)
        else:
            verb = "would delete" if dry_run else "deleted"
            done = result.decision.delete if dry_run else result.deleted
            for s in done:
                out.print(f"{verb} {render.escape(s.namespace)}/{render.escape(s.name)} "
                          f"(claim {render.escape(s.claim)}, {render.human_age(s.created)} old)")
            out.print(f"{len(done)} {verb}, {len(result.decision.keep)} kept")
        for e in result.errors:
            render.warn(err, e)
        if result.errors:
            raise typer.Exit(int(ExitCode.ERROR))
