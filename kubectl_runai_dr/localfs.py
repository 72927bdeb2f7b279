"""Local files the tool creates: private directories and files, never through a link.

Bundles, their staging and helm values files hold secrets, and the directories they go to
may be shared (a home directory, /tmp, a backup mount). Everything here works relative to
a directory opened once and checked:

- a directory the tool creates is 0700, whatever the umask; an existing one is used only
  when it belongs to the user running the tool (or to root) and neither its group nor
  others may write to it (they could plant links or replace files);
- a file is created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` and mode 0600 from its first byte;
  :meth:`PrivateDir.write_atomic` writes it under a temporary name and renames it over the
  final one, so a link or a stale file there is replaced, never followed or written through;
- every ``OSError`` becomes a :class:`LocalFileError` that names the path and the cause.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from kubectl_runai_dr.errors import DrError


class LocalFileError(DrError):
    """A local file or directory that cannot be created, written or used safely. The
    message names the path and the cause (no space left, a read-only file system,
    permissions, another owner); exit code 1."""


DIR_MODE = 0o700
FILE_MODE = 0o600
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_HINTS = {
    errno.ENOSPC: "free space on that file system, or choose another directory",
    errno.EDQUOT: "the disk quota is used up: free space, or choose another directory",
    errno.EFBIG: "the file is larger than this system allows (ulimit -f, or the file "
                 "system's limit): choose another directory",
    errno.EROFS: "the file system is mounted read-only: choose a writable directory",
    errno.EACCES: "check the directory's owner and permissions, or choose another directory",
    errno.EPERM: "check the directory's owner and permissions, or choose another directory",
    errno.ENOENT: "create the directory first, or check the path",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EISDIR: "a directory has that name: choose another name",
    errno.ELOOP: "the name is a symbolic link, which is not followed: give the real path",
    errno.EEXIST: "something already has that name: remove it or choose another name",
}


def local_error(exc: OSError, action: str, path: Path | str) -> LocalFileError:
    """``cannot <action> <path>: <cause>`` with a hint for the cause."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    return LocalFileError(f"cannot {action} {path}: {cause}",
                          hint=_HINTS.get(exc.errno or 0, "check the path and its permissions"))


def check_private(st: os.stat_result, path: Path | str) -> None:
    """Refuse a directory another user owns, or one its group or others may write to."""
    if st.st_uid not in (os.geteuid(), 0):
        raise LocalFileError(
            f"{path} belongs to another user (uid {st.st_uid}); it is not used for files "
            "that hold secrets", hint="choose a directory of your own")
    writable = [who for who, bit in (("its group", stat.S_IWGRP), ("others", stat.S_IWOTH))
                if st.st_mode & bit]
    if writable:
        raise LocalFileError(
            f"{path} is writable by {' and '.join(writable)} (mode "
            f"{stat.S_IMODE(st.st_mode):04o}); it is not used for files that hold secrets",
            hint=f"choose a directory only you can write to, or `chmod go-w {path}`")


class PrivateDir:
    """An open directory, checked by :func:`open_private_dir`; names are relative to it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> PrivateDir:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- files --------------------------------------------------------------------------------
    def create(self, name: str) -> BinaryIO:
        """A new file ``name`` (nothing may have that name yet), mode 0600 from its first
        byte, whatever the umask. Writes to it raise plain ``OSError``s (see
        :func:`local_error`)."""
        try:
            fd = os.open(name, _O_NEW, FILE_MODE, dir_fd=self.fd)
        except OSError as exc:
            raise local_error(exc, "create", self.path / name) from exc
        try:
            os.fchmod(fd, FILE_MODE)
        except OSError as exc:
            os.close(fd)
            raise local_error(exc, "create", self.path / name) from exc
        return os.fdopen(fd, "wb")

    def write_atomic(self, name: str, data: bytes) -> Path:
        """Write the file ``name`` whole: a new 0600 file under a temporary name, synced,
        then renamed over ``name`` (a stale file or a link there is replaced)."""
        path = self.path / name
        tmp = f".{name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, _O_NEW, FILE_MODE, dir_fd=self.fd)
            try:
                os.fchmod(fd, FILE_MODE)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)
            raise local_error(exc, "write", path) from exc
        self.sync()
        return path

    def open_regular(self, name: str) -> int:
        """A read-only descriptor of the regular file ``name`` (a link, a directory or a
        FIFO is refused with ``OSError``; opening never blocks)."""
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=self.fd)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def lstat(self, name: str) -> os.stat_result:
        return os.stat(name, dir_fd=self.fd, follow_symlinks=False)

    def unlink(self, name: str) -> None:
        os.unlink(name, dir_fd=self.fd)

    def names(self) -> list[str]:
        return sorted(os.listdir(self.fd))

    def sync(self) -> None:
        with contextlib.suppress(OSError):
            os.fsync(self.fd)

    # -- directories --------------------------------------------------------------------------
    def subdir(self, name: str, *, create: bool = True) -> PrivateDir:
        """The directory ``name`` in this one (created 0700 when missing), not a link."""
        path = self.path / name
        try:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, DIR_MODE, dir_fd=self.fd)
            fd = os.open(name, _O_DIR | os.O_NOFOLLOW, dir_fd=self.fd)
        except OSError as exc:
            raise local_error(exc, "create the directory", path) from exc
        return _checked(path, fd)

    def make_temp_dir(self, prefix: str, suffix: str) -> tuple[str, PrivateDir]:
        """A new 0700 directory with a random name; (name, opened directory)."""
        for _ in range(100):
            name = f"{prefix}{secrets.token_hex(6)}{suffix}"
            try:
                os.mkdir(name, DIR_MODE, dir_fd=self.fd)
            except FileExistsError:
                continue
            except OSError as exc:
                raise local_error(exc, "create a directory in", self.path) from exc
            sub = self.subdir(name, create=False)
            try:
                os.fchmod(sub.fd, DIR_MODE)
            except OSError as exc:
                sub.close()
                raise local_error(exc, "create a directory in", self.path) from exc
            return name, sub
        raise LocalFileError(f"cannot create a temporary directory in {self.path}")

    def remove_tree(self, name: str) -> None:
        """Remove ``name`` and everything under it, never following a link."""
        _remove_tree(self.fd, name)


def _remove_tree(parent: int, name: str) -> None:
    try:
        fd = os.open(name, _O_DIR | os.O_NOFOLLOW, dir_fd=parent)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        os.unlink(name, dir_fd=parent)  # a file or a link: the entry itself goes
        return
    try:
        with os.scandir(fd) as entries:
            children = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        for child, is_dir in children:
            if is_dir:
                _remove_tree(fd, child)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=parent)


def _checked(path: Path, fd: int) -> PrivateDir:
    try:
        check_private(os.fstat(fd), path)
    except BaseException:
        os.close(fd)
        raise
    return PrivateDir(path, fd)


def open_private_dir(path: Path, *, create: bool = False) -> PrivateDir:
    """Open the directory ``path`` to hold private files.

    Missing, it is created (with any missing parents, each 0700) when ``create`` is set,
    else refused. Existing, it must belong to this user or root and not be writable by
    its group or others. A symbolic link is followed only when it belongs to this user or
    root (someone else's link in a shared directory is refused)."""
    path = Path(path)
    try:
        return _open_existing(path)
    except FileNotFoundError:
        if not create:
            raise LocalFileError(f"directory {path} does not exist",
                                 hint="create it, or choose another directory") from None
    except OSError as exc:
        raise local_error(exc, "use the directory", path) from exc
    return _create(path)


class _ForeignLink(LocalFileError):
    pass


def _open_existing(path: Path) -> PrivateDir:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) and st.st_uid not in (os.geteuid(), 0):
        raise _ForeignLink(f"{path} is a symbolic link of another user (uid {st.st_uid}); "
                           "it is not followed", hint="give the real directory")
    fd = os.open(path, _O_DIR)
    return _checked(path, fd)


def _create(path: Path) -> PrivateDir:
    """Create ``path`` and its missing parents, each 0700, from the nearest existing one."""
    missing: list[str] = []
    base = path.absolute()
    while True:
        try:
            parent = _open_existing(base)
            break
        except FileNotFoundError:
            if base.parent == base:
                raise LocalFileError(f"cannot create {path}: no existing parent") from None
            missing.append(base.name)
            base = base.parent
        except _ForeignLink:
            raise
        except LocalFileError:
            if missing:  # an existing parent need not be private: only what is created
                try:
                    parent = PrivateDir(base, os.open(base, _O_DIR))
                except OSError as exc:
                    raise local_error(exc, "create the directory", path) from exc
                break
            raise
        except OSError as exc:
            raise local_error(exc, "create the directory", path) from exc
    try:
        for name in reversed(missing):
            try:
                os.mkdir(name, DIR_MODE, dir_fd=parent.fd)
                created = True
            except FileExistsError:
                created = False  # made meanwhile: checked below like any existing one
            except OSError as exc:
                raise local_error(exc, "create the directory", parent.path / name) from exc
            child = parent.subdir(name, create=False)
            if created:
                try:
                    os.fchmod(child.fd, DIR_MODE)
                except OSError as exc:
                    child.close()
                    raise local_error(exc, "create the directory", child.path) from exc
            parent.close()
            parent = child
    except BaseException:
        parent.close()
        raise
    return PrivateDir(path, parent.fd)


def write_private_file(path: Path, data: bytes) -> Path:
    """Write ``path`` (0600, replaced atomically) in a private directory, which is
    created 0700 when missing (see :func:`open_private_dir`)."""
    with open_private_dir(path.parent, create=True) as directory:
        return directory.write_atomic(path.name, data)

