"""The exec stream's own websocket framing (kubectl_runai_dr.kube.exec): stdin frames built
and masked in one pass, the server's frames read with large reads. Checked against the
websocket client's own encoder and decoder, over a socket that cuts the byte stream at
arbitrary places (a frame header split across reads, a payload across many)."""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
from typing import Any

import pytest
import websocket

from kubectl_runai_dr.kube import exec as kexec
from kubectl_runai_dr.kube.exec import STATUS, STDERR, STDIN, STDOUT, V5, ExecStream, mask_into


def _xor(data: bytes, key: bytes) -> bytes:
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


def server_frame(payload: bytes, *, opcode: int = 2, fin: bool = True, rsv: int = 0,
                 mask: bytes | None = None) -> bytes:
    """A frame as a server writes it (unmasked unless ``mask``)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 1 << 16:
        head = bytes([b0, m | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack("!Q", n)
    if mask is not None:
        return head + mask + _xor(payload, mask)
    return head + payload


class CuttingSocket:
    """A connected socket's reading end that hands out the stream in pieces of random sizes
    (at most ``most`` bytes per read), and records what is sent."""

    def __init__(self, data: bytes, *, most: int = 7, seed: int = 1) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.rng = random.Random(seed)
        self.most = most
        self.sent = bytearray()
        self.reads = 0
        self.timeout_at: int | None = None  # raise a timeout once this much was read

    def recv_into(self, view: memoryview, nbytes: int = 0) -> int:
        self.reads += 1
        if self.timeout_at is not None and self.pos >= self.timeout_at:
            raise TimeoutError("timed out")
        n = min(nbytes or len(view), self.rng.randint(1, self.most), len(self.data) - self.pos)
        view[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n

    def sendall(self, data: Any) -> None:
        self.sent += bytes(data)


class FakeWebSocket:
    """What ExecStream uses of websocket.WebSocket: the socket, its lock, control frames."""

    def __init__(self, raw: CuttingSocket) -> None:
        self.sock = raw
        self.lock = threading.Lock()
        self.subprotocol = V5
        self.pongs: list[bytes] = []
        self.closes = 0

    def pong(self, data: bytes) -> None:
        self.pongs.append(bytes(data))

    def send_close(self) -> None:
        self.closes += 1


def stream_of(data: bytes, **kw: Any) -> tuple[ExecStream, FakeWebSocket]:
    ws = FakeWebSocket(CuttingSocket(data, **kw))
    return ExecStream(ws, what="test"), ws  # type: ignore[arg-type]


def read_all(stream: ExecStream) -> list[tuple[int, bytes]]:
    """Every piece until the end, consecutive pieces of one channel joined."""
    out: list[tuple[int, bytes]] = []
    while (item := stream.recv()) is not None:
        channel, data = item
        if out and out[-1][0] == channel and channel != STATUS:
            out[-1] = (channel, out[-1][1] + bytes(data))
        else:
            out.append((channel, bytes(data)))
    return out


# -- masking ------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 1000, 65537, 1 << 20, (1 << 20) + 3])
@pytest.mark.parametrize("phase", [0, 1, 2, 3, 6])
def test_mask_into_is_the_rfc_xor_at_any_length_and_offset(n: int, phase: int) -> None:
    payload = os.urandom(n)
    key = os.urandom(4)
    out = bytearray(n + 10)  # longer than needed: only the first n bytes are written
    mask_into(memoryview(out), payload, key, phase=phase)
    # byte i of the payload is at offset phase + i of its frame: key[(phase + i) % 4]
    expected = bytes(b ^ key[(phase + i) % 4] for i, b in enumerate(payload[:4096]))
    assert bytes(out[:min(n, 4096)]) == expected
    if n:
        full = websocket.ABNF.mask(key[phase % 4:] + key[:phase % 4], payload)
        assert bytes(out[:n]) == full
    assert bytes(out[n:]) == bytes(10)


def test_stdin_frames_unmask_to_the_data_with_a_fresh_key_each() -> None:
    """Large stdin split into frames of at most STDIN_CHUNK bytes, each decoded by the
    websocket client's own frame parser (which unmasks it) back to channel 0 + the data."""
    data = os.urandom(3 * kexec.STDIN_CHUNK + 12345)
    stream, ws = stream_of(b"")
    stream.send(data)
    stream.send(b"x")
    sent = bytes(ws.sock.sent)
    parser_sock = CuttingSocket(sent, most=4096)
    buf = websocket._abnf.frame_buffer(lambda n: _read(parser_sock, n),
                                       skip_utf8_validation=True)
    got = bytearray()
    keys = set()
    frames = 0
    offset = 0
    while offset < len(sent):
        # the key is on the wire right after the header: find it from the frame's length
        frame = buf.recv_frame()
        frames += 1
        n = len(frame.data)
        head = 2 + (2 if 126 <= n < 1 << 16 else 8 if n >= 1 << 16 else 0)
        assert sent[offset + 1] & 0x80  # masked, as a client must
        keys.add(sent[offset + head:offset + head + 4])
        offset += head + 4 + n
        assert frame.opcode == websocket.ABNF.OPCODE_BINARY and frame.fin
        assert frame.data[0] == STDIN and n <= kexec.STDIN_CHUNK + 1
        assert isinstance(frame.data, bytes)
        got += frame.data[1:]
    assert bytes(got) == data + b"x"
    assert frames == 5 and len(keys) == 5


def _read(sock: CuttingSocket, n: int) -> bytes:
    buf = bytearray(n)
    got = sock.recv_into(memoryview(buf), n)
    return bytes(buf[:got])


# -- reading the server's frames ----------------------------------------------------------------
def _status(code: int) -> bytes:
    return (b'{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","details":'
            b'{"causes":[{"reason":"ExitCode","message":"%d"}]}}' % code)


@pytest.mark.parametrize("most", [1, 3, 13, 4096, 1 << 20])
def test_frames_split_anywhere_read_back_whole(most: int) -> None:
    big = os.urandom(300_000)  # 8-byte length, larger than the read buffer
    mid = os.urandom(70_000)  # 2-byte length
    wire = (server_frame(bytes([STDOUT]) + b"hello")
            + server_frame(bytes([STDERR]) + b"warn")
            + server_frame(bytes([STDOUT]) + big)
            + server_frame(b"")  # an empty message: nothing at all
            + server_frame(bytes([STDOUT]))  # a channel byte alone: no data
            + server_frame(bytes([STDOUT]) + mid)
            + server_frame(bytes([STATUS]) + _status(3))
            + server_frame(struct.pack("!H", 1000), opcode=8))
    stream, ws = stream_of(wire, most=most)
    got = read_all(stream)
    assert got == [(STDOUT, b"hello"), (STDERR, b"warn"), (STDOUT, big + mid),
                   (STATUS, _status(3))]
    assert stream.status == _status(3) and kexec.parse_status(stream.status)[0] == 3
    assert stream.closed and ws.closes == 1  # the server's close frame is answered


def test_a_huge_frame_comes_in_bounded_pieces() -> None:
    big = os.urandom(3 * kexec._FrameReader.READ_MAX + 5)
    stream, _ = stream_of(server_frame(bytes([STDOUT]) + big), most=1 << 22)
    pieces = []
    while (item := stream.recv()) is not None:
        pieces.append(bytes(item[1]))
    assert b"".join(pieces) == big
    assert max(len(p) for p in pieces) <= kexec._FrameReader.READ_MAX


def test_fragmented_messages_keep_their_channel_and_pings_are_answered() -> None:
    status = _status(0).replace(b"Failure", b"Success")
    wire = (server_frame(bytes([STDERR]) + b"ab", fin=False)
            + server_frame(b"ping!", opcode=9)
            + server_frame(b"", opcode=0, fin=False)
            + server_frame(b"cd", opcode=0)
            + server_frame(bytes([STDOUT]) + b"x" * 200, fin=False)
            + server_frame(b"y" * 70_000, opcode=0)
            + server_frame(bytes([STATUS]) + status[:10], fin=False)
            + server_frame(b"pong", opcode=10)
            + server_frame(b"p2", opcode=9)
            + server_frame(status[10:], opcode=0))
    stream, ws = stream_of(wire, most=5)
    got = read_all(stream)
    assert got == [(STDERR, b"abcd"), (STDOUT, b"x" * 200 + b"y" * 70_000), (STATUS, status)]
    assert ws.pongs == [b"ping!", b"p2"]
    assert stream.status == status


@pytest.mark.parametrize("wire, what", [
    (server_frame(bytes([STDOUT]) + b"hi", mask=b"\x01\x02\x03\x04"), "masked"),
    (server_frame(bytes([STDOUT]) + b"hi", rsv=4), "rsv"),
    (server_frame(b"more", opcode=0), "Illegal"),
    (server_frame(bytes([STDOUT]) + b"a", fin=False) + server_frame(bytes([STDOUT])),
     "Illegal"),
    (server_frame(b"x" * 126, opcode=9), "control"),
    (server_frame(b"x", opcode=9, fin=False), "control"),
    (server_frame(b"x", opcode=5), "opcode"),
])
def test_protocol_violations_of_the_server_are_refused(wire: bytes, what: str) -> None:
    stream, _ = stream_of(server_frame(bytes([STDOUT]) + b"ok") + wire)
    assert stream.recv() is not None
    with pytest.raises(websocket.WebSocketProtocolException, match=f"(?i){what}"):
        while stream.recv() is not None:
            pass


def test_the_end_of_the_connection_ends_the_stream_and_a_silence_times_out() -> None:
    stream, _ = stream_of(server_frame(bytes([STDOUT]) + b"abc")[:-1])  # cut mid-frame
    assert stream.recv() is None
    assert stream.closed and stream.status is None
    wire = server_frame(bytes([STDOUT]) + b"abc") + server_frame(bytes([STDOUT]) + b"def")
    stream, ws = stream_of(wire, most=1)
    ws.sock.timeout_at = 6
    item = stream.recv()
    assert item is not None and bytes(item[1]) == b"abc"
    with pytest.raises(websocket.WebSocketTimeoutException):
        stream.recv()


def test_a_real_socket_pair_carries_frames_both_ways() -> None:
    """Over a socketpair (no fake reads): a 5 MiB stdout frame and the status, while the
    other end reads our masked stdin."""
    a, b = socket.socketpair()
    try:
        big = os.urandom(5 << 20)
        wire = server_frame(bytes([STDOUT]) + big) + server_frame(bytes([STATUS]) + _status(0))

        def serve() -> None:
            b.sendall(wire)

        t = threading.Thread(target=serve)
        t.start()
        ws = FakeWebSocket(a)  # type: ignore[arg-type]
        stream = ExecStream(ws, what="test")  # type: ignore[arg-type]
        out = bytearray()
        while (item := stream.recv()) is not None and item[0] != STATUS:
            out += item[1]
        t.join()
        assert bytes(out) == big and stream.status == _status(0)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(("status", "body", "refused"), [
    (403, b"", True),  # the kubelet's handshake: a bare 403
    (403, None, True),
    (400, b"unable to upgrade connection: requested protocol(s) are not supported", True),
    (400, b'{"kind":"Status","message":"none of the offered subprotocols is supported"}', True),
    # RBAC's refusal, a pod not running, a missing pod: not about the protocol
    (403, b'{"kind":"Status","reason":"Forbidden","message":"pods \\"p\\" is forbidden: '
          b'User \\"u\\" cannot create resource \\"pods/exec\\""}', False),
    (400, b'{"kind":"Status","message":"unable to upgrade connection: container not found"}',
     False),
    (404, b"", False),
    (500, b"protocol error", False),
])
def test_a_refused_upgrade_is_told_from_other_errors(status: int, body: bytes | None,
                                                     refused: bool) -> None:
    assert kexec._refuses_protocol(status, body) is refused
