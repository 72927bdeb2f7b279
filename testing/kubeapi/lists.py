"""Lists: labelSelector and fieldSelector (per-type supported fields), limit/continue with consistent
snapshots, 410 Expired after `expire_continue_tokens()`, Table output (Accept: as=Table), and
deletecollection."""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import time
from typing import Any

from aiohttp import web

from .core import ServerCore
from .request import Target
from .selectors import Matcher, SelectorError, parse_field_selector, parse_label_selector
from .status import ApiError
from .store import Entry, Store, dumps


class ListsMixin(ServerCore):
    """Lists and deletecollection, mixed into ApiServer (server.py)."""

    def _delete_collection(self, t: Target, q: dict[str, str], opts: dict[str, Any], dry_run: bool) -> web.Response:
        with self.store.lock:
            entries = self._select(t, q)
            items = []
            for e in entries:
                r = self._delete(t.rt, e.namespace or None, e.name, opts, dry_run=dry_run)
                items.append(r if isinstance(r, Entry) else e)
            return self._list_bytes(t, items, self.store.rv, None, None)

    def _matchers(self, t: Target, q: dict[str, str]) -> tuple[Matcher, Matcher]:
        try:
            lsel = parse_label_selector(q.get("labelSelector", ""))
            fsel = parse_field_selector(q.get("fieldSelector", ""), t.rt.field_selectors, t.rt.namespaced)
        except SelectorError as e:
            raise ApiError(400, str(e)) from e
        return lsel, fsel

    def _select(self, t: Target, q: dict[str, str]) -> list[Entry]:
        lsel, fsel = self._matchers(t, q)
        entries = self.store.sorted_entries(t.rt.key)
        if t.namespace is not None:
            lo, hi = Store.range_for_namespace(entries, t.namespace)
            entries = entries[lo:hi]
        return [e for e in entries if lsel(e.obj["metadata"].get("labels") or {}) and fsel(e.obj)]

    @staticmethod
    def _encode_continue(rv: int, start: str) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, str]:
        try:
            pad = "=" * (-len(token) % 4)
            d = json.loads(base64.urlsafe_b64decode(token + pad))
            if d.get("v") != "meta.k8s.io/v1" or not isinstance(d.get("rv"), int) or not isinstance(d.get("start"), str):
                raise ValueError("bad token")
            return d["rv"], d["start"]
        except (ValueError, binascii.Error, UnicodeDecodeError) as e:
            raise ApiError(400, f"continue key is not valid: {e}", reason="BadRequest") from e

    def _list_response(self, request: web.Request, t: Target, q: dict[str, str]) -> web.Response:
        lsel, fsel = self._matchers(t, q)
        try:
            limit = int(q.get("limit") or 0)
        except ValueError as err:
            raise ApiError(400, f"invalid limit: {q.get('limit')}") from err
        cont = q.get("continue")
        has_selector = bool(q.get("labelSelector") or q.get("fieldSelector"))
        with self.store.lock:
            if cont:
                rv, start = self._decode_continue(cont)
                snap = self.store.snapshot(t.rt.key, rv)
                if rv < self.store.compacted_rv or snap is None:
                    raise ApiError(410, "The provided continue parameter is too old to display a consistent list "
                                        "result. You can start a new list without the continue parameter, or use "
                                        "the continue token in this response to retrieve the remainder of the "
                                        "results. Continuing with the provided token results in an inconsistent "
                                        "list - objects that were created, modified, or deleted between the time "
                                        "the first chunk was returned and now may show up in the list.",
                                   reason="Expired")
                entries = snap
            else:
                rv = self.store.rv
                start = ""
                entries = self.store.sorted_entries(t.rt.key)
            lo, hi = 0, len(entries)
            if t.namespace is not None:
                lo, hi = Store.range_for_namespace(entries, t.namespace)
            if start:
                import bisect

                lo = max(lo, bisect.bisect_left(entries, start, lo=lo, hi=hi, key=lambda e: e.key))
            items: list[Entry] = []
            pos = lo
            more = False
            while pos < hi:
                e = entries[pos]
                pos += 1
                if (not has_selector) or (lsel(e.obj["metadata"].get("labels") or {}) and fsel(e.obj)):
                    items.append(e)
                    if limit and len(items) >= limit:
                        break
            if limit and len(items) >= limit and pos < hi:
                # is anything left that matches?
                more = True
                if has_selector:
                    more = any(lsel(x.obj["metadata"].get("labels") or {}) and fsel(x.obj) for x in entries[pos:hi])
            token = None
            remaining = None
            if more:
                if not cont:
                    self.store.keep_snapshot(t.rt.key, rv, entries)
                token = self._encode_continue(rv, items[-1].key + "\x00")
                if not has_selector:
                    remaining = hi - pos
            accept = request.headers.get("Accept", "")
            if "as=Table" in accept:
                return self._table(t, items, rv, token, remaining, q)
            return self._list_bytes(t, items, rv, token, remaining)

    def _list_bytes(self, t: Target, items: list[Entry], rv: int, token: str | None,
                    remaining: int | None) -> web.Response:
        av = t.rt.api_version(t.version)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        with_type = t.rt.is_custom
        head = dumps({"kind": t.rt.list_kind_name, "apiVersion": av, "metadata": meta})[:-1]
        body = head + b',"items":[' + b",".join(e.bytes_for(av, with_type) for e in items) + b"]}"
        return web.Response(body=body, content_type="application/json")

    def _table(self, t: Target, items: list[Entry], rv: int, token: str | None, remaining: int | None,
               q: dict[str, str]) -> web.Response:
        cols = [{"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a "
                 "namespace.", "priority": 0},
                {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp", "priority": 0}]
        rows = []
        nowt = time.time()
        av = t.rt.api_version(t.version)
        for e in items:
            md = e.obj["metadata"]
            try:
                created = _dt.datetime.strptime(md.get("creationTimestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=_dt.timezone.utc).timestamp()
                age = _age(nowt - created)
            except ValueError:
                age = "<unknown>"
            pm = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                  "metadata": {k: v for k, v in md.items() if k != "managedFields"}}
            rows.append({"cells": [e.name, age], "object": pm})
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        del av
        return self._json({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                           "columnDefinitions": cols, "rows": rows})


def _age(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 3600 * 3:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"
