"""Where a bundle's bytes come from, for the reader: a local file, an object in S3, or
either of them decrypted on the fly.

A :class:`Source` hands out sequential :class:`Stream` s starting at a byte offset. A
seekable source (a file, an S3 object: ranged GETs) starts one anywhere at no cost; an
unseekable one (an age stream: decrypted from its start) only at 0, and the reader skips
forward itself. The reader asks for small reads (at most ``CHUNK``) and closes every
stream it opened, so a source may hold a connection or a thread per stream.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol

from kubectl_runai_dr.errors import BundleError
from kubectl_runai_dr.localfs import local_error


class Unreadable(Exception):
    """A source's bytes fail authentication (a modified or truncated encrypted bundle).
    The reader reports it as a damaged archive at the point where it happened. (A source
    that cannot be reached raises its own error, a StorageError: that is no verdict on
    the bundle.)"""


class Stream(Protocol):
    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; b"" only at the end."""

    def close(self) -> None: ...


class Source(Protocol):
    name: str  # how messages name the bundle (a path, or s3://bucket/key)
    seekable: bool
    encrypted: bool

    def open(self, offset: int = 0) -> Stream: ...

    def close(self) -> None: ...


class _FileStream:
    def __init__(self, fd: int, offset: int) -> None:
        self._fd = fd
        self._offset = offset

    def read(self, size: int) -> bytes:
        data = os.pread(self._fd, size, self._offset)
        self._offset += len(data)
        return data

    def close(self) -> None:
        pass


class FileSource:
    """A regular file, read with ``pread`` through one descriptor."""

    seekable = True
    encrypted = False

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.name = str(path)
        self.fd = fd

    @classmethod
    def open_path(cls, path: Path) -> FileSource:
        return cls(path, open_bundle_file(path))

    def open(self, offset: int = 0) -> Stream:
        if self.fd < 0:
            raise BundleError(f"{self.name} is closed")
        return _FileStream(self.fd, offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_bundle_file(path: Path) -> int:
    """A read-only descriptor of the regular file ``path`` (links are followed: the user
    names the bundle; opening a FIFO does not block, and it is refused)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise BundleError(f"bundle {path} does not exist", hint="check the path") from None
    except IsADirectoryError:
        raise BundleError(f"{path} is a directory, not a bundle file") from None
    except OSError as exc:
        raise local_error(exc, "read", path) from exc
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise BundleError(f"{path} is {what}, not a bundle file")
    os.set_blocking(fd, True)
    return fd


def open_source(location: Path | str) -> Source:
    """The bundle at ``location`` (a path or ``s3://BUCKET/KEY``), decrypted on the fly
    when it is an age file (with the identities or passphrase of this run's settings)."""
    from kubectl_runai_dr.storage import location as loc
    from kubectl_runai_dr.storage.settings import current

    try:
        where = loc.parse(location)
    except loc.LocationError as exc:
        raise BundleError(str(exc)) from None
    source: Source
    if isinstance(where, loc.S3Url):
        if where.is_prefix:
            raise BundleError(f"{where} is a prefix, not a bundle",
                              hint=f"`kubectl runai-dr bundles {where}` lists the bundles "
                                   "there")
        from kubectl_runai_dr.storage.s3 import S3Source, S3Store

        store = S3Store(current().s3)
        info = store.head(where)
        if info is None:
            store.check_bucket(where)  # a missing bucket says so
            raise BundleError(f"bundle {where} does not exist",
                              hint=f"`kubectl runai-dr bundles {where.parent}` lists the "
                                   "bundles there")
        source = S3Source(store, where, info.size, info.etag.strip('"'))
    else:
        source = FileSource.open_path(where)
    try:
        return decrypting(source)
    except BaseException:
        source.close()
        raise


def head_bytes(source: Source, size: int = 64) -> bytes:
    stream = source.open(0)
    try:
        out = b""
        while len(out) < size and (data := stream.read(size - len(out))):
            out += data
        return out
    finally:
        stream.close()


def decrypting(source: Source) -> Source:
    """``source`` itself, or its plaintext when it is an age file."""
    head = head_bytes(source, 64)
    if not (head.startswith(b"age-encryption.org/") or
            head.lstrip().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")):
        return source
    from kubectl_runai_dr.storage import age
    from kubectl_runai_dr.storage.settings import current

    settings = current()
    identities = age.load_identities(settings.identities)

    def ask() -> bytes | None:
        given = age.passphrase_from(settings.passphrase_file)
        if given is not None:
            return given
        if settings.passphrase and settings.ask_passphrase is not None:
            return settings.ask_passphrase()
        return None

    return age.DecryptingSource(source, age.Opening(tuple(identities), ask))


def skip(stream: Stream, count: int, chunk: int = 1024 * 1024) -> None:
    """Read and drop ``count`` bytes (an unseekable source's way forward)."""
    while count > 0:
        data = stream.read(min(count, chunk))
        if not data:
            return
        count -= len(data)
