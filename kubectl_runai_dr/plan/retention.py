"""Which old bundles a scheduled backup may delete (pure).

A candidate is a regular file with this tool's default name
(``runai-dr-<context>-<UTC time>.tar.gz``) whose manifest records the same context as the
backup: the context in a file name is made file-name safe and so can be shared by several
contexts (``prod/eu`` and ``prod_eu``), the manifest's cannot. Candidates are ordered by
the time in their names. The bundle just written is always kept (it counts as one of the
``keep``), and a name dated in the future (a clock that was wrong, or a planted name) is
neither counted nor deleted: it is reported.

``keep`` counts per component: the ``keep`` newest bundles holding each component (the
database, either chart's values, the projects, …) are all kept. A run of backups made with
``--skip database`` therefore never rotates the last database dumps away; with the same
components in every backup this is simply the ``keep`` newest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone

BUNDLE_NAME = re.compile(
    r"^runai-dr-(?P<context>.+)-(?P<stamp>\d{8}T\d{6}Z)\.tar\.gz(?P<encrypted>\.age)?$")


def name_time(name: str) -> datetime | None:
    """The UTC time in a default bundle name; None for other names."""
    m = BUNDLE_NAME.match(name)
    if not m:
        return None
    try:
        return datetime.strptime(m.group("stamp"), "%Y%m%dT%H%M%SZ").replace(
            tzinfo=timezone.utc)
    except ValueError:
        return None


@dataclass(frozen=True)
class Candidate:
    """A bundle file beside the new one: its name and the context its manifest records."""

    name: str
    context: str
    # the components whose data the bundle holds (None: unknown, counted as holding all)
    components: frozenset[str] | None = None


@dataclass
class RetentionPlan:
    delete: list[str] = field(default_factory=list)  # oldest first
    keep: list[str] = field(default_factory=list)  # newest first, the new bundle first
    future: list[str] = field(default_factory=list)  # dated after `now`: left alone


def plan_retention(candidates: Iterable[Candidate], *, context: str, keep: int,
                   just_written: str, now: datetime,
                   written_components: frozenset[str] | None = None) -> RetentionPlan:
    """The bundles of ``context`` to delete: those not among the ``keep`` newest holding
    any of their components; never ``just_written`` (holding ``written_components``)."""
    if keep < 1:
        raise ValueError("keep must be at least 1")
    plan = RetentionPlan(keep=[just_written])
    dated: list[tuple[datetime, Candidate]] = []
    for c in candidates:
        when = name_time(c.name)
        if c.name == just_written or c.context != context or when is None:
            continue
        if when > now:
            plan.future.append(c.name)
        else:
            dated.append((when, c))
    dated.sort(key=lambda x: (x[0], x[1].name), reverse=True)
    held: dict[str, int] = {}  # component -> kept bundles holding it (newest first)
    everything = "*"  # a bundle whose components are unknown counts for every component

    def count(components: frozenset[str] | None) -> None:
        for comp in (components if components is not None else {everything}):
            held[comp] = held.get(comp, 0) + 1

    def needed(components: frozenset[str] | None) -> bool:
        if components is None:
            return held.get(everything, 0) < keep or any(n < keep for n in held.values())
        return any(held.get(comp, 0) + held.get(everything, 0) < keep for comp in components)

    count(written_components)
    deleted: list[str] = []
    for _, c in dated:
        if needed(c.components):
            plan.keep.append(c.name)
            count(c.components)
        else:
            deleted.append(c.name)
    plan.delete = list(reversed(deleted))
    plan.future.sort()
    return plan
