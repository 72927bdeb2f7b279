"""The exec stream's websocket (RFC 6455) after its handshake, served without a framework.

A kubelet relays stdin with one copy: the frame is read, unmasked and written to the
command's FIFO (Go's io.Copy over x/net/websocket). aiohttp's reader, on the same cores
as the command, made several copies of every 256 KiB frame (slices, a join, a bytearray,
bytes) before the handler saw it. Here the connection's transport is handed to an
``asyncio.BufferedProtocol``: TLS decrypts into one buffer, each stdin payload is
unmasked there in place as it arrives and written from there to the command's pipe. When
the pipe is full the connection stops being read (the client's writes back up, as with a
kubelet's full FIFO) until the command has taken what was pending.

Frames are checked as strictly as a server must: reserved bits, unknown opcodes, control
frames fragmented or longer than 125 bytes, unmasked client frames, continuation frames
outside a message, and a data frame inside one fail the connection with 1002; a close
frame's code is checked too. Pings are answered, pongs and text messages ignored. The
handshake (``upgrade``) answers 101 through aiohttp and then takes the transport over.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
from collections.abc import Callable
from typing import Any

from aiohttp import web
from Crypto.Util.strxor import strxor

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
BUFFER = 1024 * 1024  # what one read may bring in (TLS decrypts into it)
CLOSE_WAIT = 10.0  # how long the server waits for the client's close frame (aiohttp's default)
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# the channel protocols' channels: a binary message's first byte (v5 adds CLOSE)
STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
PROTOCOL_ERROR, NORMAL = 1002, 1000
# close codes a peer may send (RFC 6455 7.4.1; 1005, 1006 and 1015 are never sent)
_SENDABLE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def handshake_problem(request: web.Request) -> str | None:
    """What makes ``request`` no websocket opening handshake (None if it is one)."""
    if request.method != "GET":
        return f"a websocket handshake is a GET, not {request.method}"
    tokens = {t.strip().lower() for t in request.headers.get("Connection", "").split(",")}
    if "upgrade" not in tokens:
        return "the Connection header does not ask for an upgrade"
    if request.headers.get("Sec-WebSocket-Version", "") != "13":
        return "unsupported Sec-WebSocket-Version (13 is served)"
    try:
        key = base64.b64decode(request.headers.get("Sec-WebSocket-Key", ""), validate=True)
    except ValueError:
        key = b""
    if len(key) != 16:
        return "Sec-WebSocket-Key is not 16 bytes in base64"
    return None


def frame_head(n: int, opcode: int = OP_BINARY) -> bytes:
    """The header of a final, unmasked frame (a server's) of ``n`` payload bytes."""
    b0 = 0x80 | opcode
    if n < 126:
        return bytes((b0, n))
    if n < 1 << 16:
        return struct.pack("!BBH", b0, 126, n)
    return struct.pack("!BBQ", b0, 127, n)


class _Upgraded(web.StreamResponse):
    _length_check = False  # a 101 has no body: neither a length nor chunks


class ExecSocket(asyncio.BufferedProtocol):
    """One exec connection after its 101, with the stdin side of a kubelet's relay.

    Channel 0's payload goes to ``stdin_fd`` (non-blocking: the relay's end of the
    command's input); v5's close message for channel 0 closes it. Stdin nobody asked for,
    or sent after its end, is ignored. Once the command has exited (``exited``) or its
    input is broken,
    stdin is dropped and counted; past ``hang_after`` bytes dropped the connection is no
    longer read (``hang``): a kubelet stuck on a full FIFO. ``gone`` is done when the client
    went away (the connection was lost, it sent a close frame, or it broke the protocol).
    """

    def __init__(self, transport: asyncio.Transport, http: asyncio.BaseProtocol, *,
                 v5: bool, stdin_fd: int | None, hang_after: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.transport, self.http = transport, http
        self.v5, self.hang_after = v5, hang_after
        self.stdin_fd = stdin_fd
        self.buf = bytearray(BUFFER)
        self.view = memoryview(self.buf)
        self.start = self.end = 0  # unparsed bytes: buf[start:end]
        # the frame being read
        self.in_payload = False
        self.fin = True
        self.left = 0  # payload bytes still to come
        self.size = 0  # of the frame's payload
        self.mask = memoryview(b"")  # the frame's key repeated (unmasking a run at any phase)
        # the data message being read (it may span several frames)
        self.message: int | None = None  # its opcode (None: no message open)
        self.channel: int | None = None  # its first payload byte
        self.closing: int | None = None  # v5: the channel a close message names
        # the stdin side
        self.pending: tuple[int, int] | None = None  # buf[a:b]: unmasked stdin not yet written
        self.watching = False  # a writer callback waits for the pipe
        self.exited = False
        self.broken = False
        self.stdin_eof = False
        self.dropped = 0
        self.hang = False
        self.last_frame = self.loop.time()
        # the connection
        self.gone: asyncio.Future[None] = self.loop.create_future()
        self.lost = False
        self.close_sent = False
        self.peer_closed: asyncio.Future[None] = self.loop.create_future()
        self._writable: asyncio.Future[None] | None = None
        self.on_problem: Callable[[str], None] | None = None
        self.parsing = False

    # -- the transport's callbacks ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # pragma: no cover
        pass  # set_protocol: the connection was made for aiohttp's protocol

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.end == len(self.buf):
            self._compact()
        return self.view[self.end:]

    def buffer_updated(self, nbytes: int) -> None:
        self.end += nbytes
        self.last_frame = self.loop.time()
        self._parse()

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self.loop.create_future()
        pause = getattr(self.http, "pause_writing", None)
        if pause is not None:
            pause()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None
        resume = getattr(self.http, "resume_writing", None)
        if resume is not None:
            resume()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._writable is not None and not self._writable.done():
            self._writable.set_exception(ConnectionResetError("the client went away"))
            self._writable.exception()  # retrieved: nobody may be waiting
        self._gone()
        if not self.peer_closed.done():
            self.peer_closed.set_result(None)
        self.http.connection_lost(exc)  # aiohttp's bookkeeping of its connections

    # -- reading -----------------------------------------------------------------------------
    def _compact(self) -> None:
        """Move what is still needed (stdin not yet written, a partial header or control
        frame) to the front."""
        keep = self.start if self.pending is None else self.pending[0]
        n = self.end - keep
        self.view[:n] = self.view[keep:self.end]
        self.start -= keep
        self.end = n
        if self.pending is not None:
            self.pending = (0, self.pending[1] - keep)

    def _parse(self) -> None:
        if self.parsing:  # a transport that calls back from close() or resume_reading()
            return
        self.parsing = True
        try:
            self._parse_all()
        finally:
            self.parsing = False

    def _parse_all(self) -> None:
        while self.pending is None and not self.hang and not self.gone.done():
            if self.in_payload:
                if not self._payload():
                    break
            elif not self._header():
                break
        if self.start == self.end and self.pending is None:
            self.start = self.end = 0

    def _header(self) -> bool:
        """Read one frame header (a control frame whole); False if more bytes are needed."""
        avail = self.end - self.start
        if avail < 2:
            return False
        b0, b1 = self.buf[self.start], self.buf[self.start + 1]
        if not b1 & 0x80:
            return self._fail("an unmasked frame from the client")
        form = b1 & 0x7F  # the length itself, or 126 / 127: it follows in 2 / 8 bytes
        at = {126: 4, 127: 10}.get(form, 2)
        if avail < at + 4:
            return False
        n = form
        if form == 126:
            n = struct.unpack_from("!H", self.buf, self.start + 2)[0]
        elif form == 127:
            n = struct.unpack_from("!Q", self.buf, self.start + 2)[0]
        fin, opcode = bool(b0 & 0x80), b0 & 0x0F
        if b0 & 0x70:
            return self._fail("a frame with reserved bits set")
        if opcode not in (OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG):
            return self._fail(f"a frame of unknown opcode {opcode}")
        if n >> 63 or (form == 126 and n < 126) or (form == 127 and n < 1 << 16):
            return self._fail("a frame length with its top bit set or not in its shortest form")
        key = bytes(self.buf[self.start + at:self.start + at + 4])
        at += 4
        if opcode >= OP_CLOSE:  # a control frame: short, whole, handled at once
            if not fin or n > 125:
                return self._fail("a control frame fragmented or longer than 125 bytes")
            if avail < at + n:
                return False
            body = bytearray(self.buf[self.start + at:self.start + at + n])
            if n:
                strxor(body, (key * (n // 4 + 1))[:n], output=body)
            self.start += at + n
            self._control(opcode, bytes(body))
            return True
        if opcode == OP_CONT and self.message is None:
            return self._fail("a continuation frame outside a message")
        if opcode != OP_CONT and self.message is not None:
            return self._fail("a new message inside a fragmented one")
        self.start += at
        if opcode != OP_CONT:
            self.message, self.channel, self.closing = opcode, None, None
        self.fin, self.left, self.size = fin, n, n
        self.mask = memoryview(key * (min(n, BUFFER) // 4 + 2) if n else b"")
        self.in_payload = True
        if n == 0:
            self._frame_done()
        return True

    def _payload(self) -> bool:
        """Take what has arrived of the frame's payload; False if more bytes are needed."""
        take = min(self.left, self.end - self.start)
        if take == 0:
            return False
        phase = (self.size - self.left) % 4
        run = self.view[self.start:self.start + take]
        strxor(run, self.mask[phase:phase + take], output=run)
        self.start += take
        self.left -= take
        if self.message == OP_BINARY:
            at = self.start - take  # where the run is in the buffer
            if self.channel is None:
                self.channel, at = run[0], at + 1
            if self.channel == STDIN:
                self._stdin(at, self.start)
            elif self.channel == CLOSE and self.closing is None and at < self.start:
                self.closing = self.buf[at]
        if self.left == 0:
            self._frame_done()
        return True

    def _frame_done(self) -> None:
        self.in_payload = False
        if not self.fin:
            return
        if self.message == OP_BINARY and self.channel == CLOSE and self.v5 \
                and self.closing == STDIN:
            self.close_stdin()
            self.stdin_eof = True
        self.message = self.channel = self.closing = None

    def _control(self, opcode: int, body: bytes) -> None:
        if opcode == OP_PING:
            self._send_now(frame_head(len(body), OP_PONG) + body)
        elif opcode == OP_CLOSE:
            if len(body) == 1:
                self._fail("a close frame of one byte")
                return
            if len(body) >= 2:
                code = struct.unpack_from("!H", body)[0]
                if code not in _SENDABLE and not 3000 <= code < 5000:
                    self._fail(f"a close frame with code {code}")
                    return
                try:
                    body[2:].decode()
                except UnicodeDecodeError:
                    self._fail("a close frame whose reason is not UTF-8")
                    return
            self._end(NORMAL)  # answered if the client closed first; either way it is over

    def _fail(self, problem: str) -> bool:
        """A protocol error: close 1002 (unless a close was sent already), the connection
        ends, and the client counts as gone."""
        if self.on_problem is not None:
            self.on_problem(problem)
        self._end(PROTOCOL_ERROR, problem)
        return False

    def _end(self, code: int, reason: str = "") -> None:
        """Nothing more is read: the client counts as gone, a close of ours (``code``,
        unless one was sent) goes out and the connection ends."""
        self._gone()
        if not self.peer_closed.done():
            self.peer_closed.set_result(None)
        if not self.lost:
            self.send_close(code, reason)
            self.transport.close()

    def _gone(self) -> None:
        if not self.gone.done():
            self.gone.set_result(None)

    # -- stdin -------------------------------------------------------------------------------
    def _stdin(self, a: int, b: int) -> None:
        if a < b:
            self.pending = (a, b)
            self._flush()

    def _flush(self) -> None:
        """Write what is pending to the pipe; wait for it to drain if it is full."""
        a, b = self.pending or (0, 0)
        while a < b:
            if self.exited or self.broken:
                self._drop(b - a)  # the command is gone: counted toward the stdin hang
                a = b
                break
            if self.stdin_fd is None:  # no stdin asked for, or it was ended: ignored
                a = b
                break
            try:
                a += os.write(self.stdin_fd, self.view[a:b])
            except BlockingIOError:
                break
            except (BrokenPipeError, ConnectionResetError):
                self.broken = True  # the command is gone: what was not written is dropped
        if a < b:
            self.pending = (a, b)
            if not self.watching:
                self.watching = True
                self.loop.add_writer(self.stdin_fd, self._drained)  # type: ignore[arg-type]
                self.transport.pause_reading()
            return
        self.pending = None
        if self.watching:
            self._unwatch()
            if not self.lost and not self.hang:
                self.transport.resume_reading()

    def _drained(self) -> None:
        self._flush()
        if self.pending is None:
            self._parse()

    def _unwatch(self) -> None:
        if self.watching:
            self.watching = False
            if self.stdin_fd is not None:
                self.loop.remove_writer(self.stdin_fd)

    def _drop(self, n: int) -> None:
        self.dropped += n
        if self.dropped > self.hang_after and not self.hang:
            self.hang = True  # stop reading: the client's writes back up, like a stuck kubelet
            self.transport.pause_reading()

    def close_stdin(self) -> None:
        """End the command's input (what was pending is given up)."""
        self._unwatch()
        if self.pending is not None:
            self.pending = None
            if not self.lost and not self.hang:
                self.transport.resume_reading()
        if self.stdin_fd is not None:
            fd, self.stdin_fd = self.stdin_fd, None
            os.close(fd)

    def command_exited(self) -> None:
        """The command ended: stdin from now on is dropped (and counted)."""
        self.exited = True
        if self.pending is not None:
            self._flush()  # drops it
            self._parse()

    # -- writing -----------------------------------------------------------------------------
    def _send_now(self, frame: bytes) -> None:
        if not self.lost and not self.transport.is_closing():
            self.transport.write(frame)

    async def send(self, channel: int, data: bytes | memoryview) -> None:
        """One binary message on ``channel``; waits while the client does not read."""
        while self._writable is not None:
            await asyncio.shield(self._writable)
        if self.lost or self.transport.is_closing():
            raise ConnectionResetError("the client went away")
        self.transport.write(b"".join((frame_head(1 + len(data)), bytes((channel,)), data)))

    def send_close(self, code: int, reason: str = "") -> None:
        if self.close_sent:
            return
        self.close_sent = True
        body = struct.pack("!H", code) + reason.encode()[:123]
        self._send_now(frame_head(len(body), OP_CLOSE) + body)

    async def close(self) -> None:
        """The server's closing handshake: a close frame, the client's answer (at most
        CLOSE_WAIT seconds), then the connection ends."""
        self.send_close(NORMAL)
        if not self.lost:
            if not self.hang and self.pending is None:
                self.transport.resume_reading()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.peer_closed), CLOSE_WAIT)
        self.transport.close()

    def abort(self) -> None:
        self._unwatch()
        self.transport.abort()


async def upgrade(request: web.Request, protocol: str | None, *,
                  on_problem: Callable[[str], None] | None = None,
                  **socket: Any) -> tuple[ExecSocket, web.StreamResponse]:
    """Answer the handshake with 101 (``protocol`` chosen, or none) and take the connection
    over; ``socket`` goes to ExecSocket, which owns ``stdin_fd`` from here on (closed here
    if the upgrade fails). Returns the socket and the 101 response, prepared, for the
    handler to return (aiohttp then writes nothing more)."""
    transport = request.transport
    http = request.protocol
    if transport is None:
        fd = socket.get("stdin_fd")
        if fd is not None:
            os.close(fd)
        raise ConnectionResetError("the client went away during the handshake")
    accept = base64.b64encode(hashlib.sha1(
        request.headers["Sec-WebSocket-Key"].encode() + GUID).digest()).decode()
    headers = {"Upgrade": "websocket", "Connection": "upgrade", "Sec-WebSocket-Accept": accept}
    if protocol is not None:
        headers["Sec-WebSocket-Protocol"] = protocol
    resp = _Upgraded(status=101, headers=headers)
    resp.force_close()  # no request follows on this connection
    sock = ExecSocket(transport, http, **socket)
    sock.on_problem = on_problem
    try:
        # from here every byte the client sends is the socket's; what aiohttp read past the
        # request (a client that did not wait for the 101) is handed over first
        transport.set_protocol(sock)
        tail = bytes(getattr(http, "_message_tail", b"") or b"")
        if tail:
            http._message_tail = b""
        await resp.prepare(request)
        if len(tail) > BUFFER:
            raise ConnectionResetError("the client sent more than a buffer before the 101")
        if tail:
            sock.view[:len(tail)] = tail
            sock.end = len(tail)
            sock._parse()
        if sock.pending is None and not sock.hang and not transport.is_closing() \
                and not transport.is_reading():
            transport.resume_reading()
    except BaseException:
        sock.close_stdin()
        sock.abort()
        raise
    return sock, resp
