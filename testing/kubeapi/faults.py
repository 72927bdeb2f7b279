"""Injected faults: matching requests answer a Status of the chosen code (429/500/503/504, with
Retry-After) or are only delayed. A fault is deliberate: unlike a bug of the server (server.py),
it never fails the test."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from aiohttp import web

from .core import ServerCore
from .status import ApiError

DEFAULT_FAULT_MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "Timeout: request did not complete within requested timeout - context deadline exceeded",
}


@dataclass
class Fault:
    method: str | None
    path_regex: str
    status: int | None
    times: int | None
    retry_after: int | float | None = None
    delay: float = 0.0
    message: str | None = None
    hits: int = 0


class FaultsMixin(ServerCore):
    """inject_fault / clear_faults, mixed into ApiServer (server.py)."""

    faults: list[Fault]

    def inject_fault(self, *, method: str | None = None, path_regex: str, status: int | None, times: int | None = 1,
                     retry_after: int | float | None = None, delay: float = 0.0,
                     message: str | None = None) -> Fault:
        """Answer matching requests with a Status of `status` (None: only delay, then serve normally).
        times=None: every matching request."""
        f = Fault(method.upper() if method else None, path_regex, status, times, retry_after, delay, message)
        self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        self.faults.clear()

    async def _apply_faults(self, request: web.Request) -> None:
        """Raise the Status of the first matching fault that has hits left (after its delay); a fault
        with status None only delays the request, which is then served."""
        for f in list(self.faults):
            if f.method and f.method != request.method:
                continue
            if not re.search(f.path_regex, request.path):
                continue
            if f.times is not None and f.hits >= f.times:
                continue
            f.hits += 1
            if f.delay:
                await asyncio.sleep(f.delay)
            if f.status is None:
                break
            headers = {}
            if f.retry_after is not None or f.status == 429:
                headers["Retry-After"] = str(int(f.retry_after) if f.retry_after is not None else 1)
            msg = f.message or DEFAULT_FAULT_MESSAGES.get(f.status, f"injected fault {f.status}")
            details = {"retryAfterSeconds": int(f.retry_after or 1)} if f.status == 429 else None
            raise ApiError(f.status, msg, details=details, headers=headers)
