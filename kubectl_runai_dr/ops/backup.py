"""Run a backup: the planned components against the cluster, into one atomic bundle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kubectl_runai_dr._version import BUILD_COMMIT, __version__
from kubectl_runai_dr.bundle.manifest import build_manifest, default_bundle_name, runai_version
from kubectl_runai_dr.bundle.writer import BundleWriter
from kubectl_runai_dr.components import registry
from kubectl_runai_dr.components.base import BackupContext, NullProgress, Progress
from kubectl_runai_dr.components.volumes import SnapshotOptions, SnapshotRun
from kubectl_runai_dr.errors import DrError, UsageError
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.model import Names, Result, Status
from kubectl_runai_dr.ops.record import write_record
from kubectl_runai_dr.plan.backup import plan_backup
from kubectl_runai_dr.plan.database import DbOptions
from kubectl_runai_dr.plan.retention import bundles_to_delete


@dataclass
class BackupOptions:
    output: Path | None = None
    force: bool = False
    include_secrets: bool = False
    names: Names = field(default_factory=Names)
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    record: bool = True
    keep: int | None = None  # after a complete backup, keep this many bundles of the context
    db: DbOptions = field(default_factory=DbOptions)  # --db-*
    snapshots: SnapshotOptions | None = None  # --snapshots: take CSI snapshots (volumes)
    snapshot_run: SnapshotRun | None = None  # snapshots already taken (`snapshot`)


@dataclass
class BackupOutcome:
    path: Path
    manifest: dict[str, Any]
    results: list[Result]
    warnings: list[str]
    deleted: list[str] = field(default_factory=list)  # old bundles removed by --keep

    @property
    def partial(self) -> bool:
        return any(r.status is Status.FAILED for r in self.results)


def target_path(output: Path | None, context: str, now: datetime) -> Path:
    name = default_bundle_name(context, now)
    if output is None:
        return Path.cwd() / name
    return output / name if output.is_dir() else output


def run_backup(kube: KubeApi, opts: BackupOptions, *, progress: Progress | None = None,
               now: datetime | None = None) -> BackupOutcome:
    now = now or datetime.now(timezone.utc)
    progress = progress or NullProgress()
    enabled = [n for n, on in (("secrets", opts.include_secrets),
                               ("volumes", opts.snapshots is not None
                                or opts.snapshot_run is not None)) if on]
    try:
        planned = plan_backup(registry.BACKUP_STEPS, only=opts.only, skip=opts.skip,
                              aliases=registry.ALIASES, enabled=enabled)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # Reach the cluster before creating anything on disk: an unreachable server or bad
    # credentials fail here with a clear error and leave nothing behind.
    version = kube.server_version()
    writer = BundleWriter(target_path(opts.output, kube.context, now), force=opts.force)
    results: list[Result] = []
    try:
        ctx = BackupContext(kube=kube, out=writer, names=opts.names,
                            include_secrets=opts.include_secrets, progress=progress,
                            db=opts.db, snapshots=opts.snapshots,
                            snapshot_run=opts.snapshot_run)
        for step in planned:
            result = Result(step.name)
            if not step.run:
                result.status = Status.SKIPPED
                result.reason = step.why_not
                results.append(result)
                continue
            before = set(writer.files)
            progress.start(step.step.title)
            try:
                registry.BY_NAME[step.name].backup(ctx, result)
            except DrError as exc:
                _fail(writer, result, before, exc.message)
            except Exception as exc:  # a bug must not cost the other components
                _fail(writer, result, before, f"unexpected error: {exc!r}")
                result.details["traceback"] = _traceback(exc)
            finally:
                progress.finish()
            results.append(result)
        releases = ctx.releases
        manifest = build_manifest(
            created=now, tool_version=__version__, tool_commit=BUILD_COMMIT,
            context=kube.context, server=kube.server,
            kubernetes_version=str(version.get("gitVersion", "")),
            runai_version=runai_version(releases, opts.names), names=opts.names,
            results=results,
            contains_secrets=any(r.name == "secrets" and r.status is Status.OK
                                 for r in results),
        )
        path = writer.finalize(manifest, mtime=now.timestamp())
        manifest = writer.manifest
    except BaseException:
        writer.abort()
        raise
    warnings: list[str] = []
    if opts.record:
        warning = write_record(kube, opts.names, {
            "time": manifest["createdAt"], "bundle": path.name, "result": manifest["status"],
            "failedComponents": manifest["failedComponents"],
            "toolVersion": __version__,
        })
        if warning:
            warnings.append(warning)
    deleted: list[str] = []
    if opts.keep is not None:
        if manifest["status"] == "complete":
            deleted = _rotate(path, kube.context, opts.keep, warnings)
        else:
            warnings.append("--keep: nothing deleted, because this backup is partial")
    return BackupOutcome(path=path, manifest=manifest, results=results, warnings=warnings,
                         deleted=deleted)


def _rotate(path: Path, context: str, keep: int, warnings: list[str]) -> list[str]:
    """Delete the bundles of ``context`` beyond the ``keep`` newest, beside ``path``."""
    deleted = []
    for name in bundles_to_delete((p.name for p in path.parent.iterdir()), context, keep):
        try:
            (path.parent / name).unlink()
            deleted.append(name)
        except OSError as exc:
            warnings.append(f"--keep: could not delete {name}: {exc.strerror}")
    return deleted


def _fail(writer: BundleWriter, result: Result, before: set[str], reason: str) -> None:
    """A failed component keeps nothing in the bundle: no partial data that looks good."""
    for rel in set(writer.files) - before:
        writer.remove(rel)
    result.status = Status.FAILED
    result.reason = reason
    result.files = []
    result.count = 0


def _traceback(exc: BaseException) -> str:
    import traceback

    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:]
