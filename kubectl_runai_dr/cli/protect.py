"""`kubectl runai-dr protect`: Retain the volumes under the control plane's claims."""

from __future__ import annotations

from typing import Annotated

import typer

from kubectl_runai_dr.cli import options as o


@o.verb()
def protect(
    pvc: o.Pvc = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the volumes that would change; change nothing.")] = False,
    *,
    common: o.Common,
) -> object:
    """Set persistentVolumeReclaimPolicy Retain on the volumes of the control plane's claims.

    With Delete, deleting a claim (helm uninstall, a deleted namespace) destroys the
    database and metrics data; with Retain the volume stays and can be bound again.
    Exit codes: 0 done, 3 some volumes could not be changed.
    """
    from kubectl_runai_dr.cli import volumes_view as view
    from kubectl_runai_dr.components.volumes import protect as do_protect

    result = do_protect(common.connect(), common.names, extra=tuple(pvc or ()),
                        dry_run=dry_run)
    view.show_protect(common, result)
    return result
