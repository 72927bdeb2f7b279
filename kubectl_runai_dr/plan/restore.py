"""The restore plan: the documented recovery order as data, one reason per step (pure).

The steps themselves are the components' (``components/registry.py``), in their order,
after a preflight; this module plans over them without knowing what they do.

The order is the one in Run:ai's disaster-recovery procedure: volumes before the control
plane that mounts them, the control plane before its database is loaded, the cluster
(which holds the cluster's identity and installs the RunaiConfig CRD) before the
RunaiConfig, and namespaces before the RoleBindings inside them.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubectl_runai_dr.conventions import COMMAND

PREFLIGHT = "preflight"


@dataclass(frozen=True)
class Prerequisite:
    """Something a step needs that an earlier step of the same restore brings: the restore
    waits for it (or, in a dry run, models it as ``after <provider>``)."""

    key: str
    title: str  # what the restore waits for, in the administrator's words
    provided_by: str  # the step that creates it
    # how long it may still be entirely absent once its provider finished (it may come a
    # little later, e.g. from a hook), and what to say when it never appears
    settle: float = 30.0
    missing: str = ""


DATABASE_READY = Prerequisite(
    "database-ready", "the control plane's database (pod Ready and PostgreSQL answering)",
    "control-plane", settle=60.0,
    missing="the control-plane chart created no database StatefulSet; if the database is "
            "external (postgresql.enabled: false in the values), restore it with "
            "--db-mode local")
RUNAICONFIG_CRD = Prerequisite(
    "runaiconfig-crd", "the RunaiConfig CRD (runaiconfigs.run.ai) Established and served",
    "cluster", settle=30.0,
    missing="the cluster chart installed no RunaiConfig CRD (runaiconfigs.run.ai): this chart "
            "has no crds/ folder with it; apply the CRDs of this Run:ai version (kubectl apply "
            "-f the crds/ folder of the runai-cluster chart)")
CLUSTER_NAMESPACE = Prerequisite(
    "cluster-namespace", "the cluster namespace", "cluster", settle=10.0,
    missing="the cluster chart's release namespace does not exist")


@dataclass(frozen=True)
class RestoreStep:
    name: str
    title: str
    reason: str
    needs: tuple[Prerequisite, ...] = ()
    changes_api: bool = False  # may install CRDs: discovery is refreshed after it


PREFLIGHT_STEP = RestoreStep(
    PREFLIGHT, "preflight", "verify the bundle's checksums, the target cluster, CRDs and "
    "permissions before anything is written")


@dataclass(frozen=True)
class PlannedStep:
    step: RestoreStep
    run: bool
    why_not: str = ""  # when run is False: why the step is left out

    @property
    def name(self) -> str:
        return self.step.name


def resolve(names: Sequence[str], aliases: Mapping[str, str]) -> list[str]:
    """Step names as typed, earlier names (``aliases``) replaced by today's."""
    return list(dict.fromkeys(aliases.get(n, n) for n in names))


def check_selection(steps: Sequence[RestoreStep], only: Sequence[str],
                    skip: Sequence[str]) -> None:
    """Raise ValueError for unknown step names or an impossible selection."""
    selectable = [s.name for s in steps if s.name != PREFLIGHT]
    unknown = sorted((set(only) | set(skip)) - {s.name for s in steps})
    if unknown:
        raise ValueError(f"unknown step(s): {', '.join(unknown)} "
                         f"(steps: {', '.join(selectable)})")
    if PREFLIGHT in skip or PREFLIGHT in only:
        raise ValueError("preflight always runs; choose among: " + ", ".join(selectable))
    both = sorted(set(only) & set(skip))
    if both:
        raise ValueError(f"step(s) both chosen and skipped: {', '.join(both)}")


def plan_restore(steps: Sequence[RestoreStep], content: Mapping[str, bool], *,
                 only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[PlannedStep]:
    """Every step in order (``steps``: preflight, then the components' restore steps),
    each marked to run or not and why not.

    ``content``: for each step, does the bundle hold data for it. Preflight always runs; a
    step the bundle has no data for is left out, and asking for one with ``--only`` is a
    mistake (ValueError): a restore must not report success for what it cannot do.
    """
    check_selection(steps, only, skip)
    lacking = [n for n in only if not content.get(n, False)]
    if lacking:
        held = [s.name for s in steps if s.name != PREFLIGHT and content.get(s.name)]
        raise ValueError(f"the bundle holds no data for: {', '.join(lacking)} (it holds: "
                         f"{', '.join(held) or 'nothing to restore'}); `kubectl runai-dr "
                         "inspect` shows what a bundle holds")
    planned: list[PlannedStep] = []
    for step in steps:
        if step.name == PREFLIGHT:
            planned.append(PlannedStep(step, True))
        elif only and step.name not in only:
            planned.append(PlannedStep(step, False, "not chosen (--only)"))
        elif step.name in skip:
            planned.append(PlannedStep(step, False, "skipped (--skip)"))
        elif not content.get(step.name, False):
            planned.append(PlannedStep(step, False, "the bundle has no data for it"))
        else:
            planned.append(PlannedStep(step, True))
    return planned


def resume_hint(failed_steps: Sequence[str], bundle: str = "BUNDLE", *,
                interrupted: bool = False) -> str:
    """What to tell the user after a failure or an interrupt: every step is idempotent.
    ``bundle``: the bundle as the user named it (quoted for a shell here)."""
    if not failed_steps:
        return ""
    cmd = f"{COMMAND} restore {shlex.quote(bundle)} --only {','.join(failed_steps)}"
    first = ("run the same command again" if interrupted else
             "fix the cause and run the same command again")
    return (f"{first} (finished objects are reported unchanged), or resume with only the "
            f"{'unfinished' if interrupted else 'failed'} step(s): `{cmd}` (with the same "
            "flags otherwise)")


def providers_in_run(plan: Sequence[PlannedStep]) -> dict[str, str]:
    """Prerequisite key -> the step of this run that provides it (pure)."""
    running = {p.name for p in plan if p.run}
    out: dict[str, str] = {}
    for p in plan:
        for need in p.step.needs:
            if need.provided_by in running:
                out[need.key] = need.provided_by
    return out
