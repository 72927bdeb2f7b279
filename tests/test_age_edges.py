"""Edges of the age implementation and of the encrypted streamed upload: the header as
strict as age's (canonical base64, 64-column lines), no secret in an error, the last part
always marked final, long names, a part that failed to upload, the head's reserved size.
Each of these was a defect once."""

from __future__ import annotations

import base64
import io
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from kubectl_runai_dr.bundle import streamed, writer
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.bundle.writer import BundleWriter
from kubectl_runai_dr.errors import UsageError
from kubectl_runai_dr.storage import age
from tests.test_age import _Bytes
from tests.test_bundle import MANIFEST
from tests.test_bundle_streamed import MemoryUpload

AGE = shutil.which("age")


def _sealed(plain: bytes) -> tuple[bytes, age.Opening]:
    identity, recipient = age.keygen()
    sealing = age.Sealing(recipients=(age.parse_recipient(recipient),))
    out = io.BytesIO()
    w = sealing.seal(out)
    w.write(plain)
    w.close()
    opening = age.Opening((age.parse_identities(identity, "test")[0],))
    return out.getvalue(), opening


# -- age: header parsing ---------------------------------------------------------------------
def test_non_canonical_base64_mac_is_refused() -> None:
    """age decodes the header with strict (canonical) base64: the 43rd character of the
    MAC carries two unused bits that must be zero. A changed MAC line must not open."""
    data, opening = _sealed(b"hello")
    end = data.index(b"\n--- ") + 5
    line_end = data.index(b"\n", end)
    mac = data[end:line_end]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet[alphabet.index(mac[-1]) ^ 1]  # same 4 data bits, a padding bit set
    tampered = data[:line_end - 1] + bytes([last]) + data[line_end:]
    assert tampered != data
    assert base64.b64decode(mac + b"=") == base64.b64decode(tampered[end:line_end] + b"=")
    with pytest.raises(age.AgeError):
        age.DecryptingSource(_Bytes(tampered), opening)


def test_body_line_longer_than_64_columns_is_refused() -> None:
    """Spec test vector stanza_long_line: a body line over 64 columns is a header
    failure."""
    head = (age.MAGIC + b"-> X25519 TEiF0ypqr+bpvcqXNyCVJpL7OuwPdVwPL7KQEbFDOCc\n"
            b"EmECAEcKN+n/Vs9SbWiV+Hu0r+E8R77DdWYyd83nw7U\n"
            b"-> stanza\n" + b"A" * 68 + b"\n" + b"\n"
            b"--- tnRUR2vmmU92czsjnioF5ujgXUetUhzUoQPPGT9wmug\n")
    with pytest.raises(age.AgeError):
        age.parse_header(head)


# -- age: no secret in an error --------------------------------------------------------------
def test_lowercase_identity_given_as_recipient_is_not_echoed() -> None:
    identity, _ = age.keygen()
    lower = identity.lower()
    with pytest.raises(UsageError) as caught:
        age.parse_recipient(lower)
    text = f"{caught.value.message} {caught.value.hint}".lower()
    secret_part = lower[len("age-secret-key-1"):]
    assert secret_part[:4] not in text, text


# -- the encrypted streamed upload: the archive's last part -----------------------------------
def test_encrypted_tail_whose_last_write_fills_a_part_is_still_final(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tail's PartWriter sends a part as soon as a write makes it reach the part
    size. When that happens on the very last write (the archive's end), ``finish`` has
    nothing left to send, and the last part of the object went out as an ordinary part:
    its last chunk is not marked as the last, so neither age nor the reader can decrypt
    the bundle (it reads as truncated). The sizes below make the last write fill the part
    (found by simulating the tail's compression; MemoryUpload's part size is 64 KiB)."""
    monkeypatch.setattr(writer, "SPILL_AT", 1024 * 1024)
    identity, recipient = age.keygen()
    monkeypatch.setenv(age.IDENTITY_ENV, identity)
    sealing = age.Sealing(recipients=(age.parse_recipient(recipient),))
    rnd = random.Random(7)
    late = bytes(rnd.getrandbits(8) for _ in range(200_000))[:65_522]
    up = MemoryUpload()
    w = BundleWriter(Path("x.tar.gz.age"), upload=lambda m: up, seal=sealing)
    w.write_json("a/b.json", {"hello": "world"})
    big = os.urandom(2 * 1024 * 1024)
    with w.open("db/one.dump") as f:  # streams; the head is reserved now: 8 MiB
        f.write(big)
    for i in range(9):  # under SPILL_AT each: staged, together most of the head
        w.write_bytes(f"m/f{i}.bin", os.urandom(926_000))  # fills most of the head
    w.write_bytes("z/late.bin", late)  # does not fit: goes after the dump
    w.finalize(dict(MANIFEST), mtime=0)
    assert up.object is not None
    path = tmp_path / "b.tar.gz.age"
    path.write_bytes(up.object)
    if AGE is not None:
        key = tmp_path / "key.txt"
        key.write_text(identity + "\n")
        done = subprocess.run([AGE, "-d", "-i", str(key)], input=up.object,
                              capture_output=True, check=False)
        assert done.returncode == 0, done.stderr.decode()
    with Bundle.open(path) as b:
        assert b.verify() == []
        assert b.read_bytes("z/late.bin") == late


def test_part_writer_final_part_after_a_flush_on_the_last_write() -> None:
    """The same at the PartWriter level: ``finish(final=True)`` must send the object's
    last part marked final, even when the last write already filled a part."""
    sent: list[tuple[int, int, bool]] = []
    pw: streamed.PartWriter

    def send(number: int, data: bytes | bytearray) -> None:
        sent.append((number, len(data), pw.final))

    pw = streamed.PartWriter(send, iter(range(1, 100)), level=0, part_size=64 * 1024,
                             align=streamed.CHUNK)
    pw.write(os.urandom(100_000))  # stored: fills a part at once
    pw.finish(0, final=True)
    assert sent and sent[-1][2], sent


# -- the encrypted streamed upload: a failed member with a long name ---------------------------
def test_incomplete_member_with_a_long_name_does_not_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``incomplete/<path>`` is longer than the path; for a path near the 1024-character
    limit every candidate name is too long and the search for a free name never ends."""
    monkeypatch.setattr(writer, "SPILL_AT", 64 * 1024)
    calls = 0
    from kubectl_runai_dr.bundle.schema import check_path as real

    def counting(path: str) -> str | None:
        nonlocal calls
        calls += 1
        if calls > 100_000:
            raise RuntimeError("check_path called without end")
        return real(path)

    monkeypatch.setattr(writer, "check_path", counting)
    _identity, recipient = age.keygen()
    sealing = age.Sealing(recipients=(age.parse_recipient(recipient),))
    up = MemoryUpload()
    w = BundleWriter(Path("x.tar.gz.age"), upload=lambda m: up, seal=sealing)
    rel = "d/" + "x" * 200 + "/" + "y" * 200 + "/" + "z" * 200 + "/" + "w" * 200 + "/" \
        + "v" * 210 + ".dump"
    assert len(rel) <= 1024 and len("incomplete/" + rel) > 1024
    w.write_json("a/b.json", {"hello": "world"})
    with w.open(rel) as f:
        f.write(os.urandom(100_000))
    w.remove(rel)  # its component failed after it went up
    w.finalize(dict(MANIFEST), mtime=0)
    assert any(name.startswith("incomplete/") for name in w.files)


# -- S3Upload: a part that failed is not silently left out -----------------------------------
class _FlakyStore:
    class settings:  # noqa: N801
        part_size = 5 * 1024 * 1024

    def __init__(self) -> None:
        self.completed: list[int] = []

    def start_upload(self, url: object, metadata: object) -> str:
        return "id"

    def upload_part(self, url: object, upload_id: str, number: int, data: bytes) -> str:
        if number == 2:
            from kubectl_runai_dr.errors import StorageError

            raise StorageError("part 2 failed")
        return f"etag{number}"

    def complete_upload(self, url: object, upload_id: str,
                        parts: list[tuple[int, str]]) -> str:
        self.completed = [n for n, _ in parts]
        return "etag"

    def head(self, url: object) -> object:
        from types import SimpleNamespace

        return SimpleNamespace(size=len(self.completed), etag='"etag"')

    def abort_upload(self, url: object, upload_id: str) -> None:
        pass

    def replace_metadata(self, url: object, metadata: object, etag: str) -> None:
        pass

    def delete(self, url: object) -> None:
        pass


def test_commit_does_not_complete_without_a_part_whose_upload_failed() -> None:
    """An encrypted streamed upload commits with every part sent (``parts=None``). When a
    part's upload failed and that error was caught on the way (a component that handles
    a DrError and goes on), the upload must still not complete without it: its chunks are
    numbered, and everything after the hole would be undecryptable."""
    from kubectl_runai_dr.errors import StorageError
    from kubectl_runai_dr.storage.location import S3Url
    from kubectl_runai_dr.storage.s3 import S3Upload

    store = _FlakyStore()
    up = S3Upload(store, S3Url("b", "k"), {})  # type: ignore[arg-type]
    sent = 0
    for n in (1, 2, 3, 4, 5):
        try:
            up.send(n, b"x")
            sent += 1
        except StorageError:
            pass  # swallowed (the caller went on)
    with pytest.raises(StorageError):
        up.commit(metadata={"status": "ok"})
    assert 2 not in store.completed or store.completed == []


# -- the encrypted streamed upload: the head's size ------------------------------------------
def test_encrypted_head_is_not_sized_by_uncompressed_small_files(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The head is reserved when the first large member streams, for the small files
    written so far: ~59 MiB of resource JSON compresses to a few MiB, and the head is
    sized by that (it was sized by the uncompressed bytes: a 61 MiB part of padding,
    uploaded, stored in every bundle, and held in memory about three times over)."""
    import tracemalloc

    monkeypatch.setattr(writer, "SPILL_AT", 1024 * 1024)
    _, recipient = age.keygen()
    sealing = age.Sealing(recipients=(age.parse_recipient(recipient),))
    up = MemoryUpload()
    w = BundleWriter(Path("x.tar.gz.age"), upload=lambda m: up, seal=sealing)
    w.write_json("a/b.json", {"hello": "world"})
    obj = {"items": [{"metadata": {"name": f"n{i}", "labels": {"a": "b"}}}
                     for i in range(9000)]}
    for i in range(60):
        w.write_json(f"objects/{i:03}.json", obj)
    with w.open("db/one.dump") as f:
        f.write(os.urandom(2 * 1024 * 1024))
    tracemalloc.start()
    try:
        w.finalize(dict(MANIFEST), mtime=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(up.parts[1]) < 16 * 1024 * 1024, len(up.parts[1])
    assert peak < 64 * 1024 * 1024, peak
