"""Which old bundles a scheduled backup may delete (pure).

Only files that carry this tool's default name for the same context are candidates
(`runai-dr-<context>-<UTC time>.tar.gz`), newest first by the time in their name; anything
else in the directory is never touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from kubectl_runai_dr.bundle.manifest import safe_context

_STAMP = r"(\d{8}T\d{6}Z)"


def bundles_to_delete(names: Iterable[str], context: str, keep: int) -> list[str]:
    """The file names beyond the ``keep`` newest bundles of ``context``, oldest first."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    pattern = re.compile(rf"^runai-dr-{re.escape(safe_context(context))}-{_STAMP}\.tar\.gz$")
    ours = sorted((m.group(1), name) for name in names if (m := pattern.match(name)))
    return [name for _, name in ours[:-keep]] if len(ours) > keep else []
