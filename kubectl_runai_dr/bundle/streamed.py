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
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

SPILL_AT = 32 * 1024 * 1024
MIN_PART = 5 * 1024 * 1024
HEAD = range(1, 101)
RANGE = 600
FIRST_RANGE = 101
LAST_PART = 10_000
MAX_RANGES = (LAST_PART - FIRST_RANGE) // RANGE  # 16 large members per bundle
_GROW_EVERY = 50  # parts; then the part size doubles (up to MAX_PART)
MAX_PART = 128 * 1024 * 1024  # memory holds two of them

Send = Callable[[int, bytes], None]


def padding_member(size: int) -> bytes:
    """An empty gzip member of exactly ``size`` bytes (at least 21): a header with a
    comment (FCOMMENT) of spaces, an empty deflate block, CRC-32 0 and length 0."""
    comment = max(size - 20, 1)
    return (b"\x1f\x8b\x08\x10" + bytes(4) + b"\x00\xff" + b" " * (comment - 1) + b"\x00"
            + b"\x03\x00" + bytes(8))


def padded(part: bytes, minimum: int = MIN_PART) -> bytes:
    """``part`` with a padding member appended when it is shorter than ``minimum``."""
    if len(part) >= minimum:
        return part
    return part + padding_member(max(minimum - len(part), 22))


def gzip_member(data: bytes, level: int = 6) -> bytes:
    c = zlib.compressobj(level, zlib.DEFLATED, 31)
    return c.compress(data) + c.flush()


class PartWriter:
    """Bytes in; gzip-member parts out, each sent (``send(number, part)``) once it holds
    ``part_size`` compressed bytes. ``finish`` sends the last part, padded to
    ``minimum`` (5 MiB when more parts follow it in the object)."""

    def __init__(self, send: Send, numbers: Iterator[int], *, level: int,
                 part_size: int) -> None:
        self._send = send
        self._numbers = numbers
        self._level = level
        self.part_size = part_size
        self._sent = 0
        self._new()

    def _new(self) -> None:
        self._zip = zlib.compressobj(self._level, zlib.DEFLATED, 31)
        self._out: list[bytes] = []
        self._len = 0
        self._fed = False

    def write(self, data: bytes) -> int:
        if data:
            self._fed = True
            out = self._zip.compress(data)
            if out:
                self._out.append(out)
                self._len += len(out)
            if self._len >= self.part_size:
                self._flush(minimum=MIN_PART)  # (a part size under 5 MiB is padded)
        return len(data)

    def _flush(self, minimum: int) -> None:
        tail = self._zip.flush()
        part = b"".join([*self._out, tail])
        try:
            number = next(self._numbers)
        except StopIteration:
            from kubectl_runai_dr.errors import StorageError

            raise StorageError("the bundle is too large for one S3 upload (10,000 parts)",
                               hint="raise the part size, or back up fewer things into "
                                    "one bundle") from None
        self._send(number, padded(part, minimum))
        self._sent += 1
        if self._sent % _GROW_EVERY == 0:
            self.part_size = min(self.part_size * 2, MAX_PART)
        self._new()

    def finish(self, minimum: int = MIN_PART) -> None:
        if self._fed or self._sent == 0:
            self._flush(minimum)


class SpillSink:
    """Where a large member's data goes once it passed :data:`SPILL_AT`: straight into
    its range of parts. ``base`` is the range's first number (its header's part)."""

    def __init__(self, send: Send, base: int, *, level: int, part_size: int) -> None:
        self.base = base
        self.numbers: list[int] = []  # the data parts sent

        def sent(number: int, data: bytes) -> None:
            self.numbers.append(number)
            send(number, data)

        self._data = PartWriter(sent, iter(range(base + 1, base + RANGE)), level=level,
                                part_size=part_size)
        self.finished = False
        self.discarded = False

    def write(self, data: bytes) -> int:
        return self._data.write(data)

    def feed(self, fh: BinaryIO, chunk: int = 1024 * 1024) -> None:
        while data := fh.read(chunk):
            self._data.write(data)

    def close(self) -> None:
        if not self.finished:
            self.finished = True
            self._data.finish()  # the header part of the next member, or the end, follows

    def discard(self) -> None:
        """Nothing more is sent; the parts already sent are left out of the object (the
        upload is completed with the parts it is made of, see ``_pack_streamed``)."""
        self.discarded = True


def range_base(index: int) -> int:
    return FIRST_RANGE + index * RANGE
