"""`kubectl runai-dr restore BUNDLE` (and `restore database BUNDLE`, `restore-database`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubectl_runai_dr.cli import complete
from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import UsageError

RESTORE = o.RESTORE
HELM = o.HELM


@o.verb(db=True, storage="read")
def restore(
    args: Annotated[list[str], typer.Argument(
        metavar="[database] BUNDLE", help="The bundle to restore. `restore database BUNDLE` "
        "restores only the database (the same as --only database).", show_default=False,
        autocompletion=complete.restore_args)],
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan and, for every object, create / unchanged / update "
        "with a diff against the cluster; write nothing.", rich_help_panel=RESTORE)] = False,
    only: Annotated[list[str] | None, typer.Option(
        "--only", metavar="STEP,...", help="Run only these steps (comma list or repeated): "
        f"{', '.join(complete.RESTORABLE)}.", rich_help_panel=RESTORE, show_default=False,
        callback=o.comma_list, autocompletion=complete.restore_steps)] = None,
    skip: Annotated[list[str] | None, typer.Option(
        "--skip", metavar="STEP,...", help="Leave out these steps (comma list or repeated).",
        rich_help_panel=RESTORE, show_default=False, callback=o.comma_list,
        autocompletion=complete.restore_steps)] = None,
    existing: o.Existing = "skip",
    yes: o.Yes = False,
    project: o.Project = None,
    workers: o.Workers = o.DEFAULT_WORKERS,
    run_helm: Annotated[bool, typer.Option(
        "--run-helm", help="Run the printed helm commands (helm must be on PATH) and wait for "
        "each release to be deployed.", rich_help_panel=HELM)] = False,
    values_dir: o.ValuesDir = None,
    storage_class: Annotated[str | None, typer.Option(
        "--storage-class", metavar="CLASS", help="Storage class of every restored claim "
        "instead of the recorded one.", rich_help_panel=RESTORE, show_default=False)] = None,
    volume_data_image: o.VolumeDataImage = None,
    existing_claim: Annotated[str | None, typer.Option(
        "--existing-claim", metavar="CLAIM", help="PersistentVolumeClaim of a restored "
        "database volume for the control plane (postgresql.primary.persistence.existingClaim).",
        rich_help_panel=HELM, show_default=False)] = None,
    control_plane_chart: Annotated[str | None, typer.Option(
        "--control-plane-chart", metavar="CHART", help="Chart reference or local chart for "
        "the control plane (air-gapped sites).", rich_help_panel=HELM, show_default=False)
    ] = None,
    cluster_chart: Annotated[str | None, typer.Option(
        "--cluster-chart", metavar="CHART", help="Chart reference or local chart for the "
        "cluster.", rich_help_panel=HELM, show_default=False)] = None,
    control_plane_repo: Annotated[str | None, typer.Option(
        "--control-plane-repo", metavar="URL", help="Helm repository URL of the "
        "control-plane chart.", rich_help_panel=HELM, show_default=False)] = None,
    cluster_repo: Annotated[str | None, typer.Option(
        "--cluster-repo", metavar="URL", help="Helm repository URL of the cluster chart.",
        rich_help_panel=HELM, show_default=False)] = None,
    wait_timeout: Annotated[str, typer.Option(
        "--wait-timeout", "--helm-timeout", metavar="DURATION", help="How long to wait, "
        "after each helm step, for a release to be deployed and for what the next steps "
        "need (the database pod Ready and PostgreSQL answering, the chart's CRDs served).",
        rich_help_panel=HELM)] = "15m",
    *,
    common: o.Common,
) -> object:
    """Restore a Run:ai installation from a bundle, in the documented recovery order.

    Steps: preflight, volumes, secrets, control-plane (helm), database, cluster (helm),
    runaiconfig, templates, namespaces. Every step is idempotent: after a failure, run the
    same command again. Exit codes: 0 done, 3 some objects or steps failed (a database
    whose row counts differ after the restore included), 4 invalid bundle, 5 unreachable,
    6 forbidden, 130 not confirmed.
    """
    from kubectl_runai_dr.cli import restore_view as view
    from kubectl_runai_dr.components import registry
    from kubectl_runai_dr.components.restore_base import Existing, RestoreSettings
    from kubectl_runai_dr.ops.restore import RestoreOptions, run_restore
    from kubectl_runai_dr.plan.restore import check_selection

    only_steps = list(only or ())
    if len(args) == 2 and args[0] == "database":
        only_steps.append("database")
    elif len(args) != 1:
        raise UsageError(f"unexpected arguments: {' '.join(args)}",
                         hint="usage: restore BUNDLE, or restore database BUNDLE")
    try:
        check_selection(registry.RESTORE_STEPS, registry.canonical(only_steps),
                        registry.canonical(skip or ()))
        policy = Existing(existing)
    except ValueError as exc:
        raise UsageError(str(exc) if "step" in str(exc) else
                         f'--existing must be skip or update, not "{existing}"') from None
    names = common.names
    charts = {k: v for k, v in ((names.control_plane_release, control_plane_chart),
                                (names.cluster_release, cluster_chart)) if v}
    repos = {k: v for k, v in ((names.control_plane_release, control_plane_repo),
                               (names.cluster_release, cluster_repo)) if v}
    settings = RestoreSettings(
        names=names, dry_run=dry_run, existing=policy, projects=tuple(project or ()),
        workers=workers, run_helm=run_helm,
        wait_timeout=o.parse_duration(wait_timeout, flag="--wait-timeout") or 0.0,
        values_dir=Path(values_dir) if values_dir else None, kubeconfig=common.kubeconfig,
        existing_claim=existing_claim, chart_overrides=charts, repo_overrides=repos,
        storage_class=storage_class, volume_data_image=volume_data_image)
    opts = RestoreOptions(bundle=args[-1], settings=settings, only=tuple(only_steps),
                          skip=tuple(skip or ()), assume_yes=yes,
                          db_options=common.db_options())
    kube = common.connect()
    with common.progress() as progress:
        outcome = run_restore(kube, opts, confirm=lambda pf: view.confirm(common, pf),
                              progress=progress)
    view.show(common, outcome, preflight=dry_run or yes)
    return outcome


ALIAS_HELP = ("Restore the database and check its row counts: `restore --only database`.\n\n"
              "The same options, output and exit codes as `restore --only database`: the "
              "database from the bundle into the control plane's PostgreSQL (--db-* to "
              "choose another), then every table's row count checked against the backup.")
# `restore-database BUNDLE`: registered in app.py as restore with --only defaulting to this
ALIAS_DEFAULTS = {"only": ["database"]}
