"""kubectl runai-dr: backup, drills and restore for self-hosted Run:ai installations."""

from __future__ import annotations

from kubectl_runai_dr._version import __version__

__all__ = ["__version__"]
