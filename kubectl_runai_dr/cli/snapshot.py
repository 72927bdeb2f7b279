"""`kubectl runai-dr snapshot` (take snapshots now), `snapshot list`, `snapshot prune`."""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.cli.command import App

VOLUMES = o.VOLUMES

snapshot_app = App(
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
)


@snapshot_app.callback(invoke_without_command=True)
@o.verb(storage="write")
def snapshot(
    ctx: typer.Context,
    pvc: o.Pvc = None,
    only_pvc: Annotated[bool, typer.Option(
        "--only-pvc", help="Snapshot only the --pvc claims, not the documented ones "
        "(database, Thanos receive, redis queue).", rich_help_panel=VOLUMES)] = False,
    snapshot_class: o.SnapshotClass = None,
    timeout: Annotated[str, typer.Option(
        "--timeout", metavar="DURATION", help="How long to wait for the snapshots to be "
        "readyToUse.", rich_help_panel=VOLUMES)] = "10m",
    no_checkpoint: Annotated[bool, typer.Option(
        "--no-checkpoint", help="Do not run CHECKPOINT in the database pod first.",
        rich_help_panel=VOLUMES)] = False,
    to: o.To = None,
    no_bundle: Annotated[bool, typer.Option(
        "--no-bundle", help="Write no bundle (the snapshots are still listed by `snapshot "
        "list`, but `restore` needs a bundle that records them).",
        rich_help_panel=o.BUNDLE)] = False,
    force: o.Force = False,
    *,
    common: o.Common,
) -> object:
    """Take the snapshots now (no subcommand); the options apply to this only."""
    if ctx.invoked_subcommand is not None:
        return None
    from kubectl_runai_dr.cli import volumes_view as view
    from kubectl_runai_dr.components.volumes import SnapshotOptions
    from kubectl_runai_dr.ops.volumes import run_snapshot

    wait = o.parse_duration(timeout, flag="--timeout") or 600.0
    opts = SnapshotOptions(pvcs=tuple(pvc or ()), only_pvcs=only_pvc,
                           snapshot_class=snapshot_class, timeout=wait,
                           checkpoint=not no_checkpoint)
    kube = common.connect()
    with common.progress("volume snapshots") as progress:
        assert common.storage is not None
        outcome = run_snapshot(kube, common.names, opts, output=to,
                               write_bundle=not no_bundle, force=force, progress=progress,
                               sealing=common.storage.sealing())
    view.show_snapshot(common, outcome)
    return outcome


@snapshot_app.command("list")
@o.verb(names=False)
def list_(*, common: o.Common) -> None:
    """The tool's VolumeSnapshots in every namespace, oldest first, with age and readiness."""
    from kubectl_runai_dr.cli import volumes_view as view
    from kubectl_runai_dr.components.volumes import list_snapshots

    view.show_list(common, list_snapshots(common.connect()))


@snapshot_app.command()
@o.verb(names=False)
def prune(
    keep: Annotated[int, typer.Option(
        "--keep", metavar="N", help="Ready snapshots to keep per claim (the newest); at "
        "least 1.", min=1, show_default=False)] = ...,  # type: ignore[assignment]
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would be deleted; delete nothing.")] = False,
    *,
    common: o.Common,
) -> object:
    """Delete the oldest of the tool's snapshots, keeping the newest N ready ones per claim.

    Snapshots newer than those (in progress or failed) are kept. Whether the storage
    snapshot goes too follows its content's deletionPolicy. Exit codes: 0 done, 3 some
    could not be deleted.
    """
    from kubectl_runai_dr.cli import volumes_view as view
    from kubectl_runai_dr.components.volumes import prune as do_prune

    result = do_prune(common.connect(), keep, dry_run=dry_run)
    view.show_prune(common, result)
    return result
