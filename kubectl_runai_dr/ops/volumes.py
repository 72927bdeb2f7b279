"""`kubectl runai-dr snapshot`: take the snapshots, then write a small bundle holding only
their records, which `restore` uses like any other bundle's volumes step."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubectl_runai_dr.components import volumes as comp
from kubectl_runai_dr.components.base import Progress
from kubectl_runai_dr.errors import BundleExistsError
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.storage.location import S3Url

if TYPE_CHECKING:
    from kubectl_runai_dr.storage.age import Sealing

STEP = "volumes"


# -- snapshot (standalone) ---------------------------------------------------------------------
@dataclass
class SnapshotOutcome:
    run: comp.SnapshotRun
    bundle: Path | S3Url | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.run.to_json(), "bundle": str(self.bundle) if self.bundle else None}


def run_snapshot(kube: KubeApi, names: Names, opts: comp.SnapshotOptions, *,
                 output: str | Path | None = None, write_bundle: bool = True, force: bool = False,
                 sealing: Sealing | None = None,
                 progress: Progress | None = None,
                 now: datetime | None = None) -> SnapshotOutcome:
    """Take the snapshots; then (unless ``write_bundle`` is False) write a bundle holding
    only their records, which `restore` uses like any other bundle's volumes step."""
    from kubectl_runai_dr.ops.backup import BackupOptions, run_backup, target_path

    now = now or datetime.now(timezone.utc)
    if write_bundle:
        target = target_path(output, kube.context, now)
        if isinstance(target, Path) and target.exists() and not force:
            raise BundleExistsError(f"{target} already exists; no snapshot was taken",
                                    hint="pass --force to overwrite it, or another --to")
    run = comp.take_snapshots(kube, names, opts, progress, now=now)
    out = SnapshotOutcome(run)
    if write_bundle and run.records:
        backup = run_backup(kube, BackupOptions(
            output=output, force=force, names=names, only=("volumes",), record=False,
            snapshots=opts, snapshot_run=run, sealing=sealing), progress=progress, now=now)
        out.bundle = backup.path
    return out
