"""Which backup components run, and why the others do not (pure).

The components and their order come from ``components/registry.py``; this module only
selects among them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ComponentStep:
    name: str
    title: str
    reason: str
    opt_in: str = ""  # the flag without which it is left out


@dataclass(frozen=True)
class PlannedComponent:
    step: ComponentStep
    run: bool
    why_not: str = ""

    @property
    def name(self) -> str:
        return self.step.name


def plan_backup(steps: Sequence[ComponentStep], *, only: Sequence[str] = (),
                skip: Sequence[str] = (), aliases: Mapping[str, str] | None = None,
                enabled: Sequence[str] = ()) -> list[PlannedComponent]:
    """Every component in order, marked to run or not and why not.

    ``aliases``: earlier component names and what they are called now. ``enabled``: the
    opt-in components whose flag was given (``--snapshots``, ``--include-secrets``).
    """
    aliases = aliases or {}
    only = [aliases.get(n, n) for n in only]
    skip = [aliases.get(n, n) for n in skip]
    known = [c.name for c in steps]
    unknown = sorted((set(only) | set(skip)) - set(known))
    if unknown:
        raise ValueError(f"unknown component(s): {', '.join(unknown)} "
                         f"(known: {', '.join(known)})")
    both = sorted(set(only) & set(skip))
    if both:
        raise ValueError(f"component(s) both chosen and skipped: {', '.join(both)}")
    out = []
    for c in steps:
        if only and c.name not in only:
            out.append(PlannedComponent(c, False, "not selected (a component list)"))
        elif c.name in skip:
            out.append(PlannedComponent(c, False, "skipped (--skip)"))
        elif c.opt_in and c.name not in enabled:
            out.append(PlannedComponent(c, False, f"only with {c.opt_in}"))
        else:
            out.append(PlannedComponent(c, True))
    return out
