"""Bundles in object storage, end to end against a real S3 server on loopback (SeaweedFS)
and the loopback API server: backup (database included, through exec) to s3://, list,
inspect, verify, drill, restore from s3://, --keep rotation, encryption on top, and the
failures: an interrupted upload, a server that dies mid-upload, wrong credentials, no
permission, a missing bucket. Credentials never show in any output."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from kubeapi import ApiServer
from kubeapi.pgserver import PgServer
from kubeapi.seed import seed_runai

from kubectl_runai_dr.errors import StorageError
from tests.e2e import Run, cli
from tests.s3server import ADMIN, READER, S3Server, running_s3
from tests.test_database import counts, load_data, pg, set_exec  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


@pytest.fixture
def s3env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = s3_server.env()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(k, raising=False)
    yield env


@pytest.fixture
def db_env(runai_server: ApiServer, pg: PgServer, tmp_path: Path) -> Path:  # noqa: F811
    load_data(pg)
    set_exec(runai_server, pg)
    return runai_server.write_kubeconfig(tmp_path / "kubeconfig")


def _no_secret(r: Run) -> None:
    for secret in (ADMIN[1], READER[1]):
        assert secret not in r.stdout + r.stderr


def _backup(kc: Path, to: str, *extra: str) -> Run:
    r = cli("backup", "--kubeconfig", str(kc), "--to", to, "-o", "json", *extra)
    _no_secret(r)
    return r


def test_backup_to_s3_and_everything_reads_it_back(s3_server: S3Server, s3env: dict[str, str],
                                                   db_env: Path, pg: PgServer,  # noqa: F811
                                                   tmp_path: Path) -> None:
    bucket = s3_server.bucket()
    r = _backup(db_env, f"s3://{bucket}/prod/")
    assert r.code == 0, r.stderr
    url = json.loads(r.stdout)["bundle"]
    name = url.rpartition("/")[2]
    assert url == f"s3://{bucket}/prod/{name}" and name.startswith("runai-dr-loopback-")
    assert s3_server.keys(bucket) == [f"prod/{name}"] and s3_server.uploads(bucket) == []
    assert not list(tmp_path.glob("runai-dr-*"))  # nothing left on the local disk

    listing = cli("bundles", f"s3://{bucket}/prod/", "-o", "json")
    assert listing.code == 0, listing.stderr
    (entry,) = json.loads(listing.stdout)["bundles"]
    assert entry["name"] == name and entry["status"] == "complete"
    assert entry["context"] == "loopback" and entry["encrypted"] is False
    assert entry["size"] > 0

    r = cli("inspect", url, "-o", "json")
    assert r.code == 0 and json.loads(r.stdout)["status"] == "complete"
    r = cli("verify", url)
    assert r.code == 0, r.stderr
    r = cli("verify", url, "--drill", "--kubeconfig", str(db_env))
    assert r.code == 0, r.stderr + r.stdout
    r = cli("helm", "values", url, "--release", "runai-backend", "-o", "json")
    assert r.code == 0, r.stderr

    before = counts(pg, "backend")
    pg.psql("DELETE FROM workloads.history WHERE id > 10", db="backend")
    r = cli("restore", "--only", "database", url, "--kubeconfig", str(db_env), "--yes")
    assert r.code == 0, r.stderr + r.stdout
    assert counts(pg, "backend") == before
    r = cli("namespaces", url, "--kubeconfig", str(db_env), "--dry-run")
    assert r.code == 0, r.stderr
    r = cli("diff", url, url)
    assert r.code == 0, r.stderr + r.stdout

    # the in-cluster record says where it went (no credentials in a URL)
    r = cli("status", "--kubeconfig", str(db_env), "-o", "json")
    backup = json.loads(r.stdout)["backup"]
    assert backup["location"] == f"s3://{bucket}/prod/" and backup["encrypted"] is False


def test_encrypted_bundle_in_s3(s3_server: S3Server, s3env: dict[str, str],
                                runai_server: ApiServer, tmp_path: Path) -> None:
    seed_runai(runai_server, projects=3, rolebindings_per_project=2)
    kc = runai_server.write_kubeconfig(tmp_path / "kc")
    key = tmp_path / "key.txt"
    recipient = json.loads(cli("keygen", "--to", str(key), "-o", "json").stdout)["recipient"]
    bucket = s3_server.bucket()
    r = _backup(kc, f"s3://{bucket}/", "--skip", "database", "--encrypt-to", recipient)
    assert r.code == 0, r.stderr
    url = json.loads(r.stdout)["bundle"]
    assert url.endswith(".tar.gz.age")
    (entry,) = json.loads(cli("bundles", f"s3://{bucket}/", "-o", "json").stdout)["bundles"]
    assert entry["encrypted"] is True and entry["status"] == "complete"
    r = cli("inspect", url)
    assert r.code == 4 and "is encrypted (age, to 1 X25519 recipient)" in r.stderr
    assert cli("verify", url, "--identity", str(key)).code == 0


def test_keep_rotates_only_this_contexts_bundles(s3_server: S3Server, s3env: dict[str, str],
                                                 runai_server: ApiServer,
                                                 tmp_path: Path) -> None:
    from kubectl_runai_dr.kube.client import ConnectOptions, connect
    from kubectl_runai_dr.ops.backup import BackupOptions, run_backup

    seed_runai(runai_server, projects=2, rolebindings_per_project=1)
    kc = runai_server.write_kubeconfig(tmp_path / "kc")
    bucket = s3_server.bucket()
    client = s3_server.client()
    import io

    foreign = "runai-dr-loopback-20200101T000000Z.tar.gz"  # a bundle-like name, not ours
    client.put_object(bucket, f"dr/{foreign}", io.BytesIO(b"x"), 1)
    other = "runai-dr-elsewhere-20200101T000000Z.tar.gz"
    client.put_object(bucket, f"dr/{other}", io.BytesIO(b"x"), 1,
                      metadata={"runai-dr-tool": "kubectl-runai-dr",
                                "runai-dr-context": "elsewhere",
                                "runai-dr-components": "namespaces"})
    kube = connect(ConnectOptions(kubeconfig=str(kc)))
    start = datetime.now(timezone.utc) - timedelta(hours=5)
    names = []
    for hour in range(4):
        out = run_backup(kube, BackupOptions(output=f"s3://{bucket}/dr/", skip=("database",),
                                             record=False, keep=2),
                         now=start + timedelta(hours=hour))
        names.append(out.path.name)
    assert out.deleted == [names[1]]
    assert s3_server.keys(bucket, "dr/") == sorted(
        [f"dr/{n}" for n in names[2:]] + [f"dr/{foreign}", f"dr/{other}"])


def test_interrupted_upload_leaves_nothing(s3_server: S3Server, s3env: dict[str, str],
                                           monkeypatch: pytest.MonkeyPatch,
                                           runai_server: ApiServer, tmp_path: Path) -> None:
    """Ctrl-C while the parts go up: the multipart upload is aborted, so no object lists
    or opens as a bundle, and no parts are left in the bucket."""
    from kubectl_runai_dr.components import registry
    from kubectl_runai_dr.storage import s3

    seed_runai(runai_server, projects=2, rolebindings_per_project=1)
    kc = runai_server.write_kubeconfig(tmp_path / "kc")
    bucket = s3_server.bucket()
    _large_component(monkeypatch, registry)
    real = s3.S3Store.upload_part
    sent: list[int] = []

    def interrupted(self: Any, url: Any, upload_id: str, number: int, data: bytes) -> str:
        sent.append(number)
        if len(sent) == 2:
            raise KeyboardInterrupt
        return real(self, url, upload_id, number, data)

    monkeypatch.setattr(s3.S3Store, "upload_part", interrupted)
    r = _backup(kc, f"s3://{bucket}/x/", "--skip", "database", "--no-record")
    assert r.code == 130, r.stderr
    assert "no bundle" in r.stderr
    assert len(sent) >= 2  # the large member went up while it was written
    assert s3_server.keys(bucket) == [] and s3_server.uploads(bucket) == []


def _large_component(monkeypatch: pytest.MonkeyPatch, registry: Any) -> None:
    """Make the scheduling component write 36 MiB of incompressible data (three parts)."""
    comp = registry.BY_NAME["scheduling"]
    real = comp.backup

    def backup(ctx: Any, result: Any) -> None:
        real(ctx, result)
        with ctx.out.open("scheduling/padding.bin") as f:
            for _ in range(36):
                f.write(os.urandom(1024 * 1024))

    import dataclasses

    monkeypatch.setitem(registry.BY_NAME, "scheduling", dataclasses.replace(comp, backup=backup))


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
def test_a_large_bundle_streams_up_with_little_local_disk(
        s3_server: S3Server, s3env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
        runai_server: ApiServer, tmp_path: Path, encrypted: bool) -> None:
    """A member larger than the spill threshold goes up while it is written: the local
    staging never holds more than the threshold, and the object is one ordinary .tar.gz
    (GNU tar lists it, manifest first) that verify accepts and the reader seeks in.
    Encrypted, the same holds for the one age file the object is (`age -d` opens it)."""
    import shutil
    import subprocess

    from kubectl_runai_dr.bundle import streamed
    from kubectl_runai_dr.components import registry
    from kubectl_runai_dr.storage import s3

    seed_runai(runai_server, projects=2, rolebindings_per_project=1)
    kc = runai_server.write_kubeconfig(tmp_path / "kc")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # TMPDIR is read again
    _large_component(monkeypatch, registry)
    real = s3.S3Store.upload_part
    staged: list[int] = []
    numbers: list[int] = []

    def measured(self: Any, url: Any, upload_id: str, number: int, data: bytes) -> str:
        numbers.append(number)
        staged.append(sum(p.stat().st_size for p in scratch.rglob("*") if p.is_file()))
        return real(self, url, upload_id, number, data)

    monkeypatch.setattr(s3.S3Store, "upload_part", measured)
    bucket = s3_server.bucket()
    key = tmp_path / "key.txt"
    extra: list[str] = []
    if encrypted:
        made = cli("keygen", "--to", str(key), "-o", "json")
        extra = ["--encrypt-to", json.loads(made.stdout)["recipient"]]
        monkeypatch.setenv("RUNAI_DR_AGE_KEY_FILE", str(key))  # for every reader below
    r = _backup(kc, f"s3://{bucket}/big/", "--skip", "database", "--no-record", *extra)
    assert r.code == 0, r.stderr
    url = json.loads(r.stdout)["bundle"]
    assert max(staged) <= streamed.SPILL_AT + 4 * 1024 * 1024, staged
    assert [p for p in scratch.iterdir() if p.name.startswith("runai-dr-")] == []  # gone
    assert min(numbers) == 1
    assert max(numbers) == streamed.LAST_PART or encrypted  # (encrypted: where the end fell)
    assert streamed.FIRST_RANGE in numbers  # the large member's header part
    assert cli("verify", url).code == 0
    listing = json.loads(cli("bundles", f"s3://{bucket}/big/", "-o", "json").stdout)
    assert listing["bundles"][0]["status"] == "complete"  # from the manifest
    local = tmp_path / "copy.tar.gz"
    s3_server.client().fget_object(bucket, url.split(f"{bucket}/", 1)[1], str(local))
    if encrypted:
        sealed = local.with_suffix(".age")
        local.rename(sealed)
        age_tool = shutil.which("age")
        assert age_tool is not None
        subprocess.run([age_tool, "-d", "-i", str(key), "-o", str(local), str(sealed)],
                       check=True)
    tar = shutil.which("tar")
    assert tar is not None
    names = subprocess.run([tar, "-tzf", str(local)], capture_output=True, text=True,
                           check=True).stdout.split()
    assert names[0] == "manifest.json" and names[-1] == "scheduling/padding.bin"
    from kubectl_runai_dr.bundle.reader import Bundle

    with Bundle.open(local) as b:
        assert b.verify() == []
        assert len(b.read_bytes("objects/namespaces.json")) > 0


def test_server_dying_mid_upload_leaves_no_bundle(monkeypatch: pytest.MonkeyPatch,
                                                  runai_server: ApiServer,
                                                  tmp_path: Path) -> None:
    """A server of its own, killed after the first part: the backup fails with a clear
    error, and once the server is back, no object exists under the bundle's name."""
    from kubectl_runai_dr.components import registry
    from kubectl_runai_dr.storage import s3

    seed_runai(runai_server, projects=2, rolebindings_per_project=1)
    kc = runai_server.write_kubeconfig(tmp_path / "kc")
    _large_component(monkeypatch, registry)
    with running_s3() as server:
        for k, v in server.env().items():
            monkeypatch.setenv(k, v)
        bucket = server.bucket()
        real = s3.S3Store.upload_part

        sent: list[int] = []

        def dying(self: Any, url: Any, upload_id: str, number: int, data: bytes) -> str:
            sent.append(number)
            if len(sent) == 2:
                server.stop()
            return real(self, url, upload_id, number, data)

        monkeypatch.setattr(s3.S3Store, "upload_part", dying)
        r = _backup(kc, f"s3://{bucket}/x/", "--skip", "database", "--no-record")
        assert r.code == 1, r.stderr
        # a part in flight when it went down fails as the server answered, or not at all
        assert "cannot upload part 1" in r.stderr and f"{bucket}/x/runai-dr-" in r.stderr
        assert "never a bundle" in r.stderr  # the abort failed too, and it says so
        assert "Traceback" not in r.stderr


def test_wrong_credentials_and_missing_permission(s3_server: S3Server, s3env: dict[str, str],
                                                  runai_server: ApiServer,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    seed_runai(runai_server, projects=1, rolebindings_per_project=1)
    kc = runai_server.write_kubeconfig(tmp_path / "kc")
    bucket = s3_server.bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    r = _backup(kc, f"s3://{bucket}/", "--skip", "database")
    assert r.code == 6 and "access denied" in r.stderr and "not-the-secret" not in r.stderr
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", READER[0])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", READER[1])
    r = _backup(kc, f"s3://{bucket}/", "--skip", "database", "--no-record")
    assert r.code == 6, r.stderr
    assert f"cannot write s3://{bucket}/runai-dr-loopback-" in r.stderr
    assert s3_server.keys(bucket) == [] and s3_server.uploads(bucket) == []
    # the reader may list and read
    assert cli("bundles", f"s3://{bucket}/").code == 0


def test_missing_bucket_bad_location_and_no_bundle(s3_server: S3Server, s3env: dict[str, str],
                                                   runai_server: ApiServer,
                                                   tmp_path: Path) -> None:
    seed_runai(runai_server, projects=1, rolebindings_per_project=1)
    kc = runai_server.write_kubeconfig(tmp_path / "kc")
    r = _backup(kc, "s3://no-such-bucket-here/x/", "--skip", "database")
    assert r.code == 1 and "the bucket no-such-bucket-here does not exist" in r.stderr
    assert "hint: create the bucket" in r.stderr
    r = _backup(kc, "gs://bucket/x/", "--skip", "database")
    assert r.code == 2 and "gs:// locations are not supported" in r.stderr
    bucket = s3_server.bucket()
    r = cli("verify", f"s3://{bucket}/nothing.tar.gz")
    assert r.code == 4 and "does not exist" in r.stderr and "bundles" in r.stderr
    r = cli("inspect", f"s3://{bucket}/")
    assert r.code == 4 and "is a prefix, not a bundle" in r.stderr


def test_unreachable_endpoint_and_tls_errors_are_one_line(monkeypatch: pytest.MonkeyPatch,
                                                          tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    r = cli("bundles", "s3://bucket/x/", "--s3-endpoint", "http://127.0.0.1:9")
    assert r.code == 1 and "cannot be reached" in r.stderr and "Traceback" not in r.stderr
    r = cli("bundles", "s3://bucket/x/", "--s3-endpoint", "https://127.0.0.1:9",
            "--s3-ca-bundle", str(tmp_path / "missing.pem"))
    assert r.code == 1 and "CA bundle" in r.stderr


def test_store_errors_name_action_and_key() -> None:
    from kubectl_runai_dr.storage.location import parse_s3
    from kubectl_runai_dr.storage.s3 import storage_error

    err = storage_error(ConnectionRefusedError(111, "refused"), "read", parse_s3("s3://b-1/k"),
                        "http://h:1")
    assert isinstance(err, StorageError) and "cannot read s3://b-1/k" in err.message
