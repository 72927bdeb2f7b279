"""Read and verify bundles, treating every bundle as hostile.

The file is opened once (a regular file; a FIFO or device is refused) and every read goes
through that descriptor, front to back (:mod:`.archive`): memory stays bounded whatever a
member inflates to. The manifest is at most :data:`MAX_MANIFEST` bytes and is validated
against its schema when the bundle is opened (:mod:`.schema`); a member is read whole only
up to :data:`MAX_IN_MEMORY` bytes, and a ``List`` of objects is streamed item by item.
Every problem is a :class:`BundleError` (exit code 4) that names the bundle, the member or
the manifest field, and the cause.
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

from kubectl_runai_dr.bundle import schema
from kubectl_runai_dr.bundle.archive import (
    CHUNK,
    ArchiveError,
    GzipReader,
    Member,
    NotGzip,
    TarReader,
)
from kubectl_runai_dr.bundle.jsonlist import ListError, iter_items
from kubectl_runai_dr.bundle.layout import FORMAT, FORMAT_VERSION, MANIFEST
from kubectl_runai_dr.bundle.source import FileSource, Source, open_source
from kubectl_runai_dr.errors import BundleError
from kubectl_runai_dr.localfs import local_error

MAX_MANIFEST = 4 * 1024 * 1024  # the manifest lists a few dozen files: kilobytes
MAX_IN_MEMORY = 64 * 1024 * 1024  # a member read whole (helm values, metadata, RunaiConfig)
MAX_ITEM = 8 * 1024 * 1024  # one object of a List (the API server stores at most ~1.5 MiB)
VERIFY_HINT = "run `kubectl runai-dr verify` on it"
CORRUPT_HINT = "the bundle is corrupt or was modified; use another one"


@dataclass(frozen=True)
class Problem:
    file: str
    message: str


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def read_manifest(fd: int, path: Path | str) -> dict[str, Any]:
    """The manifest of the bundle file open as ``fd`` (see :func:`source_manifest`)."""
    return source_manifest(FileSource(Path(path), fd), path)


def source_manifest(source: Source, path: Path | str | None = None) -> dict[str, Any]:
    """The manifest of the bundle in ``source``: its first member, at most
    :data:`MAX_MANIFEST` bytes, validated against its schema."""
    path = source.name if path is None else path
    stream = source.open(0)
    try:
        tar = TarReader(GzipReader(stream))
        first = tar.next()
        if first is None or first.name != MANIFEST:
            raise BundleError(f"{path} is not a runai-dr bundle: its first member is "
                              f"{first.name if first else 'missing'}, not {MANIFEST}")
        if first.size > MAX_MANIFEST:
            raise BundleError(f"{path}: {MANIFEST} is {_size(first.size)}; a manifest is at "
                              f"most {_size(MAX_MANIFEST)}", hint=CORRUPT_HINT)
        raw = tar.read(first.size)
    except NotGzip as exc:
        raise BundleError(f"{path} is not a runai-dr bundle ({exc})",
                          hint="a bundle is the .tar.gz file that `backup` wrote") from None
    except ArchiveError as exc:
        raise BundleError(f"{path} is not a readable bundle: {exc}",
                          hint="the file is truncated or not a bundle") from None
    except OSError as exc:
        raise local_error(exc, "read", path) from exc
    finally:
        stream.close()
    try:
        manifest = json.loads(raw)
    except RecursionError:
        raise BundleError(f"{path}: {MANIFEST} is nested too deeply", hint=CORRUPT_HINT) from None
    except ValueError as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "it is not UTF-8"
        raise BundleError(f"{path}: {MANIFEST} is not valid JSON ({why})",
                          hint=CORRUPT_HINT) from None
    try:
        schema.validate_manifest(manifest)
    except schema.NotABundle:
        raise BundleError(f"{path} is not a runai-dr bundle (its manifest's format is not "
                          f"{FORMAT})") from None
    except schema.NewerFormat:
        raise BundleError(f"{path} has bundle format {manifest['formatVersion']}; this tool "
                          f"reads up to {FORMAT_VERSION}",
                          hint="upgrade kubectl runai-dr") from None
    except schema.ManifestError as exc:
        raise BundleError(f'{path}: invalid manifest: field "{exc.field}" {exc.problem}',
                          hint=CORRUPT_HINT) from None
    return cast(dict[str, Any], manifest)


class _MemberRaw(io.RawIOBase):
    """One member's data as a raw stream; its size was checked against the manifest."""

    def __init__(self, path: Path | str, relpath: str, tar: TarReader, gz: GzipReader) -> None:
        self._path = path
        self._relpath = relpath
        self._tar = tar
        self._gz = gz

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._gz.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._tar.read(len(view))
        except ArchiveError as exc:
            raise BundleError(f"{self._path}: {self._relpath} cannot be read ({exc})",
                              hint=VERIFY_HINT) from None
        except OSError as exc:
            raise local_error(exc, "read", self._path) from exc
        view[:len(data)] = data
        return len(data)


class Bundle:
    """A bundle in a :class:`Source`. ``open`` reads only the manifest (the first member).

    Members are found by reading front to back; where each one starts (and where each gzip
    member of the archive starts) is remembered, so on a seekable source a later read of
    the same member, or of one before the furthest point read, starts right at it (a file:
    ``pread`` at that offset; S3: one ranged GET) instead of reading from the beginning
    again. An unseekable source (an encrypted bundle) is read from its start each time.
    """

    def __init__(self, path: Path | str, manifest: dict[str, Any],
                 source: Source | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self._source = source
        self._members: dict[str, Member] = {}  # found so far, by name
        self._checkpoints: list[tuple[int, int]] = [(0, 0)]  # gzip member starts seen
        self._furthest: Member | None = None  # the last member found, in archive order

    @classmethod
    def open(cls, location: Path | str, source: Source | None = None) -> Bundle:
        """The bundle at ``location``: a path, or an ``s3://`` URL (see
        :func:`~kubectl_runai_dr.bundle.source.open_source`)."""
        source = source or open_source(location)
        try:
            return cls(source.name if not isinstance(location, Path) else location,
                       source_manifest(source), source)
        except BaseException:
            source.close()
            raise

    @property
    def encrypted(self) -> bool:
        return bool(self._source is not None and self._source.encrypted)

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- content -------------------------------------------------------------------------
    @property
    def files(self) -> dict[str, dict[str, Any]]:
        files: dict[str, dict[str, Any]] = self.manifest["files"]
        return files

    def has(self, relpath: str) -> bool:
        return relpath in self.files

    def _reader(self, at: Member | None = None) -> tuple[GzipReader, TarReader]:
        """Readers positioned at the header of ``at`` (a member found before), or at the
        archive's start."""
        if self._source is None:
            raise BundleError(f"{self.path} is closed")
        offset = at.offset if at is not None else 0
        point = self._checkpoint_before(offset) if self._source.seekable else (0, 0)
        stream = self._source.open(point[0])
        try:
            gz = GzipReader(stream, point)
            if offset > point[1]:
                skipped = offset - point[1]
                while skipped > 0:
                    data = gz.read(min(skipped, CHUNK))
                    if not data:
                        raise ArchiveError("the archive ends before a member it holds")
                    skipped -= len(data)
        except BaseException:
            stream.close()
            raise
        return gz, TarReader(gz)

    def archive(self) -> tuple[GzipReader, TarReader]:
        """Readers at the archive's start, for one pass over every member in archive order
        (the manifest first); close the GzipReader when done. The caller checks sizes and
        checksums against :attr:`files`."""
        return self._reader()

    def _checkpoint_before(self, offset: int) -> tuple[int, int]:
        """The last gzip member start at or before decompressed ``offset``."""
        best = (0, 0)
        for comp, decomp in self._checkpoints:
            if decomp <= offset and decomp >= best[1]:
                best = (comp, decomp)
        return best

    def _learn(self, gz: GzipReader, member: Member) -> None:
        self._members.setdefault(member.name, member)
        if self._furthest is None or member.offset > self._furthest.offset:
            self._furthest = member
        for point in gz.checkpoints:
            if point not in self._checkpoints:
                bisect.insort(self._checkpoints, point)

    def open_member(self, relpath: str) -> BinaryIO:
        """A listed member's data as a stream (read it in chunks)."""
        if relpath not in self.files:
            raise BundleError(f"{self.path} has no {relpath}")
        want = self.files[relpath]["size"]
        start = self._members.get(relpath) or self._furthest
        gz = None
        try:
            gz, tar = self._reader(start)
            while (member := tar.next()) is not None:
                self._learn(gz, member)
                if member.name == relpath:
                    if member.size != want:
                        raise BundleError(f"{self.path}: {relpath} is {member.size} bytes, "
                                          f"the manifest says {want}", hint=CORRUPT_HINT)
                    reader = io.BufferedReader(_MemberRaw(self.path, relpath, tar, gz), CHUNK)
                    gz = None  # the member's stream closes it
                    return reader
        except ArchiveError as exc:
            raise BundleError(f"{self.path}: {relpath} cannot be read ({exc})",
                              hint=VERIFY_HINT) from None
        except OSError as exc:
            raise local_error(exc, "read", self.path) from exc
        finally:
            if gz is not None:
                gz.close()
        raise BundleError(f"{self.path}: {relpath} is listed in the manifest but missing",
                          hint=CORRUPT_HINT)

    def _check_sha(self, relpath: str, sha: hashlib._Hash) -> None:
        if sha.hexdigest() != self.files[relpath]["sha256"]:
            raise BundleError(f"{self.path}: {relpath} does not match its checksum",
                              hint=CORRUPT_HINT)

    def read_bytes(self, relpath: str, *, limit: int = MAX_IN_MEMORY) -> bytes:
        """A member whole, checked against its sha256; at most ``limit`` bytes."""
        if relpath in self.files and self.files[relpath]["size"] > limit:
            raise BundleError(f"{self.path}: {relpath} is {_size(self.files[relpath]['size'])};"
                              f" this tool reads at most {_size(limit)} of it into memory",
                              hint=CORRUPT_HINT)
        with self.open_member(relpath) as fh:
            data = fh.read()
        self._check_sha(relpath, hashlib.sha256(data))
        return data

    def read_json(self, relpath: str) -> Any:
        data = self.read_bytes(relpath)
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise BundleError(f"{self.path}: {relpath} is not valid JSON",
                              hint=CORRUPT_HINT) from None

    def check_member(self, relpath: str) -> None:
        """Read the member through once and check its sha256 (bounded memory)."""
        sha = hashlib.sha256()
        with self.open_member(relpath) as fh:
            while chunk := fh.read(CHUNK):
                sha.update(chunk)
        self._check_sha(relpath, sha)

    def iter_list(self, relpath: str) -> Iterator[dict[str, Any]]:
        """The objects of a ``List`` member, one at a time. The member's checksum is
        checked first (in a pass of its own), so no item of a modified file is used."""
        self.check_member(relpath)
        with self.open_member(relpath) as fh:
            try:
                yield from iter_items(fh.read, max_item=MAX_ITEM)
            except ListError as exc:
                raise BundleError(f"{self.path}: {relpath} is not a valid List: {exc}",
                                  hint=CORRUPT_HINT) from None

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    # -- verification --------------------------------------------------------------------
    def verify(self) -> list[Problem]:
        """Read every member once, streaming, to the end of the file; report each file
        that is wrong, and an archive that is cut short or has anything appended."""
        problems: list[Problem] = []
        expected = dict(self.files)
        seen: set[str] = set()
        current = MANIFEST
        gz, tar = self._reader()
        try:
            tar.next()  # the manifest, already read and validated
            while (member := tar.next()) is not None:
                self._learn(gz, member)
                current = member.name
                if member.name in seen:
                    problems.append(Problem(member.name, "appears twice in the archive"))
                    continue
                seen.add(member.name)
                if member.name not in expected:
                    problems.append(Problem(member.name, "is not listed in the manifest"))
                    continue
                want = expected[member.name]
                if member.size != want["size"]:
                    problems.append(Problem(
                        member.name, f"size {member.size} differs from manifest {want['size']}"))
                    continue
                sha = hashlib.sha256()
                while chunk := tar.read(CHUNK):
                    sha.update(chunk)
                if sha.hexdigest() != want["sha256"]:
                    problems.append(Problem(member.name, "sha256 does not match the manifest"))
            current = "(end of archive)"
        except ArchiveError as exc:
            where = "(end of archive)" if tar.in_trailer else current
            problems.append(Problem(where, f"archive is truncated or corrupt here ({exc})"))
            return problems
        except OSError as exc:
            if exc.errno == errno.EIO:
                problems.append(Problem(current, f"cannot be read ({exc.strerror})"))
                return problems
            raise local_error(exc, "read", self.path) from exc
        finally:
            gz.close()
        for name in sorted(set(expected) - seen):
            problems.append(Problem(name, "is listed in the manifest but missing"))
        return problems

