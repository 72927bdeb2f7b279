"""The restore plan: the documented recovery order as data, one reason per step (pure).

The order is the one in Run:ai's disaster-recovery procedure: volumes before the control
plane that mounts them, the control plane before its database is loaded, the cluster
(which holds the cluster's identity and installs the RunaiConfig CRD) before the
RunaiConfig, and namespaces before the RoleBindings inside them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.model import Names

PREFLIGHT = "preflight"


@dataclass(frozen=True)
class Prerequisite:
    """Something a step needs that an earlier step of the same restore brings: the restore
    waits for it (or, in a dry run, models it as ``after <provider>``)."""

    key: str
    title: str  # what the restore waits for, in the administrator's words
    provided_by: str  # the step that creates it


DATABASE_READY = Prerequisite(
    "database-ready", "the control plane's database (pod Ready and PostgreSQL answering)",
    "control-plane")
RUNAICONFIG_CRD = Prerequisite(
    "runaiconfig-crd", "the RunaiConfig CRD (runaiconfigs.run.ai) Established and served",
    "cluster")
CLUSTER_NAMESPACE = Prerequisite(
    "cluster-namespace", "the cluster namespace", "cluster")


@dataclass(frozen=True)
class RestoreStep:
    name: str
    title: str
    reason: str
    needs: tuple[Prerequisite, ...] = ()
    changes_api: bool = False  # may install CRDs: discovery is refreshed after it


RESTORE_STEPS: tuple[RestoreStep, ...] = (
    RestoreStep(PREFLIGHT, "preflight",
                "verify the bundle's checksums, the target cluster, CRDs and permissions "
                "before anything is written"),
    RestoreStep("volumes", "volumes from snapshots",
                "the database and metrics volumes must exist before the control plane "
                "that mounts them is installed"),
    RestoreStep("secrets", "secrets",
                "TLS, CA, registry and credential Secrets (bundles made with "
                "--include-secrets) must exist before the charts that reference them"),
    RestoreStep("control-plane", "control plane (helm)",
                "re-install the control plane with its saved values, on the restored "
                "database volume", changes_api=True),
    RestoreStep("database", "database",
                "load the saved database into the control plane's PostgreSQL before the "
                "cluster connects to it", needs=(DATABASE_READY,)),
    RestoreStep("cluster", "cluster (helm)",
                "re-install the cluster with its saved values: they hold its identity "
                "(cluster.uid, clientSecret) and install the RunaiConfig CRD",
                changes_api=True),
    RestoreStep("runaiconfig", "RunaiConfig",
                "exists once the cluster chart is installed; the saved spec is merged "
                "into it", needs=(RUNAICONFIG_CRD, CLUSTER_NAMESPACE)),
    RestoreStep("templates", "templates",
                "ConfigMaps in the cluster namespace, which the cluster install creates",
                needs=(CLUSTER_NAMESPACE,)),
    RestoreStep("namespaces", "namespaces and role bindings",
                "project namespaces first, then the RoleBindings inside them; they may not "
                "sync back from the control plane"),
)
STEP_NAMES: tuple[str, ...] = tuple(s.name for s in RESTORE_STEPS)
SELECTABLE: tuple[str, ...] = tuple(n for n in STEP_NAMES if n != PREFLIGHT)


@dataclass(frozen=True)
class PlannedStep:
    step: RestoreStep
    run: bool
    why_not: str = ""  # when run is False: why the step is left out

    @property
    def name(self) -> str:
        return self.step.name


def bundle_content(files: Collection[str], names: Names) -> dict[str, bool]:
    """For each step: does the bundle hold data for it? (from the manifest's file table)."""
    return {
        PREFLIGHT: True,
        "volumes": layout.SNAPSHOTS in files,
        "secrets": layout.SECRETS in files,
        "control-plane": layout.helm_values(names.control_plane_release) in files,
        "database": any(f.startswith(layout.DATABASE_DIR + "/") for f in files),
        "cluster": layout.helm_values(names.cluster_release) in files,
        "runaiconfig": layout.RUNAICONFIG_OBJECT in files or layout.RUNAICONFIG_SPEC in files,
        "templates": layout.TEMPLATES in files,
        "namespaces": layout.objects("", "namespaces") in files,
    }


def check_selection(only: Sequence[str], skip: Sequence[str]) -> None:
    """Raise ValueError for unknown step names or an impossible selection."""
    unknown = sorted((set(only) | set(skip)) - set(STEP_NAMES))
    if unknown:
        raise ValueError(f"unknown step(s): {', '.join(unknown)} "
                         f"(steps: {', '.join(SELECTABLE)})")
    if PREFLIGHT in skip or PREFLIGHT in only:
        raise ValueError("preflight always runs; choose among: " + ", ".join(SELECTABLE))
    both = sorted(set(only) & set(skip))
    if both:
        raise ValueError(f"step(s) both chosen and skipped: {', '.join(both)}")


def plan_restore(content: dict[str, bool], *, only: Sequence[str] = (),
                 skip: Sequence[str] = ()) -> list[PlannedStep]:
    """Every step in order, each marked to run or not and why not.

    ``content``: :func:`bundle_content`. Preflight always runs; a step the bundle has no
    data for is left out even when chosen with ``--only``.
    """
    check_selection(only, skip)
    planned: list[PlannedStep] = []
    for step in RESTORE_STEPS:
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


def resume_hint(failed_steps: Sequence[str], command: str = "kubectl runai-dr restore") -> str:
    """What to tell the user after a failure: every step is idempotent."""
    if not failed_steps:
        return ""
    return (f"fix the cause and run the same command again (finished objects are reported "
            f"unchanged), or resume with only the failed step(s): `{command} BUNDLE --only "
            f"{','.join(failed_steps)}`")


def providers_in_run(plan: Sequence[PlannedStep]) -> dict[str, str]:
    """Prerequisite key -> the step of this run that provides it (pure)."""
    running = {p.name for p in plan if p.run}
    out: dict[str, str] = {}
    for p in plan:
        for need in p.step.needs:
            if need.provided_by in running:
                out[need.key] = need.provided_by
    return out
