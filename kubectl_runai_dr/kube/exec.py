"""Run a command in a pod through the exec API, streaming stdin/stdout frame by frame.

The official client's ``stream()`` helpers accumulate output (``update()`` appends every
frame to one buffer, ``websocket_call`` keeps a second copy) and decode it as UTF-8 unless
``binary=True``: unusable for a multi-gigabyte ``pg_dump``. This module opens the same
websocket the client would (``create_websocket`` with the client's configuration: TLS,
client certificates, proxy, and the ``authorization`` header produced by its auth
settings, refreshed tokens included) and then speaks the frames itself: the server's are
read with large reads (a frame larger than 1 MiB comes in pieces), stdout goes straight
to a sink, and stdin frames are built and masked in one pass. Memory stays at one piece
whatever the size of the output.

Protocol: ``v5.channel.k8s.io`` preferred (it has the close frame that ends stdin), then
``v4.channel.k8s.io``. Byte 0 of each frame is the channel: 0 stdin, 1 stdout, 2 stderr,
3 the final Status (exit code), 255 close (v5). A command fed an input of known size
(``run(stdin_size=...)``) is asked for over v5 alone and reads its input as it comes; a
server without v5 (Kubernetes before 1.30: the kubelet refuses the upgrade) gets it again
over v4 behind ``head -c SIZE``, and the client remembers that server as v4-only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from kubectl_runai_dr import errors as e
from kubectl_runai_dr.kube import errors as ke
from kubectl_runai_dr.kube.errors import clean_text, error_from_response
from kubectl_runai_dr.kube.resources import PODS

if TYPE_CHECKING:
    import websocket
else:
    class _LazyModule:
        """The websocket client, imported on first use: importing this module (the
        component registry does, for help and completion) costs nothing."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            import importlib

            return getattr(importlib.import_module(self._name), attr)

    websocket = _LazyModule("websocket")

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
STDIN_CHUNK = 256 * 1024
STDERR_TAIL = 8 * 1024
_STATUS_MAX = 1024 * 1024  # a Status longer than this is cut (a broken server's)


class _ProtocolRefused(Exception):
    """The server refused an upgrade offering only the protocols asked for."""


class Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> Any: ...


@dataclass
class ExecResult:
    """How the command ended. ``exit_code`` is None when no status arrived (the connection
    broke, the container restarted): the command's outcome is then unknown."""

    exit_code: int | None
    stderr_tail: str
    stdout_bytes: int = 0
    protocol: str = ""
    status_message: str = ""
    stdout_tail: bytes = b""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        """One line: how it ended, for error messages."""
        if self.exit_code is None:
            why = self.status_message or "the connection ended without an exit status"
            return f"did not finish ({why})"
        if self.exit_code == 0:
            return "succeeded"
        return f"exited with code {self.exit_code}"


@dataclass
class _Tail:
    """The last ``limit`` bytes written (stderr for messages), bounded."""

    limit: int = STDERR_TAIL
    data: bytearray = field(default_factory=bytearray)

    def write(self, chunk: bytes | memoryview) -> None:
        self.data += chunk
        if len(self.data) > 2 * self.limit:
            del self.data[: len(self.data) - self.limit]

    def text(self) -> str:
        """The tail as text, control characters removed (it is the remote side's)."""
        return clean_text(bytes(self.data[-self.limit:]).decode("utf-8", "replace"),
                          limit=self.limit, keep_end=True)


_COMMAND_IN_MESSAGE = re.compile(r"error executing command \[.*\],?\s*", re.S)


def without_command(message: str) -> str:
    """A kubelet's exec message without the command line it quotes (the tool's wrapper
    script: dozens of lines that hide the cause): ``command terminated with non-zero exit
    code: error executing command [sh -c …], exit code 2`` → ``command terminated with
    non-zero exit code: exit code 2``."""
    return _COMMAND_IN_MESSAGE.sub("", message).strip()


def parse_status(data: bytes) -> tuple[int | None, str]:
    """The exit code and message of a channel-3 Status (pure).

    ``Success`` → 0; ``Failure`` with an ``ExitCode`` cause → that code; any other
    Failure (command not found, container gone) → (None, its message)."""
    try:
        status = json.loads(data)
    except ValueError:
        return None, clean_text(data.decode("utf-8", "replace"), limit=500)
    if not isinstance(status, dict):
        return None, clean_text(str(status), limit=500)
    if status.get("status") == "Success":
        return 0, ""
    message = clean_text(without_command(str(status.get("message", ""))), limit=1000)
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message", "")), message
            except ValueError:
                break
    return None, message or "the command failed to start"


def exec_query(command: Sequence[str], *, container: str | None, stdin: bool,
               stdout: bool = True, stderr: bool = True) -> list[tuple[str, str]]:
    """The exec request's query parameters (pure). The command's arguments are visible
    in the API server's audit log: never put a secret in ``command``."""
    query = [("command", c) for c in command]
    if container:
        query.append(("container", container))
    query += [("stdin", "true" if stdin else "false"),
              ("stdout", "true" if stdout else "false"),
              ("stderr", "true" if stderr else "false"),
              ("tty", "false")]
    return query


def negotiated_protocol(sock: Any) -> str:
    """The subprotocol the server chose (websocket-client only records it when told the
    list up front, so read the handshake's response header as the official client does)."""
    proto = getattr(sock, "subprotocol", None)
    if proto:
        return str(proto)
    for k, v in (sock.getheaders() or {}).items():
        if k.lower() == "sec-websocket-protocol":
            return str(v).strip()
    return ""


def _frame_head(n: int) -> bytes:
    """The header of a final, masked binary frame of ``n`` payload bytes (the key follows)."""
    if n < 126:
        return bytes([0x82, 0x80 | n])
    if n < 1 << 16:
        return bytes([0x82, 0x80 | 126]) + n.to_bytes(2, "big")
    return bytes([0x82, 0x80 | 127]) + n.to_bytes(8, "big")


def mask_into(out: memoryview, payload: bytes | bytearray | memoryview, key: bytes,
              phase: int = 0) -> None:
    """Write ``payload`` XOR the 4-byte mask ``key`` into ``out`` (RFC 6455 5.3), starting
    at byte ``phase`` of the key (the payload's offset in its frame). One pass in C: the
    key repeated to the payload's length, XORed by pycryptodome's ``strxor``."""
    n = len(payload)
    if n == 0:
        return
    from Crypto.Util.strxor import strxor

    phase %= 4
    key = key[phase:] + key[:phase]
    mask = memoryview(key * (n // 4 + 1))[:n]
    strxor(memoryview(payload), mask, output=out[:n])


def binary_frame(payload: bytes | bytearray | memoryview, key: bytes | None = None) -> bytes:
    """One final binary websocket frame from a client: masked with a random key
    (RFC 6455 5.3)."""
    head = _frame_head(len(payload))
    key = os.urandom(4) if key is None else key
    frame = bytearray(len(head) + 4 + len(payload))
    frame[:len(head)] = head
    frame[len(head):len(head) + 4] = key
    mask_into(memoryview(frame)[len(head) + 4:], payload, key)
    return bytes(frame)


class _FrameReader:
    """The server's frames, read from the connection's socket with large ``recv_into``s.

    Frame headers come out of a buffer (no call per header field); a payload is read into a
    buffer of its own (no copy but the one out of the read buffer), at most ``READ_MAX``
    bytes at a time, so a frame of any size costs bounded memory. What it enforces, as
    RFC 6455 requires of a client: no reserved bits, no masked frames from the server,
    control frames final and short, continuation frames only inside a message."""

    BUFFER = 256 * 1024
    READ_MAX = 1024 * 1024

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self._buf = bytearray(self.BUFFER)
        self._view = memoryview(self._buf)
        self._start = self._end = 0
        self.opcode = 0  # of the frame being read
        self.fin = True
        self.remaining = 0  # payload bytes of that frame not yet read
        self.in_message = False  # a fragmented data message is open

    def _recv_into(self, view: memoryview) -> int:
        try:
            n = int(self.sock.recv_into(view, len(view)))
        except TimeoutError as exc:
            raise websocket.WebSocketTimeoutException(str(exc) or "timed out") from exc
        except ssl.SSLError as exc:
            if "timed out" in str(exc):
                raise websocket.WebSocketTimeoutException(str(exc)) from exc
            raise
        if n == 0:
            raise websocket.WebSocketConnectionClosedException(
                "Connection to remote host was lost.")
        return n

    def _need(self, n: int) -> memoryview:
        """``n`` buffered bytes (n <= 14), reading more as needed."""
        while self._end - self._start < n:
            if self._start:  # what is left (a partial header) moves to the front
                left = self._end - self._start
                self._buf[:left] = self._buf[self._start:self._end]
                self._start, self._end = 0, left
            self._end += self._recv_into(self._view[self._end:])
        return self._view[self._start:self._start + n]

    def next_frame(self) -> None:
        """Read the next frame's header: sets opcode, fin and remaining."""
        head = self._need(2)
        b0, b1 = head[0], head[1]
        if b0 & 0x70:
            raise websocket.WebSocketProtocolException("rsv is not implemented, yet")
        if b1 & 0x80:
            raise websocket.WebSocketProtocolException("a frame from the server is masked")
        opcode, fin, n, size = b0 & 0x0F, bool(b0 & 0x80), b1 & 0x7F, 2
        if n == 126:
            n, size = int.from_bytes(self._need(4)[2:4], "big"), 4
        elif n == 127:
            n, size = int.from_bytes(self._need(10)[2:10], "big"), 10
            if n >> 63:
                raise websocket.WebSocketProtocolException("invalid frame length")
        self._start += size
        if opcode >= 8:
            if opcode not in (8, 9, 10):
                raise websocket.WebSocketProtocolException(f"Invalid opcode {opcode!r}")
            if not fin or n > 125:
                raise websocket.WebSocketProtocolException("Invalid control frame.")
        elif opcode == 0:
            if not self.in_message:
                raise websocket.WebSocketProtocolException("Illegal frame")
        elif opcode in (1, 2):
            if self.in_message:
                raise websocket.WebSocketProtocolException("Illegal frame")
        else:
            raise websocket.WebSocketProtocolException(f"Invalid opcode {opcode!r}")
        if opcode < 8:
            self.in_message = not fin
        self.opcode, self.fin, self.remaining = opcode, fin, n

    def read(self, limit: int | None = None) -> bytearray:
        """Up to ``limit`` (default READ_MAX) bytes of the current frame's payload, in a
        buffer that belongs to the caller."""
        n = min(self.remaining, limit or self.READ_MAX)
        out = bytearray(n)
        view = memoryview(out)
        have = min(n, self._end - self._start)
        if have:
            view[:have] = self._view[self._start:self._start + have]
            self._start += have
        while have < n:
            if n - have >= self.BUFFER // 2:  # large: straight into the caller's buffer
                have += self._recv_into(view[have:])
            else:
                self._need(1)
                take = min(n - have, self._end - self._start)
                view[have:have + take] = self._view[self._start:self._start + take]
                self._start += take
                have += take
        self.remaining -= n
        return out


class ExecStream:
    """One open exec session. Read with :meth:`recv`; write stdin with :meth:`send`.

    After the handshake the websocket client only writes control frames (close, pong):
    stdin frames are built here, and the server's frames are read by a
    :class:`_FrameReader` over the same socket."""

    def __init__(self, sock: websocket.WebSocket, *, what: str) -> None:
        self.sock = sock
        self.what = what
        self.protocol = negotiated_protocol(sock)
        self.status: bytes | None = None
        self.closed = False
        self._send_lock = threading.Lock()
        self._frame = bytearray()  # the stdin frame being sent, reused
        self._reader = _FrameReader(sock.sock) if sock.sock is not None else None
        self._channel: int | None = None  # of the data message being read

    @property
    def can_close_stdin(self) -> bool:
        return self.protocol == V5

    def send(self, data: bytes | memoryview) -> None:
        """Write stdin, in frames of at most STDIN_CHUNK bytes. Each frame is built here in
        one buffer (header, a fresh random key, the payload masked on its way in) and
        written with one ``sendall``: the websocket client's own send copies the rest of
        the frame again after every partial write of a TLS socket (a record of 16 KiB)."""
        view = memoryview(data)
        with self._send_lock:
            for i in range(0, len(view), STDIN_CHUNK):
                part = view[i:i + STDIN_CHUNK]
                head = _frame_head(1 + len(part))
                key = os.urandom(4)
                size = len(head) + 5 + len(part)
                if len(self._frame) < size:
                    self._frame = bytearray(max(size, len(head) + 5 + STDIN_CHUNK))
                frame = memoryview(self._frame)
                at = len(head)
                frame[:at] = head
                frame[at:at + 4] = key
                frame[at + 4] = STDIN ^ key[0]
                mask_into(frame[at + 5:], part, key, phase=1)
                with self.sock.lock:
                    raw = self.sock.sock
                    if raw is None:
                        raise websocket.WebSocketConnectionClosedException(
                            "socket is already closed.")
                    raw.sendall(frame[:size])

    def close_stdin(self) -> bool:
        """End stdin (v5 close frame). Returns False on v4, which has no end-of-input."""
        if not self.can_close_stdin:
            return False
        with self._send_lock:
            self.sock.send(bytes([CLOSE, STDIN]), opcode=websocket.ABNF.OPCODE_BINARY)
        return True

    def recv(self) -> tuple[int, memoryview] | None:
        """The next piece of data as (channel, payload), or None when the stream has ended.

        A large frame (or a fragmented message) comes in several pieces of one channel;
        the channel-3 Status is read whole (and kept in ``status``). Pings are answered."""
        reader = self._reader
        if reader is None:
            self.closed = True
        try:
            while not self.closed and reader is not None:
                if reader.remaining == 0:
                    reader.next_frame()
                    if reader.opcode >= 8:
                        self._control(reader.opcode, bytes(reader.read()))
                        continue
                    if reader.opcode != 0:  # a new message: its first byte is the channel
                        self._channel = None
                    if reader.remaining == 0:
                        continue
                if self._channel is None:
                    self._channel = reader.read(1)[0]
                channel = self._channel
                if channel == STATUS:
                    self.status = self._read_status(reader)
                    return channel, memoryview(self.status)
                if reader.remaining:
                    return channel, memoryview(reader.read())
        except (websocket.WebSocketConnectionClosedException, OSError):
            self.closed = True
        return None

    def _read_status(self, reader: _FrameReader) -> bytes:
        """The rest of the Status message (cut at _STATUS_MAX)."""
        status = bytearray()
        while True:
            while reader.remaining:
                status += reader.read()[:max(0, _STATUS_MAX - len(status))]
            if reader.fin:
                self._channel = None
                return bytes(status)
            self._next_data_frame(reader)

    def _next_data_frame(self, reader: _FrameReader) -> None:
        """The next frame of the message being read, answering control frames between."""
        while True:
            reader.next_frame()
            if reader.opcode < 8:
                return
            self._control(reader.opcode, bytes(reader.read()))
            if self.closed:
                raise websocket.WebSocketConnectionClosedException("closed by the server")

    def _control(self, opcode: int, data: bytes) -> None:
        if opcode == websocket.ABNF.OPCODE_PING:
            self.sock.pong(data)
        elif opcode == websocket.ABNF.OPCODE_CLOSE:
            self.closed = True
            with contextlib.suppress(Exception):  # the connection may be gone already
                self.sock.send_close()

    def read_until(self, marker: bytes, *, limit: int = 64 * 1024 * 1024) -> tuple[bytes, str]:
        """Read stdout until it ends with ``marker`` (an interactive session's prompt).

        Returns (stdout, stderr). Raises ComponentError when the stream ends first."""
        out = bytearray()
        err = _Tail()
        while not out.endswith(marker):
            try:
                item = self.recv()
            except websocket.WebSocketTimeoutException as exc:
                self.abort()
                raise e.ComponentError(
                    f"{self.what}: no answer for {self.sock.gettimeout():g}s (--request-timeout)"
                    + (f": {err.text().strip()[-1000:]}" if err.data else ""),
                    hint="a query may be waiting for a lock another session holds "
                         "(--db-lock-wait-timeout bounds that wait); check the database "
                         "server") from exc
            if item is None or item[0] == STATUS:
                code, msg = parse_status(self.status) if self.status else (None, "")
                how = f"exit code {code}" if code is not None else (
                    msg or "the connection ended without an exit status")
                cause = err.text().strip()[-2000:] or "(no error output)"
                # the cause first (psql's own words, line breaks kept), then how it ended
                raise e.ComponentError(f"{self.what} ended early: {cause} ({how})",
                                       hint="check the database server and the pod's logs")
            channel, data = item
            if channel == STDOUT:
                out += data
                if len(out) > limit:
                    raise e.ComponentError(f"{self.what}: answer larger than {limit} bytes")
            elif channel == STDERR:
                err.write(data)
        return bytes(out[: len(out) - len(marker)]), err.text()

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):  # closing a broken socket: nothing to do
            self.sock.close(timeout=1)

    def abort(self) -> None:
        """Tear the connection down without ending stdin (the command sees a broken pipe)."""
        self.closed = True
        with contextlib.suppress(Exception):
            self.sock.shutdown()


def bounded_stdin_command(command: Sequence[str], size: int) -> list[str]:
    """``command`` fed exactly ``size`` bytes of stdin, so it needs no end-of-input.

    Exec protocol v4 (Kubernetes before 1.30) cannot end stdin; ``head -c`` stops after the
    known size instead. The pipeline's exit code is the command's. If the stream breaks
    early, ``head`` sees the end of its input and the command a truncated one.
    """
    return ["sh", "-c", 'head -c "$0" | "$@"', str(size), *command]


def _websocket(configuration: Any, url: str, headers: Sequence[str], *,
               connect_timeout: float) -> websocket.WebSocket:
    """The client's websocket (its TLS settings, client certificates and proxy, as the
    official ``create_websocket``), with a bound on connecting and the handshake."""
    import certifi
    from kubernetes.stream.ws_client import websocket_proxycare

    if url.startswith("wss://") and configuration.verify_ssl:
        sslopt: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED,
                                  "ca_certs": configuration.ssl_ca_cert or certifi.where()}
        if configuration.assert_hostname is not None:
            sslopt["check_hostname"] = configuration.assert_hostname
    else:
        sslopt = {"cert_reqs": ssl.CERT_NONE}
    if configuration.cert_file:
        sslopt["certfile"] = configuration.cert_file
    if configuration.key_file:
        sslopt["keyfile"] = configuration.key_file
    if configuration.tls_server_name:
        sslopt["server_hostname"] = configuration.tls_server_name
    sock = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=False)
    opts: dict[str, Any] = {"header": list(headers), "timeout": connect_timeout}
    if configuration.proxy or configuration.proxy_headers:
        opts = websocket_proxycare(opts, configuration, url, None)
    sock.connect(url, **opts)
    return sock


def open_exec(kube: Any, namespace: str, pod: str, command: Sequence[str], *,
              container: str | None = None, stdin: bool = False,
              timeout: float | None = None,
              protocols: Sequence[str] = (V5, V4), probe: bool = False) -> ExecStream:
    """Open ``pods/exec`` as a websocket (v5, else v4) with the client's credentials.

    Connecting (TCP, TLS, the upgrade) is bounded by the client's connect timeout; each
    read afterwards by ``timeout`` (None: a read may wait as long as the command runs).
    With ``probe`` (``protocols`` narrowed to v5), a refused upgrade, or a server choosing
    no protocol offered, raises :class:`_ProtocolRefused`."""
    from kubernetes.stream.ws_client import get_websocket_url

    api = kube.api
    path = PODS.path(namespace, pod, "exec")
    _method, url, headers, _body, _post = api.param_serialize(
        "GET", path, query_params=exec_query(command, container=container, stdin=stdin),
        header_params={}, auth_settings=["BearerToken"])
    hdrs = [f"{k.lower()}: {v}" for k, v in headers.items() if k.lower() == "authorization"]
    hdrs.append(f"sec-websocket-protocol: {','.join(protocols)}")
    what = f'exec {command[0]} in pod "{pod}" (namespace "{namespace}")'
    connect_timeout = getattr(kube, "connect_timeout", None) or 10.0
    try:
        sock = _websocket(api.configuration, get_websocket_url(url), hdrs,
                          connect_timeout=connect_timeout)
    except websocket.WebSocketBadStatusException as exc:
        if probe and _refuses_protocol(exc.status_code, exc.resp_body):
            raise _ProtocolRefused(protocols[0]) from exc
        raise error_from_response(
            exc.status_code, exc.resp_body or b"", verb="create", resource="pods/exec",
            namespace=namespace, name=pod, context=kube.context, server=kube.server,
            retry_after=None) from exc
    except (websocket.WebSocketException, OSError) as exc:
        err = ke.unreachable(exc, server=kube.server, context=kube.context, verb="create",
                             resource="pods/exec", namespace=namespace, name=pod,
                             connect_timeout=connect_timeout, read_timeout=connect_timeout)
        err.message = f"{what}: {err.message}"
        err.hint = (f"{err.hint}; check also that exec is allowed "
                    "(`kubectl auth can-i create pods/exec`)")
        raise err from exc
    sock.settimeout(timeout)
    stream = ExecStream(sock, what=what)
    if probe and stream.protocol not in protocols:
        # upgraded without a protocol offered (an old server's default): the command has
        # started, and no input reaches it; dropping the connection ends its stdin
        stream.abort()
        raise _ProtocolRefused(protocols[0])
    return stream


def _refuses_protocol(status: int, body: bytes | str | None) -> bool:
    """Whether a failed upgrade may be a refusal of the offered subprotocols: the kubelet's
    websocket handshake answers 403 with an empty body; other servers name the protocol.
    A Status with another reason (RBAC's Forbidden, a pod not running) is not one. A wrong
    guess costs one more request: the fallback's own error is the one reported."""
    if status not in (400, 403):
        return False
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    if not text.strip():
        return status == 403
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("kind") == "Status":
        text = str(doc.get("message", ""))
    return "protocol" in text.lower()


def _open_sized(kube: Any, namespace: str, pod: str, command: Sequence[str], size: int, *,
                container: str | None, timeout: float | None) -> ExecStream:
    """A stream for ``command`` fed exactly ``size`` bytes: over v5 the command reads its
    input as it comes and the close frame ends it; a server without v5 gets the command
    behind ``head -c SIZE`` over v4 (one more process and pipe in the pod, about a second
    of CPU per GB); once it answers so, the client (``kube.exec_v4_only``) does not ask it
    for v5 again. The fallback offers both protocols (``head -c`` works over either), and
    its errors are the ones reported (RBAC's, say, when the probe's 403 was not about the
    protocol after all)."""
    if not getattr(kube, "exec_v4_only", False):
        try:
            return open_exec(kube, namespace, pod, command, container=container, stdin=True,
                             timeout=timeout, protocols=(V5,), probe=True)
        except _ProtocolRefused:
            pass
    stream = open_exec(kube, namespace, pod, bounded_stdin_command(command, size),
                       container=container, stdin=True, timeout=timeout)
    if stream.protocol != V5:
        kube.exec_v4_only = True
    return stream


def _capped(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    """At most ``size`` bytes of ``chunks``: what a command fed a known size reads over v5,
    as ``head -c`` cuts it over v4. The rest is still read, not sent: a source checks
    itself (its checksum) when it reaches its end."""
    left = size
    for chunk in chunks:
        if left <= 0:
            continue
        if len(chunk) > left:
            chunk = bytes(memoryview(chunk)[:left])
        left -= len(chunk)
        yield chunk


def run(kube: Any, namespace: str, pod: str, command: Sequence[str], *,
        container: str | None = None, stdout: Sink | None = None,
        stdin: Iterable[bytes] | None = None, stdin_size: int | None = None,
        on_stdout: Callable[[int], None] | None = None,
        keep_stdout_tail: int = 0, timeout: float | None = None,
        end_stdin: bool = True) -> ExecResult:
    """Run ``command`` in the pod and wait for it.

    stdout frames go straight to ``stdout`` (never accumulated); stderr keeps its last
    8 KiB. ``stdin`` chunks are sent from a thread while output is read, then stdin is
    closed (v5); with ``end_stdin=False`` it stays open until the stream ends (a command
    that watches its stdin to notice that its client went away). With ``stdin_size`` (the
    exact number of bytes ``stdin`` yields) the command reads exactly that much, and its
    input ends there, over v4 too (see :func:`_open_sized`). An exception raised by the ``stdin``
    iterable (a checksum mismatch) tears the stream down *without* ending stdin, so the
    command never sees a clean end of input, and is re-raised here. ``timeout`` bounds
    each wait for output.
    """
    if stdin is not None and stdin_size is not None:
        stream = _open_sized(kube, namespace, pod, command, stdin_size, container=container,
                             timeout=timeout)
        stdin, end_stdin = _capped(stdin, stdin_size), True
    else:
        stream = open_exec(kube, namespace, pod, command, container=container,
                           stdin=stdin is not None, timeout=timeout)
    if (stdin is not None and end_stdin and stdin_size is None
            and not stream.can_close_stdin):
        stream.close()
        raise e.ComponentError(
            f"{stream.what}: the API server does not offer exec protocol {V5}, which is "
            "needed to end the input stream",
            hint="use a Kubernetes version that supports exec over websocket v5 (1.30+), "
                 "or --db-mode local")
    stderr_tail = _Tail()
    stdout_tail = _Tail(limit=keep_stdout_tail) if keep_stdout_tail else None
    feeder_error: list[BaseException] = []
    feeder: threading.Thread | None = None
    if stdin is not None:
        feeder = threading.Thread(target=_feed, args=(stream, stdin, feeder_error, end_stdin),
                                  name="exec-stdin", daemon=True)
        feeder.start()
    total = 0
    try:
        while True:
            item = stream.recv()
            if item is None:
                break
            channel, data = item
            if channel == STDOUT:
                total += len(data)
                if stdout is not None:
                    stdout.write(data)
                if stdout_tail is not None:
                    stdout_tail.write(data)
                if on_stdout is not None:
                    on_stdout(len(data))
            elif channel == STDERR:
                stderr_tail.write(data)
            elif channel == STATUS:
                break
    except websocket.WebSocketTimeoutException as exc:
        stream.abort()
        raise e.ComponentError(f"{stream.what}: no output for {timeout:g}s (--request-timeout)",
                               hint="a command may be waiting for a lock another session "
                                    "holds (--db-lock-wait-timeout bounds that wait); check "
                                    "the pod and the database server") from exc
    except BaseException:
        stream.abort()
        raise
    finally:
        if feeder is not None:
            if stream.status is None:
                stream.abort()
            feeder.join(timeout=5)
        stream.close()
    if feeder_error and stream.status is None:
        raise feeder_error[0]
    if feeder_error and not isinstance(feeder_error[0], (OSError,
                                                         websocket.WebSocketException)):
        raise feeder_error[0]
    code, message = (parse_status(stream.status) if stream.status is not None
                     else (None, ""))
    return ExecResult(exit_code=code, stderr_tail=stderr_tail.text(), stdout_bytes=total,
                      protocol=stream.protocol, status_message=message,
                      stdout_tail=bytes(stdout_tail.data) if stdout_tail else b"")


def _feed(stream: ExecStream, chunks: Iterable[bytes], errors: list[BaseException],
          end: bool = True) -> None:
    try:
        for chunk in chunks:
            if stream.closed:
                return
            stream.send(chunk)
        if end:
            stream.close_stdin()
    except (OSError, websocket.WebSocketException) as exc:
        errors.append(exc)  # the command ended or the connection broke: recv reports it
    except BaseException as exc:  # the source failed (checksum): abort, report
        errors.append(exc)
        stream.abort()

