"""Bundles uploaded while they are produced: an s3:// backup keeps no full local copy.

A bundle's manifest comes first in its archive but can only be written last (it holds
every file's size and sha256). A multipart upload allows exactly that: parts are numbered
by the client, may be sent in any order, and are joined in number order when the upload
is completed. So the part numbers are laid out in advance:

- parts 1-100: the *head* — the manifest and the small files, sent at the end;
- for each large member (a database dump, a volume's files) a range of 600 numbers: the
  first holds the tar header of the member (its size is known only at its end), the
  others its data, compressed and sent while the member is being written;
- part 10000: the archive's end.

Every part is one or more complete gzip members, so the joined object is one ordinary
``.tar.gz`` (GNU tar, gzip and the reader see no difference). S3 wants every part but
the last to be at least 5 MiB: a part that comes out shorter is padded with an *empty*
gzip member whose header comment fills the gap (it decompresses to nothing).

A member is staged on local disk until it passes :data:`SPILL_AT`; then what was staged
goes up and the rest follows as it is written. Local disk is bounded by that threshold,
memory by two parts (one filling, one in flight).

An encrypted bundle is one age file, and age encrypts 64 KiB chunks, each under its
number: a part can be encrypted on its own when its plaintext starts at a chunk boundary
and is whole chunks long, and when the number of its first chunk is known as it is sent.
So with encryption (:class:`Sealed`) every part but the last is padded to whole chunks,
and the head is given a fixed size when the first large member starts streaming: the
manifest and as many small files as fit go there; small files that do not fit go at the
end of the archive, after the large members. A large member whose parts went up but
that failed stays in the archive (its chunks cannot be taken out without renumbering
everything after them), under ``incomplete/`` and listed as such in the manifest.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

SPILL_AT = 32 * 1024 * 1024
MIN_PART = 5 * 1024 * 1024
HEAD = range(1, 101)
RANGE = 600
FIRST_RANGE = 101
LAST_PART = 10_000
MAX_RANGES = (LAST_PART - FIRST_RANGE) // RANGE  # 16 large members per bundle
_GROW_EVERY = 50  # parts; then the part size doubles (up to MAX_PART)
MAX_PART = 128 * 1024 * 1024  # memory holds two of them

Send = Callable[[int, bytes | bytearray], None]
CHUNK = 64 * 1024  # of an age file's payload
HEAD_RESERVE = 8 * 1024 * 1024  # an encrypted upload's head, at least


def padding_member(size: int) -> bytes:
    """An empty gzip member of exactly ``size`` bytes (at least 21): a header with a
    comment (FCOMMENT) of spaces, an empty deflate block, CRC-32 0 and length 0."""
    comment = max(size - 20, 1)
    return (b"\x1f\x8b\x08\x10" + bytes(4) + b"\x00\xff" + b" " * (comment - 1) + b"\x00"
            + b"\x03\x00" + bytes(8))


def padded(part: bytes, minimum: int = MIN_PART, align: int = 1) -> bytes:
    """``part`` with a padding member appended when it is shorter than ``minimum`` or not
    a multiple of ``align`` bytes long."""
    return part + padding(len(part), minimum, align)


def padding(length: int, minimum: int = MIN_PART, align: int = 1) -> bytes:
    """What ``padded`` appends to a part of ``length`` bytes (b"": nothing)."""
    want = max(minimum, length)
    want += -want % align
    if want == length:
        return b""
    while want - length < 22:
        want += align
    return padding_member(want - length)


def gzip_member(data: bytes, level: int = 6) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


class PartWriter:
    """Bytes in; gzip-member parts out, each sent (``send(number, part)``) once it holds
    ``part_size`` compressed bytes. ``finish`` sends the last part, padded to
    ``minimum`` (5 MiB when more parts follow it in the object)."""

    def __init__(self, send: Send, numbers: Iterator[int], *, level: int,
                 part_size: int, align: int = 1, ready: Callable[[], None] | None = None) -> None:
        self._send = send
        # (encrypted) returns once no part is in flight: a part is then held twice (its
        # plaintext and its ciphertext) with nothing else, not beside two parts in flight
        self._ready = ready
        self._numbers = numbers
        self._level = level
        self.part_size = part_size
        self._align = align  # every part's length a multiple of it (encrypted: a chunk)
        self.final = False  # the part being sent is the object's last one
        self._sent = 0
        self._new()

    def _new(self) -> None:
        self._zip = zlib.compressobj(self._level, zlib.DEFLATED, 31)
        self._out: list[bytes] = []
        self._len = 0
        self._fed = False

    def write(self, data: bytes) -> int:
        if data:
            if self._len >= self.part_size:  # full: sent now that more follows it, so
                # the last part is always sent by ``finish`` (marked final when it is)
                self._flush(minimum=MIN_PART)  # (a part size under 5 MiB is padded)
            self._fed = True
            out = self._zip.compress(data)
            if out:
                self._out.append(out)
                self._len += len(out)
        return len(data)

    def _flush(self, minimum: int) -> None:
        if self._ready is not None:
            self._ready()
        pieces = [*self._out, self._zip.flush()]
        length = sum(len(p) for p in pieces)
        pieces.append(b"" if self.final else padding(length, minimum, self._align))
        self._out = []
        part = b"".join(pieces)  # the one copy: the pieces go now
        del pieces
        try:
            number = next(self._numbers)
        except StopIteration:
            from kubectl_runai_dr.errors import StorageError

            raise StorageError("the bundle is too large for one S3 upload (10,000 parts)",
                               hint="raise the part size, or back up fewer things into "
                                    "one bundle") from None
        self._send(number, part)
        del part
        self._sent += 1
        if self._sent % _GROW_EVERY == 0:
            self.part_size = min(self.part_size * 2, MAX_PART)
        self._new()

    def finish(self, minimum: int = MIN_PART, *, final: bool = False) -> None:
        """Send what is left. ``final``: as the object's last part (not padded)."""
        self.final = final
        if self._fed or self._sent == 0:
            self._flush(minimum)


class SpillSink:
    """Where a large member's data goes once it passed :data:`SPILL_AT`: straight into
    its range of parts. ``base`` is the range's first number (its header's part)."""

    def __init__(self, send: Send, base: int, *, level: int, part_size: int,
                 align: int = 1, ready: Callable[[], None] | None = None) -> None:
        self.base = base
        self.numbers: list[int] = []  # the data parts sent
        self.size = 0  # bytes of the member

        def sent(number: int, data: bytes | bytearray) -> None:
            self.numbers.append(number)
            send(number, data)

        self._data = PartWriter(sent, iter(range(base + 1, base + RANGE)), level=level,
                                part_size=part_size, align=align, ready=ready)
        self.finished = False
        self.discarded = False
        self.keep = align > 1  # (encrypted) its parts stay in the object, whatever happens

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return self._data.write(data)

    def feed(self, fh: BinaryIO, chunk: int = 1024 * 1024) -> None:
        while data := fh.read(chunk):
            self.write(data)

    def close(self) -> None:
        if not self.finished:
            self.finished = True
            self._data.finish()  # the header part of the next member, or the end, follows

    def discard(self) -> None:
        """Nothing more is sent; the parts already sent are left out of the object (the
        upload is completed with the parts it is made of, see ``_pack_streamed``). An
        encrypted upload keeps them (``keep``): what was written is finished off, so the
        members after it know where they start."""
        self.discarded = True
        if self.keep:
            self.close()


def range_base(index: int) -> int:
    return FIRST_RANGE + index * RANGE


class Sealer(Protocol):
    header: bytes  # the age header and payload nonce, before the first chunk

    def encrypt_at(self, counter: int, plain: bytes | bytearray, *, final: bool,
                   prefix: bytes = b"") -> bytearray: ...


class Sealed:
    """Where the parts of an encrypted upload go in the age file's payload: the head
    from byte 0 (``head`` bytes of it, reserved), then the large members one after the
    other, then the rest. ``offset`` is where the next part starts."""

    def __init__(self, sealer: Sealer, send: Send, head: int) -> None:
        if head % CHUNK or head < MIN_PART:
            raise ValueError("the head must be whole chunks, and a whole part")
        self.sealer = sealer
        self._send = send
        self.head = head
        self.offset = head

    def reserve(self, size: int) -> int:
        """``size`` bytes at the current offset (a range's header part): their start."""
        start, self.offset = self.offset, self.offset + size
        return start

    def send_at(self, number: int, start: int, plain: bytes | bytearray, *,
                final: bool = False) -> None:
        if start % CHUNK:
            raise ValueError("a part of an encrypted upload must start at a chunk")
        self._send(number, self.sealer.encrypt_at(
            start // CHUNK, plain, final=final, prefix=self.sealer.header if start == 0 else b""))

    def sequential(self, final: Callable[[], bool] = lambda: False) -> Send:
        """A ``send`` for parts that follow one another from ``offset`` on; ``final()``
        says whether the part is the object's last."""
        def send(number: int, plain: bytes | bytearray) -> None:
            self.send_at(number, self.reserve(len(plain)), plain, final=final())
        return send


def head_reserve(small_bytes: int) -> int:
    """The head an encrypted upload reserves when its first large member starts
    streaming: room for the small files written until then (``small_bytes``: their
    size compressed at level 1, more than the bundle's level 6 makes of them) and the
    manifest, at least :data:`HEAD_RESERVE`; whole chunks."""
    size = max(HEAD_RESERVE, small_bytes + small_bytes // 8 + 2 * 1024 * 1024)
    return size + -size % CHUNK
