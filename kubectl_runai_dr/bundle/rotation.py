"""``backup --keep N``: delete the oldest bundles of a context beside the new one.

The directory is opened once and checked like the one the bundle was written to; only
regular files with the tool's default name are looked at (a directory, link or FIFO with
such a name is neither counted nor touched), and of those only the manifest is read, to
learn the context each bundle came from. What to delete is decided by
:func:`kubectl_runai_dr.plan.retention.plan_retention`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from kubectl_runai_dr.bundle.manifest import safe_context
from kubectl_runai_dr.bundle.reader import read_manifest
from kubectl_runai_dr.bundle.writer import read_xattrs
from kubectl_runai_dr.errors import DrError
from kubectl_runai_dr.localfs import open_private_dir
from kubectl_runai_dr.plan.retention import BUNDLE_NAME, Candidate, plan_retention
from kubectl_runai_dr.storage.location import S3Url

if TYPE_CHECKING:
    from kubectl_runai_dr.storage.s3 import ObjectInfo, S3Store


@dataclass
class Rotation:
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # newest first, the new bundle first
    warnings: list[str] = field(default_factory=list)


def held_components(manifest: dict[str, Any],
                    aliases: Mapping[str, str] | None = None) -> frozenset[str]:
    """The components whose data a bundle holds: those recorded ``ok``, under today's
    names (``aliases``: earlier names and what they are called now)."""
    aliases = aliases or {}
    return frozenset(aliases.get(str(c.get("name")), str(c.get("name")))
                     for c in manifest.get("components") or []
                     if isinstance(c, dict) and c.get("status") == "ok")


def rotate_s3(store: S3Store, prefix: S3Url, *, context: str, keep: int, just_written: str,
              now: datetime, written_components: frozenset[str] | None = None,
              aliases: Mapping[str, str] | None = None) -> Rotation:
    """:func:`rotate` at an s3:// prefix. What each bundle holds comes from the metadata
    the tool stored with it (:func:`upload_metadata`): no bundle is downloaded."""
    out = Rotation()
    candidates: list[Candidate] = []
    for obj in store.objects(prefix):
        name = obj.key.rpartition("/")[2]
        m = BUNDLE_NAME.match(name)
        if name == just_written or not m:
            continue
        info = store.head(prefix.child(name))
        meta = s3_facts(store, prefix.child(name), info)
        if META_UNREADABLE in meta:  # kept, as a local bundle that cannot be read is
            if unquote(meta.get(META_CONTEXT, "")) == context:
                out.warnings.append(f"--keep: {name} was left alone and not counted: "
                                    f"{meta[META_UNREADABLE]}")
            continue
        if meta.get(META_TOOL) != "kubectl-runai-dr" or META_CONTEXT not in meta:
            if m.group("context") == safe_context(context):
                out.warnings.append(f"--keep: {name} was left alone and not counted: it "
                                    "was not stored by this tool (no runai-dr metadata)")
            continue
        candidates.append(Candidate(name, unquote(meta[META_CONTEXT]), _held(meta, aliases)))
    plan = plan_retention(candidates, context=context, keep=keep, just_written=just_written,
                          now=now, written_components=written_components)

    def delete(name: str) -> str | None:
        try:
            store.delete(prefix.child(name))
        except DrError as exc:
            return exc.message
        return None

    _apply(plan, out, delete)
    return out


def _apply(plan: Any, out: Rotation, delete: Callable[[str], str | None]) -> None:
    """Carry out a retention plan: delete (``delete`` returns why it could not), and say
    what was dated in the future."""
    out.kept = plan.keep
    for name in plan.future:
        out.warnings.append(f"--keep: {name} is dated in the future; it was neither "
                            "counted nor deleted (check the clock, or remove it)")
    for name in plan.delete:
        problem = delete(name)
        if problem is None:
            out.deleted.append(name)
        else:
            out.warnings.append(f"--keep: could not delete {name}: {problem}")


def s3_facts(store: S3Store, url: S3Url, info: ObjectInfo | None) -> dict[str, str]:
    """An s3:// bundle's facts: its metadata; a bundle streamed up while it was written
    has no status and components there (unknown when the upload started), so they come
    from its manifest, the object's first bytes (one ranged GET)."""
    meta = dict(info.metadata) if info is not None else {}
    if info is None or META_STATUS in meta or meta.get(META_TOOL) != "kubectl-runai-dr" \
            or meta.get(META_ENCRYPTED) == "true":
        return meta
    from kubectl_runai_dr.bundle.reader import source_manifest
    from kubectl_runai_dr.storage.s3 import S3Source

    try:
        manifest = source_manifest(S3Source(store, url, info.size), str(url))
    except DrError as exc:
        meta[META_UNREADABLE] = exc.message
        return meta
    meta[META_STATUS] = str(manifest["status"])
    meta[META_COMPONENTS] = ",".join(sorted(held_components(manifest)))
    return meta


def _held(facts: Mapping[str, str], aliases: Mapping[str, str] | None) -> frozenset[str]:
    return frozenset((aliases or {}).get(c, c)
                     for c in facts.get(META_COMPONENTS, "").split(",") if c)


META_TOOL = "runai-dr-tool"
META_UNREADABLE = "x-unreadable"  # not stored: what s3_facts says when the manifest failed
META_CONTEXT = "runai-dr-context"
META_CREATED = "runai-dr-created"
META_STATUS = "runai-dr-status"
META_COMPONENTS = "runai-dr-components"
META_ENCRYPTED = "runai-dr-encrypted"


def upload_metadata(manifest: dict[str, Any], *, encrypted: bool) -> dict[str, str]:
    """What a bundle carries besides its content, so listing and rotation need not read it
    (and can describe an encrypted one): an s3:// object's metadata, a local file's
    extended attributes (``user.runai-dr-*``). No secret, ASCII only."""
    facts = {META_TOOL: "kubectl-runai-dr",
             META_CONTEXT: quote(str(manifest["source"]["context"]), safe=""),
             META_CREATED: str(manifest["createdAt"]),
             META_ENCRYPTED: "true" if encrypted else "false"}
    if "status" in manifest:  # not yet known when a streamed upload starts
        facts[META_STATUS] = str(manifest["status"])
        facts[META_COMPONENTS] = ",".join(sorted(held_components(manifest)))
    return facts


def rotate(directory: Path, *, context: str, keep: int, just_written: str,
           now: datetime, written_components: frozenset[str] | None = None,
           aliases: Mapping[str, str] | None = None) -> Rotation:
    """Delete the bundles of ``context`` in ``directory`` beyond the ``keep`` newest;
    ``just_written`` is always kept."""
    out = Rotation()
    candidates: list[Candidate] = []
    with open_private_dir(directory) as d:
        for name in d.names():
            m = BUNDLE_NAME.match(name)
            if name == just_written or not m:
                continue
            try:
                st = d.lstat(name)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            try:
                fd = d.open_regular(name)
            except OSError:
                continue  # replaced meanwhile by something that is not a file
            try:
                same = os.fstat(fd)
                if (same.st_dev, same.st_ino) != (st.st_dev, st.st_ino):
                    continue
                if m.group("encrypted"):  # its manifest is sealed: its attributes tell
                    facts = read_xattrs(fd, [META_TOOL, META_CONTEXT, META_COMPONENTS])
                    if facts.get(META_TOOL) == "kubectl-runai-dr" and META_CONTEXT in facts:
                        candidates.append(Candidate(name, unquote(facts[META_CONTEXT]),
                                                    _held(facts, aliases)))
                    elif m.group("context") == safe_context(context):
                        # no attributes (copied, or a file system without them): kept,
                        # unless `keep` newer ones of unknown content exist
                        candidates.append(Candidate(name, context, None))
                    continue
                manifest = read_manifest(fd, name)
            except DrError as exc:
                if m.group("context") == safe_context(context):
                    out.warnings.append(f"--keep: {name} was left alone and not counted: "
                                        f"{exc.message}")
                continue
            finally:
                os.close(fd)
            candidates.append(Candidate(name, manifest["source"]["context"],
                                        held_components(manifest, aliases)))
        plan = plan_retention(candidates, context=context, keep=keep,
                              just_written=just_written, now=now,
                              written_components=written_components)

        def delete(name: str) -> str | None:
            try:
                d.unlink(name)
            except OSError as exc:
                return exc.strerror or str(exc)
            return None

        _apply(plan, out, delete)
        if out.deleted:
            d.sync()
    return out
