"""`bundles [LOCATION]`: the bundles at a local directory or an s3:// prefix.

Local: regular files with a bundle's suffix (``.tar.gz``, ``.tar.gz.age``; links are not
followed), each described by its manifest (an encrypted one by its name, or by its
manifest when an identity or passphrase is given), plus the staging directories of
interrupted backups. S3: the objects under the prefix, described by the metadata the tool
stored with them (nothing is downloaded), plus multipart uploads never completed (an
interrupted or running backup; they never list as bundles).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from kubectl_runai_dr.bundle.reader import source_manifest
from kubectl_runai_dr.bundle.rotation import (
    META_CONTEXT,
    META_CREATED,
    META_ENCRYPTED,
    META_STATUS,
    META_TOOL,
    s3_facts,
)
from kubectl_runai_dr.bundle.source import FileSource, decrypting
from kubectl_runai_dr.bundle.writer import STAGING_SUFFIX
from kubectl_runai_dr.errors import BundleError, DrError, UsageError
from kubectl_runai_dr.localfs import open_private_dir
from kubectl_runai_dr.plan.retention import BUNDLE_NAME, name_time
from kubectl_runai_dr.storage.location import LocationError, S3Url, parse

SUFFIXES = (".tar.gz", ".tar.gz.age")


@dataclass
class BundleEntry:
    name: str
    context: str | None
    created: str | None
    status: str  # complete, partial, encrypted (not opened), unreadable, incomplete upload…
    size: int
    encrypted: bool
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "context": self.context, "createdAt": self.created,
                "status": self.status, "size": self.size, "encrypted": self.encrypted,
                **({"note": self.note} if self.note else {})}


@dataclass
class Listing:
    location: str
    bundles: list[BundleEntry]

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location, "bundles": [b.to_json() for b in self.bundles]}


def list_bundles(location: str | None) -> Listing:
    try:
        where = parse(location or ".")
    except LocationError as exc:
        raise UsageError(str(exc)) from None
    if isinstance(where, S3Url):
        prefix = where if where.is_prefix else S3Url(where.bucket, where.key + "/")
        entries = _s3(prefix)
        shown = str(prefix)
    else:
        entries = _local(where)
        shown = str(where)
    entries.sort(key=lambda e: (e.created or "", e.name), reverse=True)
    return Listing(shown, entries)


def _from_name(name: str) -> tuple[str | None, str | None]:
    m = BUNDLE_NAME.match(name)
    when = name_time(name)
    return (m.group("context") if m else None,
            when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None)


def _describe(manifest: dict[str, Any]) -> tuple[str, str, str]:
    return (str(manifest["source"]["context"]), str(manifest["createdAt"]),
            str(manifest["status"]))


def _local(directory: Path) -> list[BundleEntry]:
    out: list[BundleEntry] = []
    with open_private_dir(directory) as d:
        for name in d.names():
            try:
                st = d.lstat(name)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode) and name.startswith(".") and \
                    name.endswith(STAGING_SUFFIX):
                out.append(BundleEntry(name, None, _mtime(st.st_mtime), "interrupted", 0,
                                       False, "staging directory of a backup that was "
                                       "interrupted or is running"))
                continue
            if not stat.S_ISREG(st.st_mode) or not name.endswith(SUFFIXES):
                continue
            out.append(_local_entry(d, name, st.st_size))
    return out


def _local_entry(d: Any, name: str, size: int) -> BundleEntry:
    encrypted = name.endswith(".age")
    context, created = _from_name(name)
    try:
        fd = d.open_regular(name)
    except OSError as exc:
        return BundleEntry(name, context, created, "unreadable", size, encrypted,
                           exc.strerror or "")
    source = FileSource(d.path / name, fd)
    try:
        opened = decrypting(source)
        encrypted = opened.encrypted
        context, created, status = _describe(source_manifest(opened, name))
        return BundleEntry(name, context, created, status, size, encrypted)
    except BundleError as exc:
        if encrypted and "is encrypted" in exc.message:
            return BundleEntry(name, context, created, "encrypted", size, True,
                               "give --identity or --passphrase to read its manifest")
        return BundleEntry(name, context, created, "unreadable", size, encrypted, exc.message)
    except DrError as exc:
        return BundleEntry(name, context, created, "unreadable", size, encrypted, exc.message)
    finally:
        source.close()


def _mtime(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _s3(prefix: S3Url) -> list[BundleEntry]:
    from kubectl_runai_dr.storage.s3 import S3Store
    from kubectl_runai_dr.storage.settings import current

    store = S3Store(current().s3)
    out: list[BundleEntry] = []
    for obj in store.objects(prefix):
        name = obj.key.rpartition("/")[2]
        if not name.endswith(SUFFIXES):
            continue
        context, created = _from_name(name)
        info = store.head(prefix.child(name))
        meta = s3_facts(store, prefix.child(name), info)
        if meta.get(META_TOOL) == "kubectl-runai-dr":
            out.append(BundleEntry(name, unquote(meta.get(META_CONTEXT, "")) or context,
                                   meta.get(META_CREATED) or created,
                                   meta.get(META_STATUS, "unknown"), obj.size,
                                   meta.get(META_ENCRYPTED) == "true"))
        else:
            out.append(BundleEntry(name, context, created, "unknown", obj.size,
                                   name.endswith(".age"), "not stored by this tool "
                                   "(no runai-dr metadata); `inspect` reads it"))
    for key, _upload in store.unfinished_uploads(prefix):
        name = key.rpartition("/")[2]
        if "/" in key[len(prefix.key):]:
            continue
        context, created = _from_name(name)
        out.append(BundleEntry(name, context, created, "incomplete upload", 0,
                               name.endswith(".age"), "a multipart upload never completed "
                               "(a backup running now, or one that was killed); it is not "
                               "a bundle"))
    return out
