"""`kubectl runai-dr version`."""

from __future__ import annotations

import platform

from kubectl_runai_dr.cli import options as o


@o.verb(kube=False, names=False)
def version(*, common: o.Common) -> None:
    """Print the tool's version and build commit."""
    from kubectl_runai_dr._version import BUILD_COMMIT, __version__, describe

    data = {"version": __version__, "commit": BUILD_COMMIT or "unknown",
            "python": platform.python_version()}
    if common.table:
        print(describe())  # also printed by __main__ for a bare `version`
    else:
        from kubectl_runai_dr import render

        render.emit(data, common.output.value)
