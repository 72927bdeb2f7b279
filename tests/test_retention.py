"""`backup --keep N`: rotation of a context's bundles, never of anything else."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubeapi import ApiServer
from kubeapi.seed import seed_runai

from kubectl_runai_dr.bundle.rotation import rotate
from kubectl_runai_dr.bundle.writer import BundleWriter
from kubectl_runai_dr.plan.retention import Candidate, plan_retention
from tests.e2e import cli
from tests.test_bundle import MANIFEST

NOW = datetime(2026, 11, 10, tzinfo=timezone.utc)


def _name(context: str, day: int, year: int = 2026) -> str:
    return f"runai-dr-{context}-{year}11{day:02d}T000000Z.tar.gz"


# what a `backup --skip database` holds
CONFIG = ("control-plane", "cluster", "runaiconfig", "templates", "namespaces", "scheduling")


def _bundle(directory: Path, name: str, context: str,
            components: tuple[str, ...] = CONFIG) -> Path:
    w = BundleWriter(directory / name)
    w.write_json("a/b.json", {})
    return w.finalize({**MANIFEST, "source": {"context": context, "server": "https://x"},
                       "components": [{"name": c, "status": "ok", "objects": 1,
                                       "files": ["a/b.json"]} for c in components]},
                      mtime=0)


def test_plan_keeps_the_newest_of_the_context_and_never_the_new_one() -> None:
    prod = [Candidate(_name("prod", d), "prod") for d in (1, 3, 2)]
    others = [Candidate(_name("prod-eu", 1), "prod-eu"), Candidate(_name("prod", 4), "staging")]
    plan = plan_retention([*prod, *others], context="prod", keep=2,
                          just_written=_name("prod", 9), now=NOW)
    assert plan.keep == [_name("prod", 9), _name("prod", 3)]
    assert plan.delete == [_name("prod", 1), _name("prod", 2)]  # oldest first
    assert plan_retention(prod, context="prod", keep=4, just_written=_name("prod", 9),
                          now=NOW).delete == []
    with pytest.raises(ValueError):
        plan_retention(prod, context="prod", keep=0, just_written="x", now=NOW)


def test_keep_counts_per_component() -> None:
    """Nightly full backups among hourly ones without the database: the two newest
    database dumps survive however many config-only backups follow them."""
    full, config = frozenset({"database", "cluster"}), frozenset({"cluster"})
    cands = [Candidate(_name("prod", 1), "prod", full), Candidate(_name("prod", 2), "prod", full),
             Candidate(_name("prod", 3), "prod", full)]
    cands += [Candidate(_name("prod", d), "prod", config) for d in (4, 5, 6, 7)]
    plan = plan_retention(cands, context="prod", keep=2, just_written=_name("prod", 9),
                          now=NOW, written_components=config)
    assert plan.keep == [_name("prod", 9), _name("prod", 7), _name("prod", 3), _name("prod", 2)]
    assert plan.delete == [_name("prod", 1), _name("prod", 4), _name("prod", 5), _name("prod", 6)]
    # the same components everywhere: simply the newest
    plan = plan_retention([Candidate(c.name, "prod", full) for c in cands], context="prod",
                          keep=2, just_written=_name("prod", 9), now=NOW,
                          written_components=full)
    assert plan.keep == [_name("prod", 9), _name("prod", 7)]
    # a bundle that holds nothing (every component failed) is not worth keeping
    plan = plan_retention([Candidate(_name("prod", 8), "prod", frozenset())], context="prod",
                          keep=3, just_written=_name("prod", 9), now=NOW,
                          written_components=full)
    assert plan.delete == [_name("prod", 8)]


def test_plan_ignores_names_dated_in_the_future() -> None:
    """A clock that ran ahead once: its bundle must not push the new one out."""
    future = Candidate(_name("prod", 1, year=2031), "prod")
    old = Candidate(_name("prod", 1), "prod")
    plan = plan_retention([future, old], context="prod", keep=1,
                          just_written=_name("prod", 9), now=NOW)
    assert plan.keep == [_name("prod", 9)]
    assert plan.delete == [old.name]
    assert plan.future == [future.name]


def test_rotation_decides_by_the_context_in_the_manifest(tmp_path: Path) -> None:
    """prod/eu and prod_eu share a file-name form; only the manifest tells them apart."""
    mine = [_bundle(tmp_path, _name("prod_eu", d), "prod/eu").name for d in (1, 2)]
    theirs = [_bundle(tmp_path, _name("prod_eu", d), "prod_eu").name for d in (3, 4)]
    new = _bundle(tmp_path, _name("prod_eu", 9), "prod/eu").name
    r = rotate(tmp_path, context="prod/eu", keep=2, just_written=new, now=NOW)
    assert r.deleted == [mine[0]] and r.kept == [new, mine[1]] and r.warnings == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine[1], *theirs, new])


def test_rotation_counts_regular_bundle_files_only(tmp_path: Path) -> None:
    new = _bundle(tmp_path, _name("prod", 9), "prod").name
    old = _bundle(tmp_path, _name("prod", 2), "prod").name
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    target = _bundle(elsewhere, _name("prod", 1), "prod")
    (tmp_path / _name("prod", 3)).symlink_to(target)  # a link named like a newer bundle
    (tmp_path / _name("prod", 4)).mkdir()  # a directory named like one
    os.mkfifo(tmp_path / _name("prod", 5))  # a FIFO: never opened for reading
    (tmp_path / _name("prod", 6)).write_text("not a bundle")
    r = rotate(tmp_path, context="prod", keep=2, just_written=new, now=NOW)
    assert r.kept == [new, old] and r.deleted == []
    assert len(r.warnings) == 1 and _name("prod", 6) in r.warnings[0]
    assert "not counted" in r.warnings[0]
    assert target.exists() and (tmp_path / _name("prod", 3)).is_symlink()
    r = rotate(tmp_path, context="prod", keep=1, just_written=new, now=NOW)
    assert r.deleted == [old]
    assert target.exists() and (tmp_path / _name("prod", 4)).is_dir()


def test_backup_keep_rotates_after_a_complete_backup(apiserver: ApiServer,
                                                     tmp_path: Path) -> None:
    seed_runai(apiserver, projects=2)
    kc = apiserver.write_kubeconfig(tmp_path / "kc")
    out = tmp_path / "backups"
    out.mkdir(mode=0o700)
    old = [_name("loopback", 1, year=2020), _name("loopback", 2, year=2020)]
    for name in old:
        _bundle(out, name, "loopback")
    _bundle(out, _name("other", 1, year=2020), "other")
    (out / "keep-me.txt").write_text("x")
    future = _bundle(out, _name("loopback", 1, year=2099), "loopback").name
    r = cli("backup", "--kubeconfig", str(kc), "--to", f"{out}/", "--skip", "database",
            "--keep", "2")
    assert r.code == 0, r.stderr
    left = sorted(p.name for p in out.iterdir())
    new = [n for n in left if n.startswith("runai-dr-loopback-20") and n not in (*old, future)]
    assert len(new) == 1  # the new bundle was not pushed out by the one dated 2099
    assert old[0] not in left and old[1] in left  # the new bundle + the newest old one
    assert future in left and f"{future} is dated in the future" in r.stderr
    assert _name("other", 1, year=2020) in left and "keep-me.txt" in left
    assert f"deleted old bundle {old[0]}" in r.stderr
    record = apiserver.get("v1", "ConfigMap", "runai-dr-last-backup", "runai-backend")
    assert record is not None and record["data"]["bundle"] == new[0]
    assert sorted(json.loads(record["data"]["excludedComponents"])) == [
        "database", "secrets", "volumes"]

    # a partial backup deletes nothing
    apiserver.add_user("limited-token", "limited")
    apiserver.deny(verb="list", resource="configmaps", namespace="runai", user="limited")
    kc2 = apiserver.write_kubeconfig(tmp_path / "kc2", token="limited-token")
    r = cli("backup", "--kubeconfig", str(kc2), "--to", str(out), "--skip", "database",
            "--keep", "1", "--force")
    assert r.code == 3
    assert "nothing deleted, because this backup is partial" in r.stderr
    assert old[1] in {p.name for p in out.iterdir()}
