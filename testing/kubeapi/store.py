"""Object storage: a global resourceVersion counter, cached JSON bytes, list snapshots, an event log;
now(), the timestamps of stored objects."""

from __future__ import annotations

import bisect
import datetime as _dt
import json
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

ResKey = tuple[str, str]  # (group, plural)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Entry:
    """One stored object. `obj` is never mutated after the entry is created."""

    __slots__ = ("_cache", "name", "namespace", "obj", "rv")

    def __init__(self, obj: dict[str, Any], rv: int):
        self.obj = obj
        self.rv = rv
        md = obj["metadata"]
        self.name: str = md["name"]
        self.namespace: str = md.get("namespace") or ""
        self._cache: dict[tuple[str, bool], bytes] = {}

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def bytes_for(self, api_version: str, with_type: bool = True) -> bytes:
        ck = (api_version, with_type)
        b = self._cache.get(ck)
        if b is None:
            if with_type:
                o = dict(self.obj)
                o["apiVersion"] = api_version
                # keep kind/apiVersion first like the real server
                o = {"kind": o.pop("kind"), "apiVersion": o.pop("apiVersion"), **o}
            else:
                o = {k: v for k, v in self.obj.items() if k not in ("kind", "apiVersion")}
            b = dumps(o)
            self._cache[ck] = b
        return b

    def copy_obj(self, api_version: str | None = None) -> dict[str, Any]:
        o: dict[str, Any] = json.loads(self.bytes_for(api_version or self.obj["apiVersion"]))
        return o


@dataclass
class Event:
    rv: int
    res: ResKey
    type: str  # ADDED MODIFIED DELETED
    entry: Entry
    old: Entry | None


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.rv = 100
        self.data: dict[ResKey, dict[str, Entry]] = {}
        self._sorted: dict[ResKey, list[str]] = {}
        self.events: deque[Event] = deque(maxlen=50_000)
        self.snapshots: OrderedDict[tuple[ResKey, int], list[Entry]] = OrderedDict()
        self.compacted_rv = 0  # continue tokens and watches older than this are expired
        self.listeners: list[Any] = []

    def next_rv(self) -> int:
        self.rv += 1
        return self.rv

    def bucket(self, res: ResKey) -> dict[str, Entry]:
        b = self.data.get(res)
        if b is None:
            b = self.data[res] = {}
        return b

    def get(self, res: ResKey, namespace: str, name: str) -> Entry | None:
        return self.data.get(res, {}).get(f"{namespace}/{name}")

    def put(self, res: ResKey, obj: dict[str, Any], rv: int, event_type: str) -> Entry:
        e = Entry(obj, rv)
        b = self.bucket(res)
        old = b.get(e.key)
        if old is None:
            self._sorted.pop(res, None)
        b[e.key] = e
        self._emit(Event(rv, res, event_type, e, old))
        return e

    def remove(self, res: ResKey, entry: Entry, rv: int) -> Entry:
        b = self.bucket(res)
        b.pop(entry.key, None)
        self._sorted.pop(res, None)
        # a deleted object's final state carries the deletion's resourceVersion
        obj = dict(entry.obj)
        obj["metadata"] = {**obj["metadata"], "resourceVersion": str(rv)}
        gone = Entry(obj, rv)
        self._emit(Event(rv, res, "DELETED", gone, entry))
        return gone

    def drop_resource(self, res: ResKey) -> None:
        self.data.pop(res, None)
        self._sorted.pop(res, None)

    def _emit(self, ev: Event) -> None:
        self.events.append(ev)
        for fn in self.listeners:
            fn(ev)

    def sorted_entries(self, res: ResKey) -> list[Entry]:
        b = self.data.get(res, {})
        keys = self._sorted.get(res)
        if keys is None:
            keys = self._sorted[res] = sorted(b)
        return [b[k] for k in keys]

    def snapshot(self, res: ResKey, rv: int) -> list[Entry] | None:
        snap = self.snapshots.get((res, rv))
        if snap is not None:
            self.snapshots.move_to_end((res, rv))
        return snap

    def keep_snapshot(self, res: ResKey, rv: int, entries: list[Entry]) -> None:
        self.snapshots[(res, rv)] = entries
        self.snapshots.move_to_end((res, rv))
        while len(self.snapshots) > 64:
            self.snapshots.popitem(last=False)

    def compact(self) -> None:
        self.compacted_rv = self.rv + 1
        self.snapshots.clear()
        self.events.clear()

    @staticmethod
    def range_for_namespace(entries: list[Entry], namespace: str) -> tuple[int, int]:
        lo = bisect.bisect_left(entries, f"{namespace}/", key=_key)
        hi = bisect.bisect_left(entries, f"{namespace}0", key=_key)  # '0' sorts right after '/'
        return lo, hi


def _key(e: Entry) -> str:
    return e.key
