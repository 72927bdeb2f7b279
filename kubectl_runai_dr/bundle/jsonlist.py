"""Stream the items of a kubectl-style ``List`` document one at a time (pure).

``{"apiVersion": "v1", "kind": "List", "items": [{...}, {...}]}``: a bundle's object files
can hold tens of thousands of objects, and a hostile one any size; only one item (at most
``max_item`` characters) is held in memory at a time. Other keys are read and dropped.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

CHUNK = 1024 * 1024
MAX_OTHER = 1024 * 1024  # a value beside "items" (apiVersion, kind, metadata)
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class ListError(ValueError):
    """The document is not a valid List (the message says where and why)."""


class _Text:
    """Decoded text read on demand, with a cursor; consumed text is dropped."""

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.text = ""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        if self.eof:
            return False
        data = self._read(CHUNK)
        try:
            decoded = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError:
            raise ListError("it is not UTF-8 text") from None
        self.text = self.text[self.pos:] + decoded
        self.pos = 0
        self.eof = not data
        return True

    def peek(self) -> str | None:
        """The next character that is not white space (not consumed); None at the end."""
        while True:
            match = _WS.match(self.text, self.pos)
            assert match is not None
            self.pos = match.end()
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self.more():
                return None

    def expect(self, chars: str, where: str) -> str:
        c = self.peek()
        if c is None or c not in chars:
            found = "the end" if c is None else f"'{c}'"
            raise ListError(f"expected {' or '.join(repr(x) for x in chars)} {where}, "
                            f"found {found}")
        self.pos += 1
        return c

    def value(self, limit: int, what: str) -> Any:
        """The next JSON value, of at most ``limit`` characters."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.text, self.pos)
                # a number at the end of the text read so far may go on in the next chunk
                if end < len(self.text) or self.eof:
                    self.pos = end
                    return obj
            except json.JSONDecodeError as exc:
                if self.eof:
                    raise ListError(f"{what} is not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise ListError(f"{what} is nested too deeply") from None
            if len(self.text) - self.pos > limit:
                raise ListError(f"{what} is larger than {limit // (1024 * 1024)} MiB")
            self.more()


def iter_items(read: Callable[[int], bytes], *, max_item: int) -> Iterator[dict[str, Any]]:
    """The objects of ``items``, in order. ``read(n)`` returns up to n bytes (b"" at the
    end). Raises :class:`ListError` when the document is not a List of objects."""
    t = _Text(read)
    t.expect("{", "at the start")
    seen_items = False
    if t.peek() == "}":
        t.pos += 1
    else:
        while True:
            key = t.value(MAX_OTHER, "a key")
            if not isinstance(key, str):
                raise ListError("a key is not a string")
            t.expect(":", f'after "{key[:40]}"')
            if key != "items":
                t.value(MAX_OTHER, f'the value of "{key[:40]}"')
            elif seen_items:
                raise ListError('"items" appears twice')
            else:
                seen_items = True
                t.expect("[", 'after "items":')
                index = 0
                if t.peek() == "]":
                    t.pos += 1
                else:
                    while True:
                        item = t.value(max_item, f"item {index}")
                        if not isinstance(item, dict):
                            raise ListError(f"item {index} is not an object")
                        yield item
                        index += 1
                        if t.expect(",]", f"after item {index - 1}") == "]":
                            break
            if t.expect(",}", f'after the value of "{key[:40]}"') == "}":
                break
    if t.peek() is not None:
        raise ListError("other data follows the document")
