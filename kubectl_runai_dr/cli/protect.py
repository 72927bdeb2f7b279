"""`kubectl runai-dr protect`: Retain the volumes under the control plane's claims."""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.errors import ExitCode


def protect(
    pvc: Annotated[list[str] | None, typer.Option(
        "--pvc", help="Another claim whose volume to protect (NAME or NAMESPACE/NAME); "
        "repeatable.", show_default=False,
        callback=o.comma_list)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the volumes that would change; change nothing.")] = False,
    control_plane_namespace: o.ControlPlaneNamespace = "runai-backend",
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    output: o.Output = o.OutputFormat.table,
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Set persistentVolumeReclaimPolicy Retain on the volumes of the control plane's claims.

    With Delete, deleting a claim (helm uninstall, a deleted namespace) destroys the
    database and metrics data; with Retain the volume stays and can be bound again.
    """
    common = o.Common(kubeconfig, context, request_timeout, output, no_color, verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.components.volumes import protect as do_protect
        from kubectl_runai_dr.model import Names

        out, err = render.consoles(no_color)
        result = do_protect(common.connect(),
                            Names(control_plane_namespace=control_plane_namespace),
                            extra=tuple(pvc or ()), dry_run=dry_run)
        if output is not o.OutputFormat.table:
            render.emit(result.to_json(), output.value)
        else:
            rows = []
            for v in result.volumes:
                if not v.needed:
                    action = "[dim]already protected[/]" if v.policy == "Retain" else "-"
                elif dry_run:
                    action = "[cyan]would set Retain[/]"
                elif v.volume in result.patched:
                    action = "[green]set to Retain[/]"
                else:
                    action = render.styled("failed")
                rows.append([render.escape(v.volume), render.escape(v.claim),
                             render.escape(v.policy), action])
            if rows:
                out.print(render.table(None, ["VOLUME", "CLAIM", "RECLAIM POLICY", "ACTION"],
                                       rows))
            else:
                out.print(f'no bound claims in namespace "{control_plane_namespace}"')
        for e in result.errors:
            render.warn(err, e)
        if result.errors:
            raise typer.Exit(int(ExitCode.ERROR))
