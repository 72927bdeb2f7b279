"""The tool's version: one source of truth, the package metadata from pyproject.toml."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("kubectl-runai-dr")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# Filled in by the binary build (scripts/build.sh); empty in a source checkout.
BUILD_COMMIT = ""


def describe() -> str:
    """What `kubectl runai-dr version` prints (as a table)."""
    import platform

    return (f"kubectl-runai_dr {__version__} (commit {BUILD_COMMIT or 'unknown'}, "
            f"python {platform.python_version()})")
