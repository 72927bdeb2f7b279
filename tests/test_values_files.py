"""restore's helm values files: written before the commands that name them are printed,
replacing a stale one, never through a link, and only into a private directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from kubeapi import ApiServer
from kubeapi.seed import seed_runai

from kubectl_runai_dr.errors import ExitCode
from tests.e2e import cli, member


@pytest.fixture
def seeded(apiserver: ApiServer, tmp_path: Path) -> tuple[ApiServer, Path, Path]:
    seed_runai(apiserver, projects=2)
    kc = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    bundle = tmp_path / "b.tar.gz"
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(bundle), "--no-record",
            "--skip", "database")
    assert r.code == 0, r.stderr
    for name in [s["metadata"]["name"] for s in apiserver.list("v1", "Secret", "runai")
                 if s["metadata"]["name"].startswith("sh.helm.release.v1.runai-cluster.")]:
        apiserver.delete_object("v1", "Secret", name, "runai")  # the release is gone
    return apiserver, kc, bundle


def _restore(kc: Path, bundle: Path, values_dir: Path) -> tuple[int, str, str]:
    r = cli("restore", str(bundle), "--yes", "--only", "cluster", "--kubeconfig", str(kc),
            "--values-dir", str(values_dir), env={"COLUMNS": "1000"})
    return r.code, r.stdout, r.stderr


def test_the_printed_commands_find_their_values_file(seeded: tuple[ApiServer, Path, Path],
                                                     tmp_path: Path) -> None:
    _, kc, bundle = seeded
    vals = tmp_path / "vals"
    vals.mkdir(mode=0o700)
    stale = vals / "runai-cluster-values.yaml"
    stale.write_text("stale: from an earlier run\n")
    victim = tmp_path / "victim"
    victim.write_text("precious")
    code, out, err = _restore(kc, bundle, vals)
    assert code == 0, err
    assert f"--values {stale}" in out
    assert stale.read_bytes() == member(bundle, "helm/runai-cluster/values.yaml")
    assert stat.S_IMODE(stale.stat().st_mode) == 0o600
    # a link planted where the file goes is replaced, not written through
    stale.unlink()
    stale.symlink_to(victim)
    assert _restore(kc, bundle, vals)[0] == 0
    assert victim.read_text() == "precious" and not stale.is_symlink()


def test_values_directory_is_private(seeded: tuple[ApiServer, Path, Path],
                                     tmp_path: Path) -> None:
    _, kc, bundle = seeded
    old = os.umask(0)
    try:
        code, _, err = _restore(kc, bundle, tmp_path / "new" / "vals")
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE((tmp_path / "new" / "vals").stat().st_mode) == 0o700
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 54321, 54321)
    code, out, err = _restore(kc, bundle, theirs)
    assert code == ExitCode.PARTIAL
    assert "belongs to another user" in out + err
    assert list(theirs.iterdir()) == []
