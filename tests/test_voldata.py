"""backup --volume-data and its restore, on the loopback API server whose exec runs real GNU
tar on real directories (local-path volumes mounted at their mountPath in each container)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubeapi import ApiServer
from kubeapi import thanos as env

from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.plan import voldata as p
from tests.e2e import ROOT, cli, member

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="container roots need mount namespaces")


@pytest.fixture
def thanos(apiserver: ApiServer, kubeconfig: Path) -> Path:
    return env.install(apiserver)


def _backup(kubeconfig: Path, out: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    r = cli("backup", "volumes", "--volume-data", "--to", str(out), "--no-record",
            "--kubeconfig", str(kubeconfig), "-o", "json", *extra)
    assert r.stdout, r.stderr
    return r.code, json.loads(r.stdout)


def _records(bundle: Path) -> list[dict[str, Any]]:
    return p.records_of(json.loads(member(bundle, p.RECORDS)))


def _volumes_result(out: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in out["manifest"]["components"] if c["name"] == "volumes")


def test_thanos_tree_round_trips_exactly_into_a_new_claim(
        apiserver: ApiServer, kubeconfig: Path, thanos: Path, tmp_path: Path) -> None:
    written = env.make_tree(thanos)
    assert written > 200 * env.MiB
    before = env.manifest(thanos)
    bundle = tmp_path / "b.tar.gz"
    code, out = _backup(kubeconfig, bundle)
    assert code == 0, _volumes_result(out)
    [rec] = _records(bundle)
    assert rec["claim"] == {"name": env.CLAIM, "storageClassName": "local-path",
                            "accessModes": ["ReadWriteOnce"], "size": "50Gi",
                            "volumeMode": "Filesystem", "labels": rec["claim"]["labels"]}
    assert rec["image"] == env.IMAGE and rec["source"]["via"] == "container"
    assert rec["entries"] == len(before)  # every entry, the claim's root ("./") included
    files = Bundle.open(bundle).files
    assert files[rec["file"]]["sha256"] == rec["sha256"] and files[rec["file"]]["size"] == rec["size"]
    # the sparse 256 MiB file travels as its data, not as zeros
    assert rec["size"] < written + 64 * env.MiB

    # a new cluster's claim: the workload and its claim are gone (reclaim Delete: the data too)
    apiserver.delete_object("apps/v1", "StatefulSet", env.STS, env.NS)
    apiserver.delete_object("v1", "Pod", env.POD, env.NS)
    apiserver.delete_object("v1", "PersistentVolumeClaim", env.CLAIM, env.NS)
    deadline = time.monotonic() + 10
    while thanos.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not thanos.exists()
    r = cli("restore", str(bundle), "--only", "volumes", "--yes", "--kubeconfig", str(kubeconfig),
            "-o", "json")
    assert r.code == 0, r.stdout + r.stderr
    restored = env.claim_dir(apiserver)
    assert restored != thanos
    assert env.manifest(restored) == before
    step = next(s for s in json.loads(r.stdout)["steps"] if s["name"] == "volumes")
    data = [o for o in step["objects"] if o["kind"] == "VolumeData"]
    assert data[0]["outcome"] == "created" and "verified" in data[0]["message"]
    assert not [x for x in apiserver.list("v1", "Pod", env.NS)
                if x["metadata"]["name"].startswith("runai-dr-")]  # the helper pod is gone

    # idempotent: the claim holds data now, and is left alone
    r = cli("restore", str(bundle), "--only", "volumes", "--yes", "--kubeconfig", str(kubeconfig),
            "-o", "json")
    assert r.code == 0, r.stdout + r.stderr
    step = next(s for s in json.loads(r.stdout)["steps"] if s["name"] == "volumes")
    [obj] = [o for o in step["objects"] if o["kind"] == "VolumeData"]
    assert obj["outcome"] == "unchanged" and "already holds data" in obj["message"]
    # --existing update replaces what is there
    (restored / "stray").write_bytes(b"not from the bundle")
    r = cli("restore", str(bundle), "--only", "volumes", "--yes", "--existing", "update",
            "--kubeconfig", str(kubeconfig), "-o", "json")
    assert r.code == 0, r.stdout + r.stderr
    assert env.manifest(restored) == before


def test_corrupt_member_never_reaches_the_claim(apiserver: ApiServer, kubeconfig: Path,
                                                thanos: Path, tmp_path: Path) -> None:
    (thanos / "a").write_bytes(b"a" * 100_000)
    bundle = tmp_path / "b.tar.gz"
    assert _backup(kubeconfig, bundle)[0] == 0
    [rec] = _records(bundle)
    # a bundle whose member does not match its checksum (rewritten by hand, manifest kept)
    import tarfile

    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bundle) as src, tarfile.open(bad, "w:gz") as dst:
        for info in src.getmembers():
            fh = src.extractfile(info)
            data = fh.read() if fh else b""
            if info.name == rec["file"]:
                data = data.replace(b"a" * 1000, b"b" * 1000, 1)
            dst.addfile(info, __import__("io").BytesIO(data))
    apiserver.delete_object("apps/v1", "StatefulSet", env.STS, env.NS)
    apiserver.delete_object("v1", "Pod", env.POD, env.NS)
    apiserver.delete_object("v1", "PersistentVolumeClaim", env.CLAIM, env.NS)
    r = cli("restore", str(bad), "--only", "volumes", "--yes", "--kubeconfig", str(kubeconfig))
    # the restore's preflight checks every member first: nothing is created
    assert r.code == 4 and f"failed verification: {rec['file']}" in r.stderr
    assert apiserver.get("v1", "PersistentVolumeClaim", env.CLAIM, env.NS) is None


def test_pod_without_tar_uses_a_debug_container(apiserver: ApiServer, kubeconfig: Path,
                                                thanos: Path, tmp_path: Path) -> None:
    apiserver.image_missing[env.IMAGE] = {"tar"}
    apiserver.ephemeral_start_delay = 1.5
    env.make_tree(thanos, blocks=3, block_mb=1, wal_mb=1)
    before = env.manifest(thanos)
    bundle = tmp_path / "b.tar.gz"
    code, out = _backup(kubeconfig, bundle, "--volume-data-image", "busybox:1.36")
    assert code == 0, out
    [rec] = _records(bundle)
    assert rec["source"]["via"] == "debug-container" and rec["source"]["image"] == "busybox:1.36"
    assert rec["entries"] == len(before)
    pod = env.must(apiserver.get("v1", "Pod", env.POD, env.NS))
    [eph] = pod["spec"]["ephemeralContainers"]
    assert eph["image"] == "busybox:1.36" and eph["volumeMounts"][0]["readOnly"] is True
    # it was told to end, and did
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        [st] = env.must(apiserver.get("v1", "Pod", env.POD, env.NS))["status"]["ephemeralContainerStatuses"]
        if "terminated" in st["state"]:
            break
        time.sleep(0.2)
    assert st["state"]["terminated"]["exitCode"] == 0
    # the stream is the claim's tree: extract it here and compare
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(["tar", "-x", "--numeric-owner", "-p", "-C", str(dest)],
                   input=member(bundle, rec["file"]), check=True)
    assert env.manifest(dest) == before


def test_a_debug_image_without_tar_is_a_clear_failure(apiserver: ApiServer, kubeconfig: Path,
                                                      thanos: Path, tmp_path: Path) -> None:
    apiserver.image_missing[env.IMAGE] = {"tar"}
    apiserver.image_missing["distroless"] = {"tar"}
    apiserver.ephemeral_start_delay = 0.2
    (thanos / "f").write_bytes(b"x")
    code, out = _backup(kubeconfig, tmp_path / "b.tar.gz", "--volume-data-image", "distroless")
    assert code == 3
    vol = _volumes_result(out)
    assert vol["status"] == "failed" and "has no tar either" in vol["reason"]


def _scale_patches(srv: ApiServer) -> list[int]:
    out = []
    for r in srv.requests:
        if r.method == "PATCH" and r.path.endswith(f"/statefulsets/{env.STS}/scale"):
            out.append(json.loads(r.body or b"{}")["spec"]["replicas"])
    return out


def test_quiesce_scales_down_copies_through_a_helper_and_scales_back(
        apiserver: ApiServer, kubeconfig: Path, thanos: Path, tmp_path: Path) -> None:
    env.make_tree(thanos, blocks=3, block_mb=1, wal_mb=1)
    before = env.manifest(thanos)
    code, out = _backup(kubeconfig, tmp_path / "b.tar.gz", "--quiesce", "--yes")
    assert code == 0, out
    [rec] = _records(tmp_path / "b.tar.gz")
    assert rec["source"] == {"via": "helper-pod", "statefulset": env.STS, "replicas": 1,
                             "quiesced": True, "image": env.IMAGE}
    assert rec["entries"] == len(before)
    assert _scale_patches(apiserver) == [0, 1]
    apiserver.wait_pod_ready(env.NS, env.POD, timeout=30)
    # without --yes and no terminal: refused before anything happens
    r = cli("backup", "volumes", "--volume-data", "--quiesce", "--to", str(tmp_path / "c.tar.gz"),
            "--kubeconfig", str(kubeconfig))
    assert r.code == 2 and "--yes" in r.stderr
    assert _scale_patches(apiserver) == [0, 1]


def test_quiesce_scales_back_after_an_interrupt(apiserver: ApiServer, kubeconfig: Path,
                                                thanos: Path, tmp_path: Path) -> None:
    env.make_tree(thanos, blocks=2, block_mb=1, wal_mb=1)
    apiserver.pod_start_delay = 2.0  # the helper pod takes a while: time to interrupt
    proc = subprocess.Popen(
        [sys.executable, "-m", "kubectl_runai_dr", "backup", "volumes", "--volume-data",
         "--quiesce", "--yes", "--to", str(tmp_path / "b.tar.gz"), "--no-record",
         "--kubeconfig", str(kubeconfig)],
        env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'testing'}", "NO_COLOR": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    helper = None
    while helper is None and time.monotonic() < deadline and proc.poll() is None:
        helper = next((x for x in apiserver.list("v1", "Pod", env.NS)
                       if x["metadata"]["name"].startswith("runai-dr-backup-")), None)
        time.sleep(0.05)
    assert helper is not None, proc.communicate()
    assert env.must(apiserver.get("apps/v1", "StatefulSet", env.STS, env.NS))["spec"]["replicas"] == 0
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert env.must(apiserver.get("apps/v1", "StatefulSet", env.STS, env.NS))["spec"]["replicas"] == 1
    assert not [x for x in apiserver.list("v1", "Pod", env.NS)
                if x["metadata"]["name"].startswith("runai-dr-")]
    assert not (tmp_path / "b.tar.gz").exists()
    apiserver.wait_pod_ready(env.NS, env.POD, timeout=30)


def test_a_file_changing_during_the_copy_is_reported(apiserver: ApiServer, kubeconfig: Path,
                                                     thanos: Path, tmp_path: Path) -> None:
    env.make_tree(thanos, blocks=4, block_mb=2, wal_mb=4)
    wal = thanos / "wal" / "00000004"
    wal.write_bytes(os.urandom(64 * env.MiB))
    stop = threading.Event()

    def append() -> None:
        with open(wal, "ab") as f:
            while not stop.is_set():
                f.write(b"w" * 4096)
                f.flush()
                time.sleep(0.001)

    t = threading.Thread(target=append, daemon=True)
    t.start()
    try:
        code, out = _backup(kubeconfig, tmp_path / "b.tar.gz")
    finally:
        stop.set()
        t.join()
    assert code == 0, out
    warnings = " ".join(_volumes_result(out)["warnings"])
    assert "./wal/00000004 (file changed as we read it)" in warnings
    assert "--quiesce" in warnings
    [rec] = _records(tmp_path / "b.tar.gz")
    assert "./wal/00000004 (file changed as we read it)" in rec["changed"]


def test_dry_run_restore_and_a_missing_storage_class(apiserver: ApiServer, kubeconfig: Path,
                                                     thanos: Path, tmp_path: Path) -> None:
    (thanos / "f").write_bytes(b"x")
    bundle = tmp_path / "b.tar.gz"
    assert _backup(kubeconfig, bundle)[0] == 0
    apiserver.delete_object("apps/v1", "StatefulSet", env.STS, env.NS)
    apiserver.delete_object("v1", "Pod", env.POD, env.NS)
    apiserver.delete_object("v1", "PersistentVolumeClaim", env.CLAIM, env.NS)
    r = cli("restore", str(bundle), "--only", "volumes", "--dry-run", "--kubeconfig",
            str(kubeconfig), "-o", "json")
    assert r.code == 0, r.stdout + r.stderr
    step = next(s for s in json.loads(r.stdout)["steps"] if s["name"] == "volumes")
    assert {(o["kind"], o["outcome"]) for o in step["objects"]} == {
        ("PersistentVolumeClaim", "create"), ("VolumeData", "create")}
    r = cli("restore", str(bundle), "--only", "volumes", "--yes", "--storage-class", "nope",
            "--kubeconfig", str(kubeconfig), "-o", "json")
    assert r.code == 3
    step = next(s for s in json.loads(r.stdout)["steps"] if s["name"] == "volumes")
    [obj] = step["objects"]
    assert obj["outcome"] == "failed" and 'storage class "nope" does not exist' in obj["message"]
    assert apiserver.get("v1", "PersistentVolumeClaim", env.CLAIM, env.NS) is None


def test_status_says_which_protection_each_claim_has(apiserver: ApiServer, kubeconfig: Path,
                                                     thanos: Path, tmp_path: Path) -> None:
    (thanos / "f").write_bytes(b"x")

    def protection() -> str:
        r = cli("status", "--no-exec", "--kubeconfig", str(kubeconfig), "-o", "json")
        claims = {c["name"]: c for c in json.loads(r.stdout)["volumes"]["claims"]}
        return str(claims[env.CLAIM]["protection"])

    assert protection() == "none"
    r = cli("backup", "volumes", "--volume-data", "--to", str(tmp_path / "b.tar.gz"),
            "--kubeconfig", str(kubeconfig))
    assert r.code == 0, r.stderr
    assert protection() == "file-level"
    table = cli("status", "--no-exec", "--kubeconfig", str(kubeconfig))
    assert "PROTECTION" in table.stdout and "file-level" in table.stdout
