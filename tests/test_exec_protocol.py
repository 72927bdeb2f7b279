"""Which exec protocol a command fed an input of known size goes over (kubectl_runai_dr.kube.exec):
v5 alone first, whose close frame ends the input; a server without v5 gets the command again
over v4 behind `head -c SIZE`. Against the loopback API server, with real commands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubeapi import ApiServer

from kubectl_runai_dr.kube import errors as ke
from kubectl_runai_dr.kube import exec as kexec
from kubectl_runai_dr.kube.client import ConnectOptions, Kube, connect

NS, POD = "runai-backend", "runai-backend-postgresql-0"
V4 = ("v4.channel.k8s.io",)


@pytest.fixture
def kube(runai_server: ApiServer, kubeconfig: Path) -> Iterator[Kube]:
    runai_server.clear_requests()
    runai_server.exec_protocol_errors.clear()
    yield connect(ConnectOptions(kubeconfig=str(kubeconfig)))
    runai_server.exec_protocols = ("v5.channel.k8s.io", "v4.channel.k8s.io")
    runai_server.exec_no_protocol = False
    assert runai_server.exec_protocol_errors == []  # the client's frames were all well-formed


def execs(srv: ApiServer) -> list[tuple[int | None, list[str]]]:
    return [(r.status, r.query.get("command", [])) for r in srv.requests
            if r.path.endswith("/exec")]


class Source:
    """Chunks that note whether they were read to their end (where a bundle's member checks
    its checksum)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.finished = chunks, False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        self.finished = True


def count_bytes(kube: Kube, data: Source, size: int) -> kexec.ExecResult:
    sink = kexec._Tail(limit=1 << 20)
    return kexec.run(kube, NS, POD, ["wc", "-c"], stdin=data, stdin_size=size, stdout=sink,
                     keep_stdout_tail=64)


def test_v5_feeds_the_command_directly_and_cuts_at_the_size(kube: Kube,
                                                            runai_server: ApiServer) -> None:
    src = Source([b"a" * 70_000, b"b" * 70_000])
    res = count_bytes(kube, src, 100_000)
    assert res.ok and res.protocol == kexec.V5 and res.stdout_tail.strip() == b"100000"
    assert src.finished  # read to its end, the rest not sent
    [(status, command)] = execs(runai_server)
    assert status == 101 and command == ["wc", "-c"]


def test_without_v5_the_command_goes_over_v4_behind_head_once_refused(
        kube: Kube, runai_server: ApiServer) -> None:
    runai_server.exec_protocols = V4
    for _ in range(2):
        res = count_bytes(kube, Source([b"x" * 5000]), 5000)
        assert res.ok and res.protocol == V4[0] and res.stdout_tail.strip() == b"5000"
    statuses = [(s, c[:3]) for s, c in execs(runai_server)]
    head = ["sh", "-c", 'head -c "$0" | "$@"']
    # the bare 403 of a kubelet's handshake, once; then v4 behind head -c, remembered
    assert statuses == [(403, ["wc", "-c"]), (101, head), (101, head)]


def test_a_server_choosing_no_protocol_is_not_taken_for_v5(kube: Kube,
                                                          runai_server: ApiServer) -> None:
    runai_server.exec_no_protocol = True
    res = count_bytes(kube, Source([b"y" * 3000]), 3000)
    assert res.ok and res.stdout_tail.strip() == b"3000"
    # the probe's connection was dropped (its command saw no input and the end of it);
    # the command then went behind head -c, which needs no close frame
    assert [c[:2] for _, c in execs(runai_server)] == [["wc", "-c"], ["sh", "-c"]]


def test_when_the_fallback_is_refused_too_its_error_is_reported(
        kube: Kube, runai_server: ApiServer) -> None:
    """A 403 that was not about the protocol after all: the user sees a Forbidden error
    naming pods/exec, not the probe's internal refusal."""
    runai_server.exec_protocols = ()
    with pytest.raises(ke.Forbidden) as err:
        count_bytes(kube, Source([b"z"]), 1)
    assert "pods/exec" in str(err.value) or "exec" in str(err.value.hint or "")
    assert [s for s, _ in execs(runai_server)] == [403, 403]
    assert not kube.exec_v4_only  # nothing learnt: the fallback failed too


def test_rbac_forbidden_is_not_taken_for_a_refused_protocol(
        kube: Kube, runai_server: ApiServer) -> None:
    runai_server.deny(verb="create", resource="pods/exec", namespace=NS)
    try:
        with pytest.raises(ke.Forbidden):
            count_bytes(kube, Source([b"z"]), 1)
        assert [s for s, _ in execs(runai_server)] == [403]  # no second request
    finally:
        runai_server.clear_denies()
