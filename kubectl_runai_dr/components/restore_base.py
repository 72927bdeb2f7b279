"""What every restore step receives, the result of each object, and the one write path.

Results are collected, never thrown: an object that fails is recorded with its reason and
the step goes on with the next one (as Velero's per-namespace results).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components.base import NullProgress, Progress
from kubectl_runai_dr.errors import DrError
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import AlreadyExists
from kubectl_runai_dr.kube.resources import Resource
from kubectl_runai_dr.model import Names, ObjectResult, Outcome
from kubectl_runai_dr.plan.database import DbOptions
from kubectl_runai_dr.plan.diff import Action, decide, object_label, update_patch


class Existing(str, Enum):
    skip = "skip"
    update = "update"


@dataclass
class RestoreSettings:
    """Flags every step honours."""

    names: Names = field(default_factory=Names)
    dry_run: bool = False
    existing: Existing = Existing.skip
    projects: tuple[str, ...] = ()  # --project filter for namespaces
    # Requests in flight for namespaces and role bindings: where a real API server's
    # throughput levels off (bench/restore_namespaces.py); after a 429 the client sends
    # fewer at once (kube.client.Window)
    workers: int = 16
    run_helm: bool = False
    wait_timeout: float = 900.0  # --wait-timeout: a release deployed, and each wait after it
    poll: float = 2.0  # how often the waits for snapshots and claims look again
    values_dir: Path | None = None  # where values files for helm are written
    kubeconfig: str | None = None  # passed to helm
    existing_claim: str | None = None  # database volume claim for the control plane
    chart_overrides: dict[str, str] = field(default_factory=dict)  # release -> chart ref
    repo_overrides: dict[str, str] = field(default_factory=dict)  # release -> repo URL
    storage_class: str | None = None  # --storage-class: for every restored claim
    volume_data_image: str | None = None  # --volume-data-image: the restore's helper pods


@dataclass
class RestoreContext:
    kube: KubeApi
    bundle: Bundle
    settings: RestoreSettings
    progress: Progress = field(default_factory=NullProgress)
    db: DbOptions = field(default_factory=DbOptions)  # --db-*: where the database goes
    confirmed: bool = False  # the restore was confirmed (or --yes): data may be replaced
    database_claim: str = ""  # the database's claim, once the volumes step restored it
    # dry run: prerequisite key -> the earlier step that would create it (not there yet)
    after: dict[str, str] = field(default_factory=dict)

    def after_step(self, key: str) -> str:
        """In a dry run: the earlier step that creates this prerequisite ("" if none)."""
        return self.after.get(key, "") if self.settings.dry_run else ""


def failure(exc: DrError) -> str:
    return f"{exc.message} (hint: {exc.hint})" if exc.hint else exc.message


def restore_object(kube: KubeApi, res: Resource, desired: dict[str, Any],
                   live: dict[str, Any] | None, *, step: str, settings: RestoreSettings,
                   live_known: bool = True) -> ObjectResult:
    """Create, compare or update one cleaned object; never raises a DrError.

    ``live``: the object in the cluster (None: absent), when ``live_known``; otherwise it is
    read here. A create that races with an existing object falls back to comparing.
    """
    meta = desired.get("metadata") or {}
    name = str(meta.get("name", ""))
    ns = meta.get("namespace") if res.namespaced else None
    kind = res.kind

    def result(outcome: Outcome, message: str = "", diff: str = "") -> ObjectResult:
        return ObjectResult(step, kind, name, ns, outcome, message, diff)

    try:
        if not live_known:
            live = kube.get_or_none(res, name, ns)
        if live is not None and (live.get("metadata") or {}).get("deletionTimestamp"):
            return result(Outcome.FAILED,
                          f"{object_label(desired)} is being deleted (Terminating); wait "
                          "until it is gone (or remove its finalizers) and run again")
        decision = decide(desired, live)
        if decision.action is Action.CREATE:
            if settings.dry_run:
                return result(Outcome.WOULD_CREATE)
            try:
                kube.create(res, desired, namespace=ns)
                return result(Outcome.CREATED)
            except AlreadyExists:
                live = kube.get(res, name, ns)
                decision = decide(desired, live)
        if decision.action is Action.UNCHANGED:
            return result(Outcome.UNCHANGED)
        if settings.existing is Existing.skip:
            return result(Outcome.DRIFT, "differs from the bundle: " + ", ".join(
                decision.changed) + "; left alone (--existing update updates it)",
                decision.diff)
        if settings.dry_run:
            return result(Outcome.WOULD_UPDATE, ", ".join(decision.changed), decision.diff)
        kube.patch(res, name, update_patch(desired), namespace=ns)
        return result(Outcome.UPDATED, ", ".join(decision.changed), decision.diff)
    except DrError as exc:
        return result(Outcome.FAILED, failure(exc))


def live_index(objects: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(namespace, name) → cleaned-enough live object, from a list."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in objects:
        meta = obj.get("metadata") or {}
        out[(meta.get("namespace") or "", meta.get("name", ""))] = obj
    return out
