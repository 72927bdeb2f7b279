"""Container file systems for exec: claims backed by local directories, images without some programs.

A pod's container normally runs exec'd commands on this machine as they are (pgbackend needs no
more). A container gets a file system of its own when it mounts a volume that is a local
directory, or when its image lacks programs (`srv.image_missing[image] = {"tar"}`): the command
then runs in a new mount namespace, chrooted into a per-container root made of bind mounts of
this machine's system directories (/usr, /etc, /dev, /proc; /bin, /lib, ... as here), a private
/tmp, and each volume at its `mountPath` (read-only when the mount says so). A program the image
lacks is missing from the container's PATH directories (they become directories of links without
it), so running it fails as a runtime does (exit 127, "executable file not found in $PATH").

Local volumes: a StorageClass whose provisioner is `rancher.io/local-path` (LOCAL_PROVISIONER)
provisions a PersistentVolume with `hostPath` = a new directory under `srv.local_dir()`; a
PersistentVolume seeded with a `hostPath` or `local.path` under that directory is used as it is.
Reclaim policy Delete removes the directory with the volume, as the local-path provisioner does.
The mounts live in the command's namespace only: nothing is mounted on this machine, and the
roots (plain directories) go with the pod.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_PROVISIONER = "rancher.io/local-path"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PVCS = ("", "persistentvolumeclaims")
PVS = ("", "persistentvolumes")
# what of this machine's root a container root binds (directories) or copies (links)
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "dev", "proc")
CLONE_NEWNS = 0x00020000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)
_unshare = _libc.unshare
_mount = _libc.mount
_mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p)


@dataclass
class Root:
    """A container's root: the directory, and the bind mounts made inside it, in order."""

    path: str
    binds: list[tuple[str, str, bool]] = field(default_factory=list)  # (source, target in root, read-only)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter(root: Root, cwd: str | None) -> None:
    """In the child, before exec: a private mount namespace, the binds, chroot."""
    _check(_unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    for src, dst, ro in root.binds:
        target = os.path.join(root.path, dst.lstrip("/")).encode()
        _check(_mount(src.encode(), target, None, MS_BIND | MS_REC, None), f"bind {src}")
        if ro:
            _check(_mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY, None), f"read-only {dst}")
    os.chroot(root.path)
    os.chdir(cwd or "/")


def container_signals() -> None:
    """The signal mask and dispositions a container runtime gives a process (the `serve` command
    blocks SIGINT/SIGTERM to sigwait for them; a child would inherit that)."""
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)


def preexec(root: Root | None, cwd: str | None) -> Callable[[], None]:
    def run() -> None:
        container_signals()
        if root is not None:
            enter(root, cwd)

    return run


def volume_dir(store: Any, local_dir: str, namespace: str, volume: Mapping[str, Any]) -> str | None:
    """The local directory behind a pod volume (a claim bound to a local volume), or None."""
    claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
    if not claim:
        return None
    pvc = store.get(PVCS, namespace, claim)
    if pvc is None:
        return None
    pv_name: str | None = (pvc.obj.get("spec") or {}).get("volumeName")
    pv = store.get(PVS, "", pv_name) if pv_name else None
    if pv is None:
        return None
    spec = pv.obj.get("spec") or {}
    path = str((spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path") or "")
    if not path:
        return None
    real = os.path.realpath(path)
    if os.path.commonpath([real, local_dir]) != local_dir or not os.path.isdir(real):
        return None
    return real


def _farm(root: str, rel: str, host: str, missing: set[str]) -> list[tuple[str, str, bool]]:
    """`rel` (a PATH directory) as a directory of links to this machine's, without `missing`."""
    hidden = f"/.host/{rel.strip('/').replace('/', '_')}"
    os.makedirs(os.path.join(root, hidden.lstrip("/")), exist_ok=True)
    d = os.path.join(root, rel.lstrip("/"))
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(host):
        if name not in missing:
            with contextlib.suppress(FileExistsError):
                os.symlink(f"{hidden}/{name}", os.path.join(d, name))
    return [(host, hidden, True)]


def _system(root: str, missing: set[str], path_dirs: list[str]) -> list[tuple[str, str, bool]]:
    """Binds (and links) of this machine's system directories into `root`."""
    # the real directories of PATH that hold a missing program become link farms
    farms = {os.path.realpath(d) for d in path_dirs
             if any(os.path.lexists(os.path.join(d, m)) for m in missing)}
    binds: list[tuple[str, str, bool]] = []

    def place(host: str, rel: str) -> None:
        target = os.path.join(root, rel.lstrip("/"))
        if os.path.islink(host):
            if not os.path.lexists(target):
                os.symlink(os.readlink(host), target)
            return
        if not os.path.isdir(host):
            return
        real = os.path.realpath(host)
        if real in farms:
            binds.extend(_farm(root, rel, host, missing))
        elif any(f.startswith(real + "/") for f in farms):  # a farm below: bind its siblings one by one
            os.makedirs(target, exist_ok=True)
            for name in sorted(os.listdir(host)):
                place(os.path.join(host, name), f"{rel}/{name}")
        else:
            if os.path.isdir(host) and not os.path.lexists(target):
                os.makedirs(target)
            elif not os.path.isdir(host):
                return
            binds.append((host, rel, False))

    for top in SYSTEM_DIRS:
        place(f"/{top}", f"/{top}")
    return binds


def make_root(base: str, key: str, *, volumes: list[tuple[str, str, bool]], missing: set[str],
              path_dirs: list[str]) -> Root:
    """The root of one container (made once, kept while the pod lives): `volumes` are
    (local directory, mountPath, read-only)."""
    path = os.path.join(base, key)
    fresh = not os.path.isdir(path)
    if fresh:
        os.makedirs(path, mode=0o755)
    binds = _system(path, missing, path_dirs)
    tmp = os.path.join(path, "tmp")
    if not os.path.isdir(tmp):
        os.makedirs(tmp)
        os.chmod(tmp, 0o1777)
    bound = {b[1].rstrip("/") for b in binds}
    for src, mount, ro in sorted(volumes, key=lambda v: v[1].count("/")):
        norm = os.path.normpath("/" + mount)
        if norm == "/" or any(norm == b or norm.startswith(b + "/") for b in bound):
            raise ValueError(f"mountPath {mount!r} is inside a system directory of the loopback container root")
        os.makedirs(os.path.join(path, norm.lstrip("/")), exist_ok=True)
        binds.append((src, norm, ro))
    return Root(path, binds)


def remove_roots(base: str, prefix: str) -> None:
    """The roots of a pod that went away (plain directories: the mounts were the commands')."""
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(base):
            if name.startswith(prefix):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def is_local(path: str, local_dir: str) -> bool:
    real = os.path.realpath(path)
    return os.path.commonpath([real, local_dir]) == local_dir and Path(real) != Path(local_dir)


def container_root(srv: Any, pod: Mapping[str, Any], container: Mapping[str, Any],
                   path_dirs: list[str] | None = None) -> Root | None:
    """The root exec into `container` runs in, or None (this machine's, as it is). Under the store's lock."""
    md = pod["metadata"]
    ns = md["namespace"]
    missing = set(srv.image_missing.get(container.get("image", ""), ()))
    by_name = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
    volumes: list[tuple[str, str, bool]] = []
    for m in container.get("volumeMounts") or []:
        vol = by_name.get(m.get("name"))
        if vol is None or srv._local_dir is None:
            continue
        src = volume_dir(srv.store, os.path.join(srv._local_dir, "volumes"), ns, vol)
        if src is not None:
            sub = m.get("subPath")
            volumes.append((os.path.join(src, sub) if sub else src, str(m.get("mountPath", "")),
                            bool(m.get("readOnly"))))
    if not volumes and not missing:
        return None
    key = f"{ns}_{md['name']}_{md.get('uid', '')[:8]}_{container['name']}"
    return make_root(os.path.join(srv.local_dir(), "roots"), key, volumes=volumes, missing=missing,
                     path_dirs=path_dirs or BASE_PATH.split(":"))
