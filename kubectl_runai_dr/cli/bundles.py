"""`kubectl runai-dr bundles [LOCATION]`: the bundles in a directory or at an s3:// prefix."""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o


@o.verb(kube=False, names=False, storage="read")
def bundles(
    location: Annotated[str | None, typer.Argument(
        metavar="LOCATION", help="A directory or an s3://BUCKET/PREFIX/ (default: the "
        "current directory).", show_default=False)] = None,
    *,
    common: o.Common,
) -> object:
    """List the bundles at a location: name, context, time, status, size, encrypted.

    Interrupted backups show too: a local staging directory, or an S3 multipart upload
    that was never completed (never a bundle).
    """
    from kubectl_runai_dr.cli import bundles_view as view
    from kubectl_runai_dr.ops.bundles import list_bundles

    listing = list_bundles(location)
    view.show(common, listing)
    return None
