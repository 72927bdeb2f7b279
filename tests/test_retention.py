"""`backup --keep N`: rotation of a context's bundles, never of anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubectl_runai_dr.plan.retention import bundles_to_delete
from tests.e2e import cli
from tests.kubeapi import ApiServer
from tests.kubeapi.seed import seed_runai

NAMES = [
    "runai-dr-prod-20261101T000000Z.tar.gz",
    "runai-dr-prod-20261103T000000Z.tar.gz",
    "runai-dr-prod-20261102T000000Z.tar.gz",
    "runai-dr-prod-eu-20261101T000000Z.tar.gz",  # another context whose name extends ours
    "runai-dr-staging-20261101T000000Z.tar.gz",
    "runai-dr-prod-20261101T000000Z.tar.gz.sha256",
    ".runai-dr-prod-20261104T000000Z.tar.gz.abcd.partial",
    "notes.txt",
]


def test_only_this_contexts_bundles_oldest_first() -> None:
    assert bundles_to_delete(NAMES, "prod", keep=1) == [
        "runai-dr-prod-20261101T000000Z.tar.gz", "runai-dr-prod-20261102T000000Z.tar.gz"]
    assert bundles_to_delete(NAMES, "prod", keep=3) == []
    assert bundles_to_delete(NAMES, "prod-eu", keep=1) == []
    # contexts with characters a file name cannot hold are matched as they were written
    assert bundles_to_delete(["runai-dr-arn_aws_eks_x-20261101T000000Z.tar.gz",
                              "runai-dr-arn_aws_eks_x-20261102T000000Z.tar.gz"],
                             "arn:aws:eks/x", keep=1) == [
        "runai-dr-arn_aws_eks_x-20261101T000000Z.tar.gz"]
    with pytest.raises(ValueError):
        bundles_to_delete(NAMES, "prod", keep=0)


def test_backup_keep_rotates_after_a_complete_backup(apiserver: ApiServer,
                                                     tmp_path: Path) -> None:
    seed_runai(apiserver, projects=2)
    kc = apiserver.write_kubeconfig(tmp_path / "kc")
    out = tmp_path / "backups"
    out.mkdir()
    old = ["runai-dr-loopback-20200101T000000Z.tar.gz", "runai-dr-loopback-20200102T000000Z.tar.gz"]
    for name in [*old, "runai-dr-other-20200101T000000Z.tar.gz", "keep-me.txt"]:
        (out / name).write_text("x")
    r = cli("backup", "--kubeconfig", str(kc), "--output", str(out), "--skip", "database",
            "--keep", "2")
    assert r.code == 0, r.stderr
    left = sorted(p.name for p in out.iterdir())
    assert old[0] not in left and old[1] in left  # the new bundle + the newest old one
    assert "runai-dr-other-20200101T000000Z.tar.gz" in left and "keep-me.txt" in left
    assert f"deleted old bundle {old[0]}" in r.stderr

    # a partial backup deletes nothing
    apiserver.add_user("limited-token", "limited")
    apiserver.deny(verb="list", resource="configmaps", namespace="runai", user="limited")
    kc2 = apiserver.write_kubeconfig(tmp_path / "kc2", token="limited-token")
    r = cli("backup", "--kubeconfig", str(kc2), "--output", str(out), "--skip", "database",
            "--keep", "1", "--force")
    assert r.code == 3
    assert "nothing deleted, because this backup is partial" in r.stderr
    assert old[1] in {p.name for p in out.iterdir()}
