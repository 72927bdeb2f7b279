"""Bundle locations: a local path, or ``s3://BUCKET/KEY`` (pure).

An S3 key is kept to what a file name would be: no control characters, no empty, ``.`` or
``..`` segments, at most 1,024 bytes. A location ending in ``/`` is a prefix ("a
directory"), otherwise it names one object.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SCHEME = "s3://"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LocationError(ValueError):
    """A location that cannot be used; the message says why."""


@dataclass(frozen=True)
class S3Url:
    bucket: str
    key: str  # "" for the bucket's root; ends with "/" for a prefix

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    @property
    def name(self) -> str:
        """The last segment (the bundle's file name)."""
        return self.key.rstrip("/").rpartition("/")[2]

    @property
    def parent(self) -> S3Url:
        """The prefix that holds this object."""
        head = self.key.rpartition("/")[0]
        return S3Url(self.bucket, f"{head}/" if head else "")

    def child(self, name: str) -> S3Url:
        assert self.is_prefix, self
        return S3Url(self.bucket, self.key + name)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.key}"


def is_s3(text: str | Path | None) -> bool:
    return isinstance(text, str) and text.lower().startswith(SCHEME)


def parse_s3(text: str) -> S3Url:
    """``s3://bucket/key`` → :class:`S3Url`; :class:`LocationError` saying what is wrong."""
    if not is_s3(text):
        raise LocationError(f"{text!r} is not an s3:// URL")
    rest = text[len(SCHEME):]
    bucket, _, key = rest.partition("/")
    if _CONTROL.search(text):
        raise LocationError("the S3 location holds control characters")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise LocationError(
            f"{bucket!r} is not a valid bucket name (3-63 characters: lower-case letters, "
            "digits, dots and hyphens)")
    if "?" in key or "#" in key:
        raise LocationError("an S3 location has no query or fragment (?, #)")
    if len(key.encode()) > 1024:
        raise LocationError("the S3 key is longer than 1,024 bytes")
    parts = key.split("/")
    inner = parts[:-1] if key.endswith("/") else parts
    if key and any(p in ("", ".", "..") for p in inner):
        raise LocationError(f"{text!r} has an empty, '.' or '..' path segment")
    return S3Url(bucket, key)


def parse(text: str | Path) -> Path | S3Url:
    """A local path or an S3 URL. Other schemes (``gs://``, ``https://``…) are refused
    rather than taken for a local directory of that name."""
    if isinstance(text, Path):
        return text
    if is_s3(text):
        return parse_s3(text)
    scheme = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", text)
    if scheme:
        raise LocationError(
            f"{scheme.group(1)}:// locations are not supported; use a local path or "
            "s3://BUCKET/PREFIX/ (GCS and others through their S3-compatible endpoint "
            "with --s3-endpoint)")
    return Path(text)
