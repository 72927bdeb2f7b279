"""`kubectl runai-dr helm values`: a values file usable with `helm upgrade --install -f`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kubectl_runai_dr.cli import complete
from kubectl_runai_dr.cli import options as o
from kubectl_runai_dr.cli.command import App

helm_app = App(help="The helm bridge: values of the Run:ai releases, read with no helm "
               "binary.", no_args_is_help=True)


@helm_app.command("values")
@o.verb(storage="read")
def values(
    bundle: Annotated[str | None, typer.Argument(
        metavar="BUNDLE", help="Read the values from this bundle (a file or s3://…); "
        "without it, from the live release.", show_default=False,
        autocompletion=complete.bundles)] = None,
    release: Annotated[str, typer.Option(
        "--release", metavar="RELEASE", help="runai-backend (control plane) or runai-cluster "
        "(cluster), or the names given by --control-plane-release / --cluster-release.",
        rich_help_panel=o.HELM)] = "runai-cluster",
    computed: Annotated[bool, typer.Option(
        "--all", help="Computed values (chart defaults included), as `helm get values --all`.",
        rich_help_panel=o.HELM)] = False,
    values_dir: o.ValuesDir = None,
    *,
    common: o.Common,
) -> None:
    """Print the values of a Run:ai helm release, from a bundle or the cluster, or write them
    to <release>-values.yaml in --values-dir (the file restore writes and helm reads).

    -o table and -o yaml print the values as helm stores them; -o json as JSON.
    """
    from kubectl_runai_dr.cli import helm_view as view
    from kubectl_runai_dr.components import helm
    from kubectl_runai_dr.errors import UsageError

    names = common.names
    releases = {names.control_plane_release: names.control_plane_namespace,
                names.cluster_release: names.cluster_namespace}
    if release not in releases:
        raise UsageError(f'unknown release "{release}"',
                         hint=f"use {names.control_plane_release} or {names.cluster_release} "
                              "(or rename them with --control-plane-release/--cluster-release)")
    if bundle is not None:
        from kubectl_runai_dr.bundle.reader import Bundle

        b = Bundle.open(bundle)
        try:
            text = helm.bundle_values(b, release, computed=computed)
        finally:
            b.close()
    else:
        text = helm.live_values(common.connect(), release, releases[release],
                                computed=computed)
    written = None
    if values_dir is not None:
        from kubectl_runai_dr.components.releases import write_values_file

        written = write_values_file(Path(values_dir), release, text)
    view.show_values(common, release, text, written)
