"""What a backup leaves on disk and in the cluster when things go wrong: no bundle when
nothing could be read, private directories, SIGTERM, interruptions after the bundle was
written, full or read-only disks, and what was left out."""

from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeapi import ApiServer
from kubeapi.seed import seed_runai

from kubectl_runai_dr.errors import ExitCode
from tests.e2e import ROOT, cli, manifest_of


@pytest.fixture
def seeded(apiserver: ApiServer, tmp_path: Path) -> tuple[ApiServer, Path]:
    seed_runai(apiserver, projects=12, rolebindings_per_project=7)
    return apiserver, apiserver.write_kubeconfig(tmp_path / "kubeconfig")


def _backup(kc: Path, *args: str) -> tuple[int, str, str]:
    """Exit code, stdout, stderr (wide: messages with long paths stay on one line)."""
    r = cli("backup", "--kubeconfig", str(kc), "--skip", "database", *args,
            env={"COLUMNS": "1000"})
    return r.code, r.stdout, r.stderr


def _entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# -- I: nothing readable, no bundle ------------------------------------------------------------
def test_every_component_forbidden_writes_no_bundle(seeded: tuple[ApiServer, Path],
                                                    tmp_path: Path) -> None:
    srv, _ = seeded
    srv.add_user("nobody-token", "nobody")
    srv.deny(verb="*", resource="*", group="*", user="nobody")
    kc = srv.write_kubeconfig(tmp_path / "kc-nobody", token="nobody-token")
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    code, _, err = _backup(kc, "--to", str(out))
    assert code == ExitCode.FORBIDDEN, err
    assert "no component could be backed up, so no bundle was written" in err
    assert _entries(out) == []


def test_credentials_revoked_during_the_backup_exit_5_without_a_bundle(
        seeded: tuple[ApiServer, Path], tmp_path: Path) -> None:
    srv, kc = seeded
    srv.inject_fault(path_regex=r"^/(api|apis)/", status=401, times=None)
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    code, _, err = _backup(kc, "--to", str(out))
    assert code == ExitCode.CLUSTER_UNREACHABLE, err
    assert _entries(out) == []


# -- 4: --to DIR/ ------------------------------------------------------------------------------
def test_a_trailing_slash_means_a_directory(seeded: tuple[ApiServer, Path],
                                            tmp_path: Path) -> None:
    _, kc = seeded
    old = os.umask(0)
    try:
        code, _, err = _backup(kc, "--to", f"{tmp_path}/new/backups/")
    finally:
        os.umask(old)
    assert code == 0, err
    made = tmp_path / "new" / "backups"
    assert made.is_dir() and stat.S_IMODE(made.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    [bundle] = made.iterdir()
    assert bundle.name.startswith("runai-dr-loopback-") and bundle.name.endswith(".tar.gz")
    # a file name in a directory that does not exist: a clear error, nothing created
    code, _, err = _backup(kc, "--to", str(tmp_path / "absent" / "b.tar.gz"))
    assert code == ExitCode.ERROR
    assert f"directory {tmp_path / 'absent'} does not exist" in err
    assert "report it" not in err and not (tmp_path / "absent").exists()


def test_a_shared_output_directory_is_refused(seeded: tuple[ApiServer, Path],
                                              tmp_path: Path) -> None:
    _, kc = seeded
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    code, _, err = _backup(kc, "--to", f"{shared}/")
    assert code == ExitCode.ERROR
    assert "writable by its group and others" in err and _entries(shared) == []


# -- 5: SIGTERM ------------------------------------------------------------------------------
def test_sigterm_cleans_up_like_ctrl_c(seeded: tuple[ApiServer, Path], tmp_path: Path) -> None:
    srv, kc = seeded
    srv.inject_fault(method="GET", path_regex=r"/rolebindings$", status=None, delay=30, times=5)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    p = subprocess.Popen([sys.executable, "-m", "kubectl_runai_dr", "backup", "--kubeconfig",
                          str(kc), "--skip", "database", "--include-secrets", "--allow-plaintext-secrets", "--to",
                          str(out)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and not any(
            r.path.endswith("/rolebindings") for r in srv.requests):
        time.sleep(0.1)
    staged = [f for d in out.iterdir() for f in d.rglob("*") if f.is_file()]
    assert staged and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in staged)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == ExitCode.ABORTED, err
    assert "interrupted (SIGTERM) before the bundle was written" in err
    assert "Traceback" not in err
    assert _entries(out) == []


def test_the_next_backup_removes_a_killed_backups_staging(seeded: tuple[ApiServer, Path],
                                                          tmp_path: Path) -> None:
    _, kc = seeded
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    script = ("import os, sys; from pathlib import Path\n"
              "from kubectl_runai_dr.bundle.writer import BundleWriter\n"
              "w = BundleWriter(Path(sys.argv[1]))\n"
              "w.write_bytes('secrets/secrets.json', b'{}')\n"
              "os.kill(os.getpid(), 9)\n")
    subprocess.run([sys.executable, "-c", script, str(out / "b.tar.gz")], cwd=ROOT, check=False)
    [stale] = out.iterdir()
    code, _, err = _backup(kc, "--to", str(out / "c.tar.gz"))
    assert code == 0, err
    assert f"removed {stale}, the staging directory of an interrupted backup" in err
    assert _entries(out) == ["c.tar.gz"]


# -- 6: interrupted after the bundle was written ---------------------------------------------
def test_an_interruption_after_the_bundle_says_what_exists(
        seeded: tuple[ApiServer, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubectl_runai_dr.ops import backup as ops

    srv, kc = seeded

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ops, "rotate", interrupted)
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    code, _, err = _backup(kc, "--to", str(out), "--keep", "3")
    assert code == ExitCode.ABORTED
    [bundle] = out.iterdir()
    assert (f"interrupted (Ctrl-C) after the bundle {bundle} was written (complete); old "
            "bundles may have been deleted in part (--keep); the in-cluster record was not "
            "updated, so `status` still shows the previous backup") in err
    assert "nothing was left behind" not in err
    assert srv.get("v1", "ConfigMap", "runai-dr-last-backup", "runai-backend") is None
    assert cli("verify", str(bundle)).code == 0

    monkeypatch.undo()
    monkeypatch.setattr(ops, "write_record", interrupted)
    bundle.unlink()
    code, _, err = _backup(kc, "--to", str(out), "--keep", "3")
    assert code == ExitCode.ABORTED
    assert "old bundles were rotated (--keep); the in-cluster record may or may not have " \
        "been updated" in err


# -- 7: what a backup left out ---------------------------------------------------------------
def test_included_and_excluded_components_are_recorded(seeded: tuple[ApiServer, Path],
                                                       tmp_path: Path) -> None:
    srv, kc = seeded
    code, _, err = _backup(kc, "--to", str(tmp_path / "b.tar.gz"))
    assert code == 0, err
    m = manifest_of(tmp_path / "b.tar.gz")
    assert "database" in m["excludedComponents"] and "database" not in m["includedComponents"]
    assert "namespaces" in m["includedComponents"]
    record = srv.get("v1", "ConfigMap", "runai-dr-last-backup", "runai-backend")
    assert record is not None
    assert "database" in json.loads(record["data"]["excludedComponents"])
    assert json.loads(record["data"]["includedComponents"]) == m["includedComponents"]
    r = cli("status", "--kubeconfig", str(kc), "-o", "json")
    problems = [p["message"] for p in json.loads(r.stdout)["problems"]]
    assert "the last backup left out the database: b.tar.gz" in problems
    r = cli("inspect", str(tmp_path / "b.tar.gz"))
    assert "Left out" in r.stdout and "database" in r.stdout


# -- 9 / K: the disk ---------------------------------------------------------------------------
def test_a_file_size_limit_is_reported_with_the_path(seeded: tuple[ApiServer, Path],
                                                     tmp_path: Path) -> None:
    _, kc = seeded

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "1000"}
    p = subprocess.run([sys.executable, "-m", "kubectl_runai_dr", "backup", "--kubeconfig",
                        str(kc), "--skip", "database", "--to", str(out)], env=env,
                       capture_output=True, text=True, preexec_fn=limit, timeout=120)
    err = p.stderr
    assert p.returncode == ExitCode.ERROR, err
    assert f"cannot write {out}/" in err and "File too large" in err
    assert "report it" not in err and "unexpected" not in err
    assert _entries(out) == []


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)],
                      capture_output=True, check=False).returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_a_full_or_read_only_disk_is_reported_with_the_path(
        seeded: tuple[ApiServer, Path], small_fs: Path) -> None:
    _, kc = seeded
    code, _, err = _backup(kc, "--to", f"{small_fs}/")
    assert code == ExitCode.ERROR, err
    assert f"cannot write {small_fs}/" in err and "No space left on device" in err
    assert "report it" not in err and "unexpected" not in err
    assert _entries(small_fs) == []
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    code, _, err = _backup(kc, "--to", f"{small_fs}/")
    assert code == ExitCode.ERROR, err
    assert "Read-only file system" in err and str(small_fs) in err
    assert "report it" not in err
