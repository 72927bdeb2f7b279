"""`kubectl runai-dr backup`."""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_runai_dr.cli import complete
from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import Aborted, UsageError

BUNDLE = o.BUNDLE


def confirm_plaintext_secrets() -> None:
    """--include-secrets without a recipient: a bundle of secrets in clear. Asked on a
    terminal; refused in scripts unless --allow-plaintext-secrets."""
    import sys

    hint = ("encrypt it with --encrypt-to RECIPIENT (or --passphrase), or pass "
            "--allow-plaintext-secrets")
    if not sys.stdin.isatty():
        raise UsageError("--include-secrets writes TLS keys and credentials; without "
                         "encryption this needs --allow-plaintext-secrets", hint=hint)
    sys.stderr.write("The bundle will hold Secrets (TLS keys, credentials) UNENCRYPTED.\n"
                     "Write it anyway? [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise Aborted("not confirmed: no backup was taken", hint=hint)


@o.verb(db=True, storage="write")
def backup(
    components: Annotated[list[str] | None, typer.Argument(
        metavar="COMPONENT...", help="Back up only these components (e.g. `database`); "
        "default: all.", show_default=False, callback=o.comma_list,
        autocompletion=complete.backup_components)] = None,
    to: o.To = None,
    force: o.Force = False,
    include_secrets: Annotated[bool, typer.Option(
        "--include-secrets", help="Also back up TLS, CA and credential Secrets (the bundle "
        "then holds secrets).", rich_help_panel=BUNDLE)] = False,
    skip: Annotated[list[str] | None, typer.Option(
        "--skip", metavar="COMPONENT,...", help="Leave out these components (comma list or "
        "repeated).", rich_help_panel=BUNDLE, show_default=False, callback=o.comma_list,
        autocompletion=complete.backup_skip)] = None,
    no_database: Annotated[bool, typer.Option(
        "--no-database", help="Leave the database out (same as --skip database).",
        rich_help_panel=BUNDLE)] = False,
    snapshots: Annotated[bool, typer.Option(
        "--snapshots", help="Also take CSI VolumeSnapshots of the database, metrics and queue "
        "volumes (component `snapshots`, skipped without this flag) and record them.",
        rich_help_panel=o.VOLUMES)] = False,
    snapshot_class: o.SnapshotClass = None,
    volume_data: Annotated[bool, typer.Option(
        "--volume-data", help="Also copy the files of the Thanos receive claim and the other "
        "Run:ai data claims but the database's (storage without CSI snapshots) into the "
        "bundle, as tar through exec.", rich_help_panel=o.VOLUMES)] = False,
    volume_data_claim: Annotated[list[str] | None, typer.Option(
        "--volume-data-claim", metavar="CLAIM,...", help="With --volume-data: copy these "
        "claims (NAME or NAMESPACE/NAME) instead of the default ones.",
        rich_help_panel=o.VOLUMES, show_default=False, callback=o.comma_list)] = None,
    volume_data_image: o.VolumeDataImage = None,
    quiesce: Annotated[bool, typer.Option(
        "--quiesce", help="With --volume-data: scale each claim's StatefulSet to zero, copy "
        "through a helper pod, scale it back (on every exit path); asks first.",
        rich_help_panel=o.VOLUMES)] = False,
    yes: o.Yes = False,
    snapshot_timeout: Annotated[str, typer.Option(
        "--snapshot-timeout", metavar="DURATION", help="How long to wait for the snapshots "
        "to be ready.", rich_help_panel=o.VOLUMES)] = "10m",
    keep: Annotated[int | None, typer.Option(
        "--keep", min=1, metavar="N", help="After a complete backup, keep only the N newest "
        "bundles of this context in the --to directory (files named "
        "runai-dr-<context>-<time>.tar.gz; nothing else is touched).",
        rich_help_panel=BUNDLE, show_default=False)] = None,
    allow_plaintext_secrets: Annotated[bool, typer.Option(
        "--allow-plaintext-secrets", help="Allow --include-secrets without encryption in "
        "scripts (on a terminal the tool asks).", rich_help_panel=BUNDLE)] = False,
    no_record: Annotated[bool, typer.Option(
        "--no-record", help="Do not record this backup in the cluster (ConfigMap "
        "runai-dr-last-backup, read by `status`).", rich_help_panel=BUNDLE)] = False,
    *,
    common: o.Common,
) -> object:
    """Back up the Run:ai installation of the current context into one verifiable bundle.

    Exit codes: 0 complete, 3 partial (bundle written, a component failed), 5 cluster
    unreachable or credentials rejected, 6 forbidden.
    """
    from kubectl_runai_dr.cli import backup_view as view
    from kubectl_runai_dr.components import registry
    from kubectl_runai_dr.ops.backup import BackupOptions, run_backup
    from kubectl_runai_dr.plan.backup import plan_backup

    only = list(components or ())
    skip = [*(skip or ()), *(["database"] if no_database else [])]
    try:  # before connecting: a mistyped component is a usage error, whatever the cluster
        plan_backup(registry.BACKUP_STEPS, only=only, skip=skip, aliases=registry.ALIASES)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    opts = BackupOptions(output=to, force=force,
                         include_secrets=include_secrets, names=common.names,
                         only=tuple(only), skip=tuple(skip), record=not no_record, keep=keep,
                         db=common.db_options())
    if snapshots or ({"snapshots", "volumes"} & set(only) and not volume_data):
        from kubectl_runai_dr.components.volumes import SnapshotOptions

        opts.snapshots = SnapshotOptions(
            snapshot_class=snapshot_class,
            timeout=o.parse_duration(snapshot_timeout, flag="--snapshot-timeout") or 600.0)
    assert common.storage is not None
    opts.sealing = common.storage.sealing()
    if include_secrets and opts.sealing is None and not allow_plaintext_secrets:
        confirm_plaintext_secrets()
    if (volume_data_claim or quiesce or volume_data_image) and not volume_data:
        raise UsageError("--volume-data-claim, --volume-data-image and --quiesce go with "
                         "--volume-data", hint="add --volume-data")
    if volume_data:
        from kubectl_runai_dr.components.voldata import VolumeDataOptions
        from kubectl_runai_dr.plan.voldata import DEFAULT_DEBUG_IMAGE

        if quiesce and not yes:
            view.confirm_quiesce(common)
        opts.volume_data = VolumeDataOptions(
            claims=tuple(volume_data_claim or ()), image=volume_data_image or DEFAULT_DEBUG_IMAGE,
            quiesce=quiesce)
    view.starting(common, include_secrets=include_secrets)
    kube = common.connect()
    with common.progress() as progress:
        outcome = run_backup(kube, opts, progress=progress)
    view.show(common, outcome, keep=keep)
    return outcome
