"""Watches: from a resourceVersion or from now, with 410 on a compacted one; streaming lists
(sendInitialEvents=true, which needs resourceVersionMatch=NotOlderThan, else 422): the current
objects as ADDED, then a BOOKMARK annotated k8s.io/initial-events-end, as a 1.32 apiserver does.
Store events reach each watch's queue on the server's loop."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from . import validation as val
from .core import ServerCore
from .request import RECORD_KEY, Target
from .status import ApiError, invalid_error, status_body
from .store import Entry, Event, ResKey, dumps


class WatchMixin(ServerCore):
    """Watches, mixed into ApiServer (server.py)."""

    _watchers: set[tuple[ResKey, asyncio.Queue[Event | None]]]  # None: the server stops

    def _on_event(self, ev: Event) -> None:
        if not self._watchers or self._loop is None:
            return
        loop = self._loop
        for res, q in list(self._watchers):
            if res == ev.res:
                loop.call_soon_threadsafe(q.put_nowait, ev)

    async def _watch(self, request: web.Request, t: Target, q: dict[str, str]) -> web.StreamResponse:
        lsel, fsel = self._matchers(t, q)
        timeout = float(q.get("timeoutSeconds") or 1800)
        rv_param = q.get("resourceVersion") or ""
        # streaming lists (WatchList, on by default in 1.32): the current state as ADDED events, then a
        # BOOKMARK annotated k8s.io/initial-events-end; client-go 0.35 (helm 4) lists this way
        send_initial = q.get("sendInitialEvents") in ("true", "1")
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise invalid_error(t.rt, "", [val.Cause(
                "resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                "FieldValueForbidden")])
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        initial: list[tuple[str, Entry]] = []
        expired = False  # the resourceVersion to watch from is compacted away: 410
        with self.store.lock:
            key = (t.rt.key, queue)
            self._watchers.add(key)
            if rv_param in ("", "0") or send_initial:
                for e in self.store.sorted_entries(t.rt.key):
                    initial.append(("ADDED", e))
                last_rv = self.store.rv
            else:
                try:
                    start = int(rv_param)
                except ValueError as err:
                    self._watchers.discard(key)
                    raise ApiError(400, f"invalid resource version: {rv_param}") from err
                if start < self.store.compacted_rv or (self.store.events and start < self.store.events[0].rv - 1
                                                         and len(self.store.events) == self.store.events.maxlen):
                    expired = True
                else:
                    for past in self.store.events:
                        if past.res == t.rt.key and past.rv > start:
                            initial.append((past.type, past.entry))
                last_rv = max(start, self.store.rv)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Transfer-Encoding": "chunked"})
        await resp.prepare(request)
        request[RECORD_KEY].status = 200
        av = t.rt.api_version(t.version)
        ns = t.namespace

        def visible(e: Entry) -> bool:
            if ns is not None and e.namespace != ns:
                return False
            return lsel(e.obj["metadata"].get("labels") or {}) and fsel(e.obj)

        async def send(typ: str, e: Entry) -> None:
            await resp.write(b'{"type":"' + typ.encode() + b'","object":' + e.bytes_for(av) + b"}\n")

        try:
            if expired:
                st = status_body(410, "Expired", f"too old resource version: {rv_param} ({self.store.rv})")
                await resp.write(dumps({"type": "ERROR", "object": st}) + b"\n")
                return resp
            for typ, e in initial:
                if visible(e):
                    await send(typ, e)
            if send_initial:
                mark = {"kind": t.rt.kind, "apiVersion": av, "metadata": {
                    "resourceVersion": str(last_rv), "annotations": {"k8s.io/initial-events-end": "true"}}}
                await resp.write(dumps({"type": "BOOKMARK", "object": mark}) + b"\n")
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(queue.get(), left)
                except asyncio.TimeoutError:
                    break
                if ev is None:
                    break
                if ev.rv <= last_rv:
                    continue
                last_rv = ev.rv
                now_vis = visible(ev.entry)
                was_vis = ev.old is not None and visible(ev.old)
                if ev.type == "MODIFIED" and was_vis and not now_vis:
                    await send("DELETED", ev.entry)
                elif ev.type == "MODIFIED" and now_vis and not was_vis:
                    await send("ADDED", ev.entry)
                elif now_vis:
                    await send(ev.type, ev.entry)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(key)
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp
