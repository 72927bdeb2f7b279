"""Hostile bundles: every reader stays within bounded memory, and every malformed,
truncated, extended or oversized bundle is refused with a plain message (exit code 4)."""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import tarfile
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubeapi import ApiServer

from kubectl_runai_dr.bundle.reader import MAX_IN_MEMORY, Bundle
from kubectl_runai_dr.bundle.writer import BundleWriter
from kubectl_runai_dr.errors import BundleError, ExitCode
from tests.e2e import cli
from tests.test_bundle import MANIFEST

MiB = 1024 * 1024


def _good(tmp_path: Path, name: str = "good.tar.gz") -> Path:
    w = BundleWriter(tmp_path / name)
    w.write_json("a/b.json", {"hello": "world"})
    with w.list_file("objects/ns.json") as lw:
        for i in range(3):
            lw.append({"metadata": {"name": f"n{i}"}})
    return w.finalize(dict(MANIFEST), mtime=0)


def _manifest_of(path: Path) -> dict[str, Any]:
    with tarfile.open(path) as tar:
        fh = tar.extractfile("manifest.json")
        assert fh is not None
        data: dict[str, Any] = json.load(fh)
    return data


def _members(path: Path) -> list[tuple[str, bytes]]:
    """A bundle's members, in order, with their bytes."""
    out = []
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            fh = tar.extractfile(m)
            assert fh is not None, m.name  # a bundle holds regular files only
            out.append((m.name, fh.read()))
    return out


def _pack(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _with_manifest(good: Path, dst: Path, manifest: Any) -> Path:
    """A copy of ``good`` whose manifest is replaced (the other members as they were)."""
    members = _members(good)
    members[0] = ("manifest.json", json.dumps(manifest).encode())
    return _pack(dst, members)


def _peak(fn: Any) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bomb_chunks(total: int, chunk: bytes = b" " * MiB) -> Iterator[bytes]:
    for _ in range(total // len(chunk)):
        yield chunk


def _gzip_stream(path: Path, parts: Iterator[bytes]) -> Path:
    """Compress ``parts`` as they come (nothing large held in memory)."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as out:
        for part in parts:
            out.write(comp.compress(part))
        out.write(comp.flush())
    return path


def _tar_header(name: str, size: int, kind: bytes = b"0") -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    return info.tobuf(format=tarfile.USTAR_FORMAT)


# -- E: bounded memory --------------------------------------------------------------------------
def test_manifest_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    """1 MB of gzip whose manifest.json inflates to 1 GiB."""
    size = 1024 * MiB
    bomb = _gzip_stream(tmp_path / "bomb.tar.gz", iter([
        _tar_header("manifest.json", size), *_bomb_chunks(size), bytes(1024)]))
    assert bomb.stat().st_size < 2 * MiB
    errors: list[BundleError] = []

    def open_it() -> None:
        with pytest.raises(BundleError) as exc:
            Bundle.open(bomb)
        errors.append(exc.value)

    assert _peak(open_it) < 8 * MiB
    assert "manifest.json is 1024 MiB; a manifest is at most 4 MiB" in errors[0].message
    r = cli("inspect", str(bomb))
    assert r.code == ExitCode.INVALID_BUNDLE and "at most 4 MiB" in r.stderr


def test_a_huge_pax_header_is_refused(tmp_path: Path) -> None:
    size = 256 * MiB
    bomb = _gzip_stream(tmp_path / "pax.tar.gz", iter([
        _tar_header("././@PaxHeader", size, b"x"), *_bomb_chunks(size)]))
    def open_it() -> None:
        with pytest.raises(BundleError, match=r"pax header of 268435456 bytes"):
            Bundle.open(bomb)

    assert _peak(open_it) < 8 * MiB


def test_a_list_is_streamed_item_by_item(tmp_path: Path) -> None:
    """restore reads object files through iter_list: one item in memory at a time."""
    item = {"metadata": {"name": "x" * 200, "namespace": "runai-p"}, "spec": {"y": "z" * 800}}
    w = BundleWriter(tmp_path / "big.tar.gz")
    with w.list_file("objects/ns.json") as lw:
        for _ in range(40_000):  # about 40 MiB of JSON
            lw.append(item)
    w.write_json("a/b.json", {})
    big = w.finalize(dict(MANIFEST), mtime=0)
    b = Bundle.open(big)
    count = 0

    def walk() -> None:
        nonlocal count
        for obj in b.iter_list("objects/ns.json"):
            assert obj == item
            count += 1

    assert _peak(walk) < 12 * MiB
    assert count == 40_000


def test_a_member_too_large_to_read_whole_is_refused(tmp_path: Path) -> None:
    good = _good(tmp_path)
    m = _manifest_of(good)
    m["files"]["a/b.json"]["size"] = MAX_IN_MEMORY + 1
    bad = _with_manifest(good, tmp_path / "big.tar.gz", m)
    with pytest.raises(BundleError, match=r"a/b.json is 64 MiB; this tool reads at most"):
        Bundle.open(bad).read_json("a/b.json")


def test_a_member_larger_than_its_manifest_size_is_refused(tmp_path: Path) -> None:
    good = _good(tmp_path)
    m = _manifest_of(good)
    m["files"]["a/b.json"]["size"] = 3
    bad = _with_manifest(good, tmp_path / "lie.tar.gz", m)
    with pytest.raises(BundleError, match=r"a/b.json is \d+ bytes, the manifest says 3"):
        Bundle.open(bad).read_json("a/b.json")


@pytest.mark.parametrize("text,why", [
    (b'{"items": [1]}', "item 0 is not an object"),
    (b'{"items": [{}, ', "item 1 is not valid JSON"),
    (b'{"items": [], "items": []}', '"items" appears twice'),
    (b'{"items": []} {"items": [{}]}', "other data follows"),
    (b'[{}]', "expected '{' at the start"),
    (b'{"items": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}", "item 0 is nested too deeply"),
], ids=["not-an-object", "cut", "twice", "trailing", "not-a-list", "deep"])
def test_a_malformed_list_is_named(tmp_path: Path, text: bytes, why: str) -> None:
    w = BundleWriter(tmp_path / "l.tar.gz")
    w.write_bytes("a/b.json", text)
    b = Bundle.open(w.finalize(dict(MANIFEST), mtime=0))
    with pytest.raises(BundleError, match=r"a/b\.json is not a valid List") as exc:
        list(b.iter_list("a/b.json"))
    assert why in exc.value.message


def test_list_items_of_a_modified_member_are_never_yielded(tmp_path: Path) -> None:
    good = _good(tmp_path)
    members = [(n, d.replace(b'"n0"', b'"x0"')) for n, d in _members(good)]
    bad = _pack(tmp_path / "mod.tar.gz", members)
    items = []
    with pytest.raises(BundleError, match="does not match its checksum"):
        for obj in Bundle.open(bad).iter_list("objects/ns.json"):
            items.append(obj)
    assert items == []


# -- G: the manifest's schema ------------------------------------------------------------------
@pytest.mark.parametrize("change,field", [
    ({"components": [1, "x", None]}, '"components[0]" is a number, expected an object'),
    ({"components": [{}]}, '"components[0].name" is null, expected a string'),
    ({"source": "x"}, '"source" is a string, expected an object'),
    ({"status": "great"}, '"status" must be complete or partial'),
    ({"createdAt": 5}, '"createdAt" is a number, expected a string'),
    ({"containsSecrets": "no"}, '"containsSecrets" is a string, expected true or false'),
    ({"failedComponents": ["nope"]}, '"failedComponents[0]" is not one of the components'),
    ({"files": {"../etc/passwd": {"size": 1, "sha256": "0" * 64}}},
     '"files[../etc/passwd]" names a path that has an empty'),
    ({"files": {"a/b.json": {"size": True, "sha256": "0" * 64}}},
     '"files[a/b.json].size" is a boolean, expected a size in bytes'),
    ({"formatVersion": "1"}, '"formatVersion" is a string, expected an integer'),
])
def test_manifest_schema_is_checked_at_open(tmp_path: Path, change: dict[str, Any],
                                            field: str) -> None:
    good = _good(tmp_path)
    m = _manifest_of(good)
    m.update(copy.deepcopy(change))
    bad = _with_manifest(good, tmp_path / "bad.tar.gz", m)
    with pytest.raises(BundleError) as exc:
        Bundle.open(bad)
    assert field in exc.value.message
    for verb in ("inspect", "verify"):
        r = cli(verb, str(bad))
        assert r.code == ExitCode.INVALID_BUNDLE, (verb, r.stderr)
        assert "invalid manifest: field" in r.stderr and "unexpected" not in r.stderr


def test_restore_and_helm_values_refuse_an_invalid_manifest(apiserver: ApiServer,
                                                            tmp_path: Path) -> None:
    good = _good(tmp_path)
    m = _manifest_of(good)
    m["components"] = [{}]
    bad = _with_manifest(good, tmp_path / "bad.tar.gz", m)
    kc = apiserver.write_kubeconfig(tmp_path / "kc")
    for args in (["restore", str(bad), "--dry-run", "--kubeconfig", str(kc)],
                 ["helm", "values", str(bad), "--release", "runai-backend"]):
        r = cli(*args, env={"COLUMNS": "1000"})
        assert r.code == ExitCode.INVALID_BUNDLE, (args, r.stderr)
        assert 'invalid manifest: field "components[0].name" is null' in r.stderr


def test_non_bundle_input_says_so_plainly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\xe8/" + os.urandom(200))
    for verb in ("inspect", "verify"):
        r = cli(verb, str(junk))
        assert r.code == ExitCode.INVALID_BUNDLE
        assert "not a runai-dr bundle (not gzip data)" in r.stderr
        assert "b'" not in r.stderr and "\\x" not in r.stderr
    empty = tmp_path / "empty.tar.gz"
    empty.write_bytes(b"")
    assert "the file is empty" in cli("verify", str(empty)).stderr
    fifo = tmp_path / "fifo.tar.gz"
    os.mkfifo(fifo)
    r = cli("inspect", str(fifo))  # refused, never blocks
    assert r.code == ExitCode.INVALID_BUNDLE and "not a regular file" in r.stderr


def test_members_that_are_not_regular_files_are_refused(tmp_path: Path) -> None:
    good = _good(tmp_path)
    raw = io.BytesIO()
    with tarfile.open(good) as tin, tarfile.open(fileobj=raw, mode="w") as tout:
        for m in tin.getmembers():
            tout.addfile(m, tin.extractfile(m))
            if m.name == "a/b.json":
                link = tarfile.TarInfo("a/link")
                link.type = tarfile.SYMTYPE
                link.linkname = "/etc/shadow"
                tout.addfile(link)
    bad = tmp_path / "link.tar.gz"
    bad.write_bytes(gzip.compress(raw.getvalue()))
    problems = Bundle.open(bad).verify()
    assert problems[-1].file == "a/b.json"
    assert "a/link is a symbolic link; a bundle holds regular files only" in problems[-1].message


# -- H: the end of the stream -------------------------------------------------------------------
@pytest.mark.parametrize("cut", range(1, 9))
def test_a_cut_gzip_trailer_is_found(tmp_path: Path, cut: int) -> None:
    good = _good(tmp_path)
    bad = tmp_path / "cut.tar.gz"
    bad.write_bytes(good.read_bytes()[:-cut])
    problems = Bundle.open(bad).verify()
    assert problems, cut
    assert "truncated" in problems[-1].message
    assert cli("verify", str(bad)).code == ExitCode.INVALID_BUNDLE


@pytest.mark.parametrize("extra,why", [
    (b"garbage", "bytes of other data follow the end of the gzip stream"),
    (bytes(512), "bytes of other data follow the end of the gzip stream"),
    (gzip.compress(b"more tar data" * 100), "other data follows the end of the archive"),
    (gzip.compress(bytes(4 * MiB)), "more than 1 MiB follows the end of the archive"),
], ids=["garbage", "zeros", "another-gzip-member", "much-padding"])
def test_appended_data_is_found(tmp_path: Path, extra: bytes, why: str) -> None:
    good = _good(tmp_path)
    bad = tmp_path / "more.tar.gz"
    bad.write_bytes(good.read_bytes() + extra)
    problems = Bundle.open(bad).verify()
    assert [p.file for p in problems] == ["(end of archive)"]
    assert why in problems[0].message


def test_a_crc_mismatch_is_found(tmp_path: Path) -> None:
    good = _good(tmp_path)
    raw = bytearray(good.read_bytes())
    raw[-6] ^= 0xFF  # the last member's CRC-32
    bad = tmp_path / "crc.tar.gz"
    bad.write_bytes(bytes(raw))
    problems = Bundle.open(bad).verify()
    assert problems and "corrupt" in problems[-1].message


# -- 8: inspect says what it checked ------------------------------------------------------------
def test_inspect_does_not_call_a_truncated_bundle_complete(tmp_path: Path) -> None:
    good = _good(tmp_path)
    bad = tmp_path / "cut.tar.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size - 40])
    r = cli("inspect", str(bad))
    assert r.code == 0, r.stderr
    status = next(ln for ln in r.stdout.splitlines() if ln.startswith("Status"))
    assert "not verified" in status
    data = json.loads(cli("inspect", str(bad), "-o", "json").stdout)
    assert data["verified"] is False
