"""The components, in the documented recovery order: the one list everything derives from.

The restore runs them in this order (after a preflight), and so does the backup. From
this list come the backup and restore plans, the permission table (status, restore's
preflight, the README), the step names for ``--only``/``--skip`` and their completion,
and the help texts. Adding a component is one module and one entry here.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from kubectl_runai_dr.components import (
    database,
    namespaces,
    releases,
    runaiconfig,
    scheduling,
    secrets,
    templates,
    volumes,
)
from kubectl_runai_dr.components.base import Component
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.plan import permissions
from kubectl_runai_dr.plan.backup import ComponentStep
from kubectl_runai_dr.plan.restore import PREFLIGHT_STEP, RestoreStep

COMPONENTS: tuple[Component, ...] = (
    volumes.COMPONENT,  # the volumes the charts mount, first
    secrets.COMPONENT,  # what the charts reference
    releases.CONTROL_PLANE,
    database.COMPONENT,  # into the control plane's PostgreSQL
    releases.CLUSTER,  # its identity; installs the RunaiConfig CRD
    runaiconfig.COMPONENT,
    templates.COMPONENT,
    namespaces.COMPONENT,
    scheduling.COMPONENT,  # records: the control plane syncs them back
)

BY_NAME: dict[str, Component] = {c.name: c for c in COMPONENTS}
ALIASES: dict[str, str] = {a: c.name for c in COMPONENTS for a in c.aliases}
NAMES: tuple[str, ...] = tuple(BY_NAME)
RESTORABLE: tuple[str, ...] = tuple(c.name for c in COMPONENTS if c.restore is not None)

BACKUP_STEPS: tuple[ComponentStep, ...] = tuple(
    ComponentStep(c.name, c.title, c.reason, c.opt_in) for c in COMPONENTS)
RESTORE_STEPS: tuple[RestoreStep, ...] = (PREFLIGHT_STEP, *(
    RestoreStep(c.name, c.title, c.reason, c.needs, c.changes_api)
    for c in COMPONENTS if c.restore is not None))
PERMISSIONS: tuple[permissions.StepPermissions, ...] = permissions.assemble(COMPONENTS)


def bundle_content(files: Collection[str], names: Names) -> dict[str, bool]:
    """For each restore step: does the bundle hold data for it? (the manifest's files)."""
    return {"preflight": True, **{c.name: c.holds_data(files, names) for c in COMPONENTS
                                  if c.restore is not None}}


def canonical(names: Sequence[str]) -> list[str]:
    """Component names as typed, earlier names replaced by today's."""
    return list(dict.fromkeys(ALIASES.get(n, n) for n in names))


def _check() -> None:
    seen: set[str] = set()
    for c in COMPONENTS:
        for n in (c.name, *c.aliases):
            if n in seen or n == PREFLIGHT_STEP.name:
                raise TypeError(f"component name {n!r} is used twice")
            seen.add(n)
    order = [c.name for c in COMPONENTS]
    for c in COMPONENTS:
        for need in c.needs:
            if need.provided_by not in order[:order.index(c.name)]:
                raise TypeError(f"component {c.name} needs {need.key} from "
                                f"{need.provided_by}, which does not come before it")


_check()
