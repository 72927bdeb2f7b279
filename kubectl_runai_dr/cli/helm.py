"""`kubectl runai-dr helm values`: a values file usable with `helm upgrade --install -f`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o

helm_app = typer.Typer(
    help="The helm bridge: values of the Run:ai releases, read with no helm binary.",
    no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]})


@helm_app.command("values")
def values(
    bundle: Annotated[Path | None, typer.Argument(
        help="Read the values from this bundle; without it, from the live release.",
        show_default=False)] = None,
    release: Annotated[str, typer.Option(
        "--release", help="runai-backend (control plane) or runai-cluster (cluster), or the "
        "names given by --control-plane-release / --cluster-release.")] = "runai-cluster",
    computed: Annotated[bool, typer.Option(
        "--all", help="Computed values (chart defaults included), as `helm get values --all`.")
    ] = False,
    output_file: Annotated[Path | None, typer.Option(
        "--output", help="Write to this file (mode 0600: values hold secrets) instead of "
        "stdout.")] = None,
    namespace: o.ClusterNamespace = "runai",
    control_plane_namespace: o.ControlPlaneNamespace = "runai-backend",
    cluster_release: o.ClusterRelease = "runai-cluster",
    control_plane_release: o.ControlPlaneRelease = "runai-backend",
    kubeconfig: o.Kubeconfig = None,
    context: o.Context = None,
    request_timeout: o.RequestTimeout = "0",
    no_color: o.NoColor = False,
    verbose: o.Verbose = 0,
) -> None:
    """Print (or write) the values of a Run:ai helm release, from a bundle or the cluster."""
    common = o.Common(kubeconfig, context, request_timeout, o.OutputFormat.table, no_color,
                      verbose)
    with o.error_boundary(common):
        from kubectl_runai_dr import render
        from kubectl_runai_dr.components import helm
        from kubectl_runai_dr.errors import UsageError

        releases = {control_plane_release: control_plane_namespace,
                    cluster_release: namespace}
        if release not in releases:
            raise UsageError(f'unknown release "{release}"',
                             hint=f"use {control_plane_release} or {cluster_release} (or "
                                  "rename them with --control-plane-release/--cluster-release)")
        if bundle is not None:
            from kubectl_runai_dr.bundle.reader import Bundle

            b = Bundle.open(bundle)
            try:
                text = helm.bundle_values(b, release, computed=computed)
            finally:
                b.close()
        else:
            kube = common.connect()
            text = helm.live_values(kube, release, releases[release], computed=computed)
        if output_file is None:
            typer.echo(text, nl=False)
            return
        fd = os.open(output_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(output_file, 0o600)
        _, err = render.consoles(no_color)
        err.print(f"wrote {render.escape(str(output_file))} (holds the release's values, "
                  "which may include secrets)")
