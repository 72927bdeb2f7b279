"""Run a backup: the planned components against the cluster, into one atomic bundle."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kubectl_runai_dr._version import BUILD_COMMIT, __version__
from kubectl_runai_dr.bundle.manifest import (
    build_manifest,
    default_bundle_name,
    runai_version,
    utc_stamp,
)
from kubectl_runai_dr.bundle.rotation import held_components, rotate, rotate_s3, upload_metadata
from kubectl_runai_dr.bundle.writer import BundleWriter, resolve_target
from kubectl_runai_dr.components import registry
from kubectl_runai_dr.components.base import BackupContext, NullProgress, Progress
from kubectl_runai_dr.components.voldata import VolumeDataOptions
from kubectl_runai_dr.components.volumes import SnapshotOptions, SnapshotRun
from kubectl_runai_dr.errors import (
    Aborted,
    BundleExistsError,
    DrError,
    StorageError,
    UsageError,
)
from kubectl_runai_dr.interrupts import terminate_as_interrupt
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import Forbidden, Unauthorized
from kubectl_runai_dr.localfs import LocalFileError
from kubectl_runai_dr.model import Names, Result, Status
from kubectl_runai_dr.ops.record import write_record
from kubectl_runai_dr.plan.backup import plan_backup
from kubectl_runai_dr.plan.database import DbOptions
from kubectl_runai_dr.plan.voldata import claims_in_files
from kubectl_runai_dr.storage import age
from kubectl_runai_dr.storage.location import LocationError, S3Url
from kubectl_runai_dr.storage.location import parse as parse_location

if TYPE_CHECKING:
    from kubectl_runai_dr.storage.age import Sealing


@dataclass
class BackupOptions:
    output: str | Path | None = None  # a trailing slash means a directory
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
    sealing: Sealing | None = None  # encrypt the bundle (age)
    volume_data: VolumeDataOptions | None = None  # --volume-data: claims' files (volumes)


@dataclass
class BackupOutcome:
    path: Path | S3Url
    manifest: dict[str, Any]
    results: list[Result]
    warnings: list[str]
    deleted: list[str] = field(default_factory=list)  # old bundles removed by --keep
    size: int = 0  # of the bundle as stored
    encrypted: bool = False

    @property
    def partial(self) -> bool:
        return any(r.status is Status.FAILED for r in self.results)


def target_path(output: str | Path | None, context: str, now: datetime) -> Path | S3Url:
    """Where the bundle goes (see :func:`resolve_target`: a trailing slash or an existing
    directory means the default name in that directory)."""
    where = parse_location(output) if output is not None else None
    if isinstance(where, S3Url):
        return where.child(default_bundle_name(context, now)) if where.is_prefix else where
    return resolve_target(output, default_bundle_name(context, now))[0]


def _open_writer(opts: BackupOptions, name: str,
                 early: dict[str, Any]) -> tuple[BundleWriter, Path | S3Url]:
    """The writer of the new bundle, and where it will be: a local file, or an object
    uploaded once the bundle is packed (checked now: bucket, existing object)."""
    try:
        where = parse_location(opts.output) if opts.output is not None else None
    except LocationError as exc:
        raise UsageError(f"--to: {exc}") from None
    if not isinstance(where, S3Url):
        target, create_dir = resolve_target(opts.output, name)
        encrypted = opts.sealing is not None
        return BundleWriter(target, force=opts.force, create_dir=create_dir, seal=opts.sealing,
                            facts=lambda m: upload_metadata(m, encrypted=encrypted)), target
    from kubectl_runai_dr.storage.s3 import S3Store, S3Upload
    from kubectl_runai_dr.storage.settings import current

    url = where.child(name) if where.is_prefix else where
    store = S3Store(current().s3)
    store.check_bucket(url)
    if not opts.force and store.head(url) is not None:
        raise BundleExistsError(f"{url} already exists",
                                hint="choose another --to, or pass --force")
    encrypted = opts.sealing is not None

    def upload(manifest: dict[str, Any] | None) -> S3Upload:
        # None: started while the backup runs (a large member streams up), before the
        # status and components are known; readers then take those from the manifest
        return S3Upload(store, url, upload_metadata(manifest or early, encrypted=encrypted))

    return BundleWriter(Path(url.name), upload=upload, seal=opts.sealing,
                        facts=lambda m: upload_metadata(m, encrypted=encrypted)), url


def run_backup(kube: KubeApi, opts: BackupOptions, *, progress: Progress | None = None,
               now: datetime | None = None) -> BackupOutcome:
    now = now or datetime.now(timezone.utc)
    progress = progress or NullProgress()
    enabled = [n for n, on in (("secrets", opts.include_secrets),
                               ("volumes", opts.snapshots is not None
                                or opts.snapshot_run is not None
                                or opts.volume_data is not None)) if on]
    try:
        planned = plan_backup(registry.BACKUP_STEPS, only=opts.only, skip=opts.skip,
                              aliases=registry.ALIASES, enabled=enabled)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    # Reach the cluster before creating anything on disk: an unreachable server or bad
    # credentials fail here with a clear error and leave nothing behind.
    version = kube.server_version()
    name = default_bundle_name(kube.context, now) + (age.SUFFIX if opts.sealing else "")
    warnings: list[str] = []
    # SIGTERM as Ctrl-C: either way the staging directory (a full dump) is removed, and an
    # upload is aborted
    with terminate_as_interrupt():
        writer, target = _open_writer(opts, name, {"source": {"context": kube.context},
                                                   "createdAt": utc_stamp(now)})
        warnings += [f"removed {writer.dir.path / name}, the staging directory of an "
                     "interrupted backup" for name in writer.removed_stale]
        results: list[Result] = []
        errors: list[BaseException] = []
        try:
            ctx = BackupContext(kube=kube, out=writer, names=opts.names,
                                include_secrets=opts.include_secrets, progress=progress,
                                db=opts.db, snapshots=opts.snapshots,
                                snapshot_run=opts.snapshot_run,
                                volume_data=opts.volume_data)
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
                except (LocalFileError, StorageError):
                    raise  # disk full, read-only file system, the bucket refused or went
                    # away while a member streamed up: no bundle can be written
                except DrError as exc:
                    _fail(writer, result, before, exc.message)
                    errors.append(exc)
                except Exception as exc:  # a bug must not cost the other components
                    _fail(writer, result, before, f"unexpected error: {exc!r}")
                    result.details["traceback"] = _traceback(exc)
                    errors.append(exc)
                finally:
                    progress.finish()
                results.append(result)
            _refuse_empty(results, errors, writer.files)
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
            writer.finalize(manifest, mtime=now.timestamp())
            if writer.warning:
                warnings.append(writer.warning)
            path = target
            manifest = writer.manifest
        except KeyboardInterrupt as exc:
            writer.abort()
            if not writer.placed:
                left = ("the staging directory was removed" if not writer.staging.exists()
                        else f"the staging directory {writer.staging} could not be removed "
                             "(the next backup into that directory removes it)")
                raise Aborted(f"interrupted ({_signal(exc)}) before the bundle was written: "
                              f"no bundle, {left}; the in-cluster record was not updated",
                              hint="run the backup again") from None
            path, manifest = target, writer.manifest
            raise Aborted(_interrupted_after(exc, path, manifest, "written", opts),
                          hint=_VERIFY_HINT.format(path)) from None
        except BaseException as exc:
            writer.abort()
            if writer.abort_problem and isinstance(exc, DrError):
                exc.hint = "; ".join(filter(None, [exc.hint, writer.abort_problem]))
            raise
        state = "rotating"
        try:
            deleted = _rotate(kube.context, opts, path, manifest, now, warnings)
            state = "recording"
            _record(kube, opts, path, manifest, warnings)
        except KeyboardInterrupt as exc:
            raise Aborted(_interrupted_after(exc, path, manifest, state, opts),
                          hint=_VERIFY_HINT.format(path)) from None
    return BackupOutcome(path=path, manifest=manifest, results=results, warnings=warnings,
                         deleted=deleted, size=writer.size, encrypted=opts.sealing is not None)


_VERIFY_HINT = "the bundle is usable: `kubectl runai-dr verify {}` checks it"


def _signal(exc: KeyboardInterrupt) -> str:
    return str(exc.args[0]) if exc.args else "Ctrl-C"


def _interrupted_after(exc: KeyboardInterrupt, path: Path | S3Url, manifest: dict[str, Any],
                       state: str, opts: BackupOptions) -> str:
    """What is where after an interruption once the bundle was in place. ``state``:
    written (nothing after it ran), rotating (--keep was deleting), recording."""
    parts = [f"interrupted ({_signal(exc)}) after the bundle {path} was written "
             f"({manifest.get('status', 'complete')})"]
    if opts.keep is not None:
        parts.append({"written": "old bundles were not rotated (--keep)",
                      "rotating": "old bundles may have been deleted in part (--keep)"}.get(
                          state, "old bundles were rotated (--keep)"))
    if opts.record:
        parts.append("the in-cluster record may or may not have been updated" if
                     state == "recording" else "the in-cluster record was not updated, so "
                     "`status` still shows the previous backup")
    return "; ".join(parts)


def _rotate(context: str, opts: BackupOptions, path: Path | S3Url, manifest: dict[str, Any],
            now: datetime, warnings: list[str]) -> list[str]:
    """--keep: the bundles of this context beyond the newest, after a complete backup."""
    if opts.keep is None:
        return []
    if manifest["status"] != "complete":
        warnings.append("--keep: nothing deleted, because this backup is partial")
        return []
    try:
        if isinstance(path, S3Url):
            from kubectl_runai_dr.storage.s3 import S3Store
            from kubectl_runai_dr.storage.settings import current

            rotation = rotate_s3(S3Store(current().s3), path.parent, context=context,
                                 keep=opts.keep, just_written=path.name, now=now,
                                 written_components=held_components(manifest),
                                 aliases=registry.ALIASES)
        else:
            rotation = rotate(path.parent, context=context, keep=opts.keep,
                              just_written=path.name, now=now,
                              written_components=held_components(manifest),
                              aliases=registry.ALIASES)
    except DrError as exc:
        warnings.append(f"--keep: nothing deleted: {exc.message}")
        return []
    warnings.extend(rotation.warnings)
    return rotation.deleted


def _record(kube: KubeApi, opts: BackupOptions, path: Path | S3Url, manifest: dict[str, Any],
            warnings: list[str]) -> None:
    """The in-cluster record of the bundle, as it exists after the rotation."""
    if not opts.record:
        return
    if isinstance(path, Path) and not os.path.lexists(path):
        warnings.append(f"{path} is gone: the backup is not recorded in the cluster")
        return
    warning = write_record(kube, opts.names, {
        "time": manifest["createdAt"], "bundle": path.name, "result": manifest["status"],
        # where it went: a directory or s3:// prefix (a URL never holds credentials)
        "location": str(path.parent) if isinstance(path, S3Url) else str(path.parent.resolve()),
        "encrypted": opts.sealing is not None,
        "failedComponents": manifest["failedComponents"],
        "includedComponents": manifest["includedComponents"],
        "excludedComponents": manifest["excludedComponents"],
        "toolVersion": __version__,
        "volumeDataClaims": claims_in_files(manifest.get("files") or {}),
    })
    if warning:
        warnings.append(warning)


def _refuse_empty(results: list[Result], errors: list[BaseException],
                  files: dict[str, Any]) -> None:
    """No bundle when nothing could be saved because every component was refused the same
    way (credentials rejected, or forbidden): it would hold nothing, and verify would call
    it valid. The exit code is that refusal's (5 or 6). Other failures still give a
    partial bundle that records why."""
    if files or not errors:
        return
    kinds = {type(e) for e in errors}
    if len(kinds) != 1 or not issubclass(kinds.pop(), Unauthorized | Forbidden):
        return
    first = errors[0]
    assert isinstance(first, DrError)
    failed = "; ".join(f"{r.name}: {r.reason}" for r in results if r.status is Status.FAILED)
    err = DrError(f"no component could be backed up, so no bundle was written ({failed})",
                  hint=first.hint or "check the credentials and the permissions (`kubectl "
                                     "runai-dr status` lists what is missing)")
    err.exit_code = first.exit_code
    raise err


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
