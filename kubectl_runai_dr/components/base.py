"""The shape of a component, and what every component receives.

A component is one typed object (:class:`Component`) in one module, holding both
directions: how its data is backed up, how it is restored (or why it is not: a record-only
component), where it sits in the documented recovery order and why, what it needs from
the API server (permissions, as data), and how to tell whether a bundle holds its data.
``components/registry.py`` lists them in order; plans, the permission table, help texts,
the README's tables and completion are derived from that list.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kubectl_runai_dr.bundle.writer import BundleWriter
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.model import Names, Result
from kubectl_runai_dr.plan.database import DbOptions
from kubectl_runai_dr.plan.permissions import Need
from kubectl_runai_dr.plan.restore import Prerequisite

if TYPE_CHECKING:
    from kubectl_runai_dr.components.restore_base import RestoreContext
    from kubectl_runai_dr.components.voldata import VolumeDataOptions
    from kubectl_runai_dr.components.volumes import SnapshotOptions, SnapshotRun


class Progress(Protocol):
    """Progress reporting as the components see it; the CLI draws it, tests ignore it."""

    def start(self, description: str, total: int | None = None) -> None: ...
    def advance(self, amount: int = 1) -> None: ...
    def update(self, *, completed: int | None = None, total: int | None = None,
               description: str | None = None) -> None: ...
    def finish(self) -> None: ...


class NullProgress:
    def start(self, description: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int = 1) -> None:
        pass

    def update(self, *, completed: int | None = None, total: int | None = None,
               description: str | None = None) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class BackupContext:
    kube: KubeApi
    out: BundleWriter
    names: Names
    include_secrets: bool = False
    progress: Progress = field(default_factory=NullProgress)
    db: DbOptions = field(default_factory=DbOptions)  # --db-*
    snapshots: SnapshotOptions | None = None  # --snapshots (None: not taken)
    snapshot_run: SnapshotRun | None = None  # snapshots already taken by `snapshot`
    volume_data: VolumeDataOptions | None = None  # --volume-data (None: no file-level copy)
    # what the helm components read, for the manifest's Run:ai version
    releases: dict[str, dict[str, Any]] = field(default_factory=dict)


BackupFn = Callable[[BackupContext, Result], None]
RestoreFn = Callable[["RestoreContext", "Result"], None]
HoldsData = Callable[[Collection[str], Names], bool]


@dataclass(frozen=True)
class Component:
    """One thing the tool backs up (and, unless record-only, restores).

    ``name`` is what users type after ``--only``/``--skip`` for both ``backup`` and
    ``restore``; ``aliases`` are earlier names still accepted. ``reason`` says why the
    component sits where it does in the restore order. ``opt_in`` names the flag without
    which the backup leaves it out (it writes to the cluster or holds secrets).
    ``record_only`` says why there is no restore. ``saves`` says what the bundle keeps.
    """

    name: str
    title: str
    reason: str
    saves: str  # what the backup keeps, for the README and help
    backup: BackupFn
    holds_data: HoldsData
    restore: RestoreFn | None = None
    record_only: str = ""
    backup_needs: tuple[Need, ...] = ()
    restore_needs: tuple[Need, ...] = ()
    backup_note: str = ""
    restore_note: str = ""
    opt_in: str = ""
    control_plane: bool = False  # exists only where the control plane is installed
    needs: tuple[Prerequisite, ...] = ()  # what earlier restore steps bring it
    changes_api: bool = False  # may install CRDs: discovery is refreshed after it
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.restore is None) == (not self.record_only):
            raise TypeError(f"component {self.name}: give a restore function or the reason "
                            "it is record-only, not both")
