"""A latency model: the loopback server answering as slowly as a real API server, and
rejecting with 429 + Retry-After under overload as API Priority and Fairness (APF) does.

Off by default (`srv.latency is None`: the test suite runs at the loopback server's own
speed). Benchmarks turn it on: `srv.latency = LatencyModel()`, or settings of their own.

Each request that is not long-running (watches, exec and the health endpoints are left
alone) is answered no sooner than

    request_delay  (+ write_delay for POST, PUT, PATCH and DELETE)  +  len(answer) / list_throughput

seconds after it arrived; when the loopback server itself took longer, nothing is added
(the model is a floor, not a surcharge). The delay is slept on the server's event loop, so
concurrent requests wait in parallel, as they would on a real server, until the seats run
out: with `max_inflight` set, at most that many requests are served at once (APF's seats
of the priority level), up to `queue_length` more wait for a seat in arrival order, and a
request beyond that, or one that waited `queue_timeout` seconds, is rejected with 429
Too Many Requests, `Retry-After: retry_after`, the way APF rejects.

The defaults are calibrated to a real API server (Kubernetes 1.36, etcd on the same
2-core machine, 2,000 namespaces and 14,000 role bindings, 13.5 MB): raw HTTPS lists of
them took 0.24-0.39 s with curl, and the official Python client's paginated list of the role
bindings (pages of 500) 1.17 s. With the defaults, the same lists from the loopback server
take 0.27-0.28 s with curl (7.2 MB: its objects carry no managedFields, hence the lower
bytes per second) and 1.21-1.30 s with the Python client; bench/calibrate_latency.py
prints these figures. A write adds an etcd commit: a few milliseconds on that machine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from .status import ApiError

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
APF_MESSAGE = "Too many requests, please try again later."


@dataclass
class LatencyModel:
    """How slowly the server answers, and how many requests it serves at once.
    Counters (`served`, `rejected`, `peak_inflight`) say what happened."""

    request_delay: float = 0.003  # seconds, every request (TLS, authn/authz, admission, encoding)
    write_delay: float = 0.004  # seconds more for a write (the etcd commit)
    list_throughput: float = 30e6  # bytes of answer per second (a list's encoding)
    max_inflight: int | None = None  # APF seats; None: unbounded, never 429
    queue_length: int = 50  # requests that may wait for a seat; more are rejected (429)
    queue_timeout: float = 15.0  # seconds a request may wait for a seat before 429
    retry_after: int = 1  # seconds, the Retry-After of a 429
    served: int = 0
    rejected: int = 0
    peak_inflight: int = 0
    _inflight: int = field(default=0, repr=False)
    _waiting: int = field(default=0, repr=False)
    _cond: asyncio.Condition | None = field(default=None, repr=False)

    def floor(self, method: str, answer_bytes: int) -> float:
        """Seconds the answer takes at least, after the request arrived."""
        t = self.request_delay + (self.write_delay if method in WRITE_METHODS else 0.0)
        if self.list_throughput > 0:
            t += answer_bytes / self.list_throughput
        return t

    def reset_counters(self) -> None:
        self.served = self.rejected = self.peak_inflight = 0

    def _reject(self) -> ApiError:
        self.rejected += 1
        return ApiError(429, APF_MESSAGE, reason="TooManyRequests",
                        details={"retryAfterSeconds": self.retry_after},
                        headers={"Retry-After": str(self.retry_after)})

    async def _acquire(self) -> None:
        if self.max_inflight is None:
            self._inflight += 1
            self.peak_inflight = max(self.peak_inflight, self._inflight)
            return
        if self._cond is None:
            self._cond = asyncio.Condition()
        cond = self._cond
        async with cond:
            if self._inflight >= self.max_inflight:
                if self._waiting >= self.queue_length:
                    raise self._reject()
                self._waiting += 1
                try:
                    await asyncio.wait_for(
                        cond.wait_for(lambda: self._inflight < (self.max_inflight or 0)),
                        self.queue_timeout)
                except TimeoutError:
                    raise self._reject() from None
                finally:
                    self._waiting -= 1
            self._inflight += 1
            self.peak_inflight = max(self.peak_inflight, self._inflight)

    async def _release(self) -> None:
        self._inflight -= 1
        if self._cond is not None:
            async with self._cond:
                self._cond.notify(1)

    async def serve(self, method: str,
                    handler: Callable[[], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """Run `handler` under the model: a seat (or 429), then the answer no sooner than
        its floor."""
        start = time.monotonic()
        await self._acquire()
        try:
            try:
                resp = await handler()
            except ApiError as e:
                resp = e.response()
            body = getattr(resp, "body", None)
            size = len(body) if isinstance(body, (bytes, bytearray)) else 0
            wait = self.floor(method, size) - (time.monotonic() - start)
            if wait > 0:
                await asyncio.sleep(wait)
            self.served += 1
            return resp
        finally:
            await self._release()
