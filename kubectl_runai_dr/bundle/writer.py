"""Write a bundle atomically.

Files are staged in a hidden directory beside the target, hashed while they are written,
then packed with the manifest first into a hidden temporary file beside the target, which
is fsynced and moved into place. An interrupted run leaves only hidden ``.*.partial``
entries, never a file that looks like a complete bundle; ``abort()`` removes them.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, cast

from kubectl_runai_dr.bundle.layout import FORMAT, FORMAT_VERSION, MANIFEST
from kubectl_runai_dr.errors import BundleExistsError, DrError

_LEVEL = 6  # gzip level for JSON and YAML
_SAMPLE = 256 * 1024  # a larger member whose sample does not compress is stored as is


class HashingFile:
    """A write-only file that records its size and sha256 as bytes go through."""

    def __init__(self, fh: BinaryIO, on_close: Any) -> None:
        self._fh = fh
        self._sha = hashlib.sha256()
        self.size = 0
        self._on_close = on_close
        self.closed = False

    def write(self, data: bytes) -> int:
        self._fh.write(data)
        self._sha.update(data)
        self.size += len(data)
        return len(data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._fh.close()
            self._on_close(self)

    def discard(self) -> None:
        """Close without recording: the file is dropped from the bundle."""
        if not self.closed:
            self.closed = True
            self._fh.close()

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


class BundleWriter:
    def __init__(self, target: Path, *, force: bool = False) -> None:
        self.target = target
        self.force = force
        if target.exists() and not force:
            raise BundleExistsError(
                f"{target} already exists", hint="choose another --output, or pass --force")
        if not target.parent.is_dir():
            raise DrError(f"directory {target.parent} does not exist",
                          hint="create it, or choose another --output")
        self.staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial",
                                             dir=target.parent))
        self.files: dict[str, dict[str, Any]] = {}
        self.manifest: dict[str, Any] = {}
        self._tmp: Path | None = None

    def _path(self, relpath: str) -> Path:
        if relpath == MANIFEST or relpath.startswith("/") or ".." in relpath.split("/"):
            raise ValueError(f"invalid bundle path {relpath!r}")
        path = self.staging / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _record(self, relpath: str) -> Any:
        def done(f: HashingFile) -> None:
            self.files[relpath] = {"size": f.size, "sha256": f.sha256}
        return done

    def open(self, relpath: str) -> HashingFile:
        """A file in the bundle, for streaming writes (``with`` discards it on error)."""
        self.files.pop(relpath, None)
        fh = open(self._path(relpath), "wb")  # noqa: SIM115 - closed by HashingFile
        return HashingFile(fh, self._record(relpath))

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
        with contextlib.suppress(FileNotFoundError):
            (self.staging / relpath).unlink()

    def finalize(self, manifest: dict[str, Any], *, mtime: float) -> Path:
        """Pack manifest + files into the target atomically; returns the target path."""
        manifest = dict(manifest)
        manifest["format"] = FORMAT
        manifest["formatVersion"] = FORMAT_VERSION
        manifest["files"] = {k: self.files[k] for k in sorted(self.files)}
        self.manifest = manifest  # as written: with format, version and the files table
        data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
        fd, tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", suffix=".partial",
                                   dir=self.target.parent)
        self._tmp = Path(tmp)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as raw:
            out = _GzipMembers(raw, mtime)
            with tarfile.open(fileobj=cast(IO[bytes], out), mode="w",
                              format=tarfile.PAX_FORMAT) as tar:
                out.set_level(_LEVEL)
                tar.addfile(_info(MANIFEST, len(data), mtime), io.BytesIO(data))
                for rel in sorted(self.files):
                    path = self.staging / rel
                    # already-compressed data (pg_dump -Fc) is stored, not compressed again
                    out.set_level(0 if _incompressible(path) else _LEVEL)
                    with open(path, "rb") as fh:
                        tar.addfile(_info(rel, self.files[rel]["size"], mtime), fh)
                out.set_level(_LEVEL)
            out.close()
            raw.flush()
            os.fsync(raw.fileno())
        if self.force:
            os.replace(self._tmp, self.target)
        else:
            try:
                os.link(self._tmp, self.target)  # fails instead of overwriting
            except FileExistsError as exc:
                raise BundleExistsError(f"{self.target} appeared while the backup ran",
                                        hint="choose another --output, or pass --force") from exc
            self._tmp.unlink()
        self._tmp = None
        _fsync_dir(self.target.parent)
        shutil.rmtree(self.staging, ignore_errors=True)
        return self.target

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()
            self._tmp = None


def _info(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(mtime)
    info.uname = info.gname = ""
    return info


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _GzipMembers:
    """A write-only stream that gzips what it is given, one gzip member per compression
    level: a gzip file may hold several members, and gzip, GNU tar and Python's gzip
    module read them as one stream. Lets the bundle store already-compressed dumps without
    spending CPU on compressing them again."""

    def __init__(self, raw: BinaryIO, mtime: float) -> None:
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
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=level,
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


def _incompressible(path: Path) -> bool:
    """True for a large file whose first bytes do not compress (compressed data)."""
    if path.stat().st_size < 4 * _SAMPLE:
        return False
    with open(path, "rb") as fh:
        sample = fh.read(_SAMPLE)
    return len(zlib.compress(sample, 1)) > 0.95 * len(sample)
