"""Pod exec over websocket against the loopback API server, with the official client and kubectl."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from kubeapi import ApiServer
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from kubectl_runai_dr.kube.exec import mask_into

NS, POD = "runai-backend", "runai-backend-postgresql-0"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def core(runai_server: ApiServer, kubeconfig: Path) -> client.CoreV1Api:
    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))


def run(core: client.CoreV1Api, command: list[str], stdin: bytes | None = None, *, pod: str = POD,
        container: str | None = None, close_stdin: bool = True, timeout: float = 20) -> tuple[int | None, bytes, bytes]:
    kw = {"container": container} if container else {}
    ws = stream(core.connect_get_namespaced_pod_exec, pod, NS, command=command, stdin=stdin is not None,
                stdout=True, stderr=True, tty=False, _preload_content=False, binary=True, **kw)
    out, err = bytearray(), bytearray()
    if stdin is not None:
        for i in range(0, len(stdin), 64 * 1024):
            ws.write_stdin(stdin[i:i + 64 * 1024])
        if close_stdin:
            ws.close_channel(0)
    deadline = time.time() + timeout
    while ws.is_open() and time.time() < deadline:
        ws.update(timeout=1)
        if ws.peek_stdout():
            out += ws.read_stdout()
        if ws.peek_stderr():
            err += ws.read_stderr()
    out += ws.read_stdout() or b""
    err += ws.read_stderr() or b""
    return ws.returncode, bytes(out), bytes(err)


def test_exec_env_exit_code_and_request_log(core: client.CoreV1Api, runai_server: ApiServer) -> None:
    runai_server.set_pod_exec(NS, POD, env={"EXTRA": "1"})
    rc, out, err = run(core, ["sh", "-c", 'echo "$POSTGRES_POSTGRES_PASSWORD $POSTGRES_DATABASE $EXTRA"; echo e >&2; exit 3'])
    assert rc == 3 and err == b"e\n"
    assert runai_server.seed_info is not None
    assert out == f"{runai_server.seed_info.postgres_password} backend 1\n".encode()
    rec = [r for r in runai_server.requests if r.path.endswith("/exec")][-1]
    assert rec.query["command"][0] == "sh" and rec.status == 101 and rec.method == "GET"


def test_exec_binary_stdout_and_stdin_round_trip(core: client.CoreV1Api) -> None:
    data = os.urandom(3 * 1024 * 1024)
    rc, out, _ = run(core, ["cat"], stdin=data)
    assert rc == 0 and out == data
    rc, out, _ = run(core, ["sha256sum"], stdin=data)
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()
    rc, out, _ = run(core, ["head", "-c", str(3 * 1024 * 1024), "/dev/zero"])
    assert rc == 0 and out == bytes(3 * 1024 * 1024)


def test_exec_errors(core: client.CoreV1Api, runai_server: ApiServer) -> None:
    rc, out, _ = run(core, ["no-such-command"])
    assert rc == 127 and b"executable file not found" in out
    with pytest.raises(ApiException) as e:
        run(core, ["true"], container="nope")
    assert "400" in str(e.value) and "container nope is not valid" in str(e.value)
    with pytest.raises(ApiException) as e:
        run(core, ["true"], pod="missing")
    assert "404" in str(e.value)
    pod = runai_server.get("v1", "Pod", POD, NS)
    assert pod is not None
    pod["metadata"]["name"] = "pending"
    pod["status"] = {"phase": "Pending"}
    for k in ("uid", "resourceVersion", "ownerReferences"):
        pod["metadata"].pop(k, None)
    runai_server.seed(pod)
    with pytest.raises(ApiException) as e:
        run(core, ["true"], pod="pending")
    assert "400" in str(e.value)
    runai_server.deny(verb="create", resource="pods/exec", namespace=NS)
    with pytest.raises(ApiException) as e:
        run(core, ["true"])
    assert "403" in str(e.value)


def test_exec_unread_stdin_hangs_then_drops_without_status(core: client.CoreV1Api, runai_server: ApiServer) -> None:
    runai_server.exec_stdin_hang_timeout = 0.5
    data = os.urandom(4 * 1024 * 1024)
    t = time.time()
    try:
        rc, _, _ = run(core, ["sh", "-c", "head -c 10 >/dev/null; exit 4"], stdin=data)
    except Exception as exc:  # the connection drops: which error depends on the timing
        print(f"dropped: {type(exc).__name__}")
        rc = None
    assert rc is None
    assert time.time() - t >= 0.5
    # draining stdin keeps the real exit code
    rc, _, _ = run(core, ["sh", "-c", "head -c 10 >/dev/null; rc=4; cat >/dev/null; exit $rc"], stdin=data)
    assert rc == 4


def test_exec_v4_has_no_stdin_eof(runai_server: ApiServer, kubeconfig: Path) -> None:
    from kubernetes.stream.ws_client import WSClient, get_websocket_url

    api = config.new_client_from_config(str(kubeconfig))
    url = get_websocket_url(f"{api.configuration.host}/api/v1/namespaces/{NS}/pods/{POD}/exec"
                            "?command=cat&stdin=true&stdout=true&stderr=true")
    ws = WSClient(api.configuration, url, {"authorization": "Bearer admin-token",
                                           "sec-websocket-protocol": "v4.channel.k8s.io"},
                  capture_all=False, binary=True)
    assert ws.subprotocol == "v4.channel.k8s.io"
    ws.write_stdin(b"abc")
    ws.close_channel(0)  # a no-op over v4
    ws.update(timeout=1)
    assert ws.read_stdout() == b"abc"
    ws.run_forever(timeout=0.5)
    assert ws.is_open()  # cat still waits for more input
    ws.close()


def _kubectl() -> str | None:
    local = ROOT / ".tools" / "bin" / "kubectl"
    return str(local) if local.exists() else shutil.which("kubectl")


def test_kubectl_exec_stdin_over_websocket(runai_server: ApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    kubectl = _kubectl()
    if kubectl is None:
        pytest.skip("no kubectl")
    data = os.urandom(2 * 1024 * 1024)
    base = [kubectl, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache")]
    r = subprocess.run([*base, "exec", "-i", "-n", NS, POD, "--", "cat"], input=data, capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == data, r.stderr
    r = subprocess.run([*base, "exec", "-n", NS, POD, "--", "sh", "-c", "exit 7"], capture_output=True, timeout=30)
    assert r.returncode == 7 and b"command terminated with exit code 7" in r.stderr
    proto = [json.dumps(x.query) for x in runai_server.requests if x.path.endswith("/exec")]
    assert proto and all('"command"' in p for p in proto)


def test_exec_command_outlives_its_client(core: client.CoreV1Api, runai_server: ApiServer,
                                          tmp_path: Path) -> None:
    """As with a kubelet: a client that goes away kills nothing; the command's stdin ends and
    its output is no longer read, so a writer blocks and a reader of stdin sees the end."""
    import socket

    from kubernetes.stream.ws_client import WSClient

    def start(script: str, stdin: bool) -> tuple[WSClient, int]:
        ws = stream(core.connect_get_namespaced_pod_exec, POD, NS,
                    command=["sh", "-c", f"echo $$ > {tmp_path}/pid; {script}"], stdin=stdin,
                    stdout=True, stderr=True, tty=False, _preload_content=False, binary=True)
        ws.update(timeout=2)
        deadline = time.time() + 10
        while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text().strip():
            assert time.time() < deadline
            time.sleep(0.05)
        pid = int((tmp_path / "pid").read_text())
        (tmp_path / "pid").unlink()
        return ws, pid

    def drop(ws: WSClient) -> None:  # the client is gone: no close frame, the socket just ends
        sock = ws.sock.sock
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    writer, wpid = start("while :; do echo data; done", stdin=False)
    reader, rpid = start(f"cat >/dev/null; echo eof > {tmp_path}/eof; sleep 60", stdin=True)
    drop(writer)
    drop(reader)
    deadline = time.time() + 10
    while not (tmp_path / "eof").exists():
        assert time.time() < deadline, "stdin was not closed when the client went away"
        time.sleep(0.05)
    time.sleep(1)
    assert _alive(wpid) and _alive(rpid)  # still running
    runai_server.stop()  # the test server still cleans up what it started
    for pid in (wpid, rpid):
        deadline = time.time() + 10
        while _alive(pid):
            assert time.time() < deadline
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_exec_runs_with_a_containers_signal_mask(tmp_path: Path) -> None:
    """The `serve` command blocks SIGINT/SIGTERM in all its threads (to sigwait for them);
    an exec'd command must not inherit that, or SIGTERM could not stop it, unlike in a
    container. Reproduced here by blocking them before the server's thread starts."""
    import signal

    from kubeapi.seed import crd_docs, seed_runai

    blocked = {signal.SIGTERM, signal.SIGINT}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        srv = ApiServer()
        srv.install_crds(crd_docs())
        srv.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    try:
        seed_runai(srv, projects=1)
        api = client.CoreV1Api(config.new_client_from_config(
            str(srv.write_kubeconfig(tmp_path / "kc"))))
        # in a background subshell, as the tool's wrapper runs its helpers: a shell clears
        # its own mask but gives subshells the one it started with
        code, out, _ = run(api, ["sh", "-c", "(grep -E '^Sig(Blk|Ign)' /proc/self/status) & "
                                             "wait"])
        assert code == 0
        fields = dict(line.split(":\t") for line in out.decode().splitlines())
        assert int(fields["SigBlk"], 16) == 0, fields
        assert not int(fields["SigIgn"], 16) & (1 << (signal.SIGTERM - 1)), fields
    finally:
        srv.stop()


# -- the websocket itself: frames as a client may send them, and as it must not ------------
def _raw(runai_server: ApiServer, kubeconfig: Path, command: str, *,
         protocol: str = "v5.channel.k8s.io") -> Any:
    """A websocket-client socket on an exec of ``command`` (sh -c), for frames by hand."""
    from kubernetes.stream.ws_client import WSClient, get_websocket_url

    api = config.new_client_from_config(str(kubeconfig))
    query = urllib.parse.urlencode({"command": ["sh", "-c", command], "stdin": "true",
                                    "stdout": "true", "stderr": "true"}, doseq=True)
    url = get_websocket_url(f"{api.configuration.host}/api/v1/namespaces/{NS}/pods/{POD}/exec?{query}")
    ws = WSClient(api.configuration, url, {"authorization": "Bearer admin-token",
                                           "sec-websocket-protocol": protocol},
                  capture_all=False, binary=True)
    runai_server.exec_protocol_errors.clear()
    return ws.sock


def _frame(payload: bytes, opcode: int = 2, *, fin: bool = True, mask: bool = True,
           rsv: int = 0) -> bytes:
    """A client frame built by hand (RFC 6455 5.2)."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    body = bytearray(n)
    mask_into(memoryview(body), payload, key)
    return head + key + body


def _until_closed(sock: Any, limit: float = 20) -> tuple[bytes, dict[str, Any] | None, int | None, list[bytes]]:
    """Read until the server's close frame: stdout, the status, the close code, the pongs."""
    import websocket

    out, status, pongs = bytearray(), None, []
    sock.settimeout(limit)
    while True:
        op, fr = sock.recv_data_frame(True)
        if op == websocket.ABNF.OPCODE_PONG:
            pongs.append(fr.data)
        elif op == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(fr.data[:2], "big") if len(fr.data) >= 2 else None
            return bytes(out), status, code, pongs
        elif op == websocket.ABNF.OPCODE_BINARY and fr.data:
            if fr.data[0] == 1:
                out += fr.data[1:]
            elif fr.data[0] == 3:
                status = json.loads(fr.data[1:])


def test_exec_stdin_in_fragments_around_a_ping_and_cut_at_odd_places(
        runai_server: ApiServer, kubeconfig: Path) -> None:
    """A fragmented message with a ping between its frames, then a large frame sent a few
    bytes at a time (headers cut, the mask's phase anywhere): stdin arrives whole and in
    order, the ping is answered, v5's close frame ends the input."""
    sock = _raw(runai_server, kubeconfig, "sha256sum")
    raw = sock.sock
    big = os.urandom(300_000)
    raw.sendall(_frame(b"\x00abc", fin=False) + _frame(b"are you there?", 0x9)
                + _frame(b"def", 0x0))
    piece = _frame(b"\x00" + big)
    for i in range(0, 63, 3):  # the header and the start of the payload, 3 bytes at a time
        raw.sendall(piece[i:i + 3])
        time.sleep(0.002)
    raw.sendall(piece[63:])
    raw.sendall(_frame(b"\x00") + _frame(b"\xff\x00"))  # an empty stdin message; end of stdin
    out, status, code, pongs = _until_closed(sock)
    assert out.split()[0].decode() == hashlib.sha256(b"abcdef" + big).hexdigest()
    assert status == {"metadata": {}, "status": "Success"} and code == 1000
    assert pongs == [b"are you there?"]
    assert runai_server.exec_protocol_errors == []


@pytest.mark.parametrize(("bad", "problem"), [
    (_frame(b"\x00x", mask=False), "unmasked"),
    (_frame(b"\x00x", rsv=2), "reserved bits"),
    (_frame(b"\x00x", 0x3), "unknown opcode"),
    (_frame(b"p" * 126, 0x9), "control frame"),
    (_frame(b"ping", 0x9, fin=False), "control frame"),
    (_frame(b"\x00x", 0x0), "continuation frame outside"),
    (_frame(b"\x00x", fin=False) + _frame(b"\x00y"), "new message inside"),
    (_frame(b"\x03\xe8\xff", 0x8), "not UTF-8"),
    (_frame(b"\x03\xed", 0x8), "code 1005"),
])
def test_exec_a_client_breaking_the_protocol_gets_1002(
        runai_server: ApiServer, kubeconfig: Path, bad: bytes, problem: str) -> None:
    """A server must fail the connection on a malformed frame (RFC 6455 7.1.7): close 1002,
    and the client counts as gone (its command's input ends)."""
    sock = _raw(runai_server, kubeconfig, "cat; echo done")
    sock.sock.sendall(bad)
    out, status, code, _ = _until_closed(sock)
    assert code == 1002 and status is None and out == b""
    assert len(runai_server.exec_protocol_errors) == 1
    assert problem in runai_server.exec_protocol_errors[0]


def test_exec_stdin_waits_for_a_slow_command_in_order(runai_server: ApiServer,
                                                      kubeconfig: Path) -> None:
    """A command that reads late: its input fills, the connection is not read meanwhile
    (the client's sends stall until the command reads: more than every buffer on the way
    holds), and all of stdin arrives in order once it reads."""
    sock = _raw(runai_server, kubeconfig, "sleep 1.5; sha256sum")
    data = os.urandom(48 * 1024 * 1024)
    t = time.monotonic()
    for i in range(0, len(data), 256 * 1024):
        sock.sock.sendall(_frame(b"\x00" + data[i:i + 256 * 1024]))
    sent = time.monotonic() - t
    sock.sock.sendall(_frame(b"\xff\x00"))
    out, status, code, _ = _until_closed(sock)
    # (more than the loopback TCP buffers (up to 32 MiB here), the relay's and the input's)
    assert sent >= 1, f"48 MiB taken in {sent:.2f}s by a command still asleep"
    assert out.split()[0].decode() == hashlib.sha256(data).hexdigest()
    assert status is not None and status["status"] == "Success" and code == 1000


def test_exec_stdin_after_its_end_is_ignored_not_counted(runai_server: ApiServer,
                                                         kubeconfig: Path) -> None:
    """Input sent after v5's end of stdin reaches nobody, and it is not taken for a client
    pushing into a command that exited (which would stall the stream and lose the status)."""
    runai_server.exec_stdin_hang_timeout = 0.5
    sock = _raw(runai_server, kubeconfig, "cat; sleep 0.5")
    sock.sock.sendall(_frame(b"\x00abc") + _frame(b"\xff\x00"))
    for _ in range(8):
        sock.sock.sendall(_frame(b"\x00" + bytes(256 * 1024)))
    out, status, code, _ = _until_closed(sock)
    assert out == b"abc" and status == {"metadata": {}, "status": "Success"} and code == 1000
