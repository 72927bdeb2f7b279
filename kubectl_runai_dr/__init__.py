"""kubectl runai-dr: backup, drills and restore for self-hosted Run:ai installations."""

from __future__ import annotations

from typing import Any

__all__ = ["__version__"]


def __getattr__(name: str) -> Any:
    # The version comes from the package metadata (importlib.metadata, a tenth of the
    # start-up of `--help`): read when asked for, not whenever the package is imported.
    if name == "__version__":
        from kubectl_runai_dr._version import __version__

        return __version__
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
