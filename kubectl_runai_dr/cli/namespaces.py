"""`kubectl runai-dr namespaces [BUNDLE]`: re-create project namespaces and role bindings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import ExitCode, UsageError


def namespaces(
    bundle: Annotated[Path | None, typer.Argument(
        help="Bundle to take namespaces and role bindings from.", show_default=False)] = None,
    from_live: Annotated[bool, typer.Option(
        "--from-live", help="No bundle: create the namespace of every projects.run.ai object "
        "that lacks one (runai-<project>, label runai/queue=<project>).")] = False,
    project: Annotated[list[str] | None, typer.Option(
        "--project", help="Only these projects (repeatable).",
        callback=o.comma_list)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print create / unchanged / update per object; write nothing.")
    ] = False,
    existing: Annotated[str, typer.Option(
        "--existing", help="Existing objects: `skip` (report drift) or `update`.")] = "skip",
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=32, help="Parallel requests.")] = 8,
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    fmt: Annotated[o.OutputFormat, typer.Option(
        "-o", "--format", help="Format of the report.", rich_help_panel=o.OUT,
        case_sensitive=False)] = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Re-create project namespaces (labels, annotations) and then their RoleBindings.

    Exit codes: 0 done, 3 some objects failed.
    """
    common = o.Common(kubeconfig, context, request_timeout, fmt, no_color, verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.cli import restore_view as view
        from kubectl_runai_dr.components.namespaces import run_namespaces
        from kubectl_runai_dr.components.restore_base import Existing, RestoreSettings
        from kubectl_runai_dr.plan.restore import resume_hint

        if (bundle is None) == (not from_live):
            raise UsageError("give a BUNDLE or --from-live (one of them)")
        try:
            policy = Existing(existing)
        except ValueError:
            raise UsageError(f'--existing must be skip or update, not "{existing}"') from None
        settings = RestoreSettings(dry_run=dry_run, existing=policy,
                                   projects=tuple(project or ()), workers=workers)
        out, err = render.consoles(no_color)
        kube = common.connect()
        progress = render.RichProgress(err)
        try:
            step = run_namespaces(kube, bundle, settings, from_live=from_live,
                                  progress=progress)
        finally:
            progress.close()
        for w in step.warnings:
            render.warn(err, w)
        if fmt is o.OutputFormat.table:
            view.show_objects(out, [step], verbose=verbose)
            out.print()
            out.print(view.summary_table([step]))
            if dry_run:
                out.print("\n[bold]dry run[/]: nothing was written")
        else:
            render.emit(step.to_json(), fmt.value)
        if step.failed:
            hint = resume_hint([step.name], "kubectl runai-dr namespaces")
            err.print(f"[yellow]hint:[/] {render.escape(hint.split(', or resume')[0])}")
            raise typer.Exit(int(ExitCode.PARTIAL))
