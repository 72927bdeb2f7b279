"""Decoding of the Kubernetes protobuf encoding for the types clients send that way.

client-go typed clients (helm's release storage among them) write Secrets and ConfigMaps as
`application/vnd.kubernetes.protobuf`: the magic b"k8s\\x00", then a runtime.Unknown envelope holding
the TypeMeta and the raw message. Only the messages needed here are decoded (field numbers from
k8s.io/api/core/v1/generated.proto and apimachinery's meta/v1)."""

from __future__ import annotations

import base64
import datetime as _dt
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
            out.append((num, v))
        elif wt == 2:
            n, i = _varint(buf, i)
            out.append((num, buf[i:i + n]))
            i += n
        elif wt == 1:
            out.append((num, int.from_bytes(buf[i:i + 8], "little")))
            i += 8
        elif wt == 5:
            out.append((num, int.from_bytes(buf[i:i + 4], "little")))
            i += 4
        else:
            raise ProtobufError(f"unsupported wire type {wt}")
    return out


def _b(v: int | bytes) -> bytes:
    """A length-delimited field (bytes, a string or a message)."""
    if not isinstance(v, bytes):
        raise ProtobufError(f"expected a length-delimited field, got the varint {v}")
    return v


def _int(v: int | bytes) -> int:
    """A varint or fixed-size field."""
    if not isinstance(v, int):
        raise ProtobufError("expected a varint, got a length-delimited field")
    return v


def _s(v: int | bytes) -> str:
    return _b(v).decode()


def _map(entries: list[int | bytes], value_bytes: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for e in entries:
        k, val = "", b""
        for n, v in fields(_b(e)):
            if n == 1:
                k = _s(v)
            elif n == 2:
                val = _b(v)
        out[k] = base64.b64encode(val).decode() if value_bytes else val.decode()
    return out


def _time(b: bytes) -> str:
    secs = 0
    for n, v in fields(b):
        if n == 1:
            secs = _int(v)
    return _dt.datetime.fromtimestamp(secs, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _grouped(buf: bytes) -> dict[int, list[int | bytes]]:
    g: dict[int, list[int | bytes]] = {}
    for n, v in fields(buf):
        g.setdefault(n, []).append(v)
    return g


def object_meta(buf: bytes) -> dict[str, Any]:
    g = _grouped(buf)
    md: dict[str, Any] = {}
    for num, key in ((1, "name"), (2, "generateName"), (3, "namespace"), (5, "uid"), (6, "resourceVersion")):
        if num in g and g[num][-1]:
            md[key] = _s(g[num][-1])
    if 7 in g and g[7][-1]:
        md["generation"] = g[7][-1]
    if 8 in g and fields(_b(g[8][-1])):
        md["creationTimestamp"] = _time(_b(g[8][-1]))
    if 11 in g:
        md["labels"] = _map(g[11])
    if 12 in g:
        md["annotations"] = _map(g[12])
    if 14 in g:
        md["finalizers"] = [_s(v) for v in g[14]]
    return md


def _secret(buf: bytes) -> dict[str, Any]:
    g = _grouped(buf)
    obj: dict[str, Any] = {"metadata": object_meta(_b(g[1][-1])) if 1 in g else {}}
    if 2 in g:
        obj["data"] = _map(g[2], value_bytes=True)
    if 3 in g:
        obj["type"] = _s(g[3][-1])
    if 4 in g:
        obj["stringData"] = _map(g[4])
    if 5 in g:
        obj["immutable"] = bool(g[5][-1])
    return obj


def _configmap(buf: bytes) -> dict[str, Any]:
    g = _grouped(buf)
    obj: dict[str, Any] = {"metadata": object_meta(_b(g[1][-1])) if 1 in g else {}}
    if 2 in g:
        obj["data"] = _map(g[2])
    if 3 in g:
        obj["binaryData"] = _map(g[3], value_bytes=True)
    if 4 in g:
        obj["immutable"] = bool(g[4][-1])
    return obj


def _delete_options(buf: bytes) -> dict[str, Any]:
    g = _grouped(buf)
    obj: dict[str, Any] = {}
    if 1 in g:
        v = _int(g[1][-1])
        obj["gracePeriodSeconds"] = v - (1 << 64) if v >= 1 << 63 else v
    if 2 in g:
        pre = _grouped(_b(g[2][-1]))
        obj["preconditions"] = {k: _s(pre[n][-1]) for n, k in ((1, "uid"), (2, "resourceVersion")) if n in pre}
    if 3 in g:
        obj["orphanDependents"] = bool(g[3][-1])
    if 4 in g:
        obj["propagationPolicy"] = _s(g[4][-1])
    if 5 in g:
        obj["dryRun"] = [_s(v) for v in g[5]]
    return obj


DECODERS = {("v1", "Secret"): _secret, ("v1", "ConfigMap"): _configmap, ("v1", "DeleteOptions"): _delete_options,
            ("meta.k8s.io/v1", "DeleteOptions"): _delete_options}


def decode(body: bytes) -> dict[str, Any]:
    """An object from a protobuf-encoded request body; ProtobufError if the type is not supported."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    env = _grouped(body[len(MAGIC):])
    tm = _grouped(_b(env[1][-1])) if 1 in env else {}
    api_version = _s(tm[1][-1]) if 1 in tm else ""
    kind = _s(tm[2][-1]) if 2 in tm else ""
    raw = _b(env.get(2, [b""])[-1])
    dec = DECODERS.get((api_version, kind))
    if dec is None:
        raise ProtobufError(f"protobuf decoding of {api_version} {kind} is not implemented by this test server")
    obj = dec(raw)
    return {"apiVersion": api_version, "kind": kind, **obj}
