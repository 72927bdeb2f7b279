"""The storage layer's pure parts and its edges: s3:// locations, the error sentences for
what S3 servers answer, retries of throttled requests (a local HTTP server that answers
503 SlowDown first), the AWS shared credentials file with a profile (against the real S3
server), the padding of streamed parts, and the age header parser on hostile input."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3
from minio.error import S3Error

from kubectl_runai_dr.bundle import streamed
from kubectl_runai_dr.errors import StorageDenied, StorageError
from kubectl_runai_dr.storage import age
from kubectl_runai_dr.storage.location import LocationError, S3Url, parse, parse_s3
from kubectl_runai_dr.storage.s3 import S3Store, storage_error
from kubectl_runai_dr.storage.settings import S3Settings
from tests.s3server import ADMIN, S3Server


# -- locations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text,bucket,key,prefix", [
    ("s3://dr-backups/runai/", "dr-backups", "runai/", True),
    ("s3://dr-backups", "dr-backups", "", True),
    ("S3://dr.backups/a/b.tar.gz", "dr.backups", "a/b.tar.gz", False)])
def test_s3_locations(text: str, bucket: str, key: str, prefix: bool) -> None:
    url = parse_s3(text)
    assert (url.bucket, url.key, url.is_prefix) == (bucket, key, prefix)


@pytest.mark.parametrize("text,why", [
    ("s3://AB/x", "not a valid bucket name"), ("s3://ok-bucket/a/../b", "'..'"),
    ("s3://ok-bucket/a//b", "empty"), ("s3://ok-bucket/a\x07b", "control characters"),
    ("s3://ok-bucket/a?versionId=1", "no query"), ("gs://b/x", "not supported")])
def test_bad_locations(text: str, why: str) -> None:
    with pytest.raises(LocationError, match=why.replace("?", r"\?")):
        parse(text)


def test_url_parts() -> None:
    url = S3Url("b-1", "runai/x.tar.gz")
    assert url.name == "x.tar.gz" and str(url.parent) == "s3://b-1/runai/"
    assert str(url.parent.child("y")) == "s3://b-1/runai/y"


# -- errors --------------------------------------------------------------------------------------
def _s3_error(code: str, status: int = 403) -> S3Error:
    resp = urllib3.HTTPResponse(body=b"", status=status)
    return S3Error(resp, code, "message from the server", "/b/k", "req", "host")


@pytest.mark.parametrize("code,kind,words", [
    ("NoSuchBucket", StorageError, "the bucket b-1 does not exist"),
    ("AccessDenied", StorageDenied, "access denied"),
    ("SignatureDoesNotMatch", StorageDenied, "secret key does not match"),
    ("InvalidAccessKeyId", StorageDenied, "access key is not known"),
    ("RequestTimeTooSkewed", StorageError, "clock differs"),
    ("SlowDown", StorageError, "kept throttling")])
def test_server_answers_become_sentences(code: str, kind: type, words: str) -> None:
    err = storage_error(_s3_error(code), "write", parse_s3("s3://b-1/k"), "https://s3.x")
    assert type(err) is kind and words in err.message and "s3://b-1/k" in err.message
    assert err.hint


class _SlowDown(BaseHTTPRequestHandler):
    """Answers 503 SlowDown to the first two requests, then 200."""

    count = 0

    def do_HEAD(self) -> None:
        type(self).count += 1
        self.send_response(503 if type(self).count <= 2 else 200)
        self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slow_down() -> Iterator[str]:
    _SlowDown.count = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowDown)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_throttled_requests_are_retried(slow_down: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    store = S3Store(S3Settings(endpoint=slow_down))
    store.check_bucket(parse_s3("s3://bucket-x/"))  # 503, 503, then 200: it exists
    assert _SlowDown.count == 3


def test_profile_from_the_shared_credentials_file(s3_server: S3Server, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id = nobody\naws_secret_access_key = x\n\n"
                     f"[dr]\naws_access_key_id = {ADMIN[0]}\n"
                     f"aws_secret_access_key = {ADMIN[1]}\n")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_PROFILE", "dr")
    bucket = s3_server.bucket()
    store = S3Store(S3Settings(endpoint=s3_server.endpoint))
    store.check_bucket(parse_s3(f"s3://{bucket}/"))
    monkeypatch.setenv("AWS_PROFILE", "default")
    with pytest.raises(StorageDenied):
        S3Store(S3Settings(endpoint=s3_server.endpoint)).check_bucket(
            parse_s3(f"s3://{bucket}/"))


# -- streamed parts --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [21, 22, 4096, streamed.MIN_PART])
def test_padding_member_is_exact_and_empty(size: int) -> None:
    member = streamed.padding_member(size)
    assert len(member) == size
    d = zlib.decompressobj(31)
    assert d.decompress(member) == b"" and d.eof and d.unused_data == b""


def test_part_writer_parts_join_into_the_stream() -> None:
    parts: dict[int, bytes | bytearray] = {}
    w = streamed.PartWriter(lambda n, b: parts.__setitem__(n, b), iter(range(5, 50)),
                            level=1, part_size=64 * 1024)
    data = bytes(range(256)) * 4096 + b"tail"
    for i in range(0, len(data), 10_000):
        w.write(data[i:i + 10_000])
    w.finish(minimum=100_000)
    numbers = sorted(parts)
    assert numbers[0] == 5 and numbers == list(range(5, 5 + len(numbers)))
    assert all(len(parts[n]) >= 64 * 1024 for n in numbers[:-1])
    assert len(parts[numbers[-1]]) >= 100_000  # padded: more parts follow in the object
    joined = b"".join(parts[n] for n in numbers)
    import gzip

    assert gzip.decompress(joined) == data


# -- age headers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("data,why", [
    (b"not age", "not an age-encrypted file"),
    (b"age-encryption.org/v1\n-> X25519 abc\n", "malformed"),
    (b"age-encryption.org/v1\n-> X25519\x01 abc\n\n--- aaaa\n", "malformed"),
    (b"age-encryption.org/v1\n" + b"-> X25519 " + b"A" * 70_000, "cut short"),
    (b"-----BEGIN AGE ENCRYPTED FILE-----\n", "ASCII-armored")])
def test_hostile_age_headers(data: bytes, why: str) -> None:
    with pytest.raises(age.AgeError, match=why):
        age.parse_header(data[:age.MAX_HEADER])


def test_header_describes_recipients_without_keys() -> None:
    h = age.parse_header(b"age-encryption.org/v1\n-> X25519 abc\nYWJj\n-> ssh-ed25519 x y\n"
                         b"YWJj\n-> x-grease z\n\n--- " + b"A" * 43 + b"\n")
    assert h.describe() == "1 X25519, 1 ssh-ed25519 recipients"


def test_a_malformed_credentials_file_is_named_not_quoted(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIAEXAMPLE\n"
                     "aws_secret_access_key wJalrXUtnFEMIK7MDENGbPxRfiCYSECRETKEY\n")
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    with pytest.raises(StorageError) as info:
        S3Store(S3Settings(endpoint="http://127.0.0.1:9")).check_bucket(parse_s3("s3://b-1/"))
    text = f"{info.value.message} {info.value.hint}"
    assert "cannot be parsed" in text and "SECRETKEY" not in text and "AKIA" not in text


def test_an_identity_given_as_recipient_is_not_echoed() -> None:
    from kubectl_runai_dr.errors import UsageError

    identity, _ = age.keygen()
    with pytest.raises(UsageError) as info:
        age.load_recipients([identity], [])
    assert identity[15:] not in str(info.value) + str(info.value.hint)
    assert "private key" in str(info.value)
