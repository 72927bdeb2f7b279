"""`diff`: read what each side holds per component, and compare (``plan/compare.py``).

A side is a bundle or the live cluster.

- A bundle is read through :func:`_open_bundle` alone, in **one pass** over the archive:
  only the members the chosen components need, each checked against its size and
  sha256 in the manifest, lists streamed item by item and reduced as they come. (Each
  ``Bundle.open_member`` starts again at the front of the archive, where the database
  dumps are: reading twenty members that way would cost twenty passes.)
- The live cluster is read by the backup's own code: each component's backup function
  writes into an in-memory capture instead of a bundle (helm values through the helm
  storage bridge, the RunaiConfig, project namespaces and role bindings, templates,
  scheduling objects, secrets), and the same reductions apply. The database is counted
  in its pod as the backup counts it (no dump); volumes are the tool's VolumeSnapshots.

A component a side does not hold (skipped or failed at backup time, or a bundle from
before it existed) is reported as not compared and does not count; one the backup
found absent (``not present``) compares as empty.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.bundle.archive import CHUNK, ArchiveError, TarReader
from kubectl_runai_dr.bundle.jsonlist import ListError, iter_items
from kubectl_runai_dr.bundle.reader import (
    CORRUPT_HINT,
    MAX_IN_MEMORY,
    MAX_ITEM,
    Bundle,
)
from kubectl_runai_dr.bundle.writer import BundleWriter
from kubectl_runai_dr.components import registry
from kubectl_runai_dr.components.base import BackupContext, NullProgress, Progress
from kubectl_runai_dr.errors import BundleError, ComponentError, DrError, ExitCode, UsageError
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.localfs import local_error
from kubectl_runai_dr.model import Names, Result, Status
from kubectl_runai_dr.plan import compare as c
from kubectl_runai_dr.plan.backup import plan_backup
from kubectl_runai_dr.plan.database import DbOptions

OPT_IN = ("secrets", "volumes")  # compared whenever a side holds them


@dataclass
class DiffOptions:
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    names: Names = field(default_factory=Names)  # the live side's (a bundle has its own)
    db: DbOptions = field(default_factory=DbOptions)


@dataclass
class SideInfo:
    label: str  # the bundle's path, or "live (context)"
    kind: str  # bundle | live
    created: str = ""
    context: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "createdAt": self.created,
                "context": self.context}


@dataclass
class DiffOutcome:
    a: SideInfo
    b: SideInfo
    components: list[c.ComponentDiff]

    @property
    def differences(self) -> int:
        return sum(len(d.changes) for d in self.components if d.compared)

    @property
    def errors(self) -> list[c.ComponentDiff]:
        return [d for d in self.components if d.error]

    def exit_code(self) -> int:
        """As diff(1): 0 the same, 1 differences, more than 1 trouble (a side that could
        not be read: the error's own code, at least 2)."""
        if self.errors:
            return max(int(ExitCode.USAGE), self.errors[0].error_code)
        return 1 if self.differences else 0

    def to_json(self) -> dict[str, Any]:
        return {"a": self.a.to_json(), "b": self.b.to_json(),
                "differences": self.differences,
                "components": [d.to_json() for d in self.components]}


def selected(opts: DiffOptions) -> list[str]:
    """The components to compare, in the recovery order (a usage error for a wrong name)."""
    try:
        planned = plan_backup(registry.BACKUP_STEPS, only=opts.only, skip=opts.skip,
                              aliases=registry.ALIASES, enabled=OPT_IN)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return [p.name for p in planned if p.run]


# -- what each component reads, and how it compares ---------------------------------------
Reduce = Callable[[Any], Any]


def _yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML ({str(exc).splitlines()[0]})") from None


@dataclass(frozen=True)
class Member:
    """One file a component needs. ``kind``: json, text or list; ``reduce`` receives the
    parsed value (for a list: an iterator of its items) and returns what is kept."""

    rel: str
    kind: str
    reduce: Reduce = lambda v: v


@dataclass(frozen=True)
class Spec:
    members: Callable[[Names], list[Member]]
    data: Callable[[Mapping[str, Any], Names], Any]  # kept values by rel -> comparable data
    changes: Callable[[Any, Any, bytes, Names], list[c.Change]]


def _helm(release: Callable[[Names], str]) -> Spec:
    def members(n: Names) -> list[Member]:
        return [Member(layout.helm_release_info(release(n)), "json"),
                Member(layout.helm_values(release(n)), "text", _yaml)]

    def data(v: Mapping[str, Any], n: Names) -> Any:
        values = layout.helm_values(release(n))
        return c.helm_data(v.get(layout.helm_release_info(release(n))), v[values]) \
            if values in v else {}

    return Spec(members, data, lambda a, b, key, n: c.helm_changes(release(n), a, b, key))


def _objects(rels: Callable[[Names], list[str]], what: str, **kw: bool) -> Spec:
    mask = kw.pop("mask_data", False)

    def data(v: Mapping[str, Any], n: Names) -> Any:
        out: dict[str, Any] = {}
        for rel in rels(n):
            out.update(v.get(rel) or {})
        return out

    return Spec(lambda n: [Member(r, "list", lambda items: c.objects_data(items, **kw))
                           for r in rels(n)],
                data, lambda a, b, key, n: c.objects_changes(what, a, b, key, mask_data=mask))


def _runaiconfig_data(v: Mapping[str, Any], n: Names) -> Any:
    obj = v.get(layout.RUNAICONFIG_OBJECT)
    if obj is None and layout.RUNAICONFIG_SPEC in v:
        obj = {"spec": v[layout.RUNAICONFIG_SPEC]}
    return c.runaiconfig_data(obj)


PROJECTS = layout.objects("run.ai", "projects")
NAMESPACES = layout.objects("", "namespaces")
ROLEBINDINGS = layout.objects("rbac.authorization.k8s.io", "rolebindings")
SCHEDULING = [layout.objects(g, p) for g, p in (
    ("scheduling.run.ai", "departments"), ("run.ai", "nodepools"), ("run.ai", "accessrules"),
    ("scheduling.run.ai", "queues"))]


def _projects_data(v: Mapping[str, Any], n: Names) -> Any:
    return c.projects_data(v.get(PROJECTS) or [], v.get(NAMESPACES) or [],
                           v.get(ROLEBINDINGS) or [])


def _snapshot_rows(document: Any) -> list[dict[str, Any]]:
    from kubectl_runai_dr.plan.volumes import records_of

    if not isinstance(document, dict):
        raise ValueError("not a snapshot record document")
    return [{"namespace": r["namespace"], "name": r["volumeSnapshotName"],
             "claim": (r.get("claim") or {}).get("name", "") if isinstance(r.get("claim"), dict)
             else str(r.get("claim")), "role": r.get("role", ""),
             "size": r.get("restoreSize", ""), "ready": r.get("readyToUse", False)}
            for r in records_of(document)]


SPECS: dict[str, Spec] = {
    "volumes": Spec(lambda n: [Member(layout.SNAPSHOTS, "json", _snapshot_rows)],
                    lambda v, n: c.volumes_data(v.get(layout.SNAPSHOTS) or []),
                    lambda a, b, key, n: c.volumes_changes(a, b, key)),
    "secrets": _objects(lambda n: [layout.SECRETS], "Secret", namespaced=True, mask_data=True),
    "control-plane": _helm(lambda n: n.control_plane_release),
    "database": Spec(lambda n: [Member(layout.DATABASE_METADATA, "json")],
                     lambda v, n: c.database_data(v.get(layout.DATABASE_METADATA) or {}),
                     lambda a, b, key, n: c.database_changes(a, b, key)),
    "cluster": _helm(lambda n: n.cluster_release),
    "runaiconfig": Spec(lambda n: [Member(layout.RUNAICONFIG_OBJECT, "json"),
                                   Member(layout.RUNAICONFIG_SPEC, "json")],
                        _runaiconfig_data,
                        lambda a, b, key, n: c.runaiconfig_changes(n.runaiconfig_name, a, b,
                                                                   key)),
    "templates": _objects(lambda n: [layout.TEMPLATES], "template"),
    "namespaces": Spec(lambda n: [Member(PROJECTS, "list", list),
                                  Member(NAMESPACES, "list", list),
                                  Member(ROLEBINDINGS, "list", list)],
                       _projects_data, lambda a, b, key, n: c.projects_changes(a, b, key)),
    "scheduling": _objects(lambda n: list(SCHEDULING), "object", namespaced=True, kind=True),
}


# -- a side's data ------------------------------------------------------------------------
@dataclass
class SideData:
    """Per component: comparable data, or why there is none (``state``)."""

    info: SideInfo
    names: Names
    data: dict[str, Any] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)  # held, not present, or why not
    errors: dict[str, DrError] = field(default_factory=dict)


HELD, NOT_PRESENT = "held", "not present"


def _bundle_names(manifest: Mapping[str, Any]) -> Names:
    """The names the bundle was made with (its manifest's source), else the defaults."""
    src = manifest.get("source") or {}
    default = Names()
    return Names(
        cluster_namespace=str(src.get("clusterNamespace") or default.cluster_namespace),
        control_plane_namespace=str(src.get("controlPlaneNamespace")
                                    or default.control_plane_namespace),
        cluster_release=str(src.get("clusterRelease") or default.cluster_release),
        control_plane_release=str(src.get("controlPlaneRelease")
                                  or default.control_plane_release))


def _bundle_state(manifest: Mapping[str, Any], name: str) -> str:
    """held, not present, or why the bundle does not hold the component."""
    entries = {e.get("name"): e for e in manifest.get("components") or []}
    entry = entries.get(name) or next((e for a, e in entries.items()
                                       if registry.ALIASES.get(str(a)) == name), None)
    if entry is None:
        return "not in this bundle"
    status = entry.get("status")
    if status == Status.OK.value:
        return HELD
    if status == Status.NOT_PRESENT.value:
        return NOT_PRESENT
    why = c.printable(str(entry.get("reason") or ""), 120)
    if status == Status.SKIPPED.value:
        return why or "skipped at backup"
    return f"{status} at backup" + (f": {why}" if why else "")


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Parsing and reducing tens of thousands of objects allocates millions of containers,
    none of them in a cycle: the cyclic collector, which runs every few hundred
    allocations, would take a third of the time for nothing."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def read_bundle(location: str | Path, components: list[str]) -> SideData:
    """A bundle's comparable data for ``components``, in one pass."""
    with _open_bundle(location) as (bundle, scan), _no_cycle_collection():
        manifest = bundle.manifest
        names = _bundle_names(manifest)
        side = SideData(SideInfo(str(location), "bundle", str(manifest.get("createdAt", "")),
                                 str((manifest.get("source") or {}).get("context", ""))),
                        names)
        wanted: dict[str, Member] = {}
        for name in components:
            side.state[name] = _bundle_state(manifest, name)
            if side.state[name] == HELD:
                wanted.update({m.rel: m for m in SPECS[name].members(names)
                               if bundle.has(m.rel)})
        values = scan(wanted)
        for name in components:
            if side.state[name] in (HELD, NOT_PRESENT):
                side.data[name] = _data(name, values, names, str(location))
    return side


def _data(name: str, values: Mapping[str, Any], names: Names, where: str) -> Any:
    try:
        return SPECS[name].data(values, names)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BundleError(f"{where}: the {name} data is not what a backup writes "
                          f"({type(exc).__name__}: {c.printable(str(exc), 120)})",
                          hint=CORRUPT_HINT) from None


Scan = Callable[[Mapping[str, Member]], dict[str, Any]]


@contextlib.contextmanager
def _open_bundle(location: str | Path) -> Iterator[tuple[Bundle, Scan]]:
    """The one place a bundle is opened: its manifest (``Bundle.open``: validated), and a
    function reading the wanted members in one pass, each checked against the manifest's
    size and sha256 before anything of it is used. A path or an s3:// URL, encrypted or
    not (the run's --identity / --passphrase)."""
    bundle = Bundle.open(location)
    try:
        yield bundle, lambda wanted: _scan(bundle, wanted)
    finally:
        bundle.close()


class _Hashing:
    """A member's data as ``read(n)``, hashed on the way."""

    def __init__(self, tar: TarReader) -> None:
        self.tar = tar
        self.sha = hashlib.sha256()

    def read(self, n: int) -> bytes:
        data = self.tar.read(n)
        self.sha.update(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass


def _scan(bundle: Bundle, wanted: Mapping[str, Member]) -> dict[str, Any]:
    path, files, out = bundle.path, bundle.files, {}
    left = set(wanted)
    if not left:
        return {}
    gz, tar = bundle.archive()
    try:
        while left and (member := tar.next()) is not None:
            if member.name not in left:
                continue
            left.discard(member.name)
            entry = files[member.name]
            if member.size != entry["size"]:
                raise BundleError(f"{path}: {member.name} is {member.size} bytes, the manifest "
                                  f"says {entry['size']}", hint=CORRUPT_HINT)
            m = wanted[member.name]
            data = _Hashing(tar)
            try:
                out[m.rel] = _parse(m, data, member.size)
            except (ValueError, TypeError, KeyError, RecursionError) as exc:
                data.drain()
                if data.sha.hexdigest() != entry["sha256"]:
                    raise _mismatch(path, member.name) from None
                raise BundleError(f"{path}: {member.name} cannot be read: "
                                  f"{c.printable(str(exc), 200)}", hint=CORRUPT_HINT) from None
            data.drain()
            if data.sha.hexdigest() != entry["sha256"]:
                raise _mismatch(path, member.name)
    except ArchiveError as exc:
        raise BundleError(f"{path}: cannot be read ({exc})",
                          hint="run `kubectl runai-dr verify` on it") from None
    except OSError as exc:
        raise local_error(exc, "read", path) from exc
    finally:
        gz.close()
    if left:
        raise BundleError(f"{path}: {sorted(left)[0]} is listed in the manifest but missing",
                          hint=CORRUPT_HINT)
    return out


def _mismatch(path: Path | str, name: str) -> BundleError:
    return BundleError(f"{path}: {name} does not match its checksum", hint=CORRUPT_HINT)


def _parse(m: Member, data: _Hashing, size: int) -> Any:
    if m.kind == "list" and size > MAX_IN_MEMORY:  # streamed, one item at a time
        try:
            return m.reduce(iter_items(data.read, max_item=MAX_ITEM))
        except ListError as exc:
            raise ValueError(f"not a valid List: {exc}") from None
    if m.kind == "list":  # read whole: one parse is several times faster than per item
        doc = json.loads(data.read(size).decode("utf-8"))
        items = doc.get("items") if isinstance(doc, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ValueError('not a valid List: "items" is not a list of objects')
        return m.reduce(iter(items))
    if size > MAX_IN_MEMORY:
        raise ValueError(f"{size} bytes; this tool reads at most {MAX_IN_MEMORY} of it")
    raw = data.read(size)
    text = raw.decode("utf-8")
    return m.reduce(json.loads(text) if m.kind == "json" else text)


# -- the live side --------------------------------------------------------------------------
class _ListCapture:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    @property
    def count(self) -> int:
        return len(self.items)

    def append(self, item: dict[str, Any]) -> None:
        self.items.append(item)


class _Capture:
    """What a component's backup writes, kept in memory (the part of BundleWriter that
    the components use): the live side read by the backup's own code."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.values: dict[str, tuple[str, Any]] = {}

    def write_json(self, rel: str, obj: Any) -> None:
        self.values[rel] = ("json", obj)
        self.files[rel] = {}

    def write_text(self, rel: str, text: str) -> None:
        self.values[rel] = ("text", text)
        self.files[rel] = {}

    @contextlib.contextmanager
    def list_file(self, rel: str) -> Iterator[_ListCapture]:
        lw = _ListCapture()
        yield lw
        self.values[rel] = ("list", lw.items)
        self.files[rel] = {}

    def remove(self, rel: str) -> None:
        self.values.pop(rel, None)
        self.files.pop(rel, None)

    def reduced(self, members: list[Member]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in members:
            if m.rel in self.values:
                kind, value = self.values[m.rel]
                out[m.rel] = m.reduce(iter(value) if kind == "list" else value)
        return out


def read_live(kube: KubeApi, opts: DiffOptions, components: list[str],
              progress: Progress | None = None) -> SideData:
    """The live cluster's comparable data, read as the backup reads it."""
    progress = progress or NullProgress()
    names = opts.names
    side = SideData(SideInfo(f"live ({kube.context})", "live", context=kube.context), names)
    for name in components:
        progress.start(f"live: {registry.BY_NAME[name].title}")
        try:
            _live_component(kube, opts, name, side, progress)
        except DrError as exc:
            side.errors[name] = exc
            side.state[name] = "could not be read"
        finally:
            progress.finish()
    return side


def _live_component(kube: KubeApi, opts: DiffOptions, name: str, side: SideData,
                    progress: Progress) -> None:
    names = side.names
    if name == "database":
        from kubectl_runai_dr.components.database import live_row_counts

        counts, why = live_row_counts(kube, names, opts.db)
        side.state[name] = HELD if counts is not None else f"{NOT_PRESENT}: {why}"
        side.data[name] = counts or {}
        return
    if name == "volumes":
        side.data[name], side.state[name] = _live_snapshots(kube)
        return
    capture = _Capture()
    result = Result(name)
    ctx = BackupContext(kube=kube, out=cast(BundleWriter, capture), names=names,
                        include_secrets=True, progress=progress, db=opts.db)
    registry.BY_NAME[name].backup(ctx, result)
    side.state[name] = NOT_PRESENT if result.status is Status.NOT_PRESENT else HELD
    spec = SPECS[name]
    side.data[name] = spec.data(capture.reduced(spec.members(names)), names)


def _live_snapshots(kube: KubeApi) -> tuple[dict[str, Any], str]:
    from kubectl_runai_dr.components.volumes import list_snapshots

    try:
        listed = list_snapshots(kube)
    except ComponentError as exc:  # the snapshot API is not served: no snapshots
        return {}, f"{NOT_PRESENT}: {exc.message}"
    return c.volumes_data({"namespace": s.namespace, "name": s.name, "claim": s.claim,
                           "role": s.role, "size": s.restore_size, "ready": s.ready}
                          for s in listed), HELD


# -- comparing -----------------------------------------------------------------------------
def compare(a: SideData, b: SideData, components: list[str], key: bytes) -> DiffOutcome:
    out: list[c.ComponentDiff] = []
    for name in components:
        d = c.ComponentDiff(name, registry.BY_NAME[name].title, a.state.get(name, ""),
                            b.state.get(name, ""))
        err = a.errors.get(name) or b.errors.get(name)
        if err is not None:
            d.compared = False
            d.error = c.printable(err.message, 300)
            d.error_code = int(err.exit_code)
        elif name not in a.data or name not in b.data:
            d.compared = False
        else:
            d.changes = SPECS[name].changes(a.data[name], b.data[name], key, b.names)
        out.append(d)
    return DiffOutcome(a.info, b.info, out)


def diff_bundles(a: str | Path, b: str | Path, opts: DiffOptions, key: bytes) -> DiffOutcome:
    components = selected(opts)
    return compare(read_bundle(a, components), read_bundle(b, components), components, key)


def diff_live(bundle: str | Path, kube: KubeApi, opts: DiffOptions, key: bytes,
              progress: Progress | None = None) -> DiffOutcome:
    components = selected(opts)
    saved = read_bundle(bundle, components)
    # only what the bundle holds: the live side of the rest could not be compared anyway
    # (and reading it, secrets above all, may need rights the comparison does not)
    held = [n for n in components if saved.state[n] in (HELD, NOT_PRESENT)]
    live = read_live(kube, opts, held, progress)
    for name in set(components) - set(held):
        live.state[name] = ""  # not read: the bundle does not hold it
    return compare(saved, live, components, key)
