"""Read a bundle's archive front to back, strictly and in bounded memory.

A bundle is a tar archive in a gzip stream of one or more gzip members (the writer stores
already-compressed dumps in a member of their own). The bytes come from a
:class:`~kubectl_runai_dr.bundle.source.Stream` (a file, an S3 object, a decrypted age
stream). Python's ``gzip`` and ``tarfile`` are
lenient where a bundle must not be: ``tarfile`` stops at the archive's end marker without
reading the gzip trailer, so a cut trailer or appended bytes went unnoticed; ``gzip``
accepts zero padding after the stream; ``tarfile`` reads a pax header of any size into
memory. This reader:

- decompresses with zlib, which checks every gzip member's CRC-32 and length, and requires
  the file to end exactly where the last gzip member ends;
- reads member data only in chunks the caller asks for, and bounds every header;
- after the archive's end marker accepts only zero padding, at most 1 MiB of it;
- knows regular files (and the pax headers describing them) only: a bundle holds nothing
  else, and a link, directory or device member is an error.

Errors are :class:`ArchiveError` (``NotGzip`` when the file is not gzip data at all), with
messages that are plain sentences (no Python representations).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from kubectl_runai_dr.bundle.source import Stream, Unreadable

CHUNK = 1024 * 1024
BLOCK = 512
MAX_PAX = 64 * 1024  # a pax header of a bundle member holds a path and maybe a size
MAX_PADDING = 1024 * 1024  # tar pads to 10 KiB records; anything much larger is not padding
_GZIP_MAGIC = b"\x1f\x8b"
_ZERO_BLOCK = bytes(BLOCK)
_KINDS = {b"1": "hard link", b"2": "symbolic link", b"3": "character device",
          b"4": "block device", b"5": "directory", b"6": "FIFO", b"7": "contiguous file",
          b"L": "GNU long name", b"K": "GNU long link name"}


class ArchiveError(Exception):
    """The archive is truncated, corrupt, or holds what a bundle never does."""


class NotGzip(ArchiveError):
    """The file does not start with gzip data."""


class GzipReader:
    """The decompressed bytes of a (multi-member) gzip stream read from ``stream``.

    ``start``: where the stream begins, as (compressed offset, decompressed offset) of a
    gzip member's start (0, 0 for the whole file). ``checkpoints`` collects every member
    start seen, so a later reader can begin at the member that holds what it wants."""

    def __init__(self, stream: Stream, start: tuple[int, int] = (0, 0)) -> None:
        self._stream = stream
        self._offset = start[0]  # of the next compressed bytes to read
        self.position = start[1]  # decompressed bytes before the next one read
        self._pending = b""  # compressed bytes not yet given to a decompressor
        self._inflate: zlib._Decompress | None = None
        self._members = 0
        self._file_ended = False
        self.ended = False  # the stream ended where it should: nothing more to read
        self.checkpoints: list[tuple[int, int]] = []

    def _fill(self) -> bool:
        if self._file_ended:
            return False
        try:
            data = self._stream.read(CHUNK)
        except Unreadable as exc:
            raise ArchiveError(str(exc)) from None
        if not data:
            self._file_ended = True
            return False
        self._offset += len(data)
        self._pending += data
        return True

    def close(self) -> None:
        self._stream.close()

    def _next_member(self, produced: int = 0) -> bool:
        """``produced``: bytes the current ``read`` already decompressed (not yet counted
        in ``position``)."""
        """Start the next gzip member; False at a clean end of the file."""
        while len(self._pending) < 2 and self._fill():
            pass
        if not self._pending:
            if self._members == 0:
                raise NotGzip("the file is empty")
            self.ended = True
            return False
        if self._pending[:2] != _GZIP_MAGIC:
            if self._members == 0:
                raise NotGzip("not gzip data")
            while self._fill() and len(self._pending) <= CHUNK:
                pass
            extra = len(self._pending)
            more = "" if self._file_ended else " or more"
            raise ArchiveError(f"{extra}{more} bytes of other data follow the end of the "
                               "gzip stream")
        self._inflate = zlib.decompressobj(31)  # gzip: header, CRC-32 and length checked
        self.checkpoints.append((self._offset - len(self._pending), self.position + produced))
        self._members += 1
        return True

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the stream."""
        out = bytearray()
        while len(out) < size:
            if self._inflate is None and (self.ended or not self._next_member(len(out))):
                break
            assert self._inflate is not None
            if not self._pending and not self._fill():
                raise ArchiveError("the file ends inside the compressed data (truncated)")
            try:
                out += self._inflate.decompress(self._pending, size - len(out))
            except zlib.error as exc:
                raise ArchiveError(f"the compressed data is corrupt ({exc})") from None
            if self._inflate.eof:
                self._pending = self._inflate.unused_data
                self._inflate = None
            else:
                self._pending = self._inflate.unconsumed_tail
        self.position += len(out)
        return bytes(out)


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    offset: int = 0  # decompressed offset of its first header block (pax header included)


class TarReader:
    """The members of a tar archive (ustar/pax, as the writer makes them) in order.

    ``next()`` skips what is left of the previous member and returns the next, or None
    once the end marker, the padding after it and the end of the gzip stream were checked.
    """

    def __init__(self, stream: GzipReader) -> None:
        self._stream = stream
        self._remaining = 0  # data bytes of the current member not read yet
        self._padding = 0  # zero bytes after them, to the next block
        self.in_trailer = False  # past the end marker: reading padding and the gzip end
        self.ended = False

    def _exact(self, size: int) -> bytes:
        data = self._stream.read(size)
        if len(data) != size:
            raise ArchiveError("the archive ends inside a member (truncated)")
        return data

    def _skip(self, size: int) -> None:
        while size > 0:
            size -= len(self._exact(min(size, CHUNK)))

    def next(self) -> Member | None:
        if self.ended:
            return None
        self._skip(self._remaining + self._padding)
        self._remaining = self._padding = 0
        pax: dict[str, str] = {}
        start = self._stream.position
        while True:
            block = self._stream.read(BLOCK)
            if not block:
                raise ArchiveError("the archive has no end marker (truncated)")
            if len(block) != BLOCK:
                raise ArchiveError("the archive ends inside a header (truncated)")
            if block == _ZERO_BLOCK:
                self._end()
                return None
            name, size, kind = _header(block)
            if kind in (b"x", b"g"):
                if size > MAX_PAX:
                    raise ArchiveError(f"a pax header of {size} bytes (at most {MAX_PAX} "
                                       "are expected)")
                data = self._exact(_blocks(size))[:size]
                if kind == b"x":
                    pax.update(_pax_records(data))
                continue
            if kind not in (b"0", b"\0"):
                what = _KINDS.get(kind, f"member of an unknown type (0x{kind.hex()})")
                raise ArchiveError(f"{pax.get('path', name)} is a {what}; a bundle holds "
                                   "regular files only")
            if "size" in pax:
                if not pax["size"].isdigit():
                    raise ArchiveError("a pax header has an invalid size")
                size = int(pax["size"])
            self._remaining = size
            self._padding = _blocks(size) - size
            return Member(pax.get("path", name), size, start)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of the current member's data (b"" at its end)."""
        size = min(size, self._remaining)
        if size <= 0:
            return b""
        data = self._exact(size)
        self._remaining -= size
        return data

    @property
    def remaining(self) -> int:
        return self._remaining

    def _end(self) -> None:
        """After the end marker: zero padding only, then the end of the gzip stream."""
        self.in_trailer = True
        total = 0
        while chunk := self._stream.read(CHUNK):
            if chunk.strip(b"\0"):
                raise ArchiveError("other data follows the end of the archive")
            total += len(chunk)
            if total > MAX_PADDING:
                raise ArchiveError("more than 1 MiB follows the end of the archive")
        self.ended = True


def _blocks(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:  # base-256 (GNU), for sizes beyond 8 GiB
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ArchiveError("a tar header holds an invalid number (corrupt)") from None


def _text(field: bytes) -> str:
    try:
        return field.split(b"\0", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        raise ArchiveError("a tar header holds a name that is not UTF-8") from None


def _header(block: bytes) -> tuple[str, int, bytes]:
    """(name, size, type flag) of a ustar header block, its checksum checked."""
    if block[257:262] != b"ustar":
        raise ArchiveError("a tar header is missing or corrupt (no ustar signature)")
    expected = _number(block[148:156])
    if sum(block[:148]) + 8 * 32 + sum(block[156:]) != expected:
        raise ArchiveError("a tar header's checksum does not match (corrupt)")
    name = _text(block[0:100])
    prefix = _text(block[345:500])
    size = _number(block[124:136])
    return (f"{prefix}/{name}" if prefix else name), size, block[156:157]


def _pax_records(data: bytes) -> dict[str, str]:
    """``"<length> <key>=<value>\\n"`` records."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 20)
        length_text = data[pos:space] if space > 0 else b""
        if not length_text.isdigit():
            raise ArchiveError("a pax header is malformed")
        length = int(length_text)
        record = data[space + 1:pos + length]
        if length <= 0 or pos + length > len(data) or not record.endswith(b"\n") \
                or b"=" not in record:
            raise ArchiveError("a pax header is malformed")
        key, _, value = record[:-1].partition(b"=")
        try:
            out[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise ArchiveError("a pax header holds text that is not UTF-8") from None
        pos += length
    return out
