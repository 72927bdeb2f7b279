"""A Thanos receive StatefulSet on local-path storage on the loopback API server (for the
volume-data tests and benchmark), and a Thanos-like tree for its claim (blocks, WAL, sparse and empty files, symlinks, non-UTF-8
names, owners and modes), with a manifest to compare trees exactly."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import urllib.request
from pathlib import Path
from typing import Any

from .server import ApiServer

NS = "runai-backend"
STS = "runai-backend-thanos-receive"
CLAIM = f"data-{STS}-0"
POD = f"{STS}-0"
IMAGE = "quay.io/thanos/thanos:v0.34.1"
MOUNT = "/var/thanos/receive"
MiB = 1024 * 1024


def statefulset(replicas: int = 1) -> dict[str, Any]:
    sel = {"app.kubernetes.io/name": "thanos", "app.kubernetes.io/component": "receive",
           "app.kubernetes.io/instance": "runai-backend"}
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": STS, "namespace": NS, "labels": dict(sel)},
        "spec": {
            "replicas": replicas, "serviceName": f"{STS}-hl", "selector": {"matchLabels": sel},
            "template": {"metadata": {"labels": dict(sel)}, "spec": {"containers": [{
                "name": "thanos-receive", "image": IMAGE, "args": ["receive"],
                "volumeMounts": [{"name": "data", "mountPath": MOUNT}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                "resources": {"requests": {"storage": "50Gi"}}}}],
        },
    }


def _post(srv: ApiServer, path: str, obj: dict[str, Any]) -> None:
    """Create through HTTP (the admin token), so the controllers see it."""
    req = urllib.request.Request(f"{srv.url}{path}", data=json.dumps(obj).encode(), method="POST",
                                 headers={"Authorization": "Bearer admin-token",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 201, resp.status


def install(srv: ApiServer) -> Path:
    """The namespace, the local-path class and the StatefulSet (through HTTP, so the
    controller runs it); returns the claim's local directory once the pod is Ready."""
    _post(srv, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": NS}})
    _post(srv, "/apis/storage.k8s.io/v1/storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path",
        "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"})
    _post(srv, f"/apis/apps/v1/namespaces/{NS}/statefulsets", statefulset())
    srv.wait_pod_ready(NS, POD, timeout=30)
    return claim_dir(srv)


def must(obj: dict[str, Any] | None) -> dict[str, Any]:
    assert obj is not None
    return obj


def claim_dir(srv: ApiServer, claim: str = CLAIM) -> Path:
    pvc = must(srv.get("v1", "PersistentVolumeClaim", claim, NS))
    pv = must(srv.get("v1", "PersistentVolume", pvc["spec"]["volumeName"]))
    return Path(pv["spec"]["hostPath"]["path"])


def make_tree(root: Path, *, blocks: int = 40, block_mb: float = 4.5, wal_mb: int = 16) -> int:
    """A Thanos receive directory: ``blocks`` TSDB blocks (chunks, index, meta.json,
    tombstones), a WAL, sparse, empty and oddly named files, links, owners and modes.
    Returns the bytes of data written."""
    written = 0
    rnd = os.urandom(4 * MiB)  # repeated slices: fast, and not compressible by chance
    base = os.fsencode(root)

    def data(n: int, seed: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            k = min(n - len(out), len(rnd) - seed % 4096)
            out += rnd[seed % 4096:seed % 4096 + k]
            seed += 7
        return bytes(out)

    def put(rel: bytes, content: bytes, mode: int = 0o644, owner: int = 1001) -> None:
        nonlocal written
        path = os.path.join(base, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, mode)
        os.chown(path, owner, owner)
        written += len(content)

    for b in range(blocks):
        ulid = f"01HQ{b:04d}ZK3T8V9G6M2N4P7R5S".encode()
        chunk = int(block_mb * MiB)
        put(ulid + b"/chunks/000001", data(chunk, b))
        put(ulid + b"/index", data(chunk // 8, b + 1))
        put(ulid + b"/meta.json", b'{"ulid": "%s", "version": 1}\n' % ulid)
        put(ulid + b"/tombstones", b"")  # empty, as Thanos writes it
        os.utime(os.path.join(base, ulid, b"meta.json"), (1_700_000_000 + b, 1_700_000_000 + b))
    for seg in range(4):
        put(b"wal/%08d" % seg, data(wal_mb * MiB // 4, seg), 0o600)
    put(b"wal/checkpoint.00000002/00000000", data(MiB, 9), 0o600)
    put(b"thanos.shipper.json", b'{"version": 1, "uploaded": []}\n')
    # sparse: a 256 MiB file holding 2 bytes
    sparse = os.path.join(base, b"chunks_head/000001")
    os.makedirs(os.path.dirname(sparse), exist_ok=True)
    with open(sparse, "wb") as f:
        f.truncate(256 * MiB)
        f.seek(128 * MiB)
        f.write(b"x")
        f.seek(256 * MiB - 1)
        f.write(b"y")
    os.chown(sparse, 1001, 1001)
    put(b"empty", b"")
    put("naïve-ütf8 name".encode(), b"utf-8\n")
    put(b"caf\xe9-latin1", b"not utf-8\n", 0o600, 65534)  # a name that is not UTF-8
    put(b"with\nnewline", b"newline in the name\n")
    put(b"setgid-dir/x", b"x", 0o640)
    os.chmod(os.path.join(base, b"setgid-dir"), 0o2750)
    os.chmod(os.path.join(base, b"wal"), 0o700)
    os.symlink(b"wal/00000000", os.path.join(base, b"latest-wal"))
    os.symlink(b"/nonexistent/target", os.path.join(base, b"dangling"))
    os.lchown(os.path.join(base, b"dangling"), 1001, 1001)
    os.link(os.path.join(base, b"empty"), os.path.join(base, b"empty-hardlink"))
    os.chmod(base, 0o775)
    return written


def manifest(root: Path) -> dict[bytes, tuple[Any, ...]]:
    """Every entry (root included) by its relative name (bytes): type and mode, owner, size,
    mtime, link target, content sha256 and, for sparse files, that they stayed sparse."""
    base = os.fsencode(root)
    out: dict[bytes, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in [b"", *dirnames, *filenames] if dirpath == base else [*dirnames, *filenames]:
            path = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(path)
            rel = os.path.relpath(path, base)
            extra: Any = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(4 * MiB):
                        h.update(chunk)
                extra = (h.hexdigest(), st.st_blocks * 512 < st.st_size // 2, st.st_nlink)
            mtime = None if stat.S_ISLNK(st.st_mode) else int(st.st_mtime)
            out[rel] = (st.st_mode, st.st_uid, st.st_gid,
                        st.st_size if not stat.S_ISDIR(st.st_mode) else None, mtime, extra)
    return out
