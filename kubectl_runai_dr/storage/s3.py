"""S3-compatible object storage through the ``minio`` client (imported only here, and
only when an s3:// location is used).

Credentials come from the standard AWS chain, in its order: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` (/ ``AWS_SESSION_TOKEN``), the shared credentials file
(``AWS_SHARED_CREDENTIALS_FILE``, ``AWS_PROFILE``), a web identity token
(``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``: IRSA), then the container and instance
metadata services (with short timeouts, so a laptop without them fails fast). They are
held by the client only: never in argv, messages, the bundle or the record.

Every failure becomes a :class:`~kubectl_runai_dr.errors.StorageError` that names the
action, the bucket and key, and what to do. Requests that fail with throttling, 5xx or a
dropped connection are retried with back-off (urllib3's ``Retry``, which honours
``Retry-After``); an upload retries each part that way.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.credentials.providers import (
    AWSConfigProvider,
    ChainedProvider,
    EnvAWSProvider,
    IamAwsProvider,
)
from minio.datatypes import Part
from minio.error import InvalidResponseError, S3Error, ServerError

from kubectl_runai_dr.errors import StorageDenied, StorageError
from kubectl_runai_dr.storage.location import S3Url
from kubectl_runai_dr.storage.settings import S3Settings

MIN_PART = 5 * 1024 * 1024  # S3: every part but the last
IN_FLIGHT = 2  # parts sent at once (memory: this many parts, plus the one filling)
MAX_PARTS = 10_000
_DENIED = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId",
           "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
           "AccountProblem", "InvalidSecurity"}


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime | None
    etag: str
    metadata: dict[str, str]


def _endpoint(settings: S3Settings) -> tuple[str, bool, bool]:
    """(host[:port], secure, AWS) of the endpoint."""
    url = (settings.endpoint or os.environ.get("AWS_ENDPOINT_URL_S3")
           or os.environ.get("AWS_ENDPOINT_URL") or "")
    if not url:
        return "s3.amazonaws.com", True, True
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StorageError("the S3 endpoint is not an http(s) URL",
                           hint="e.g. --s3-endpoint https://minio.example.com:9000")
    if parts.path not in ("", "/") or parts.query or parts.username or parts.password:
        raise StorageError("the S3 endpoint must be scheme://host[:port] only (no path, "
                           "query or credentials)", hint="put credentials in the environment "
                           "or the shared credentials file")
    host = parts.netloc
    return host, parts.scheme == "https", host.endswith("amazonaws.com")


def _http(settings: S3Settings, *, connect: float = 10, read: float = 60,
          retries: int = 5) -> urllib3.PoolManager:
    ca = settings.ca_bundle or os.environ.get("AWS_CA_BUNDLE")
    kwargs: dict[str, Any] = {}
    if settings.insecure_skip_tls_verify:
        kwargs["cert_reqs"] = ssl.CERT_NONE
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    else:
        kwargs["cert_reqs"] = ssl.CERT_REQUIRED
        if ca:
            if not os.path.isfile(ca):
                raise StorageError(f"the CA bundle {ca} does not exist",
                                   hint="--s3-ca-bundle names a PEM file")
            kwargs["ca_certs"] = ca
        else:
            import certifi

            kwargs["ca_certs"] = certifi.where()
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect, read=read), maxsize=8,
        retries=urllib3.Retry(total=retries, backoff_factor=0.5,
                              status_forcelist=(429, 500, 502, 503, 504),
                              allowed_methods=None, respect_retry_after_header=True,
                              raise_on_status=False),
        **kwargs)


def _credentials(settings: S3Settings) -> ChainedProvider:
    metadata = urllib3.PoolManager(timeout=urllib3.Timeout(connect=1, read=3),
                                   retries=urllib3.Retry(total=1, backoff_factor=0.1))
    region = settings.region or os.environ.get("AWS_REGION") or os.environ.get(
        "AWS_DEFAULT_REGION")
    return ChainedProvider([EnvAWSProvider(), AWSConfigProvider(),
                            IamAwsProvider(http_client=metadata, region=region)])


class S3Store:
    """One bucket's objects, through one client."""

    def __init__(self, settings: S3Settings) -> None:
        host, secure, aws = _endpoint(settings)
        self.settings = settings
        self.endpoint = ("https://" if secure else "http://") + host
        region = settings.region or os.environ.get("AWS_REGION") or os.environ.get(
            "AWS_DEFAULT_REGION")
        self._client = Minio(host, secure=secure, region=region or ("us-east-1" if not aws
                                                                    else None),
                             http_client=_http(settings), credentials=_credentials(settings))
        path_style = settings.path_style if settings.path_style is not None else not aws
        if path_style:
            self._client.disable_virtual_style_endpoint()  # type: ignore[no-untyped-call]
        else:
            self._client.enable_virtual_style_endpoint()  # type: ignore[no-untyped-call]

    # -- reading -------------------------------------------------------------------------
    def head(self, url: S3Url) -> ObjectInfo | None:
        """The object's size and metadata; None when there is no such object."""
        try:
            st = self._client.stat_object(url.bucket, url.key)
        except Exception as exc:
            err = self._error(exc, "read", url)
            if getattr(exc, "code", None) in ("NoSuchKey", "NoSuchObject", "ResourceNotFound") \
                    or (isinstance(exc, S3Error) and exc.response is not None
                        and exc.response.status == 404 and exc.code != "NoSuchBucket"):
                return None
            raise err from None
        meta = {k.lower().removeprefix("x-amz-meta-"): v for k, v in (st.metadata or {}).items()
                if k.lower().startswith("x-amz-meta-")}
        return ObjectInfo(url.key, int(st.size or 0), st.last_modified, st.etag or "", meta)

    def open_range(self, url: S3Url, offset: int, etag: str = "") -> _Body:
        """The object's bytes from ``offset``, streamed (one GET; with ``etag``, only of
        that version of the object)."""
        pin: dict[str, str | list[str] | tuple[str]] | None = (
            {"If-Match": f'"{etag}"'} if etag else None)
        try:
            resp = self._client.get_object(url.bucket, url.key, offset=offset,
                                           request_headers=pin)
        except Exception as exc:
            raise self._error(exc, "read", url) from None
        return _Body(resp, self, url, offset, etag)

    def objects(self, prefix: S3Url) -> Iterator[ObjectInfo]:
        """The objects directly under ``prefix`` (not in sub-prefixes)."""
        try:
            for obj in self._client.list_objects(prefix.bucket, prefix=prefix.key or None,
                                                 recursive=False):
                if obj.is_dir or obj.object_name is None:
                    continue
                yield ObjectInfo(obj.object_name, int(obj.size or 0), obj.last_modified,
                                 obj.etag or "", {})
        except Exception as exc:
            raise self._error(exc, "list", prefix) from None

    def unfinished_uploads(self, prefix: S3Url) -> list[tuple[str, str]]:
        """(key, upload id) of the multipart uploads started under ``prefix`` and never
        completed nor aborted."""
        try:
            result = self._client._list_multipart_uploads(prefix.bucket,
                                                          prefix=prefix.key or None)
        except Exception as exc:
            raise self._error(exc, "list the multipart uploads in", prefix) from None
        return [(u.object_name, u.upload_id) for u in result.uploads
                if u.object_name is not None and u.upload_id is not None]

    # -- writing -------------------------------------------------------------------------
    def check_bucket(self, url: S3Url) -> None:
        """Fail early, before a backup runs, when the bucket is missing or the
        credentials are refused."""
        try:
            exists = self._client.bucket_exists(url.bucket)
        except Exception as exc:
            raise self._error(exc, "use", url) from None
        if not exists:
            raise StorageError(f"cannot write {url}: the bucket {url.bucket} does not exist "
                               f"at {self.endpoint}",
                               hint="create the bucket, or check the name and --s3-endpoint")

    def delete(self, url: S3Url) -> None:
        try:
            self._client.remove_object(url.bucket, url.key)
        except Exception as exc:
            raise self._error(exc, "delete", url) from None

    def start_upload(self, url: S3Url, metadata: dict[str, str]) -> str:
        headers: dict[str, str | list[str] | tuple[str]] = {
            "Content-Type": "application/octet-stream",
                   **{f"x-amz-meta-{k}": v for k, v in metadata.items()}}
        try:
            return self._client._create_multipart_upload(url.bucket, url.key, headers)
        except Exception as exc:
            raise self._error(exc, "write", url) from None

    def upload_part(self, url: S3Url, upload_id: str, number: int,
                    data: bytes | bytearray) -> str:
        try:
            # (an encrypted part is a bytearray: minio hashes and sends any bytes-like body)
            return self._client._upload_part(url.bucket, url.key, data,  # type: ignore[arg-type]
                                             None, upload_id, number)
        except Exception as exc:
            raise self._error(exc, f"upload part {number} of", url) from None

    def complete_upload(self, url: S3Url, upload_id: str, parts_: list[tuple[int, str]]) -> str:
        parts = [Part(number, etag) for number, etag in parts_]
        try:
            result = self._client._complete_multipart_upload(url.bucket, url.key, upload_id,
                                                             parts)
        except Exception as exc:
            raise self._error(exc, "complete the upload of", url) from None
        return (result.etag or "").strip('"')

    def replace_metadata(self, url: S3Url, metadata: dict[str, str], etag: str) -> None:
        """Give the object new metadata: a copy onto itself, on the server (only of the
        version ``etag``; above 5 GiB a multipart copy)."""
        from minio.commonconfig import REPLACE, CopySource

        headers: dict[str, str | list[str] | tuple[str]] = {
            "Content-Type": "application/octet-stream",
            **{f"x-amz-meta-{k}": v for k, v in metadata.items()}}
        try:
            self._client.copy_object(url.bucket, url.key,
                                     CopySource(url.bucket, url.key, match_etag=etag or None),
                                     metadata=headers, metadata_directive=REPLACE)
        except Exception as exc:
            raise self._error(exc, "update the metadata of", url) from None

    def abort_upload(self, url: S3Url, upload_id: str) -> None:
        try:
            self._client._abort_multipart_upload(url.bucket, url.key, upload_id)
        except Exception as exc:
            raise self._error(exc, "abort the upload of", url) from None

    # -- errors --------------------------------------------------------------------------
    def _error(self, exc: BaseException, action: str, url: S3Url) -> StorageError:
        return storage_error(exc, action, url, self.endpoint)


def storage_error(exc: BaseException, action: str, url: S3Url,
                  endpoint: str) -> StorageError:
    """A plain sentence for what went wrong, with what to do (never a credential)."""
    where = f"{url}"
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, S3Error):
        code = exc.code or ""
        if code == "NoSuchBucket":
            return StorageError(f"cannot {action} {where}: the bucket {url.bucket} does not "
                                f"exist at {endpoint}",
                                hint="create the bucket, or check the name and --s3-endpoint")
        if code in _DENIED:
            what = {"InvalidAccessKeyId": "the access key is not known to the server",
                    "SignatureDoesNotMatch": "the secret key does not match the access key",
                    "ExpiredToken": "the session token has expired"}.get(
                        code, "access denied")
            return StorageDenied(
                f"cannot {action} {where}: {what} ({code})",
                hint="check the credentials (AWS_ACCESS_KEY_ID / AWS_PROFILE / the role) "
                     f"and that they allow this action on bucket {url.bucket}")
        if code == "RequestTimeTooSkewed":
            return StorageError(f"cannot {action} {where}: this machine's clock differs too "
                                "much from the server's (RequestTimeTooSkewed)",
                                hint="fix the clock (NTP) and run again")
        if code in ("SlowDown", "Throttling", "TooManyRequests", "RequestLimitExceeded"):
            return StorageError(f"cannot {action} {where}: the server kept throttling the "
                                f"requests ({code}) after retries",
                                hint="run again later, or lower the request rate")
        msg = _clean(exc.message or code)
        return StorageError(f"cannot {action} {where}: {msg} ({code})",
                            hint="check the location and --s3-endpoint")
    if isinstance(exc, ServerError | InvalidResponseError):
        status = getattr(exc, "status_code", None) or ""
        return StorageError(f"cannot {action} {where}: the server at {endpoint} answered "
                            f"with an error {status}".rstrip(),
                            hint="check --s3-endpoint: is it an S3 API endpoint?")
    if isinstance(exc, urllib3.exceptions.SSLError) or _caused_by(exc, ssl.SSLError):
        return StorageError(f"cannot {action} {where}: TLS verification of {endpoint} failed "
                            f"({_clean(str(_root(exc)))[:200]})",
                            hint="give the server's CA with --s3-ca-bundle (or AWS_CA_BUNDLE);"
                                 " --s3-insecure-skip-tls-verify only for a test server")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return StorageError(f"cannot {action} {where}: {endpoint} cannot be reached "
                            f"({_clean(str(_root(exc)))[:200]})",
                            hint="check --s3-endpoint (or AWS_ENDPOINT_URL) and the network")
    import configparser

    if isinstance(exc, configparser.Error):  # its text quotes the file's lines: secrets
        return StorageError(f"cannot {action} {where}: the shared credentials file "
                            "(AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials) cannot be "
                            "parsed", hint="fix its syntax: [profile] sections of "
                                           "key = value lines")
    if isinstance(exc, ValueError) and ("credential" in str(exc).lower()
                                        or "access key" in str(exc).lower()):
        return StorageError(f"cannot {action} {where}: no S3 credentials were found",
                            hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                                 "AWS_PROFILE, or a web identity (IRSA)")
    # anything else: its type only (a library's text may quote credentials)
    return StorageError(f"cannot {action} {where}: {type(exc).__name__}",
                        hint="run again with -v for the traceback")


def _root(exc: BaseException) -> BaseException:
    seen = exc
    while True:
        nxt = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
        if not isinstance(nxt, BaseException) or nxt is seen:
            return seen
        seen = nxt


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        nxt = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
        seen = nxt if isinstance(nxt, BaseException) else None
    return False


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)


class _Body:
    """A GET's body as a stream; a connection that drops mid-read is re-opened with a
    ranged GET at the offset reached (a few times), so a long read survives it."""

    RETRIES = 3

    def __init__(self, resp: Any, store: S3Store, url: S3Url, offset: int = 0,
                 etag: str = "") -> None:
        self._resp: Any = resp
        self._store = store
        self._url = url
        self._offset = offset
        # a re-opened read must see the same object: one replaced meanwhile fails (412)
        self._pin: dict[str, str | list[str] | tuple[str]] | None = (
            {"If-Match": f'"{etag}"'} if etag else None)

    def read(self, size: int) -> bytes:
        """Network trouble that outlasts the retries is a StorageError (not a damaged
        bundle: the bytes were never had)."""
        for attempt in range(self.RETRIES + 1):
            try:
                if self._resp is None:
                    self._resp = self._store._client.get_object(
                        self._url.bucket, self._url.key, offset=self._offset,
                        request_headers=self._pin)
                data: bytes = self._resp.read(size)
                self._offset += len(data)
                return data
            except Exception as exc:
                self._release()
                self._resp = None
                if attempt == self.RETRIES or isinstance(exc, S3Error):
                    raise self._store._error(exc, "read", self._url) from None
        return b""

    def _release(self) -> None:
        if self._resp is None:
            return
        try:
            self._resp.close()
            self._resp.release_conn()
        except Exception:
            pass

    def close(self) -> None:
        self._release()


class S3Source:
    """A bundle object, for the reader: seekable with ranged GETs."""

    seekable = True
    encrypted = False

    def __init__(self, store: S3Store, url: S3Url, size: int, etag: str = "") -> None:
        self.store = store
        self.url = url
        self.size = size
        self.etag = etag  # every read is of this version: a replaced object fails
        self.name = str(url)

    def open(self, offset: int = 0) -> _Body:
        return self.store.open_range(self.url, offset, self.etag)

    def close(self) -> None:
        pass


class S3Upload:
    """A bundle written to ``url`` as one multipart upload, as it is produced.

    Sequential writes (``write``) are cut into parts of ``part_size`` (grown when the
    object would need more than 10,000 parts); ``send`` sends a part of a given number
    (a streamed bundle lays its parts out itself, see ``bundle/streamed.py``). Two
    background threads send while the next part fills, so memory holds at most three parts.
    The object exists under its key only once ``commit()`` completed the upload, with the
    parts in number order: before that, nothing lists or opens under that name.
    ``abort()`` (failure, Ctrl-C) aborts the upload, so no parts are left behind.
    """

    def __init__(self, store: S3Store, url: S3Url, metadata: dict[str, str]) -> None:
        import concurrent.futures

        self.store = store
        self.url = url
        self.part_size = max(MIN_PART, store.settings.part_size)
        self._buf = bytearray()
        self._next = 1  # of the next sequential part
        self._etags: dict[int, str] = {}
        self._sizes: dict[int, int] = {}
        self._pending: list[tuple[int, concurrent.futures.Future[str]]] = []
        self._pool = concurrent.futures.ThreadPoolExecutor(IN_FLIGHT,
                                                           thread_name_prefix="s3-upload")
        self.size = 0
        self.upload_id = store.start_upload(url, metadata)
        self.metadata = metadata
        self.committed = False
        self.warning = ""  # what went wrong after the object was complete

    def write(self, data: bytes) -> int:
        self._buf += data
        while len(self._buf) >= self.part_size:
            with memoryview(self._buf) as view:
                part = bytes(view[:self.part_size])  # one copy
            del self._buf[:self.part_size]
            self.send(self._next, part)
            self._next += 1
            if self._next % 1000 == 0 and self.part_size < 512 * 1024 * 1024:
                self.part_size *= 2  # stays under 10,000 parts up to terabytes
        return len(data)

    def send(self, number: int, data: bytes | bytearray) -> None:
        """Send part ``number`` (1-10000) in the background (the previous one first)."""
        if not 1 <= number <= MAX_PARTS or number in self._sizes:
            raise StorageError(f"cannot write {self.url}: part number {number} is out of "
                               "range or used twice")
        self.ready()
        self._sizes[number] = len(data)
        self.size += len(data)
        self._pending.append((number, self._pool.submit(self.store.upload_part, self.url,
                                                        self.upload_id, number, data)))

    def ready(self, in_flight: int = IN_FLIGHT) -> None:
        """Return once fewer than ``in_flight`` parts are being sent."""
        while len(self._pending) >= in_flight:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        number, future = self._pending.pop(0)
        self._etags[number] = future.result()

    def _wait(self) -> None:
        while self._pending:
            self._wait_oldest()

    def close(self) -> None:
        """Nothing: ``commit`` finishes the upload, ``abort`` drops it."""

    def commit(self, parts: list[int] | None = None,
               metadata: dict[str, str] | None = None) -> str:
        """Send the rest and complete the upload with ``parts`` (default: every part
        sent), in number order. Then the object's size is checked against the bytes of
        those parts; a mismatch deletes it (nothing complete-looking stays). ``metadata``:
        what the object's metadata becomes then (known only at the end of a bundle that
        streamed up while it was written and cannot be read without a key)."""
        if parts is None and (self._buf or not self._sizes):
            self.send(self._next, bytes(self._buf))
            self._buf.clear()
        self._wait()
        # every part sent (one whose upload failed has no ETag: "not sent" below)
        numbers = sorted(self._sizes) if parts is None else sorted(parts)
        missing = [n for n in numbers if n not in self._etags]
        if missing:
            raise StorageError(f"cannot complete {self.url}: part {missing[0]} was not sent")
        etag = self.store.complete_upload(self.url, self.upload_id,
                                          [(n, self._etags[n]) for n in numbers])
        self.committed = True
        self._pool.shutdown()
        self.size = sum(self._sizes[n] for n in numbers)
        info = self.store.head(self.url)
        if info is None or info.size != self.size:
            stored = "missing" if info is None else f"{info.size} bytes"
            import contextlib

            with contextlib.suppress(StorageError):
                self.store.delete(self.url)
            raise StorageError(f"{self.url} was stored as {stored}, not the {self.size} bytes "
                               "sent: it was removed", hint="run the backup again")
        if metadata and metadata != self.metadata:
            try:
                self.store.replace_metadata(self.url, {**self.metadata, **metadata},
                                            info.etag.strip('"'))
            except StorageError as exc:  # the bundle is complete: say what it lacks
                self.warning = (f"{exc.message}: `bundles` shows its status as unknown, and "
                                "--keep keeps it (rotation cannot tell its components)")
        return etag

    def abort(self) -> None:
        """Abort the upload (its parts are dropped); a committed object stays."""
        if self.committed:
            return
        import contextlib

        for _, future in self._pending:
            future.cancel()
            with contextlib.suppress(BaseException):
                future.result(timeout=30)
        self._pending = []
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.store.abort_upload(self.url, self.upload_id)
