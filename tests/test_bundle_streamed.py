"""The streamed layout of an uploaded bundle (bundle/streamed.py), without a server: an
upload that keeps its parts in memory, joined in number order as S3 joins them. Large
members go up while written; a member removed after it went up (its component failed)
leaves no part in the object; the result is one ordinary .tar.gz that verify accepts,
GNU tar lists, and the reader seeks in (members read in order, and again, without a
verify first)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kubectl_runai_dr.bundle import streamed, writer
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.bundle.writer import BundleWriter
from kubectl_runai_dr.storage import age
from tests.test_bundle import MANIFEST


class MemoryUpload:
    """What S3 does with a multipart upload: parts by number; completion joins the given
    ones in order, and refuses a part under 5 MiB that is not the last."""

    part_size = 64 * 1024
    warning = ""

    def __init__(self) -> None:
        self.parts: dict[int, bytes | bytearray] = {}
        self.size = 0
        self.object: bytes | None = None
        self.aborted = False

    def send(self, number: int, data: bytes | bytearray) -> None:
        assert 1 <= number <= 10_000 and number not in self.parts, number
        self.parts[number] = data

    def ready(self, in_flight: int = 2) -> None:
        pass

    def write(self, data: bytes) -> int:  # sequential use (nothing streamed)
        self.parts[len(self.parts) + 1] = self.parts.get(len(self.parts) + 1, b"") + data
        return len(data)

    def close(self) -> None:
        pass

    def commit(self, parts: list[int] | None = None,
               metadata: dict[str, str] | None = None) -> str:
        numbers = sorted(self.parts if parts is None else parts)
        for n in numbers[:-1]:
            assert len(self.parts[n]) >= streamed.MIN_PART, f"part {n} is too small"
        self.object = b"".join(self.parts[n] for n in numbers)
        self.size = len(self.object)
        return "etag"

    def abort(self) -> None:
        self.aborted = True


@pytest.fixture
def small_spill(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "SPILL_AT", 64 * 1024)


def _write(up: MemoryUpload, *, remove: str | None = None) -> dict[str, bytes]:
    contents = {"a/b.json": b'{"hello": "world"}\n',
                "db/one.dump": os.urandom(300_000),
                "db/two.dump": b"compressible " * 30_000,
                "db/three.dump": os.urandom(200_003),  # not a multiple of 512
                "z/small.json": b"{}\n"}
    w = BundleWriter(Path("x.tar.gz"), upload=lambda m: up)
    for rel, data in contents.items():
        with w.open(rel) as f:
            for i in range(0, len(data), 50_000):
                f.write(data[i:i + 50_000])
    if remove:
        w.remove(remove)
        del contents[remove]
    w.finalize(dict(MANIFEST), mtime=0)
    return contents


@pytest.mark.parametrize("remove", [None, "db/two.dump", "db/one.dump"])
def test_streamed_bundle_is_an_ordinary_archive(small_spill: None, tmp_path: Path,
                                                remove: str | None) -> None:
    up = MemoryUpload()
    contents = _write(up, remove=remove)
    assert up.object is not None
    assert any(streamed.FIRST_RANGE < n < streamed.LAST_PART for n in up.parts)  # went up
    path = tmp_path / "b.tar.gz"
    path.write_bytes(up.object)
    tar = shutil.which("tar")
    assert tar is not None
    names = subprocess.run([tar, "-tzf", str(path)], capture_output=True, text=True,
                           check=True).stdout.split()
    assert names[0] == "manifest.json" and sorted(names[1:]) == sorted(contents)
    with Bundle.open(path) as b:  # members in order, without a verify first
        for rel, data in contents.items():
            assert b.read_bytes(rel) == data, rel
        for rel in reversed(list(contents)):  # and again, seeking back
            assert hashlib.sha256(b.read_bytes(rel)).digest() == \
                hashlib.sha256(contents[rel]).digest()
        assert b.verify() == []
        assert set(b.files) == set(contents)


def test_a_member_read_twice_after_a_partial_read(small_spill: None, tmp_path: Path) -> None:
    up = MemoryUpload()
    contents = _write(up)
    assert up.object is not None
    path = tmp_path / "b.tar.gz"
    path.write_bytes(up.object)
    with Bundle.open(path) as b:
        with b.open_member("db/three.dump") as fh:
            fh.read(1000)  # stop early
        b.check_member("db/two.dump")
        assert b.read_bytes("db/three.dump") == contents["db/three.dump"]
        assert b.read_bytes("db/one.dump") == contents["db/one.dump"]


def test_discarded_member_leaves_no_part(small_spill: None, tmp_path: Path) -> None:
    up = MemoryUpload()
    w = BundleWriter(Path("x.tar.gz"), upload=lambda m: up)
    w.write_json("a/b.json", {"hello": "world"})
    try:
        with w.open("db/failed.dump") as f:
            f.write(os.urandom(200_000))  # went up
            raise RuntimeError("the dump failed")
    except RuntimeError:
        pass
    w.finalize(dict(MANIFEST), mtime=0)
    assert up.object is not None
    path = tmp_path / "b.tar.gz"
    path.write_bytes(up.object)
    with Bundle.open(path) as b:
        assert b.verify() == [] and set(b.files) == {"a/b.json"}


def test_limits_fail_as_storage_errors() -> None:
    from kubectl_runai_dr.errors import StorageError

    sent: list[int] = []
    w = streamed.PartWriter(lambda n, d: sent.append(n), iter(range(1, 3)), level=0,
                            part_size=1024)
    with pytest.raises(StorageError, match="too large"):
        for _ in range(10):
            w.write(os.urandom(200_000))


# -- encrypted: one age file whose parts are encrypted as they are sent ----------------------
AGE = shutil.which("age")  # installed by scripts/bootstrap-tests.sh


@pytest.fixture
def age_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, age.Sealing]:
    identity, recipient = age.keygen()
    key = tmp_path / "key.txt"
    key.write_text(identity + "\n")
    monkeypatch.setenv(age.IDENTITY_ENV, identity)  # how the reader finds it
    return key, age.Sealing(recipients=(age.parse_recipient(recipient),))


def _opened_by_age(up: MemoryUpload, key: Path, tmp_path: Path) -> tuple[Path, list[str]]:
    """The object as a file, and the names GNU tar lists in what `age -d` makes of it."""
    assert up.object is not None and AGE is not None
    path = tmp_path / "b.tar.gz.age"
    path.write_bytes(up.object)
    plain = subprocess.run([AGE, "-d", "-i", str(key)], input=up.object, capture_output=True,
                           check=True).stdout
    names = subprocess.run(["tar", "-tzf", "-"], input=plain, capture_output=True,
                           check=True).stdout.decode().split()
    return path, names


def _chunked(up: MemoryUpload) -> None:
    """Every part but the first (header) and the last is whole encrypted chunks."""
    numbers = sorted(up.parts)
    for n in numbers[1:-1]:
        assert len(up.parts[n]) % (streamed.CHUNK + 16) == 0, n


@pytest.mark.parametrize("remove", [None, "db/two.dump"])
def test_encrypted_streamed_bundle_is_one_age_file(
        small_spill: None, tmp_path: Path, age_key: tuple[Path, age.Sealing],
        remove: str | None) -> None:
    key, sealing = age_key
    up = MemoryUpload()
    contents = {"a/b.json": b'{"hello": "world"}\n',
                "db/one.dump": os.urandom(300_000),
                "db/two.dump": b"compressible " * 30_000,
                "db/three.dump": os.urandom(200_003)}
    w = BundleWriter(Path("x.tar.gz.age"), upload=lambda m: up, seal=sealing)
    for rel, data in contents.items():
        with w.open(rel) as f:
            for i in range(0, len(data), 50_000):
                f.write(data[i:i + 50_000])
    w.write_json("z/after.json", {"written": "after the large members"})
    contents["z/after.json"] = b'{\n  "written": "after the large members"\n}\n'
    if remove:  # went up already: it stays, as what it is
        w.remove(remove)
        contents[f"incomplete/{remove}"] = contents.pop(remove)
    w.finalize(dict(MANIFEST), mtime=0)
    assert sum(1 for n in up.parts if streamed.FIRST_RANGE < n < streamed.LAST_PART) > 3
    _chunked(up)
    path, names = _opened_by_age(up, key, tmp_path)
    assert names[0] == "manifest.json" and sorted(names[1:]) == sorted(contents)
    with Bundle.open(path) as b:
        for rel in reversed(list(contents)):  # seeking back in the decrypted stream
            assert b.read_bytes(rel) == contents[rel], rel
        assert b.verify() == []
        assert set(b.files) == set(contents)


def test_encrypted_small_files_that_do_not_fit_the_head_go_last(
        tmp_path: Path, age_key: tuple[Path, age.Sealing],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "SPILL_AT", 1024 * 1024)
    key, sealing = age_key
    up = MemoryUpload()
    w = BundleWriter(Path("x.tar.gz.age"), upload=lambda m: up, seal=sealing)
    w.write_bytes("a/b.json", b"[]\n")
    big = os.urandom(2 * 1024 * 1024)
    with w.open("db/one.dump") as f:  # the head is reserved now: 8 MiB
        f.write(big)
    later = {f"z/{i:02}.bin": os.urandom(1_000_000) for i in range(10)}  # 9.5 MiB
    for rel, data in later.items():
        w.write_bytes(rel, data)
    w.finalize(dict(MANIFEST), mtime=0)
    _chunked(up)
    path, names = _opened_by_age(up, key, tmp_path)
    cut = names.index("db/one.dump")
    assert names[:3] == ["manifest.json", "a/b.json", "z/00.bin"]
    assert 5 <= cut < len(names) - 1  # the head held some; the rest follow the dump
    assert names[2:cut] + names[cut + 1:] == sorted(later)
    with Bundle.open(path) as b:
        assert b.verify() == []
        assert b.read_bytes("z/09.bin") == later["z/09.bin"]
        assert b.read_bytes("db/one.dump") == big


def test_encrypted_failed_member_is_kept_as_incomplete(
        small_spill: None, tmp_path: Path, age_key: tuple[Path, age.Sealing]) -> None:
    key, sealing = age_key
    up = MemoryUpload()
    w = BundleWriter(Path("x.tar.gz.age"), upload=lambda m: up, seal=sealing)
    w.write_json("a/b.json", {"hello": "world"})
    written = os.urandom(200_000)
    try:
        with w.open("db/failed.dump") as f:
            f.write(written)  # went up
            raise RuntimeError("the dump failed")
    except RuntimeError:
        pass
    again = os.urandom(100_000)
    with w.open("db/failed.dump") as f:  # a second try, under the same name
        f.write(again)
    w.finalize(dict(MANIFEST), mtime=0)
    path, names = _opened_by_age(up, key, tmp_path)
    assert names == ["manifest.json", "a/b.json", "incomplete/db/failed.dump",
                     "db/failed.dump"]
    with Bundle.open(path) as b:
        assert b.verify() == []
        assert b.read_bytes("incomplete/db/failed.dump") == written
        assert b.read_bytes("db/failed.dump") == again
