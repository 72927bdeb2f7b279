"""The machinery behind the speed work: the loopback server's latency model (off in the
tests, on in bench/), its APF-style 429 under overload and the client's back-off from it,
and lists read ahead in the background (several at once, errors where they belong)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubeapi import ApiServer, LatencyModel

from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.kube.client import ConnectOptions, Kube, connect
from kubectl_runai_dr.kube.errors import Forbidden


@pytest.fixture
def kube(kubeconfig: Path) -> Iterator[Kube]:
    k = connect(ConnectOptions(kubeconfig=str(kubeconfig)))
    yield k
    k.close()


def _cm(name: str, ns: str = "default", size: int = 10) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns}, "data": {"k": "x" * size}}


def _timed(fn: Any) -> float:
    t = time.monotonic()
    fn()
    return time.monotonic() - t


# -- the latency model -------------------------------------------------------------------------
def test_the_model_is_off_by_default(apiserver: ApiServer) -> None:
    assert apiserver.latency is None


def test_requests_writes_and_big_answers_take_their_time(apiserver: ApiServer, kube: Kube) -> None:
    cms = r.CONFIGMAPS
    for i in range(20):
        apiserver.seed(_cm(f"big-{i}", size=50_000))  # about 1 MB in all
    fast_read = _timed(lambda: kube.get(cms, "big-0", "default"))
    apiserver.latency = LatencyModel(request_delay=0.3, write_delay=0.4, list_throughput=2e6)
    assert _timed(lambda: kube.get(cms, "big-1", "default")) >= 0.3 + 50_000 / 2e6
    assert _timed(lambda: kube.create(cms, _cm("new"), namespace="default")) >= 0.7
    assert _timed(lambda: list(kube.list(cms, namespace="default"))) >= 0.3 + 1_000_000 / 2e6
    assert apiserver.latency.served == 3
    apiserver.latency = None
    assert fast_read < 0.3  # the floor came from the model, not from the server


def test_concurrent_requests_wait_in_parallel(apiserver: ApiServer, kube: Kube) -> None:
    apiserver.latency = LatencyModel(request_delay=0.5)
    threads = [threading.Thread(target=kube.server_version) for _ in range(6)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert time.monotonic() - t < 1.5  # not 6 x 0.5 s
    assert apiserver.latency.peak_inflight >= 2


def test_overload_answers_429_with_retry_after_and_the_client_backs_off(
        apiserver: ApiServer, kube: Kube) -> None:
    apiserver.latency = LatencyModel(request_delay=0.4, max_inflight=1, queue_length=1,
                                     retry_after=1)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            kube.server_version()
        except BaseException as e:  # reported below
            errors.append(e)

    apiserver.clear_requests()
    threads = [threading.Thread(target=call) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    statuses = [q.status for q in apiserver.requests if q.path == "/version"]
    assert statuses.count(200) == 4  # every request got through in the end
    assert 429 in statuses  # one seat and one queue place for four: two were refused at first
    assert apiserver.latency.rejected == statuses.count(429)
    assert apiserver.latency.peak_inflight == 1


def test_a_429_of_the_model_is_a_real_apf_answer(apiserver: ApiServer) -> None:
    import json
    import urllib.error
    import urllib.request

    apiserver.latency = LatencyModel(request_delay=1.0, max_inflight=1, queue_length=0,
                                     retry_after=2)
    slow = threading.Thread(target=lambda: urllib.request.urlopen(urllib.request.Request(
        apiserver.url + "/version", headers={"Authorization": "Bearer admin-token"})).read())
    slow.start()
    time.sleep(0.3)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(urllib.request.Request(
            apiserver.url + "/api/v1/namespaces", headers={"Authorization": "Bearer admin-token"}))
    slow.join()
    assert e.value.code == 429 and e.value.headers["Retry-After"] == "2"
    body = json.loads(e.value.read())
    assert body["reason"] == "TooManyRequests" and body["details"]["retryAfterSeconds"] == 2


def test_watches_hold_no_seat(apiserver: ApiServer, kube: Kube) -> None:
    import urllib.request

    apiserver.latency = LatencyModel(request_delay=0.05, max_inflight=1, queue_length=0)
    watch = urllib.request.urlopen(urllib.request.Request(
        apiserver.url + "/api/v1/namespaces?watch=true&timeoutSeconds=5",
        headers={"Authorization": "Bearer admin-token"}))
    try:
        assert kube.server_version()  # the watch is open, the seat is free
    finally:
        watch.close()


# -- lists read ahead ----------------------------------------------------------------------------
def test_list_ahead_yields_what_a_plain_list_yields(apiserver: ApiServer, kube: Kube) -> None:
    cms = r.CONFIGMAPS
    for i in range(57):
        apiserver.seed(_cm(f"cm-{i:03d}"))
    plain = [o["metadata"]["name"] for o in kube.list(cms, namespace="default", limit=10)]
    ahead = [o["metadata"]["name"] for o in kube.list(cms, namespace="default", limit=10,
                                                      ahead=2)]
    assert ahead == plain and len(plain) == 57
    assert all(o["kind"] == "ConfigMap" for o in kube.list(cms, limit=10, ahead=1))


def test_lists_ahead_run_concurrently(apiserver: ApiServer, kube: Kube) -> None:
    apiserver.latency = LatencyModel(request_delay=0.4)
    t = time.monotonic()
    a = kube.list(r.NAMESPACES, ahead=1)
    b = kube.list(r.ROLEBINDINGS, ahead=1)
    c = kube.list(r.CLUSTERROLES, ahead=1)
    for it in (a, b, c):
        list(it)
    assert time.monotonic() - t < 1.0  # three lists in about one request's time, not 1.2 s


def test_list_ahead_raises_where_it_is_iterated(apiserver: ApiServer, kube: Kube) -> None:
    apiserver.deny(verb="list", resource="rolebindings", group="rbac.authorization.k8s.io")
    listing = kube.list(r.ROLEBINDINGS, ahead=2)  # the request goes now, the error comes later
    with pytest.raises(Forbidden):
        next(listing)


def test_an_abandoned_list_ahead_stops_its_thread(apiserver: ApiServer, kube: Kube) -> None:
    cms = r.CONFIGMAPS
    for i in range(50):
        apiserver.seed(_cm(f"cm-{i:03d}"))
    listing = kube.list(cms, namespace="default", limit=5, ahead=1)
    next(listing)
    del listing
    deadline = time.monotonic() + 5
    while any(t.name == "list-ahead" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "the reading thread did not stop"
        time.sleep(0.05)


# -- the client's window: fewer requests at once after a 429 ---------------------------------------
def test_the_window_halves_on_429_and_grows_back() -> None:
    from kubectl_runai_dr.kube.client import Window

    w = Window()
    for _ in range(8):
        w.acquire()  # no limit yet
    w.release(429)  # 8 were in flight
    assert w.limit == 4 and w.inflight == 7
    for _ in range(7):
        w.release(200)
    assert w.limit == 5  # one more after a window-full (4) of good answers
    w.acquire()
    w.release(0)  # no answer at all (connection broke): no change
    assert w.limit == 5 and w.smallest == 4


def test_a_pool_of_workers_backs_off_under_apf(apiserver: ApiServer, kube: Kube) -> None:
    apiserver.latency = LatencyModel(request_delay=0.1, max_inflight=2, queue_length=1,
                                     retry_after=1)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            for _ in range(3):
                kube.server_version()
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert apiserver.latency.rejected > 0
    assert kube.window.smallest <= 4  # it sent fewer at once after the 429s
    assert apiserver.latency.served == 8 * 3


def test_the_cli_default_concurrency_is_the_restores() -> None:
    from kubectl_runai_dr.cli import options
    from kubectl_runai_dr.components.restore_base import RestoreSettings

    assert options.DEFAULT_WORKERS == RestoreSettings().workers == 16


# -- exec stdin frames -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 5, 125, 126, 65535, 65536, 300_000])
def test_stdin_frames_are_what_the_websocket_client_would_send(n: int) -> None:
    import websocket

    from kubectl_runai_dr.kube.exec import binary_frame

    payload = (bytes(range(256)) * (n // 256 + 1))[:n]
    key = b"\x01\x82\x03\xf4"
    frame = websocket.ABNF(1, 0, 0, 0, websocket.ABNF.OPCODE_BINARY, 1, payload)
    frame.get_mask_key = lambda _n: key
    assert binary_frame(payload, key) == frame.format()
    head = len(frame.format()) - n - 4
    keys = {binary_frame(payload)[head:head + 4] for _ in range(3)}
    assert len(keys) == 3  # a fresh random mask key for each frame
