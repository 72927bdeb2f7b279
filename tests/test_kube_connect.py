"""Reaching the API server: bounded connection and TLS handshake, and the cause in words."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e import Run, cli


@pytest.fixture
def mute_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (no TLS handshake)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    return path


def _bounded_cli(limit: float, *args: str) -> tuple[Run, float]:
    """The CLI in a thread: a hang fails the test instead of stopping the suite."""
    out: list[Run] = []
    started = time.monotonic()
    t = threading.Thread(target=lambda: out.append(cli(*args)), daemon=True)
    t.start()
    t.join(limit)
    assert out, f"still running after {limit}s"
    return out[0], time.monotonic() - started


def test_a_server_that_never_completes_tls_fails_fast_with_exit_5(
        mute_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubectl_runai_dr.kube import client

    assert client.CONNECT_TIMEOUT == 10.0  # kubectl's bound on one connection attempt
    monkeypatch.setattr(client, "CONNECT_TIMEOUT", 1.0)
    monkeypatch.chdir(tmp_path)
    kc = _kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{mute_server}")
    r, took = _bounded_cli(20, "backup", "--kubeconfig", str(kc), "--no-record")
    assert r.code == 5, r.stderr
    assert took < 6
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: cannot connect: API server https://127.0.0.1:{mute_server} "
                      '(context "c") while trying to get server version: TLS handshake timed '
                      "out after 1s"], r.stderr
    assert "Traceback" not in r.stderr and not list(tmp_path.glob("*.tar.gz*"))


def test_request_timeout_shorter_than_the_connect_timeout_wins(
        mute_server: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    kc = _kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{mute_server}")
    r, took = _bounded_cli(20, "backup", "--kubeconfig", str(kc), "--no-record",
                           "--request-timeout", "1s")
    assert r.code == 5 and took < 6, r.stderr
    assert "TLS handshake timed out after 1s" in r.stderr


def test_unreachable_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for server, cause in ((f"https://127.0.0.1:{port}", "connection refused"),
                          ("https://api.no-such-cluster.invalid:6443", "DNS name not found")):
        kc = _kubeconfig(tmp_path / "kc", server)
        r, _took = _bounded_cli(30, "backup", "--kubeconfig", str(kc), "--no-record")
        assert r.code == 5, r.stderr
        assert (f"error: cannot connect: API server {server} (context \"c\") while trying "
                f"to get server version: {cause}") in r.stderr
        assert "object at 0x" not in r.stderr and "Errno" not in r.stderr


def test_opening_an_exec_stream_is_bounded_too(mute_server: int, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from kubectl_runai_dr.kube import client
    from kubectl_runai_dr.kube import exec as kexec
    from kubectl_runai_dr.kube.errors import Unreachable

    monkeypatch.setattr(client, "CONNECT_TIMEOUT", 1.0)
    kube = client.connect(client.ConnectOptions(
        kubeconfig=str(_kubeconfig(tmp_path / "kc", f"https://127.0.0.1:{mute_server}"))))
    started = time.monotonic()
    with pytest.raises(Unreachable) as info:
        kexec.open_exec(kube, "runai-backend", "db-0", ["true"])
    assert time.monotonic() - started < 5
    assert "TLS handshake timed out after 1s" in info.value.message
    assert 'exec true in pod "db-0"' in info.value.message
