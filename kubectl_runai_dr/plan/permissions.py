"""What each command and step needs from the API server, as data (pure).

The table is assembled from the components (``components/registry.py``: each carries
its backup and restore needs) and the verbs' own entries below. One table serves two
readers: `status` asks the API server about every entry
(SelfSubjectAccessReview) so a missing permission shows up before a disaster, and
``scripts/permissions-table.py`` prints the README's permission table from it.

Namespaces are written as scopes, resolved against the installation's names:
``control-plane`` (runai-backend), ``cluster`` (runai), ``all`` (every namespace: a
cluster-wide list, or objects in project namespaces) and ``cluster-scoped`` (objects
that have no namespace).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from kubectl_runai_dr.model import Names

CONTROL_PLANE = "control-plane"
CLUSTER = "cluster"
ALL = "all"
CLUSTER_SCOPED = "cluster-scoped"
SCOPES = (CONTROL_PLANE, CLUSTER, ALL, CLUSTER_SCOPED)

CORE = ""
APPS = "apps"
RBAC = "rbac.authorization.k8s.io"
RUNAI = "run.ai"
SNAPSHOT = "snapshot.storage.k8s.io"


# When a need applies (restore): always, only when writing (not in --dry-run), only with
# --existing update, only with --run-helm.
ALWAYS = ""
WRITE = "write"
UPDATE = "update"
RUN_HELM = "run-helm"
CONDITION_TEXT = {ALWAYS: "", WRITE: "", UPDATE: " (--existing update)",
                  RUN_HELM: " (--run-helm)"}


@dataclass(frozen=True)
class Need:
    """One permission: ``verb`` on ``resource`` (plural, ``pods/exec`` for a subresource)
    of API ``group`` in ``scope``, needed ``when`` (a condition above)."""

    verb: str
    group: str
    resource: str
    scope: str
    when: str = ALWAYS

    @property
    def plural(self) -> str:
        return self.resource.split("/", 1)[0]

    @property
    def subresource(self) -> str | None:
        parts = self.resource.split("/", 1)
        return parts[1] if len(parts) == 2 else None

    @property
    def group_resource(self) -> str:
        """``rolebindings.rbac.authorization.k8s.io``, ``pods/exec`` for the core group."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


@dataclass(frozen=True)
class StepPermissions:
    command: str
    step: str
    needs: tuple[Need, ...]
    note: str = ""
    optional: bool = False  # runs only with a flag: a missing permission is a warning
    control_plane: bool = False  # only where the control plane is installed


def need(verb: str, group: str, resource: str, scope: str, when: str = ALWAYS) -> Need:
    if scope not in SCOPES:
        raise ValueError(scope)
    if when not in CONDITION_TEXT:
        raise ValueError(when)
    return Need(verb, group, resource, scope, when)


_n = need


def helm_storage(scope: str, *, write: bool) -> tuple[Need, ...]:
    """helm 3 keeps each release revision in a Secret (default) or a ConfigMap."""
    needs = [_n("list", CORE, "secrets", scope), _n("list", CORE, "configmaps", scope)]
    if write:
        needs.append(_n("create", CORE, "secrets", scope, RUN_HELM))
    return tuple(needs)


def helm_install(scope: str) -> tuple[Need, ...]:
    """Re-installing a release (restore --run-helm): its storage, and its namespace."""
    return (*helm_storage(scope, write=True),
            _n("create", CORE, "namespaces", CLUSTER_SCOPED, RUN_HELM))


# The control plane's claims and their volumes, read.
CLAIMS = (_n("list", CORE, "persistentvolumeclaims", CONTROL_PLANE),
          _n("get", CORE, "persistentvolumes", CLUSTER_SCOPED))

DATABASE_POD = (_n("get", APPS, "statefulsets", CONTROL_PLANE),
                _n("list", CORE, "pods", CONTROL_PLANE),
                _n("create", CORE, "pods/exec", CONTROL_PLANE))

# CSI snapshots of the control plane's claims, after a CHECKPOINT in the database pod.
SNAPSHOT_NEEDS = (*CLAIMS,
                  _n("list", SNAPSHOT, "volumesnapshotclasses", CLUSTER_SCOPED),
                  _n("list", CORE, "pods", CONTROL_PLANE),
                  _n("create", CORE, "pods/exec", CONTROL_PLANE),
                  _n("create", SNAPSHOT, "volumesnapshots", CONTROL_PLANE),
                  _n("get", SNAPSHOT, "volumesnapshots", CONTROL_PLANE),
                  _n("get", SNAPSHOT, "volumesnapshotcontents", CLUSTER_SCOPED))

# --volume-data: tar through exec in the pod mounting a claim, an ephemeral debug container
# when it has no tar, or a helper pod (--quiesce: the StatefulSet scaled to zero and back).
VOLUME_DATA_BACKUP = (_n("get", APPS, "statefulsets", CONTROL_PLANE),
                      _n("patch", APPS, "statefulsets/scale", CONTROL_PLANE),
                      _n("patch", CORE, "pods/ephemeralcontainers", CONTROL_PLANE),
                      _n("get", CORE, "pods", CONTROL_PLANE),
                      _n("create", CORE, "pods", CONTROL_PLANE),
                      _n("delete", CORE, "pods", CONTROL_PLANE))
# restoring files: a helper pod mounting the claim receives the tar stream
VOLUME_DATA_RESTORE = (_n("get", CORE, "pods", CONTROL_PLANE),
                       _n("create", CORE, "pods", CONTROL_PLANE, WRITE),
                       _n("delete", CORE, "pods", CONTROL_PLANE, WRITE),
                       _n("create", CORE, "pods/exec", CONTROL_PLANE, WRITE))


class ComponentNeeds(Protocol):
    """What the table reads from a component (``components.base.Component``)."""

    @property
    def name(self) -> str: ...
    @property
    def backup_needs(self) -> tuple[Need, ...]: ...
    @property
    def restore_needs(self) -> tuple[Need, ...]: ...
    @property
    def backup_note(self) -> str: ...
    @property
    def restore_note(self) -> str: ...
    @property
    def opt_in(self) -> str: ...
    @property
    def control_plane(self) -> bool: ...
    @property
    def record_only(self) -> str: ...


# What the verbs need beyond their components' steps.
RECORD = StepPermissions("backup", "record", (
    _n("get", CORE, "namespaces", CLUSTER_SCOPED),
    _n("patch", CORE, "configmaps", CONTROL_PLANE),
    _n("create", CORE, "configmaps", CONTROL_PLANE)),
    note="on a SaaS cluster: in the cluster namespace; skipped with --no-record")
PREFLIGHT = StepPermissions("restore", "preflight", (
    _n("create", "authorization.k8s.io", "selfsubjectaccessreviews", CLUSTER_SCOPED),
    _n("get", CORE, "namespaces", CLUSTER_SCOPED)))
VERBS: tuple[StepPermissions, ...] = (
    StepPermissions("snapshot", "snapshot", SNAPSHOT_NEEDS, control_plane=True),
    StepPermissions("snapshot", "list", (_n("list", SNAPSHOT, "volumesnapshots", ALL),)),
    StepPermissions("snapshot", "prune", (_n("list", SNAPSHOT, "volumesnapshots", ALL),
                                          _n("delete", SNAPSHOT, "volumesnapshots", ALL))),
    StepPermissions("protect", "protect", (
        *CLAIMS, _n("patch", CORE, "persistentvolumes", CLUSTER_SCOPED)), control_plane=True),
    # status: reads only (and exec for the database's version and sizes)
    StepPermissions("status", "status", (
        _n("list", CORE, "namespaces", CLUSTER_SCOPED),
        _n("list", CORE, "secrets", CONTROL_PLANE),
        _n("list", CORE, "secrets", CLUSTER),
        *DATABASE_POD,
        *CLAIMS,
        _n("list", SNAPSHOT, "volumesnapshotclasses", CLUSTER_SCOPED),
        _n("list", SNAPSHOT, "volumesnapshots", CONTROL_PLANE),
        _n("get", RUNAI, "runaiconfigs", CLUSTER),
        _n("list", RUNAI, "projects", CLUSTER_SCOPED),
        _n("list", RBAC, "rolebindings", ALL),
        _n("list", CORE, "configmaps", CLUSTER),
        _n("get", CORE, "configmaps", CONTROL_PLANE))),
)


def assemble(components: Sequence[ComponentNeeds]) -> tuple[StepPermissions, ...]:
    """The whole table: each component's backup step, the record, the restore preflight
    and each restorable component's step, then the other verbs."""
    backup = [StepPermissions("backup", c.name, c.backup_needs, note=c.backup_note or (
        f"only with {c.opt_in}" if c.opt_in else ""), optional=bool(c.opt_in),
        control_plane=c.control_plane) for c in components]
    restore = [StepPermissions("restore", c.name, c.restore_needs, note=c.restore_note,
                               optional=bool(c.opt_in),
                               control_plane=c.control_plane)
               for c in components if not c.record_only]
    return (*backup, RECORD, PREFLIGHT, *restore, *VERBS)


def commands(table: Sequence[StepPermissions]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(s.command for s in table))


def steps(table: Sequence[StepPermissions],
          commands_: Sequence[str] = ()) -> list[StepPermissions]:
    """The entries of ``commands_`` (all when empty), in table order."""
    unknown = sorted(set(commands_) - set(commands(table)))
    if unknown:
        raise ValueError(f"unknown command(s): {', '.join(unknown)}")
    return [s for s in table if not commands_ or s.command in commands_]


def namespace_of(scope: str, names: Names) -> str | None:
    """The namespace to ask about (None: cluster-wide or cluster-scoped)."""
    if scope == CONTROL_PLANE:
        return names.control_plane_namespace
    if scope == CLUSTER:
        return names.cluster_namespace
    if scope in (ALL, CLUSTER_SCOPED):
        return None
    raise ValueError(scope)


def scope_text(scope: str, names: Names) -> str:
    """How a scope reads in a table: a namespace, "(all namespaces)", "(cluster)"."""
    ns = namespace_of(scope, names)
    if ns is not None:
        return ns
    return "(all namespaces)" if scope == ALL else "(cluster)"


def checks(table: Sequence[StepPermissions], commands_: Sequence[str],
           names: Names) -> Iterator[tuple[StepPermissions, Need, str | None]]:
    """Every (step, need, namespace) to ask about, for ``commands_``."""
    for step in steps(table, commands_):
        for need in step.needs:
            yield step, need, namespace_of(need.scope, names)


def applies(need: Need, *, dry_run: bool, update: bool, run_helm: bool) -> bool:
    """Does ``need`` apply to a run with these flags? (a dry run only reads)."""
    if need.when == ALWAYS:
        return True
    if dry_run:
        return False
    return (need.when == WRITE or (need.when == UPDATE and update)
            or (need.when == RUN_HELM and run_helm))


def step_needs(table: Sequence[StepPermissions], command: str, step: str, names: Names, *,
               dry_run: bool = False, update: bool = False,
               run_helm: bool = False) -> list[tuple[Need, str | None]]:
    """(need, namespace) of one step for a run with these flags."""
    return [(need, namespace_of(need.scope, names))
            for entry in table if entry.command == command and entry.step == step
            for need in entry.needs
            if applies(need, dry_run=dry_run, update=update, run_helm=run_helm)]


def markdown_table(table: Sequence[StepPermissions], names: Names | None = None) -> str:
    """The README's table: one row per command, step and permission."""
    names = names or Names()
    lines = ["| command | step | verb | resource | namespace | note |",
             "|---|---|---|---|---|---|"]
    for step in table:
        for i, need in enumerate(step.needs):
            note = step.note if i == 0 else ""
            verb = need.verb + CONDITION_TEXT[need.when]
            lines.append(f"| `{step.command}` | {step.step} | {verb} | "
                         f"`{need.group_resource}` | {scope_text(need.scope, names)} | {note} |")
    return "\n".join(lines) + "\n"
