"""`kubectl runai-dr version`."""

from __future__ import annotations

import platform

from kubectl_runai_dr.cli import options as o


def version(output: o.Output = o.OutputFormat.table) -> None:
    """Print the tool's version and build commit."""
    from kubectl_runai_dr._version import BUILD_COMMIT, __version__

    data = {"version": __version__, "commit": BUILD_COMMIT or "unknown",
            "python": platform.python_version()}
    if output is o.OutputFormat.table:
        print(f"kubectl-runai_dr {data['version']} (commit {data['commit']}, "
              f"python {data['python']})")
    else:
        from kubectl_runai_dr import render

        render.emit(data, output.value)
