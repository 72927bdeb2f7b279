"""Plain data shared by the layers: results and the names of a Run:ai installation."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    OK = "ok"
    NOT_PRESENT = "not present"
    FAILED = "failed"
    SKIPPED = "skipped"


class Outcome(str, Enum):
    """What happened to one object in a restore."""

    CREATED = "created"
    UNCHANGED = "unchanged"
    UPDATED = "updated"
    DRIFT = "drift"  # exists and differs; left alone (--existing skip)
    FAILED = "failed"
    SKIPPED = "skipped"
    WOULD_CREATE = "create"  # --dry-run
    WOULD_UPDATE = "update"  # --dry-run with --existing update


@dataclass
class ObjectResult:
    step: str
    kind: str
    name: str
    namespace: str | None
    outcome: Outcome
    message: str = ""
    diff: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace \
            else f"{self.kind}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step, "kind": self.kind, "name": self.name,
                               "outcome": self.outcome.value}
        if self.namespace:
            out["namespace"] = self.namespace
        if self.message:
            out["message"] = self.message
        if self.diff:
            out["diff"] = self.diff
        return out


@dataclass
class Result:
    """What one component did, in a backup or a restore: one type for both.

    ``status``/``reason``/``hint``: ok, or why it was skipped, not present or failed.
    A backup counts what it wrote (``count``, ``files``); a restore records every object's
    outcome (``objects``). Warnings, notes and details for both. Results are collected,
    never thrown: a failure is recorded and the next component runs (as Velero's results).
    Thread-safe for ``add`` and ``warn`` (restores write from a pool of workers).
    """

    name: str
    status: Status = Status.OK
    reason: str = ""
    hint: str = ""
    count: int = 0  # objects written (backup)
    files: list[str] = field(default_factory=list)
    objects: list[ObjectResult] = field(default_factory=list)  # per object (restore)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. commands to run
    details: dict[str, Any] = field(default_factory=dict)
    after: str = ""  # dry run: runs after this earlier step has created what it needs
    seconds: float = 0.0  # wall time, waits included
    waited: float = 0.0  # of which waiting for what an earlier step brings
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    # -- recording ------------------------------------------------------------------------
    def add(self, result: ObjectResult) -> ObjectResult:
        with self._lock:
            self.objects.append(result)
        return result

    def warn(self, message: str) -> None:
        with self._lock:
            self.warnings.append(message)

    def fail(self, reason: str, hint: str = "") -> None:
        self.status, self.reason, self.hint = Status.FAILED, reason, hint

    def skip(self, reason: str) -> None:
        self.status, self.reason = Status.SKIPPED, reason

    def merge(self, other: Result) -> None:
        """Take in what another result of the same component recorded."""
        with self._lock:
            self.objects.extend(other.objects)
            self.warnings.extend(other.warnings)
            self.notes.extend(other.notes)
            self.files.extend(f for f in other.files if f not in self.files)
            self.count += other.count
            self.details.update(other.details)
        if other.status is Status.FAILED and self.status is not Status.FAILED:
            self.fail(other.reason, other.hint)

    # -- reading --------------------------------------------------------------------------
    @property
    def ran(self) -> bool:
        return self.status is not Status.SKIPPED

    @property
    def why_not(self) -> str:
        return self.reason if self.status is Status.SKIPPED else ""

    @property
    def error(self) -> str:
        return self.reason if self.status is Status.FAILED else ""

    @property
    def failed(self) -> bool:
        return self.status is Status.FAILED or any(o.outcome is Outcome.FAILED
                                                   for o in self.objects)

    def counts(self) -> Counter[Outcome]:
        return Counter(o.outcome for o in self.objects)

    # -- two documents: the bundle's manifest, and the restore report ----------------------
    def to_manifest(self) -> dict[str, Any]:
        """The bundle manifest's entry for this component."""
        out: dict[str, Any] = {"name": self.name, "status": self.status.value,
                               "objects": self.count, "files": sorted(self.files)}
        if self.reason:
            out["reason"] = self.reason
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.details:
            out["details"] = self.details
        return out

    def to_json(self) -> dict[str, Any]:
        """The restore report's entry for this step."""
        out: dict[str, Any] = {"name": self.name, "ran": self.ran, "failed": self.failed,
                               "counts": {k.value: v for k, v in self.counts().items()}}
        for key, value in (("whyNot", self.why_not), ("error", self.error),
                           ("hint", self.hint), ("after", self.after)):
            if value:
                out[key] = value
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.notes:
            out["notes"] = list(self.notes)
        if self.ran:
            out["durationSeconds"] = round(self.seconds, 3)
            if self.waited:
                out["waitedSeconds"] = round(self.waited, 3)
        out["objects"] = [o.to_json() for o in self.objects]
        return out


@dataclass(frozen=True)
class Names:
    """Where the installation lives. Defaults are the documented ones; flags override them."""

    control_plane_namespace: str = "runai-backend"
    cluster_namespace: str = "runai"
    control_plane_release: str = "runai-backend"
    cluster_release: str = "runai-cluster"
    runaiconfig_name: str = "runai"
    database_statefulset: str = "runai-backend-postgresql"
