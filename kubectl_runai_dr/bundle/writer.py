"""Write a bundle atomically, in a private directory, never through a link.

The target's directory is opened once and checked (:mod:`kubectl_runai_dr.localfs`): it
belongs to the user and no one else may write to it. Files are staged in a hidden 0700
directory beside the target (``.<name>.<random>.partial``), each created 0600 from its
first byte and hashed while it is written; then everything is packed, the manifest first,
into a file inside that directory, which is fsynced and linked into place (``--force``:
renamed over the target). An interrupted run leaves only the hidden staging directory,
never a file that looks like a complete bundle; ``abort()`` removes it. A staging
directory holds a lock while its backup runs, so a later run can tell a stale one (left
by a killed process) from a running backup's, and removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Protocol, cast

from kubectl_runai_dr.bundle.layout import FORMAT, FORMAT_VERSION, MANIFEST
from kubectl_runai_dr.bundle.schema import check_path
from kubectl_runai_dr.bundle.streamed import (
    CHUNK,
    HEAD,
    LAST_PART,
    MAX_RANGES,
    MIN_PART,
    SPILL_AT,
    PartWriter,
    Sealed,
    Sealer,
    SpillSink,
    gzip_member,
    head_reserve,
    padded,
    range_base,
)
from kubectl_runai_dr.errors import BundleExistsError, DrError, StorageError
from kubectl_runai_dr.localfs import LocalFileError, PrivateDir, local_error, open_private_dir

_LEVEL = 6  # gzip level for JSON and YAML
_SAMPLE = 256 * 1024  # a larger member whose sample does not compress is stored as is
STAGING_SUFFIX = ".partial"
STAGING_MARK = ".runai-dr-staging"  # in every staging directory: "this tool's, locked"
_PACKED = ".bundle.tar.gz"  # the packed bundle inside the staging directory
_LARGE = 4 * 1024 * 1024  # files this large go after all the small ones


class Output(Protocol):
    def write(self, data: bytes) -> int: ...

    def close(self) -> None: ...


class Upload(Output, Protocol):
    """A remote bundle being written (:class:`~kubectl_runai_dr.storage.s3.S3Upload`)."""

    size: int
    part_size: int
    warning: str

    def send(self, number: int, data: bytes | bytearray) -> None: ...

    def ready(self, in_flight: int = ...) -> None:
        """Return once fewer than ``in_flight`` parts are being sent (by default: once
        ``send`` would not wait)."""

    def commit(self, parts: list[int] | None = None,
               metadata: dict[str, str] | None = None) -> str: ...

    def abort(self) -> None: ...


class Seal(Protocol):
    """How the bundle is encrypted (:class:`~kubectl_runai_dr.storage.age.Sealing`)."""

    def seal(self, out: Output) -> Output:
        """A writer: plaintext in, the encrypted file out to ``out``."""

    def start(self) -> Sealer:
        """A new encrypted file, for parts encrypted as they are sent."""


INCOMPLETE = "incomplete/"  # an encrypted upload's member that failed after it went up


class HashingFile:
    """A write-only file that records its size and sha256 as bytes go through."""

    def __init__(self, fh: BinaryIO, on_close: Any, path: Path | str = "",
                 spill: Callable[[HashingFile], Output] | None = None) -> None:
        self._fh: Any = fh
        self._sha = hashlib.sha256()
        self.size = 0
        self._on_close = on_close
        self._path = path
        self._spill = spill  # called once the file passes SPILL_AT: where the rest goes
        self.closed = False

    def write(self, data: bytes) -> int:
        try:
            self._fh.write(data)
        except OSError as exc:
            raise local_error(exc, "write", self._path) from exc
        self._sha.update(data)
        self.size += len(data)
        if self._spill is not None and self.size >= SPILL_AT:
            spill, self._spill = self._spill, None
            try:
                self._fh.flush()
            except OSError as exc:
                raise local_error(exc, "write", self._path) from exc
            self._fh = spill(self)
        return len(data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._fh.close()
            except OSError as exc:
                raise local_error(exc, "write", self._path) from exc
            self._on_close(self)

    def discard(self) -> None:
        """Close without recording: the file is dropped from the bundle."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(OSError):
                getattr(self._fh, "discard", self._fh.close)()

    def __enter__(self) -> HashingFile:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if et is None:
            self.close()
        else:
            self.discard()


class ListWriter:
    """Stream a kubectl-style ``List`` to a file one item at a time (no list in memory)."""

    def __init__(self, out: HashingFile) -> None:
        self._out = out
        self.count = 0
        out.write(b'{"apiVersion": "v1", "kind": "List", "items": [\n')

    def append(self, item: dict[str, Any]) -> None:
        prefix = b",\n" if self.count else b""
        self._out.write(prefix + json.dumps(item, sort_keys=True).encode())
        self.count += 1

    def close(self) -> None:
        self._out.write(b"\n]}\n")
        self._out.close()


def resolve_target(output: str | Path | None, default_name: str,
                   cwd: Path | None = None) -> tuple[Path, bool]:
    """Where a bundle goes, and whether its directory may be created.

    No output: ``default_name`` in the current directory. A trailing slash or an existing
    directory: ``default_name`` in that directory, created (0700) when missing. Anything
    else names the bundle file itself; its directory must exist."""
    base = cwd or Path.cwd()
    if output is None:
        return base / default_name, False
    text = os.fspath(output)
    if text.endswith(("/", os.sep)) or os.path.isdir(text):
        return base / text / default_name, True
    return base / text, False


def remove_stale_staging(directory: PrivateDir) -> list[str]:
    """Remove the staging directories this tool left in ``directory`` when a backup was
    killed: this user's, marked as the tool's, and not locked by a backup still running.
    Returns their names."""
    removed = []
    for name in directory.names():
        if not (name.startswith(".") and name.endswith(STAGING_SUFFIX)):
            continue
        try:
            st = directory.lstat(name)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                continue
            sub = directory.subdir(name, create=False)
        except (OSError, LocalFileError):
            continue
        with sub:
            try:
                sub.lstat(STAGING_MARK)
                fcntl.flock(sub.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # not the tool's, or its backup is running now
                continue
            try:
                directory.remove_tree(name)
            except OSError as exc:
                raise local_error(exc, "remove the stale staging directory",
                                  directory.path / name) from exc
        removed.append(name)
    return removed


class BundleWriter:
    """Stage files, then pack them into ``target`` atomically (see the module).

    ``create_dir``: create the target's directory (0700) when it is missing.
    """

    def __init__(self, target: Path, *, force: bool = False, create_dir: bool = False,
                 upload: Callable[[dict[str, Any] | None], Upload] | None = None,
                 seal: Seal | None = None,
                 facts: Callable[[dict[str, Any]], dict[str, str]] | None = None) -> None:
        self.target = target
        self.force = force
        self.files: dict[str, dict[str, Any]] = {}
        self.manifest: dict[str, Any] = {}
        self.placed = False  # the bundle is at its target
        self.size = 0  # of the bundle as written (once finalized)
        self.abort_problem = ""  # what abort() could not clean up
        self.warning = ""  # what went wrong once the bundle was in place
        self.removed_stale: list[str] = []  # stale staging directories removed
        self._subdirs: dict[str, PrivateDir] = {}
        self._staging: PrivateDir | None = None
        self._upload = upload  # starts the upload once the manifest is known
        self._active: Upload | None = None
        self._seal = seal
        self._facts = facts  # what the file carries as extended attributes (user.*)
        self._spill_ok = True
        # members sent while written, by name, in the order of their part ranges
        self._spilled: dict[str, SpillSink] = {}
        self._sealed: Sealed | None = None  # an encrypted upload's chunk arithmetic
        # (encrypted upload) every range in the object, in order: (path, sink, file, where
        # its header part starts); a failed member's range stays
        self._ranges: list[tuple[str, SpillSink, HashingFile, int]] = []
        self._ranges_used = 0  # ranges handed out (a removed member's is not reused)
        self._scratch: str | None = None  # a private temporary directory (uploads)
        if upload is not None:  # stage in a private temporary directory of our own
            import tempfile

            self._scratch = tempfile.mkdtemp(prefix="runai-dr-")
            self.dir = open_private_dir(Path(self._scratch))
        else:
            self.dir = open_private_dir(target.parent, create=create_dir)
        try:
            if upload is None:
                self._refuse_existing()
                self.removed_stale = remove_stale_staging(self.dir)
            self._staging_name, self._staging = self.dir.make_temp_dir(
                f".{target.name}.", STAGING_SUFFIX)
            try:
                fcntl.flock(self._staging.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._staging.create(STAGING_MARK).close()
            except OSError as exc:
                raise local_error(exc, "create a staging directory in", self.dir.path) from exc
        except BaseException:
            self._cleanup()
            raise
        self.staging = self.dir.path / self._staging_name

    def _refuse_existing(self) -> None:
        try:
            st = self.dir.lstat(self.target.name)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise local_error(exc, "write", self.target) from exc
        if stat.S_ISDIR(st.st_mode):
            raise LocalFileError(f"{self.target} is a directory",
                                 hint="end --to with a slash to write the bundle into "
                                      "a directory, or choose another name")
        if not self.force:
            raise BundleExistsError(
                f"{self.target} already exists", hint="choose another --to, or pass --force")

    def _parent(self, relpath: str) -> tuple[PrivateDir, str]:
        """The staging directory that holds ``relpath`` (created), and the file name."""
        why = check_path(relpath)
        if why or relpath in (STAGING_MARK, _PACKED):
            raise ValueError(f"invalid bundle path {relpath!r}")
        assert self._staging is not None
        *dirs, name = relpath.split("/")
        directory, key = self._staging, ""
        for part in dirs:
            key = f"{key}/{part}"
            if key not in self._subdirs:
                self._subdirs[key] = directory.subdir(part)
            directory = self._subdirs[key]
        return directory, name

    def _record(self, relpath: str) -> Any:
        def done(f: HashingFile) -> None:
            self.files[relpath] = {"size": f.size, "sha256": f.sha256}
        return done

    def open(self, relpath: str) -> HashingFile:
        """A file in the bundle, for streaming writes (``with`` discards it on error).

        Uploading, a file that grows past ``SPILL_AT`` goes up while it is written
        (:mod:`.streamed`): only its first bytes touch the disk."""
        self.files.pop(relpath, None)
        self._spilled.pop(relpath, None)
        directory, name = self._parent(relpath)
        with contextlib.suppress(FileNotFoundError):
            directory.unlink(name)
        spill = None
        if self._upload is not None and self._spill_ok:
            def spill(f: HashingFile) -> Output:
                return self._spill_file(relpath, f)
        return HashingFile(directory.create(name), self._record(relpath),
                           self.staging / relpath, spill=spill)

    def _spill_file(self, relpath: str, f: HashingFile) -> Output:
        """Send what ``relpath`` holds so far up, drop it from the disk, and return where
        the rest goes."""
        assert self._upload is not None
        if self._ranges_used >= MAX_RANGES:  # no range left: it stays on disk
            return cast(Output, f._fh)
        if self._seal is not None and any(not r[1].finished for r in self._ranges):
            return cast(Output, f._fh)  # encrypted: one member streams at a time
        if self._active is None:
            self._active = self._upload(None)
        if self._seal is not None and self._sealed is None:
            self._sealed = Sealed(self._seal.start(), self._active.send,
                                  head_reserve(self._compressed_so_far()))
        index = self._ranges_used
        self._ranges_used += 1
        directory, name = self._parent(relpath)
        f._fh.close()
        with os.fdopen(directory.open_regular(name), "rb") as fh:
            level = 0 if _incompressible(fh, 4 * _SAMPLE) else _LEVEL
            if self._sealed is not None:
                at = self._sealed.reserve(MIN_PART)  # the header part comes first
                up = self._active
                sink = SpillSink(self._sealed.sequential(), range_base(index), level=level,
                                 part_size=up.part_size, align=CHUNK,
                                 ready=lambda: up.ready(in_flight=1))
                self._ranges.append((relpath, sink, f, at))
            else:
                sink = SpillSink(self._active.send, range_base(index), level=level,
                                 part_size=self._active.part_size)
            sink.feed(fh)
        directory.unlink(name)
        self._spilled[relpath] = sink
        return sink

    def write_bytes(self, relpath: str, data: bytes) -> None:
        with self.open(relpath) as f:
            f.write(data)

    def write_json(self, relpath: str, obj: Any) -> None:
        self.write_bytes(relpath, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def write_text(self, relpath: str, text: str) -> None:
        self.write_bytes(relpath, text.encode())

    @contextlib.contextmanager
    def list_file(self, relpath: str) -> Iterator[ListWriter]:
        out = self.open(relpath)
        lw = ListWriter(out)
        try:
            yield lw
        except BaseException:
            out.discard()
            raise
        lw.close()

    def remove(self, relpath: str) -> None:
        self.files.pop(relpath, None)
        self._spilled.pop(relpath, None)  # its parts are left out of the object
        directory, name = self._parent(relpath)
        with contextlib.suppress(FileNotFoundError):
            directory.unlink(name)

    def finalize(self, manifest: dict[str, Any], *, mtime: float) -> Path:
        """Pack manifest + files into the target atomically; returns the target path."""
        assert self._staging is not None
        manifest = dict(manifest)
        incomplete = self._incomplete()
        manifest["format"] = FORMAT
        manifest["formatVersion"] = FORMAT_VERSION
        manifest["files"] = {k: self.files[k] for k in sorted(self.files)}
        self.manifest = manifest  # as written: with format, version and the files table
        data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        if self._upload is not None:
            if self._sealed is not None:  # encrypted, a member went up while written
                assert self._active is not None
                self._pack_sealed(self._active, self._sealed, data, mtime, incomplete)
                # its manifest cannot be read without a key: the facts listing and
                # rotation need go into the object's metadata, now that they are known
                self._active.commit(metadata=self._facts(manifest) if self._facts else None)
            elif self._active is not None:  # a member went up while written
                parts = self._pack_streamed(self._active, data, mtime)
                self._active.commit(parts)
            else:
                if self._active is None:
                    self._active = self._upload(manifest)
                self._pack(self._active, data, mtime)
                self._active.commit()
            self.size = self._active.size
            self.warning = self._active.warning
            self.placed = True
            self._cleanup()
            return self.target
        try:
            with self._staging.create(_PACKED) as raw:
                self._pack(raw, data, mtime)
                raw.flush()
                if self._facts is not None:
                    _set_xattrs(raw.fileno(), self._facts(manifest))
                os.fsync(raw.fileno())
                self.size = os.fstat(raw.fileno()).st_size
        except OSError as exc:
            raise local_error(exc, "write", self.target) from exc
        try:
            if self.force:
                os.replace(_PACKED, self.target.name, src_dir_fd=self._staging.fd,
                           dst_dir_fd=self.dir.fd)
            else:  # a link fails instead of overwriting
                os.link(_PACKED, self.target.name, src_dir_fd=self._staging.fd,
                        dst_dir_fd=self.dir.fd, follow_symlinks=False)
        except FileExistsError as exc:
            raise BundleExistsError(f"{self.target} appeared while the backup ran",
                                    hint="choose another --to, or pass --force") from exc
        except OSError as exc:
            raise local_error(exc, "write", self.target) from exc
        self.placed = True
        self.dir.sync()
        self._cleanup()
        return self.target

    def _pack(self, raw: Output, manifest: bytes, mtime: float) -> None:
        """The archive, manifest first, then the files: small ones in name order, then
        the large ones (dumps), so a reader that must start from the beginning (an
        encrypted bundle) reaches every small member without going through a dump."""
        assert self._staging is not None
        sink: Output = self._seal.seal(raw) if self._seal is not None else raw
        self._pack_into(sink, manifest, mtime)
        if sink is not raw:
            sink.close()

    def _pack_into(self, sink: Output, manifest: bytes, mtime: float) -> None:
        assert self._staging is not None
        out = _GzipMembers(sink, mtime)
        with tarfile.open(fileobj=cast(IO[bytes], out), mode="w",
                          format=tarfile.PAX_FORMAT) as tar:
            out.set_level(_LEVEL)
            tar.addfile(_info(MANIFEST, len(manifest), mtime), io.BytesIO(manifest))
            for rel in sorted(self.files, key=lambda r: (self.files[r]["size"] >= _LARGE, r)):
                directory, name = self._parent(rel)
                size = self.files[rel]["size"]
                with os.fdopen(directory.open_regular(name), "rb") as fh:
                    # already-compressed data (pg_dump -Fc) is stored, not compressed
                    out.set_level(0 if _incompressible(fh, size) else _LEVEL)
                    tar.addfile(_info(rel, size, mtime), fh)
            out.set_level(_LEVEL)
        out.close()

    def _pack_streamed(self, up: Upload, manifest: bytes, mtime: float) -> list[int]:
        """The rest of a streamed upload (:mod:`.streamed`): the head (manifest and small
        files), each large member's header part, the archive's end. Returns the numbers of
        the parts the object is made of: those of members removed meanwhile (their
        component failed) are left out."""
        parts: list[int] = []

        def send(number: int, data: bytes | bytearray) -> None:
            parts.append(number)
            up.send(number, data)

        head = PartWriter(send, iter(HEAD), level=_LEVEL, part_size=up.part_size)
        head.write(_header(MANIFEST, len(manifest), mtime) + manifest + _pad(len(manifest)))
        for rel in sorted(r for r in self.files if r not in self._spilled):
            size = self.files[rel]["size"]
            head.write(_header(rel, size, mtime))
            for chunk in self._staged(rel):
                head.write(chunk)
            head.write(_pad(size))
        head.finish()
        before = 0  # the padding the previous large member's data needs
        for rel, sink in self._spilled.items():
            if rel not in self.files or not sink.finished:
                continue  # removed or discarded (its component failed): no part of it is used
            size = self.files[rel]["size"]
            send(sink.base, padded(gzip_member(bytes(before) + _header(rel, size, mtime))))
            parts.extend(sink.numbers)
            before = -size % 512
        send(LAST_PART, gzip_member(bytes(before) + bytes(1024)))
        return sorted(parts)

    def _incomplete(self) -> dict[int, str]:
        """(Encrypted upload) the ranges of members that failed after they went up, each
        listed under ``incomplete/`` with what was written of it: id of its sink → name."""
        names: dict[int, str] = {}
        for rel, sink, f, _ in self._ranges:
            if self._spilled.get(rel) is sink and rel in self.files and not sink.discarded:
                continue
            name = INCOMPLETE + rel
            n = 1
            while name in self.files or check_path(name):
                n += 1
                name = f"{INCOMPLETE}{n}/{rel}"
                if check_path(name):  # too long: named after a hash of the path
                    name = f"{INCOMPLETE}{n}/{hashlib.sha256(rel.encode()).hexdigest()}"
            sink.close()  # (a discarded one is already finished off)
            if f.size != sink.size:
                raise DrError(f"{rel}: {f.size} bytes written but {sink.size} sent")
            self.files[name] = {"size": sink.size, "sha256": f.sha256}
            names[id(sink)] = name
        return names

    def _pack_sealed(self, up: Upload, sealed: Sealed, manifest: bytes, mtime: float,
                     incomplete: dict[int, str]) -> None:
        """The rest of an encrypted streamed upload (:mod:`.streamed`): the head of its
        reserved size (the manifest and the small files that fit), each range's header
        part, then the small files that did not fit and the archive's end."""
        in_ranges = {r[0] for r in self._ranges if self._spilled.get(r[0]) is r[1]}
        in_ranges.update(incomplete.values())
        room = sealed.head - 22  # (the padding member)
        head = [gzip_member(_header(MANIFEST, len(manifest), mtime) + manifest
                            + _pad(len(manifest)))]
        if len(head[0]) > room:
            raise StorageError(f"the manifest ({len(head[0])} bytes compressed) does not fit "
                               f"the {sealed.head} bytes reserved for it in an encrypted "
                               "upload", hint="back up fewer files into one bundle, or to "
                                              "a local file")
        used = len(head[0])
        later: list[str] = []  # small files that do not fit the head
        for rel in sorted(r for r in self.files if r not in in_ranges):
            member = self._compressed_within(rel, mtime, room - used)
            if member is None:
                later.append(rel)
            else:
                head.append(member)
                used += len(member)
        sealed.send_at(HEAD[0], 0, padded(b"".join(head), sealed.head, CHUNK))
        before = 0  # the padding the previous large member's data needs
        for rel, sink, _, at in self._ranges:
            name = incomplete.get(id(sink), rel)
            block = gzip_member(bytes(before) + _header(name, sink.size, mtime))
            sealed.send_at(sink.base, at, padded(block, MIN_PART, CHUNK))
            before = -sink.size % 512
        tail = PartWriter(sealed.sequential(lambda: tail.final),
                          iter(range(range_base(self._ranges_used), LAST_PART + 1)),
                          level=_LEVEL, part_size=up.part_size, align=CHUNK,
                          ready=lambda: up.ready(in_flight=1))
        tail.write(bytes(before))
        for rel in later:
            size = self.files[rel]["size"]
            tail.write(_header(rel, size, mtime))
            for chunk in self._staged(rel):
                tail.write(chunk)
            tail.write(_pad(size))
        tail.write(bytes(1024))
        tail.finish(0, final=True)

    def _compressed_so_far(self) -> int:
        """What the files staged until now take compressed (level 1: quick, and larger
        than level 6 makes them), with their tar headers."""
        total = 0
        for rel in self.files:
            z = zlib.compressobj(1, zlib.DEFLATED, 31)
            total += sum(len(z.compress(chunk)) for chunk in self._staged(rel))
            total += len(z.flush()) + 1536
        return total

    def _staged(self, rel: str, chunk: int = 1024 * 1024) -> Iterator[bytes]:
        """The staged file ``rel``, read ``chunk`` bytes at a time."""
        directory, name = self._parent(rel)
        with os.fdopen(directory.open_regular(name), "rb") as fh:
            while data := fh.read(chunk):
                yield data

    def _compressed_within(self, rel: str, mtime: float, room: int) -> bytes | None:
        """The staged file ``rel`` as one gzip member (its tar header and padding
        included) when that is at most ``room`` bytes; None as soon as it is not."""
        size = self.files[rel]["size"]
        z = zlib.compressobj(_LEVEL, zlib.DEFLATED, 31)
        out = [z.compress(_header(rel, size, mtime))]
        used = len(out[0])
        for chunk in self._staged(rel):
            out.append(z.compress(chunk))
            used += len(out[-1])
            if used > room:
                return None
        out.append(z.compress(_pad(size)) + z.flush())
        return b"".join(out) if used + len(out[-1]) <= room else None

    def in_place(self) -> bool:
        """Whether the packed bundle is at its target (also right after an interruption
        of ``finalize``)."""
        if self.placed or self._staging is None or self._upload is not None:
            return self.placed
        try:
            a = self.dir.lstat(self.target.name)
            b = self._staging.lstat(_PACKED)
        except OSError:
            return False
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def abort(self) -> None:
        """Remove the staging directory (a bundle already in place stays); an upload not
        completed is aborted, so nothing of it stays in the bucket."""
        self.placed = self.in_place()
        if self._upload is not None and not self.placed:
            try:
                if self._active is not None:
                    self._active.abort()
            except DrError as exc:  # the original failure matters more: keep it
                self.abort_problem = (
                    f"the upload could not be aborted ({exc.message}): an incomplete "
                    "multipart upload may remain in the bucket; it is never a bundle, and "
                    "a lifecycle rule (AbortIncompleteMultipartUpload) removes it")
            finally:
                with contextlib.suppress(OSError, LocalFileError):
                    self._cleanup()
            return
        with contextlib.suppress(OSError, LocalFileError):
            self._cleanup()

    def _cleanup(self) -> None:
        for sub in self._subdirs.values():
            sub.close()
        self._subdirs.clear()
        if self._staging is not None:
            try:
                self.dir.remove_tree(self._staging_name)  # still locked: no one else does
            finally:
                self._staging.close()
                self._staging = None
                self.dir.sync()
        self.dir.close()
        if self._scratch is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._scratch)
            self._scratch = None

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        if not self.placed:
            self.abort()


XATTR_PREFIX = "user."


def _set_xattrs(fd: int, facts: dict[str, str]) -> None:
    """Best effort: a file system without user extended attributes just has none (readers
    then fall back to the name)."""
    for key, value in facts.items():
        try:
            os.setxattr(fd, XATTR_PREFIX + key, value.encode())
        except OSError:
            return


def read_xattrs(fd: int, keys: list[str]) -> dict[str, str]:
    out = {}
    for key in keys:
        try:
            out[key] = os.getxattr(fd, XATTR_PREFIX + key)[:4096].decode("ascii", "replace")
        except OSError:
            continue
    return out


def _header(name: str, size: int, mtime: float) -> bytes:
    """A member's tar header block(s), as tarfile writes them (pax)."""
    return _info(name, size, mtime).tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING,
                                          "surrogateescape")


def _pad(size: int) -> bytes:
    return bytes(-size % 512)


def _info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(mtime)
    info.uname = info.gname = ""
    return info


class _GzipMembers:
    """A write-only stream that gzips what it is given, one gzip member per compression
    level: a gzip file may hold several members, and gzip, GNU tar and Python's gzip
    module read them as one stream. Lets the bundle store already-compressed dumps without
    spending CPU on compressing them again."""

    def __init__(self, raw: Output, mtime: float) -> None:
        self._raw = raw
        self._mtime = mtime
        self._gz: gzip.GzipFile | None = None
        self._level: int | None = None
        self._pos = 0

    def set_level(self, level: int) -> None:
        if level == self._level:
            return
        if self._gz is not None:
            self._gz.close()  # writes this member's trailer; the raw file stays open
        self._gz = gzip.GzipFile(fileobj=cast(IO[bytes], self._raw), mode="wb",
                                 compresslevel=level,
                                 mtime=int(self._mtime))
        self._level = level

    def write(self, data: bytes) -> int:
        assert self._gz is not None
        self._pos += len(data)
        return self._gz.write(data)

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
            self._gz = None


def _incompressible(fh: BinaryIO, size: int) -> bool:
    """True for a large file whose first bytes do not compress (compressed data)."""
    if size < 4 * _SAMPLE:
        return False
    sample = fh.read(_SAMPLE)
    fh.seek(0)
    return len(zlib.compress(sample, 1)) > 0.95 * len(sample)
