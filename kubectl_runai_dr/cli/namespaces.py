"""`kubectl runai-dr namespaces [BUNDLE]`: re-create project namespaces and role bindings."""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_runai_dr.cli import complete
from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import UsageError


@o.verb(names=False, storage="read")
def namespaces(
    bundle: Annotated[str | None, typer.Argument(
        metavar="BUNDLE", help="Bundle (a file or s3://…) to take namespaces and role "
        "bindings from.",
        show_default=False, autocompletion=complete.bundles)] = None,
    from_live: Annotated[bool, typer.Option(
        "--from-live", help="No bundle: create the namespace of every projects.run.ai object "
        "that lacks one (runai-<project>, label runai/queue=<project>).",
        rich_help_panel=o.RESTORE)] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print create / unchanged / update per object; write nothing.",
        rich_help_panel=o.RESTORE)] = False,
    project: o.Project = None,
    existing: o.Existing = "skip",
    workers: o.Workers = o.DEFAULT_WORKERS,
    *,
    common: o.Common,
) -> object:
    """Re-create project namespaces (labels, annotations) and then their RoleBindings.

    Exit codes: 0 done, 3 some objects failed.
    """
    from kubectl_runai_dr.cli import restore_view as view
    from kubectl_runai_dr.components.namespaces import run_namespaces
    from kubectl_runai_dr.components.restore_base import Existing, RestoreSettings

    if (bundle is None) == (not from_live):
        raise UsageError("give a BUNDLE or --from-live (one of them)")
    try:
        policy = Existing(existing)
    except ValueError:
        raise UsageError(f'--existing must be skip or update, not "{existing}"') from None
    settings = RestoreSettings(dry_run=dry_run, existing=policy,
                               projects=tuple(project or ()), workers=workers)
    kube = common.connect()
    with common.progress() as progress:
        step = run_namespaces(kube, bundle, settings, from_live=from_live, progress=progress)
    view.show_namespaces(common, step, dry_run=dry_run)
    return step
