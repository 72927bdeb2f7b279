"""age encryption (age-encryption.org/v1) of whole bundles, streaming.

Recipients and identities are the age tool's own: X25519 keys (``age1…`` /
``AGE-SECRET-KEY-1…``) and SSH keys (``ssh-ed25519``, ``ssh-rsa``), handled by ``pyrage``
(bindings of the Rust ``rage`` implementation), imported only here and only when a bundle
is encrypted or decrypted. pyrage's streaming calls run in a thread of their own, fed
and drained through bounded queues, so memory stays flat whatever the bundle's size.

Passphrases (the ``scrypt`` recipient, as ``age -p`` writes it) are handled here, because
pyrage offers them only for data held whole in memory: the header and the STREAM payload
(ChaCha20-Poly1305 over 64 KiB chunks, HKDF-SHA256 keys) follow the age specification,
and the tests check them against the ``age`` command in both directions.

Decryption authenticates every chunk: a modified bundle fails at the first modified
chunk, and the reader reports it as a damaged archive (nothing of it is used: ``verify``
reads everything first).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import queue
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_runai_dr.errors import BundleError, DrError, UsageError

MAGIC = b"age-encryption.org/v1\n"
ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
SUFFIX = ".age"
CHUNK = 64 * 1024
TAG = 16
MAX_HEADER = 64 * 1024  # recipients' stanzas: a few hundred bytes each
SCRYPT_LOG_N = 18  # the age tool's work factor
MAX_SCRYPT_LOG_N = 22  # refuse files that would take minutes and gigabytes to open
IDENTITY_ENV = "RUNAI_DR_AGE_KEY"  # identities themselves (AGE-SECRET-KEY-1…), for CI
IDENTITY_FILE_ENV = "RUNAI_DR_AGE_KEY_FILE"  # a file of identities
PASSPHRASE_ENV = "RUNAI_DR_PASSPHRASE"
_LABEL = b"age-encryption.org/v1/scrypt"
_QUEUE = 16  # chunks in flight between the tool and the age thread


class AgeError(BundleError):
    """An encrypted bundle that cannot be opened (no matching identity, bad passphrase,
    not an age file) — the invalid-bundle exit code."""


# -- header (read without any key: what `inspect` can say) ---------------------------------
@dataclass(frozen=True)
class Header:
    stanzas: tuple[tuple[str, ...], ...]  # (type, args…) of each recipient stanza
    bodies: tuple[bytes, ...]
    mac: bytes
    signed: bytes  # the header up to and including "---" (what the MAC covers)
    size: int  # bytes up to and including the header's final newline

    @property
    def kinds(self) -> dict[str, int]:
        """Recipient types and how many of each; the random "grease" stanzas rage adds
        (types ending in -grease) are not recipients."""
        out: dict[str, int] = {}
        for s in self.stanzas:
            if not s[0].endswith("-grease"):
                out[s[0]] = out.get(s[0], 0) + 1
        return out

    def describe(self) -> str:
        """"2 X25519, 1 ssh-ed25519 recipients"."""
        parts = [f"{n} {kind}" for kind, n in sorted(self.kinds.items())]
        total = sum(self.kinds.values())
        if self.kinds.get("scrypt"):
            return "a passphrase"
        return f"{', '.join(parts)} recipient{'s' if total != 1 else ''}"


def is_encrypted(head: bytes) -> bool:
    return head.startswith(MAGIC) or head.lstrip().startswith(ARMOR)


def _b64decode(text: bytes) -> bytes:
    if not re.fullmatch(rb"[A-Za-z0-9+/]*", text):
        raise ValueError("not base64")
    return base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)


def _b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def parse_header(data: bytes, name: str = "the bundle") -> Header:
    """The age header at the start of ``data`` (at least the header's bytes)."""
    if data.lstrip().startswith(ARMOR):
        raise AgeError(f"{name} is an ASCII-armored age file",
                       hint="decrypt it with `age -d`, or encrypt without -a / --armor")
    if not data.startswith(MAGIC):
        raise AgeError(f"{name} is not an age-encrypted file")
    pos = len(MAGIC)
    stanzas: list[tuple[str, ...]] = []
    bodies: list[bytes] = []
    bad = AgeError(f"{name}: the age header is malformed",
                   hint="the file is damaged or not made by age")
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise AgeError(f"{name}: the age header is longer than {MAX_HEADER} bytes or "
                           "cut short", hint="the file is damaged or not made by age")
        line = data[pos:end]
        if line.startswith(b"--- "):
            try:
                mac = _b64decode(line[4:])
            except ValueError:
                raise bad from None
            signed = data[:pos + 3]
            return Header(tuple(stanzas), tuple(bodies), mac, signed, end + 1)
        if not line.startswith(b"-> "):
            raise bad
        args = line[3:].split(b" ")
        if not args or not all(args) or not all(re.fullmatch(rb"[\x21-\x7e]+", a)
                                                for a in args):
            raise bad
        stanzas.append(tuple(a.decode() for a in args))
        body = b""
        pos = end + 1
        while True:  # body lines of 64 columns; the last one shorter (maybe empty)
            end = data.find(b"\n", pos)
            if end < 0:
                raise bad
            line = data[pos:end]
            try:
                body += _b64decode(line)
            except ValueError:
                raise bad from None
            pos = end + 1
            if len(line) < 64:
                break
        bodies.append(body)


# -- recipients and identities -------------------------------------------------------------
def _pyrage() -> Any:
    import pyrage

    return pyrage


def parse_recipient(text: str) -> Any:
    text = text.strip()
    if text.startswith("AGE-SECRET-KEY-") or "PRIVATE KEY" in text:
        raise UsageError("a private key (identity) was given where a recipient (public key) "
                         "belongs; it is not shown",
                         hint="give the age1… line that `keygen` printed (or the .pub file of "
                              "an SSH key); keep the identity away from backups")
    pyrage = _pyrage()
    try:
        if text.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(text)
        if text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
            return pyrage.ssh.Recipient.from_str(text)
    except Exception:
        pass
    else:
        if text.startswith("ssh-"):
            raise UsageError(f"unsupported SSH key type in recipient {text[:20]}…",
                             hint="use an ssh-ed25519 or ssh-rsa key, or an age1… key")
    shown = text[:24] + ("…" if len(text) > 24 else "")
    raise UsageError(f"{shown!r} is not a valid age recipient",
                     hint="an X25519 key (age1…, from `kubectl runai-dr keygen` or "
                          "`age-keygen`) or an SSH public key (ssh-ed25519 … / ssh-rsa …)")


def load_recipients(values: Iterable[str], files: Iterable[str]) -> list[Any]:
    """Recipients from ``--encrypt-to`` values and ``--recipients-file`` files (one per
    line; blank lines and ``#`` comments ignored)."""
    out = [parse_recipient(v) for v in values]
    for name in files:
        for number, line in _numbered_recipients(name):
            try:
                out.append(parse_recipient(line))
            except UsageError as exc:
                raise UsageError(f"{name}, line {number}: {exc.message}", hint=exc.hint) \
                    from None
    return out


def _numbered_recipients(name: str) -> list[tuple[int, str]]:
    """(line number, recipient) of a recipients file: one per line, blank lines and ``#``
    comments ignored, at most 1 MiB; at least one."""
    found = [(number, line.strip()) for number, line in
             enumerate(_read_small(name, "recipients file").splitlines(), 1)
             if line.strip() and not line.strip().startswith("#")]
    if not found:
        raise UsageError(f"the recipients file {name} holds no recipient")
    return found


def recipient_lines(name: str) -> list[str]:
    """The recipients of a recipients file as text (no key library needed: what a
    CronJob passes on, checked by its own rules)."""
    return [line for _, line in _numbered_recipients(name)]


def _read_small(name: str, what: str, limit: int = 1024 * 1024) -> str:
    try:
        with open(name, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {name}: {exc.strerror}") from None
    if len(data) > limit:
        raise UsageError(f"the {what} {name} is larger than 1 MiB")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise UsageError(f"the {what} {name} is not text") from None


def parse_identities(text: str, source: str) -> list[Any]:
    pyrage = _pyrage()
    if "-----BEGIN" in text:
        if "ENCRYPTED" in text or _openssh_encrypted(text):
            raise UsageError(f"the SSH key {source} is protected by a passphrase",
                             hint="use a key without one, or an age identity")
        try:
            return [pyrage.ssh.Identity.from_buffer(text.encode())]
        except Exception:
            raise UsageError(f"{source} is not an SSH private key this tool can use",
                             hint="an ssh-ed25519 or ssh-rsa key in OpenSSH format, or an "
                                  "age identity file") from None
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            out.append(pyrage.x25519.Identity.from_str(line))
        except Exception:
            raise UsageError(f"{source}, line {number} is not an age identity",
                             hint="identity lines start with AGE-SECRET-KEY-1") from None
    if not out:
        raise UsageError(f"{source} holds no identity")
    return out


def _openssh_encrypted(text: str) -> bool:
    """An OpenSSH-format private key protected by a passphrase (its cipher is not none)."""
    body = "".join(line for line in text.splitlines() if line and not line.startswith("-"))
    try:
        raw = base64.b64decode(body[:200] + "=" * (-len(body[:200]) % 4))
    except ValueError:
        return False
    return raw.startswith(b"openssh-key-v1\0") and b"\0\0\0\x04none" not in raw[15:40]


def load_identities(files: Iterable[str], env: Mapping[str, str] | None = None) -> list[Any]:
    """Identities from ``--identity`` files, then ``RUNAI_DR_AGE_KEY`` (identities) and
    ``RUNAI_DR_AGE_KEY_FILE`` (a file of them)."""
    env = env if env is not None else os.environ
    out: list[Any] = []
    for name in files:
        out += parse_identities(_read_small(name, "identity file"), name)
    if env.get(IDENTITY_ENV):
        out += parse_identities(env[IDENTITY_ENV], f"${IDENTITY_ENV}")
    if env.get(IDENTITY_FILE_ENV):
        name = env[IDENTITY_FILE_ENV]
        out += parse_identities(_read_small(name, "identity file"), name)
    return out


def keygen() -> tuple[str, str]:
    """A new X25519 identity: (identity, recipient)."""
    ident = _pyrage().x25519.Identity.generate()
    return str(ident), str(ident.to_public())


# -- the STREAM payload (passphrase mode) --------------------------------------------------
def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def _aead(key: bytes, nonce: bytes) -> Any:
    from Crypto.Cipher import ChaCha20_Poly1305

    return ChaCha20_Poly1305.new(key=key, nonce=nonce)


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _scrypt(passphrase: bytes, salt: bytes, log_n: int) -> bytes:
    return hashlib.scrypt(passphrase, salt=_LABEL + salt, n=1 << log_n, r=8, p=1,
                          maxmem=(1 << log_n) * 8 * 128 + 16 * 1024 * 1024, dklen=32)


def _passphrase_header(passphrase: bytes, file_key: bytes, log_n: int) -> bytes:
    salt = os.urandom(16)
    wrapped = _aead(_scrypt(passphrase, salt, log_n), bytes(12))
    body, tag = wrapped.encrypt_and_digest(file_key)
    body64 = _b64(body + tag)
    lines = [body64[i:i + 64] for i in range(0, len(body64), 64)] or [b""]
    if len(lines[-1]) == 64:
        lines.append(b"")
    head = MAGIC + b"-> scrypt " + _b64(salt) + b" " + str(log_n).encode() + b"\n" + \
        b"\n".join(lines) + b"\n---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), head, hashlib.sha256).digest()
    return head + b" " + _b64(mac) + b"\n"


class _StreamEncryptor:
    """Plaintext in, age STREAM chunks out to ``out``."""

    def __init__(self, out: Any, file_key: bytes) -> None:
        self._out = out
        nonce = os.urandom(16)
        out.write(nonce)
        self._key = _hkdf(file_key, nonce, b"payload")
        self._buf = bytearray()
        self._counter = 0

    def write(self, data: bytes) -> int:
        self._buf += data
        while len(self._buf) > CHUNK:  # keep one chunk: the last one is marked
            self._emit(bytes(self._buf[:CHUNK]), last=False)
            del self._buf[:CHUNK]
        return len(data)

    def _emit(self, plain: bytes, *, last: bool) -> None:
        ct, tag = _aead(self._key, _chunk_nonce(self._counter, last)).encrypt_and_digest(
            plain)
        self._out.write(ct + tag)
        self._counter += 1

    def close(self) -> None:
        self._emit(bytes(self._buf), last=True)
        self._buf.clear()  # the output stays open: its owner finishes it


class _Chunked:
    """A readable stream over chunks that ``_next_chunk`` produces (None at the end). A
    read returns at most the rest of one chunk, never copying a chunk whole: a later
    chunk may fail (authentication), and that is reported when it is reached."""

    def __init__(self) -> None:
        self._buf = memoryview(b"")
        self._eof = False

    def _next_chunk(self) -> bytes | None:
        raise NotImplementedError

    def _fill(self) -> None:
        while not self._buf and not self._eof:
            chunk = self._next_chunk()
            if chunk is None:
                self._eof = True
            else:
                self._buf = memoryview(chunk)

    def read(self, size: int = -1) -> bytes:
        self._fill()
        n = len(self._buf) if size < 0 else size
        out, self._buf = self._buf[:n], self._buf[n:]
        return out.tobytes()

    def readinto(self, buffer: Any) -> int:
        """Straight into the caller's buffer (pyrage reads 8 KiB at a time)."""
        self._fill()
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._buf))
        view[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


class _StreamDecryptor(_Chunked):
    """A stream of an age file's ciphertext after its header → plaintext."""

    def __init__(self, stream: Any, file_key: bytes, name: str) -> None:
        super().__init__()
        self._stream = stream
        self._name = name
        nonce = _read_exact(stream, 16)
        if len(nonce) != 16:
            raise AgeError(f"{name}: the encrypted file is cut short")
        self._key = _hkdf(file_key, nonce, b"payload")
        self._counter = 0
        self._next = _read_exact(stream, CHUNK + TAG)
        self._done = False

    def _next_chunk(self) -> bytes | None:
        from kubectl_runai_dr.bundle.source import Unreadable

        if self._done:
            return None
        current = self._next
        self._next = _read_exact(self._stream, CHUNK + TAG) if len(current) == CHUNK + TAG \
            else b""
        last = not self._next
        if len(current) < TAG or (last and len(current) == TAG and self._counter > 0):
            raise Unreadable("the encrypted bundle is cut short (truncated)")
        body, tag = current[:-TAG], current[-TAG:]
        try:
            plain: bytes = _aead(self._key, _chunk_nonce(self._counter, last)) \
                .decrypt_and_verify(body, tag)
        except ValueError:
            raise Unreadable("the encrypted bundle fails authentication at byte "
                             f"{self._counter * CHUNK} of its content: it was modified or "
                             "is truncated") from None
        self._counter += 1
        self._done = last
        return plain

    def close(self) -> None:
        self._stream.close()


def _read_exact(stream: Any, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        data = stream.read(size - len(out))
        if not data:
            break
        out += data
    return bytes(out)


# -- pyrage in a thread ---------------------------------------------------------------------
class _QueueReader(_Chunked):
    """What the age thread reads: chunks the tool put in the queue; b"" at the end."""

    def __init__(self, q: queue.Queue[bytes | None]) -> None:
        super().__init__()
        self._q = q

    def _next_chunk(self) -> bytes | None:
        return self._q.get()


class _KeyEncryptor:
    """Plaintext written here is encrypted by pyrage in a thread into ``out``."""

    def __init__(self, out: Any, recipients: list[Any]) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(_QUEUE)
        self._out = out
        self._error: BaseException | None = None
        self._buf = bytearray()
        self._thread = threading.Thread(target=self._run, args=(recipients,),
                                        name="age-encrypt", daemon=True)
        self._thread.start()

    def _run(self, recipients: list[Any]) -> None:
        out = _Guarded(self._out)
        try:
            _pyrage().encrypt_io(_QueueReader(self._q), out, recipients)
        except BaseException as exc:
            # the output's own failure (disk full, the bucket went away) is the one to
            # report, not pyrage's wrapping of it
            self._error = out.error or exc
            _drain(self._q)

    def write(self, data: bytes) -> int:
        self._buf += data
        if len(self._buf) >= CHUNK:
            self._put(bytes(self._buf))
            self._buf.clear()
        return len(data)

    def _put(self, item: bytes | None) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                if not self._thread.is_alive():
                    raise self._error or RuntimeError("the encryption stopped") from None

    def close(self) -> None:
        if self._buf:
            self._put(bytes(self._buf))
            self._buf.clear()
        self._put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the encryption thread (the output is dropped by its owner)."""
        self._buf.clear()
        _drain(self._q)
        with contextlib.suppress(queue.Full):
            self._q.put(None, timeout=1)
        self._thread.join(timeout=5)


class _Guarded:
    """A file-like passed to pyrage: remembers the exception its inner object raised (pyrage
    turns it into a string), so the original can be re-raised."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.error: BaseException | None = None

    def write(self, data: Any) -> int:
        try:
            return int(self._inner.write(bytes(data)) or len(data))
        except BaseException as exc:
            self.error = exc
            raise

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self._inner.read(size if size >= 0 else 1024 * 1024))
        except BaseException as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        pass


def _drain(q: queue.Queue[bytes | None]) -> None:
    """Empty the queue, so a thread blocked putting into it wakes up."""
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


class _QueueWriter:
    def __init__(self, q: queue.Queue[bytes | None], stop: threading.Event) -> None:
        self._q = q
        self._stop = stop

    def write(self, data: Any) -> int:
        data = bytes(data)
        while True:
            if self._stop.is_set():
                raise BrokenPipeError("the reader stopped")
            try:
                self._q.put(data, timeout=0.2)
                return len(data)
            except queue.Full:
                continue

    def flush(self) -> None:
        pass


class _KeyDecryptor(_Chunked):
    """Ciphertext from ``stream`` decrypted by pyrage in a thread; read the plaintext."""

    def __init__(self, stream: Any, identities: list[Any], name: str) -> None:
        super().__init__()
        self._q: queue.Queue[bytes | None] = queue.Queue(_QUEUE)
        self._stop = threading.Event()
        self._stream = stream
        self._name = name
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(identities,),
                                        name="age-decrypt", daemon=True)
        self._thread.start()

    def _run(self, identities: list[Any]) -> None:
        source = _Guarded(self._stream)
        try:
            _pyrage().decrypt_io(source, _QueueWriter(self._q, self._stop), identities)
        except BaseException as exc:
            self._error = source.error or exc
        finally:
            while True:
                try:
                    self._q.put(None, timeout=0.2)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        break

    def _next_chunk(self) -> bytes | None:
        from kubectl_runai_dr.bundle.source import Unreadable

        item = self._q.get()
        if item is None and self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, DrError):  # the source failed, not the bundle
                raise error
            if "No matching keys" in str(error):
                raise AgeError(f"{self._name}: none of the identities given can decrypt it",
                               hint=IDENTITY_HINT)
            raise Unreadable("the encrypted bundle fails authentication: it was modified, "
                             f"or is truncated ({_clean(str(error))})")
        return item

    def close(self) -> None:
        self._stop.set()
        _drain(self._q)
        self._thread.join(timeout=5)
        self._stream.close()


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)[:200]


IDENTITY_HINT = ("give the key with --identity FILE (an age identity file or SSH private "
                 f"key; or ${IDENTITY_ENV} / ${IDENTITY_FILE_ENV}), or --passphrase")


# -- the public API: a sealing writer, and a decrypting source -----------------------------
@dataclass(frozen=True)
class Sealing:
    """How new bundles are encrypted: to these recipients, or with a passphrase."""

    recipients: tuple[Any, ...] = ()
    passphrase: bytes | None = None
    log_n: int = SCRYPT_LOG_N

    def describe(self) -> str:
        if self.passphrase is not None:
            return "a passphrase"
        n = len(self.recipients)
        return f"{n} recipient{'s' if n != 1 else ''}"

    def seal(self, out: Any) -> Any:
        """A writer: plaintext in, the age file out to ``out`` (closed with it)."""
        if self.passphrase is not None:
            file_key = os.urandom(16)
            out.write(_passphrase_header(self.passphrase, file_key, self.log_n))
            return _StreamEncryptor(out, file_key)
        return _KeyEncryptor(out, list(self.recipients))


@dataclass(frozen=True)
class Opening:
    """How encrypted bundles are opened: identities, or a passphrase asked for when one
    is needed (``ask``: returns it, or None when there is no way to ask)."""

    identities: tuple[Any, ...] = ()
    ask: Callable[[], bytes | None] | None = None


class DecryptingSource:
    """An encrypted bundle's plaintext, for the reader. Unseekable: each stream decrypts
    from the start (the reader remembers where members are only on seekable sources)."""

    seekable = False
    encrypted = True

    def __init__(self, inner: Any, opening: Opening) -> None:
        self.inner = inner
        self.name = inner.name
        head = _read_exact_source(inner, MAX_HEADER)
        self.header = parse_header(head, self.name)
        self._opening = opening
        self._file_key: bytes | None = None
        if "scrypt" in self.header.kinds:
            self._file_key = self._unlock_scrypt()
        elif not opening.identities:
            raise AgeError(f"{self.name} is encrypted (age, to {self.header.describe()})",
                           hint=IDENTITY_HINT)

    def _unlock_scrypt(self) -> bytes:
        if len(self.header.stanzas) != 1:
            raise AgeError(f"{self.name}: a passphrase-encrypted age file must have one "
                           "recipient stanza")
        stanza = self.header.stanzas[0]
        if len(stanza) != 3 or not stanza[2].isdigit():
            raise AgeError(f"{self.name}: the scrypt stanza is malformed")
        log_n = int(stanza[2])
        if not 1 <= log_n <= MAX_SCRYPT_LOG_N:
            raise AgeError(f"{self.name}: scrypt work factor {log_n} is outside 1-"
                           f"{MAX_SCRYPT_LOG_N}", hint="re-encrypt it with a normal one")
        passphrase = self._opening.ask() if self._opening.ask else None
        if passphrase is None:
            raise AgeError(f"{self.name} is encrypted with a passphrase",
                           hint=f"pass --passphrase (asked on the terminal, or from "
                                f"${PASSPHRASE_ENV} / --passphrase-file)")
        try:
            salt = _b64decode(stanza[1].encode())
        except ValueError:
            raise AgeError(f"{self.name}: the scrypt stanza is malformed") from None
        if len(salt) != 16 or len(self.header.bodies[0]) != 32 or stanza[2] != str(log_n):
            raise AgeError(f"{self.name}: the scrypt stanza is malformed")
        key = _scrypt(passphrase, salt, log_n)
        body = self.header.bodies[0]
        try:
            file_key: bytes = _aead(key, bytes(12)).decrypt_and_verify(body[:-TAG], body[-TAG:])
        except ValueError:
            raise AgeError(f"{self.name}: the passphrase is wrong",
                           hint="check it, and run again") from None
        mac = hmac.new(_hkdf(file_key, b"", b"header"), self.header.signed,
                       hashlib.sha256).digest()
        if not hmac.compare_digest(mac, self.header.mac):
            raise AgeError(f"{self.name}: the age header fails its MAC: the file was modified")
        return file_key

    def open(self, offset: int = 0) -> Any:
        if self._file_key is not None:
            stream = self.inner.open(self.header.size)
            try:
                out: Any = _StreamDecryptor(stream, self._file_key, self.name)
            except BaseException:
                stream.close()
                raise
        else:
            out = _KeyDecryptor(self.inner.open(0), list(self._opening.identities),
                                self.name)
        if offset:
            from kubectl_runai_dr.bundle.source import skip

            skip(out, offset)
        return out

    def close(self) -> None:
        self.inner.close()


def _read_exact_source(source: Any, size: int) -> bytes:
    stream = source.open(0)
    try:
        return _read_exact(stream, size)
    finally:
        stream.close()


def read_passphrase(prompt: Callable[[str], str], *, confirm: bool) -> bytes:
    """A passphrase from the terminal (twice when ``confirm``), never from argv."""
    first = prompt("Passphrase: ")
    if not first:
        raise UsageError("an empty passphrase is not accepted")
    if confirm and prompt("Passphrase (again): ") != first:
        raise UsageError("the passphrases differ", hint="run again and type the same twice")
    return first.encode()


def passphrase_from(file: str | None, env: Mapping[str, str] | None = None) -> bytes | None:
    """A passphrase for scripts: from ``--passphrase-file`` (a file or /dev/fd/N: its
    first line) or ``RUNAI_DR_PASSPHRASE``; None when neither is set."""
    env = env if env is not None else os.environ
    if file:
        text = _read_small(file, "passphrase file").splitlines()
        if not text or not text[0]:
            raise UsageError(f"the passphrase file {file} is empty")
        return text[0].encode()
    if env.get(PASSPHRASE_ENV):
        return env[PASSPHRASE_ENV].encode()
    return None
