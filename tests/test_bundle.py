"""Bundle writing is atomic and verification names the file that is wrong."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.bundle.writer import BundleWriter, resolve_target
from kubectl_runai_dr.errors import BundleError, BundleExistsError
from kubectl_runai_dr.localfs import LocalFileError

MANIFEST = {
    "tool": {"name": "kubectl-runai_dr", "version": "0.0.0", "commit": ""},
    "createdAt": "2026-11-01T00:00:00Z",
    "status": "complete",
    "failedComponents": [],
    "source": {"context": "prod", "server": "https://prod.example:6443"},
    "containsSecrets": False,
    "components": [{"name": "x", "status": "ok", "objects": 1, "files": ["a/b.json"]}],
}


def _write(path: Path, *, force: bool = False) -> Path:
    w = BundleWriter(path, force=force)
    w.write_json("a/b.json", {"hello": "world"})
    with w.list_file("objects/ns.json") as lw:
        for i in range(3):
            lw.append({"metadata": {"name": f"n{i}"}})
    with w.open("db/x.dump") as f:
        f.write(os.urandom(200_000))
    return w.finalize(dict(MANIFEST), mtime=0)


def test_round_trip_mode_and_manifest_first(tmp_path: Path) -> None:
    target = _write(tmp_path / "b.tar.gz")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar.gz"]  # no leftovers
    with tarfile.open(target) as tar:
        assert tar.getnames()[0] == "manifest.json"
    b = Bundle.open(target)
    assert b.verify() == []
    assert b.read_json("a/b.json") == {"hello": "world"}
    assert [i["metadata"]["name"] for i in b.iter_list("objects/ns.json")] == ["n0", "n1", "n2"]
    assert b.files["db/x.dump"]["size"] == 200_000


def test_never_overwrites_without_force(tmp_path: Path) -> None:
    target = tmp_path / "b.tar.gz"
    target.write_text("precious")
    with pytest.raises(BundleExistsError, match="already exists"):
        _write(target)
    assert target.read_text() == "precious"
    _write(target, force=True)
    assert Bundle.open(target).verify() == []


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    w = BundleWriter(tmp_path / "b.tar.gz")
    w.write_json("a.json", {})
    w.abort()
    assert list(tmp_path.iterdir()) == []


def _rewrite(src: Path, dst: Path, mutate: dict[str, bytes | None]) -> None:
    """Copy a bundle, replacing (or dropping, with None) some members."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            member = tin.extractfile(m)
            assert member is not None, m.name  # a bundle holds regular files only
            data = member.read()
            if m.name in mutate:
                replacement = mutate[m.name]
                if replacement is None:
                    continue
                data = replacement
                m.size = len(data)
            tout.addfile(m, io.BytesIO(data))


def test_tampered_truncated_missing_are_named(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.tar.gz")
    tampered = tmp_path / "t.tar.gz"
    _rewrite(good, tampered, {"a/b.json": b'{"hello": "mallory"}\n'})
    problems = Bundle.open(tampered).verify()
    assert [p.file for p in problems] == ["a/b.json"]
    assert "does not match" in problems[0].message or "differs" in problems[0].message

    missing = tmp_path / "m.tar.gz"
    _rewrite(good, missing, {"objects/ns.json": None})
    assert [(p.file, p.message) for p in Bundle.open(missing).verify()] == [
        ("objects/ns.json", "is listed in the manifest but missing")]

    truncated = tmp_path / "tr.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    problems = Bundle.open(truncated).verify()
    assert problems and "truncated" in problems[-1].message

    garbage = tmp_path / "g.tar.gz"
    garbage.write_bytes(gzip.compress(b"not a tar"))
    with pytest.raises(BundleError, match=r"not a readable bundle|not a runai-dr bundle"):
        Bundle.open(garbage)


def test_newer_format_is_refused(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.tar.gz")
    with tarfile.open(good) as tar:
        fh = tar.extractfile("manifest.json")
        assert fh is not None
        manifest = json.load(fh)
    manifest["formatVersion"] = 99
    newer = tmp_path / "n.tar.gz"
    _rewrite(good, newer, {"manifest.json": json.dumps(manifest).encode()})
    with pytest.raises(BundleError, match=r"format 99; this tool reads up to 1") as exc:
        Bundle.open(newer)
    assert exc.value.hint == "upgrade kubectl runai-dr"


def test_compressed_members_are_stored_not_compressed_again(tmp_path: Path) -> None:
    import subprocess

    w = BundleWriter(tmp_path / "b.tar.gz")
    dump = os.urandom(3_000_000)  # like pg_dump -Fc output: does not compress
    text = b'{"kind": "RoleBinding"}\n' * 200_000  # compresses very well
    w.write_bytes("database/backend.dump", dump)
    w.write_bytes("objects/big.json", text)
    bundle = w.finalize({**MANIFEST, "components": []}, mtime=0)
    size = bundle.stat().st_size
    assert size < len(dump) + 100_000  # the JSON was compressed...
    assert size > len(dump)  # ...and the dump stored whole (gzip cannot shrink it)
    b = Bundle.open(bundle)
    assert b.verify() == []
    assert b.read_bytes("database/backend.dump") == dump
    assert b.read_bytes("objects/big.json") == text
    # the archive is one gzip stream of several members: GNU tar reads it too
    listing = subprocess.run(["tar", "tzf", str(bundle)], capture_output=True, text=True,
                             check=True).stdout.split()
    assert listing == ["manifest.json", "database/backend.dump", "objects/big.json"]


def test_staged_files_are_private_from_the_first_byte(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        out = tmp_path / "out"
        w = BundleWriter(out / "b.tar.gz", create_dir=True)  # created 0700, not 0777
        with w.open("database/x.dump") as f:
            staged = w.staging / "database" / "x.dump"
            assert stat.S_IMODE(staged.stat().st_mode) == 0o600
            f.write(b"secret")
        assert stat.S_IMODE(w.staging.stat().st_mode) == 0o700
        assert stat.S_IMODE((w.staging / "database").stat().st_mode) == 0o700
        target = w.finalize(dict(MANIFEST, components=[]), mtime=0)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in out.iterdir()] == ["b.tar.gz"]


def test_force_replaces_a_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    (out / "b.tar.gz").symlink_to(victim)
    _write(out / "b.tar.gz", force=True)
    assert victim.read_text() == "precious"
    assert not (out / "b.tar.gz").is_symlink() and Bundle.open(out / "b.tar.gz").verify() == []
    (out / "d.tar.gz").mkdir()
    with pytest.raises(LocalFileError, match="is a directory"):
        _write(out / "d.tar.gz", force=True)


def test_a_shared_or_foreign_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(LocalFileError, match="writable by its group and others"):
        BundleWriter(shared / "b.tar.gz")
    assert list(shared.iterdir()) == []


def test_stale_staging_of_a_killed_backup_is_removed_by_the_next(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import os, sys; from pathlib import Path\n"
            "from kubectl_runai_dr.bundle.writer import BundleWriter\n"
            "w = BundleWriter(Path(sys.argv[1]))\n"
            "w.write_bytes('secrets/secrets.json', b'{}')\n"
            "os._exit(9)  # killed: no clean-up runs\n")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.tar.gz")], check=False,
                   cwd=Path(__file__).resolve().parent.parent)
    stale = [p.name for p in tmp_path.iterdir()]
    assert len(stale) == 1 and stale[0].startswith(".a.tar.gz.") and stale[0].endswith(".partial")
    other = tmp_path / ".notes.partial"  # not the tool's: left alone
    other.mkdir()
    running = BundleWriter(tmp_path / "b.tar.gz")
    try:
        assert running.removed_stale == stale
        assert not (tmp_path / stale[0]).exists()
        w = BundleWriter(tmp_path / "c.tar.gz")  # another backup runs: its staging stays
        assert w.removed_stale == []
        w.abort()
        assert running.staging.is_dir() and other.is_dir()
    finally:
        running.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.partial"]


def test_where_a_bundle_goes(tmp_path: Path) -> None:
    name = "runai-dr-x-20261101T000000Z.tar.gz"
    (tmp_path / "exists").mkdir()
    assert resolve_target(None, name, tmp_path) == (tmp_path / name, False)
    assert resolve_target("b.tar.gz", name, tmp_path) == (tmp_path / "b.tar.gz", False)
    assert resolve_target("new/", name, tmp_path) == (tmp_path / "new" / name, True)
    assert resolve_target(str(tmp_path / "exists"), name) == (tmp_path / "exists" / name, True)
    assert resolve_target("nodir/b.tar.gz", name, tmp_path) == (tmp_path / "nodir/b.tar.gz",
                                                                 False)
    with pytest.raises(LocalFileError, match="does not exist"):
        BundleWriter(tmp_path / "nodir" / "b.tar.gz")


def test_an_interruption_right_after_linking_knows_the_bundle_is_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_link = os.link

    def link_then_interrupt(src: str, dst: str, *, src_dir_fd: int | None = None,
                            dst_dir_fd: int | None = None, follow_symlinks: bool = True) -> None:
        real_link(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd,
                  follow_symlinks=follow_symlinks)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "link", link_then_interrupt)  # the os module the writer links with
    w = BundleWriter(tmp_path / "b.tar.gz")
    w.write_json("a/b.json", {"hello": "world"})
    with pytest.raises(KeyboardInterrupt):
        w.finalize(dict(MANIFEST), mtime=0)
    w.abort()
    assert w.placed  # so the caller says a complete bundle is there
    assert [p.name for p in tmp_path.iterdir()] == ["b.tar.gz"]
    assert Bundle.open(tmp_path / "b.tar.gz").verify() == []
