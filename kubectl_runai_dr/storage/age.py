"""age encryption (age-encryption.org/v1) of whole bundles, streaming.

Recipients and identities are the age tool's own: X25519 keys (``age1…`` /
``AGE-SECRET-KEY-1…``), SSH keys (``ssh-ed25519``, ``ssh-rsa``) and passphrases (the
``scrypt`` recipient, as ``age -p`` writes it). The format is implemented here, following
the age specification line by line, over the primitives of the ``cryptography`` package
(OpenSSL: X25519, ChaCha20-Poly1305, RSA-OAEP; HKDF, HMAC and scrypt from the standard
library), imported only when a bundle is encrypted or decrypted. The tests check every
recipient type against the ``age`` command in both directions.

Owning the format buys two things a library's streaming call does not give: speed (each
64 KiB chunk is one call into OpenSSL, not a byte-at-a-time relay through Python), and
random access: a chunk's key stream depends only on its number, so an upload encrypts
its parts in whatever order it sends them, and a reader starts at any chunk.

Decryption authenticates every chunk: a modified bundle fails at the first modified
chunk, and the reader reports it as a damaged archive (nothing of it is used: ``verify``
reads everything first).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_runai_dr.errors import BundleError, UsageError

MAGIC = b"age-encryption.org/v1\n"
ARMOR = b"-----BEGIN AGE ENCRYPTED FILE-----"
SUFFIX = ".age"
CHUNK = 64 * 1024
TAG = 16
MAX_HEADER = 64 * 1024  # recipients' stanzas: a few hundred bytes each
SCRYPT_LOG_N = 18  # the age tool's work factor
MAX_SCRYPT_LOG_N = 22  # as age: no more (2^22 takes 4 GiB of memory and seconds)
IDENTITY_ENV = "RUNAI_DR_AGE_KEY"  # identities themselves (AGE-SECRET-KEY-1…), for CI
IDENTITY_FILE_ENV = "RUNAI_DR_AGE_KEY_FILE"  # a file of identities
PASSPHRASE_ENV = "RUNAI_DR_PASSPHRASE"
_LABEL = b"age-encryption.org/v1/scrypt"
FILE_KEY = 16


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
    """Canonical unpadded base64, as age requires (the unused bits of the last character
    zero): any other spelling of the same bytes is refused."""
    if not re.fullmatch(rb"[A-Za-z0-9+/]*", text):
        raise ValueError("not base64")
    out = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    if _b64(out) != text:
        raise ValueError("not canonical base64")
    return out


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
            if len(line) > 64:
                raise bad
            try:
                body += _b64decode(line)
            except ValueError:
                raise bad from None
            pos = end + 1
            if len(line) < 64:
                break
        bodies.append(body)


# -- primitives (the ``cryptography`` package: OpenSSL underneath) --------------------------
def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869), 32 bytes; an empty salt is 32 zero bytes."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def _aead(key: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    return ChaCha20Poly1305(key)


def _wrap(key: bytes, file_key: bytes) -> bytes:
    """A recipient stanza's body: the file key sealed under ``key`` (zero nonce)."""
    return bytes(_aead(key).encrypt(bytes(12), file_key, None))


def _unwrap(key: bytes, body: bytes) -> bytes | None:
    """The file key from a stanza's body, or None when ``key`` is not the one."""
    from cryptography.exceptions import InvalidTag

    if len(body) != FILE_KEY + TAG:
        return None
    try:
        return bytes(_aead(key).decrypt(bytes(12), body, None))
    except InvalidTag:
        return None


def _x25519(scalar: bytes, point: bytes) -> bytes | None:
    """X25519(scalar, point) per RFC 7748 (the scalar clamped), or None for a point of
    small order (an all-zero shared secret, which age refuses)."""
    from cryptography.hazmat.primitives.asymmetric import x25519

    try:
        out = x25519.X25519PrivateKey.from_private_bytes(scalar).exchange(
            x25519.X25519PublicKey.from_public_bytes(point))
    except ValueError:
        return None
    return None if out == bytes(32) else out


def _x25519_public(scalar: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import x25519

    return x25519.X25519PrivateKey.from_private_bytes(scalar).public_key().public_bytes_raw()


def _chunk_nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _scrypt(passphrase: bytes, salt: bytes, log_n: int) -> bytes:
    return hashlib.scrypt(passphrase, salt=_LABEL + salt, n=1 << log_n, r=8, p=1,
                          maxmem=(1 << log_n) * 8 * 128 + 16 * 1024 * 1024, dklen=32)


# -- bech32 (BIP 173): how age writes X25519 keys --------------------------------------------
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _polymod(values: Iterable[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= gen[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _regroup(data: Iterable[int], frm: int, to: int, pad: bool) -> list[int] | None:
    acc = bits = 0
    out = []
    for value in data:
        acc = (acc << frm) | value
        bits += frm
        while bits >= to:
            bits -= to
            out.append((acc >> bits) & ((1 << to) - 1))
    if pad and bits:
        out.append((acc << (to - bits)) & ((1 << to) - 1))
    elif not pad and (bits >= frm or (acc << (to - bits)) & ((1 << to) - 1)):
        return None
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    five = _regroup(data, 8, 5, True) or []
    check = _polymod(_hrp_expand(hrp) + five + [0] * 6) ^ 1
    five += [(check >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32[v] for v in five)


def bech32_decode(text: str) -> tuple[str, bytes] | None:
    """(human-readable part, data) of a bech32 string, or None when it is not one (mixed
    case, a bad character or checksum)."""
    if text.lower() != text and text.upper() != text:
        return None
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text) or any(ord(c) < 33 or ord(c) > 126 for c in text):
        return None
    hrp, rest = text[:pos], text[pos + 1:]
    if any(c not in _BECH32 for c in rest):
        return None
    five = [_BECH32.index(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + five) != 1:
        return None
    data = _regroup(five[:-6], 5, 8, False)
    return None if data is None else (hrp, bytes(data))


# -- recipients: what a new bundle is encrypted to ------------------------------------------
_X25519_LABEL = b"age-encryption.org/v1/X25519"
_ED25519_LABEL = b"age-encryption.org/v1/ssh-ed25519"
_RSA_LABEL = b"age-encryption.org/v1/ssh-rsa"
_P = 2**255 - 19


def _ssh_tag(blob: bytes) -> bytes:
    return hashlib.sha256(blob).digest()[:4]


def _ed25519_to_x25519(public: bytes) -> bytes | None:
    """The Montgomery u-coordinate of an Ed25519 public key (u = (1 + y) / (1 - y))."""
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    if y >= _P or y == 1:
        return None
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return u.to_bytes(32, "little")


@dataclass(frozen=True)
class X25519Recipient:
    public: bytes

    def stanza(self, file_key: bytes) -> tuple[list[bytes], bytes]:
        while True:
            ephemeral = os.urandom(32)
            shared = _x25519(ephemeral, self.public)
            if shared is not None:
                break
        share = _x25519_public(ephemeral)
        key = _hkdf(shared, share + self.public, _X25519_LABEL)
        return [b"X25519", _b64(share)], _wrap(key, file_key)


@dataclass(frozen=True)
class SshEd25519Recipient:
    blob: bytes  # the key in SSH wire format (what the tag is taken of)
    montgomery: bytes  # the Ed25519 key as an X25519 one

    def stanza(self, file_key: bytes) -> tuple[list[bytes], bytes]:
        tweak = _hkdf(b"", self.blob, _ED25519_LABEL)
        while True:
            ephemeral = os.urandom(32)
            first = _x25519(ephemeral, self.montgomery)
            shared = _x25519(tweak, first) if first is not None else None
            if shared is not None:
                break
        share = _x25519_public(ephemeral)
        key = _hkdf(shared, share + self.montgomery, _ED25519_LABEL)
        return [b"ssh-ed25519", _b64(_ssh_tag(self.blob)), _b64(share)], _wrap(key, file_key)


@dataclass(frozen=True)
class SshRsaRecipient:
    blob: bytes
    key: Any  # cryptography's RSAPublicKey

    def stanza(self, file_key: bytes) -> tuple[list[bytes], bytes]:
        return [b"ssh-rsa", _b64(_ssh_tag(self.blob))], self.key.encrypt(file_key, _oaep())


Recipient = X25519Recipient | SshEd25519Recipient | SshRsaRecipient


def _oaep() -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(),
                        label=_RSA_LABEL)


def _ssh_public(text: str) -> Recipient | None:
    """An ``ssh-ed25519 …`` / ``ssh-rsa …`` public key line; None when it is not valid."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    fields = text.split()
    if len(fields) < 2:
        return None
    try:
        blob = base64.b64decode(fields[1], validate=True)
        key = load_ssh_public_key(f"{fields[0]} {fields[1]}".encode())
    except (ValueError, TypeError, binascii.Error):
        return None
    if isinstance(key, ed25519.Ed25519PublicKey) and fields[0] == "ssh-ed25519":
        montgomery = _ed25519_to_x25519(key.public_bytes_raw())
        return None if montgomery is None else SshEd25519Recipient(blob, montgomery)
    if isinstance(key, rsa.RSAPublicKey) and fields[0] == "ssh-rsa":
        if key.key_size < 2048:
            raise UsageError(f"the ssh-rsa key {fields[1][:16]}… has {key.key_size} bits; "
                             "age needs at least 2048", hint="use a larger or an ed25519 key")
        return SshRsaRecipient(blob, key)
    return None


def parse_recipient(text: str) -> Recipient:
    text = text.strip()
    if text.upper().startswith("AGE-SECRET-KEY-") or "PRIVATE KEY" in text.upper():
        raise UsageError("a private key (identity) was given where a recipient (public key) "
                         "belongs; it is not shown",
                         hint="give the age1… line that `keygen` printed (or the .pub file of "
                              "an SSH key); keep the identity away from backups")
    if text.startswith("age1"):
        decoded = bech32_decode(text)
        if decoded is not None and decoded[0] == "age" and len(decoded[1]) == 32 \
                and text == text.lower():
            return X25519Recipient(decoded[1])
    elif text.startswith(("ssh-ed25519 ", "ssh-rsa ")):
        found = _ssh_public(text)
        if found is not None:
            return found
    elif text.startswith("ssh-"):
        raise UsageError(f"unsupported SSH key type in recipient {_clean(text[:20])}…",
                         hint="use an ssh-ed25519 or ssh-rsa key, or an age1… key")
    shown = _clean(text[:24]) + ("…" if len(text) > 24 else "")
    raise UsageError(f"{shown!r} is not a valid age recipient",
                     hint="an X25519 key (age1…, from `kubectl runai-dr keygen` or "
                          "`age-keygen`) or an SSH public key (ssh-ed25519 … / ssh-rsa …)")


def load_recipients(values: Iterable[str], files: Iterable[str]) -> list[Recipient]:
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


# -- identities: what opens a bundle ---------------------------------------------------------
@dataclass(frozen=True)
class X25519Identity:
    secret: bytes

    def unwrap(self, args: tuple[str, ...], body: bytes) -> bytes | None:
        if args[0] != "X25519" or len(args) != 2:
            return None
        share = _decode_arg(args[1], 32)
        shared = _x25519(self.secret, share) if share is not None else None
        if share is None or shared is None:
            return None
        key = _hkdf(shared, share + _x25519_public(self.secret), _X25519_LABEL)
        return _unwrap(key, body)


@dataclass(frozen=True)
class SshEd25519Identity:
    blob: bytes
    secret: bytes  # the X25519 scalar: SHA-512 of the Ed25519 seed, first half
    montgomery: bytes

    def unwrap(self, args: tuple[str, ...], body: bytes) -> bytes | None:
        if args[0] != "ssh-ed25519" or len(args) != 3 or \
                _decode_arg(args[1], 4) != _ssh_tag(self.blob):
            return None
        share = _decode_arg(args[2], 32)
        first = _x25519(self.secret, share) if share is not None else None
        shared = _x25519(_hkdf(b"", self.blob, _ED25519_LABEL), first) if first else None
        if share is None or shared is None:
            return None
        return _unwrap(_hkdf(shared, share + self.montgomery, _ED25519_LABEL), body)


@dataclass(frozen=True)
class SshRsaIdentity:
    blob: bytes
    key: Any  # cryptography's RSAPrivateKey

    def unwrap(self, args: tuple[str, ...], body: bytes) -> bytes | None:
        if args[0] != "ssh-rsa" or len(args) != 2 or \
                _decode_arg(args[1], 4) != _ssh_tag(self.blob):
            return None
        try:
            out = bytes(self.key.decrypt(body, _oaep()))
        except ValueError:
            return None
        return out if len(out) == FILE_KEY else None


Identity = X25519Identity | SshEd25519Identity | SshRsaIdentity


def _decode_arg(text: str, size: int) -> bytes | None:
    try:
        out = _b64decode(text.encode())
    except ValueError:
        return None
    return out if len(out) == size else None


def _ssh_identity(text: str, source: str) -> Identity:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    bad = UsageError(f"{source} is not an SSH private key this tool can use",
                     hint="an ssh-ed25519 or ssh-rsa key in OpenSSH format, or an age "
                          "identity file")
    try:
        if "OPENSSH PRIVATE KEY" in text:
            key: Any = serialization.load_ssh_private_key(text.encode(), password=None)
        else:
            key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise bad from None
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(public.split()[1])
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes_raw()
        montgomery = _ed25519_to_x25519(key.public_key().public_bytes_raw())
        if montgomery is None:
            raise bad
        return SshEd25519Identity(blob, hashlib.sha512(seed).digest()[:32], montgomery)
    if isinstance(key, rsa.RSAPrivateKey):
        return SshRsaIdentity(blob, key)
    raise bad


def parse_identities(text: str, source: str) -> list[Identity]:
    if "-----BEGIN" in text:
        if "ENCRYPTED" in text or _openssh_encrypted(text):
            raise UsageError(f"the SSH key {source} is protected by a passphrase",
                             hint="use a key without one, or an age identity")
        return [_ssh_identity(text, source)]
    out: list[Identity] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        decoded = bech32_decode(line) if line.startswith("AGE-SECRET-KEY-1") else None
        if decoded is None or decoded[0] != "age-secret-key-" or len(decoded[1]) != 32 \
                or line != line.upper():
            raise UsageError(f"{source}, line {number} is not an age identity",
                             hint="identity lines start with AGE-SECRET-KEY-1")
        out.append(X25519Identity(decoded[1]))
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


def load_identities(files: Iterable[str],
                    env: Mapping[str, str] | None = None) -> list[Identity]:
    """Identities from ``--identity`` files, then ``RUNAI_DR_AGE_KEY`` (identities) and
    ``RUNAI_DR_AGE_KEY_FILE`` (a file of them)."""
    env = env if env is not None else os.environ
    out: list[Identity] = []
    for name in files:
        out += parse_identities(_read_small(name, "identity file"), name)
    if env.get(IDENTITY_ENV):
        out += parse_identities(env[IDENTITY_ENV], f"${IDENTITY_ENV}")
    if env.get(IDENTITY_FILE_ENV):
        name = env[IDENTITY_FILE_ENV]
        out += parse_identities(_read_small(name, "identity file"), name)
    return out


def keygen() -> tuple[str, str]:
    """A new X25519 identity: (identity, recipient), as age-keygen writes them."""
    secret = os.urandom(32)
    return (bech32_encode("age-secret-key-", secret).upper(),
            bech32_encode("age", _x25519_public(secret)))


# -- the header and the STREAM payload ----------------------------------------------------------
def _header(stanzas: list[tuple[list[bytes], bytes]], file_key: bytes) -> bytes:
    """The age header: the stanzas, then the MAC over them under the file key."""
    head = MAGIC
    for args, body in stanzas:
        body64 = _b64(body)
        lines = [body64[i:i + 64] for i in range(0, len(body64), 64)] or [b""]
        if len(lines[-1]) == 64:
            lines.append(b"")
        head += b"-> " + b" ".join(args) + b"\n" + b"\n".join(lines) + b"\n"
    head += b"---"
    mac = hmac.new(_hkdf(file_key, b"", b"header"), head, hashlib.sha256).digest()
    return head + b" " + _b64(mac) + b"\n"


def _scrypt_stanza(passphrase: bytes, file_key: bytes, log_n: int) -> tuple[list[bytes], bytes]:
    salt = os.urandom(16)
    return ([b"scrypt", _b64(salt), str(log_n).encode()],
            _wrap(_scrypt(passphrase, salt, log_n), file_key))


class Sealer:
    """One age file being written: its header (with the payload nonce) and the payload
    key. ``encrypt_at`` encrypts whole chunks at any position, so the parts of an upload
    can be encrypted as they are sent, in whatever order they are sent. (Memory: one
    copy of a part, its ciphertext, written chunk by chunk into one buffer.)"""

    def __init__(self, stanzas: list[tuple[list[bytes], bytes]], file_key: bytes) -> None:
        nonce = os.urandom(16)
        self.header = _header(stanzas, file_key) + nonce  # what precedes the first chunk
        self._aead = _aead(_hkdf(file_key, nonce, b"payload"))

    def encrypt_at(self, counter: int, plain: bytes | bytearray | memoryview, *,
                   final: bool, prefix: bytes = b"") -> bytearray:
        """``prefix``, then the ciphertext of ``plain`` starting at chunk ``counter``:
        ``plain`` is whole chunks unless ``final`` (the end of the file: its last chunk is
        marked)."""
        view = memoryview(plain)
        if not final and len(view) % CHUNK:
            raise ValueError("only the end of an age file may hold a partial chunk")
        count = max(1, -(-len(view) // CHUNK))
        out = bytearray(len(prefix) + len(view) + count * TAG)
        out[:len(prefix)] = prefix
        dst, pos = memoryview(out), len(prefix)
        for i in range(count):
            piece = view[i * CHUNK:(i + 1) * CHUNK]
            self._aead.encrypt_into(_chunk_nonce(counter + i, final and i == count - 1),
                                    piece, None, dst[pos:pos + len(piece) + TAG])
            pos += len(piece) + TAG
        return out


class _StreamEncryptor:
    """Plaintext in, the age file out to ``out``: chunks encrypted as they fill (the last
    full one is held back, since the last chunk of the file is marked)."""

    def __init__(self, out: Any, sealer: Sealer) -> None:
        self._out = out
        self._sealer = sealer
        self._buf = bytearray()
        self._counter = 0
        out.write(sealer.header)

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        pos = 0
        if self._buf:
            take = min(CHUNK - len(self._buf), len(view))
            self._buf += view[:take]
            pos = take
            if pos == len(view):
                return len(view)
            self._emit(self._buf)
            self._buf = bytearray()
        whole = (len(view) - pos - 1) // CHUNK * CHUNK  # keep at least one byte back
        if whole > 0:
            self._emit(view[pos:pos + whole])
            pos += whole
        self._buf += view[pos:]
        return len(view)

    def _emit(self, plain: bytes | bytearray | memoryview) -> None:
        self._out.write(self._sealer.encrypt_at(self._counter, plain, final=False))
        self._counter += len(plain) // CHUNK

    def close(self) -> None:
        self._out.write(self._sealer.encrypt_at(self._counter, self._buf, final=True))
        self._buf = bytearray()  # the output stays open: its owner finishes it


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


class _StreamDecryptor(_Chunked):
    """An age file's ciphertext from chunk ``counter`` on → plaintext."""

    def __init__(self, stream: Any, key: bytes, counter: int) -> None:
        super().__init__()
        self._stream = stream
        self._aead = _aead(key)
        self._counter = counter
        self._next = _read_exact(stream, CHUNK + TAG)
        self._done = False

    def _next_chunk(self) -> bytes | None:
        from cryptography.exceptions import InvalidTag

        from kubectl_runai_dr.bundle.source import Unreadable

        if self._done:
            return None
        current = self._next
        self._next = _read_exact(self._stream, CHUNK + TAG) if len(current) == CHUNK + TAG \
            else b""
        last = not self._next
        if len(current) < TAG or (last and len(current) == TAG and self._counter > 0):
            raise Unreadable("the encrypted bundle is cut short (truncated)")
        try:
            plain: bytes = self._aead.decrypt(_chunk_nonce(self._counter, last), current,
                                              None)
        except InvalidTag:
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


def _clean(text: str) -> str:
    return "".join(c if c.isprintable() else " " for c in text)[:200]


IDENTITY_HINT = ("give the key with --identity FILE (an age identity file or SSH private "
                 f"key; or ${IDENTITY_ENV} / ${IDENTITY_FILE_ENV}), or --passphrase")


# -- the public API: a sealing writer, and a decrypting source -----------------------------
@dataclass(frozen=True)
class Sealing:
    """How new bundles are encrypted: to these recipients, or with a passphrase."""

    recipients: tuple[Recipient, ...] = ()
    passphrase: bytes | None = None
    log_n: int = SCRYPT_LOG_N

    def describe(self) -> str:
        if self.passphrase is not None:
            return "a passphrase"
        n = len(self.recipients)
        return f"{n} recipient{'s' if n != 1 else ''}"

    def start(self) -> Sealer:
        """A new age file: a fresh file key, wrapped for every recipient."""
        file_key = os.urandom(FILE_KEY)
        if self.passphrase is not None:
            return Sealer([_scrypt_stanza(self.passphrase, file_key, self.log_n)], file_key)
        if not self.recipients:
            raise UsageError("no recipient to encrypt to")
        return Sealer([r.stanza(file_key) for r in self.recipients], file_key)

    def seal(self, out: Any) -> Any:
        """A writer: plaintext in, the age file out to ``out`` (which stays open)."""
        return _StreamEncryptor(out, self.start())


@dataclass(frozen=True)
class Opening:
    """How encrypted bundles are opened: identities, or a passphrase asked for when one
    is needed (``ask``: returns it, or None when there is no way to ask)."""

    identities: tuple[Identity, ...] = ()
    ask: Callable[[], bytes | None] | None = None


class DecryptingSource:
    """An encrypted bundle's plaintext, for the reader. Seekable when the bundle's own
    source is: every chunk is encrypted on its own, so a read may start at any chunk."""

    encrypted = True

    def __init__(self, inner: Any, opening: Opening) -> None:
        self.inner = inner
        self.name = inner.name
        self.seekable = bool(inner.seekable)
        head = _read_exact_source(inner, MAX_HEADER)
        self.header = parse_header(head, self.name)
        self._opening = opening
        if "scrypt" in self.header.kinds:
            file_key = self._unlock_scrypt()
        elif not opening.identities:
            raise AgeError(f"{self.name} is encrypted (age, to {self.header.describe()})",
                           hint=IDENTITY_HINT)
        else:
            file_key = self._unlock_identities()
        mac = hmac.new(_hkdf(file_key, b"", b"header"), self.header.signed,
                       hashlib.sha256).digest()
        if not hmac.compare_digest(mac, self.header.mac):
            raise AgeError(f"{self.name}: the age header fails its MAC: the file was modified")
        stream = inner.open(self.header.size)
        try:
            nonce = _read_exact(stream, 16)
        finally:
            stream.close()
        if len(nonce) != 16:
            raise AgeError(f"{self.name}: the encrypted file is cut short")
        self._key = _hkdf(file_key, nonce, b"payload")
        self._start = self.header.size + 16

    def _unlock_identities(self) -> bytes:
        for args, body in zip(self.header.stanzas, self.header.bodies, strict=True):
            for identity in self._opening.identities:
                file_key = identity.unwrap(args, body)
                if file_key is not None:
                    return file_key
        raise AgeError(f"{self.name}: none of the identities given can decrypt it",
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
        salt = _decode_arg(stanza[1], 16)
        if salt is None or len(self.header.bodies[0]) != FILE_KEY + TAG or \
                stanza[2] != str(log_n):
            raise AgeError(f"{self.name}: the scrypt stanza is malformed")
        passphrase = self._opening.ask() if self._opening.ask else None  # (once it can be used)
        if passphrase is None:
            raise AgeError(f"{self.name} is encrypted with a passphrase",
                           hint=f"pass --passphrase (asked on the terminal, or from "
                                f"${PASSPHRASE_ENV} / --passphrase-file)")
        file_key = _unwrap(_scrypt(passphrase, salt, log_n), self.header.bodies[0])
        if file_key is None:
            raise AgeError(f"{self.name}: the passphrase is wrong",
                           hint="check it, and run again")
        return file_key

    def open(self, offset: int = 0) -> Any:
        chunk = offset // CHUNK if self.seekable else 0
        if chunk and offset % CHUNK == 0:  # (the chunk before: this one may be past the end)
            chunk -= 1
        stream = self.inner.open(self._start + chunk * (CHUNK + TAG))
        try:
            out = _StreamDecryptor(stream, self._key, chunk)
        except BaseException:
            stream.close()
            raise
        if offset > chunk * CHUNK:
            from kubectl_runai_dr.bundle.source import skip

            skip(out, offset - chunk * CHUNK)
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
