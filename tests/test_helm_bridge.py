"""The helm storage bridge: decoding and value coalescing, without a cluster."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

from kubectl_runai_dr.components.helm import (
    coalesce_values,
    decode_release_payload,
    encode_release_payload,
    pick_revision,
    release_from_object,
)


def _release(version: int, status: str, config: dict[str, Any],
             values: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "runai-backend", "namespace": "runai-backend", "version": version,
            "info": {"status": status}, "config": config,
            "chart": {"metadata": {"name": "control-plane", "version": "2.16.79",
                                   "appVersion": "2.16.79"}, "values": values or {}}}


def _secret(rel: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Secret", "metadata": {"name": f"sh.helm.release.v1.x.v{rel['version']}",
                                           "namespace": "runai-backend"},
            "data": {"release": encode_release_payload(rel, for_secret=True)}}


def test_secret_payload_is_double_base64_gzip() -> None:
    rel = _release(1, "deployed", {"a": 1})
    payload = encode_release_payload(rel, for_secret=True)
    inner = base64.b64decode(base64.b64decode(payload))
    assert inner[:2] == b"\x1f\x8b"
    assert json.loads(gzip.decompress(inner)) == rel
    assert decode_release_payload(payload, from_secret=True) == rel
    cm = encode_release_payload(rel, for_secret=False)
    assert decode_release_payload(cm, from_secret=False) == rel
    with pytest.raises(ValueError, match="not base64"):
        decode_release_payload("@@@", from_secret=True)


def test_latest_deployed_not_failed_or_pending() -> None:
    revs = [release_from_object(_secret(_release(v, s, {"v": v})))
            for v, s in [(1, "superseded"), (2, "deployed"), (3, "failed"),
                         (4, "pending-upgrade")]]
    deployed, latest = pick_revision(revs)
    assert deployed is not None and deployed.revision == 2 and deployed.config == {"v": 2}
    assert latest is not None and latest.revision == 4
    assert pick_revision([]) == (None, None)


def test_coalesce_like_helm_get_values_all() -> None:
    chart: dict[str, Any] = {"global": {"domain": "", "tls": {"enabled": True, "secret": "x"}},
             "replicas": 1, "list": [1, 2], "drop": {"me": 1}, "keep": None,
             "postgresql": {"enabled": True, "auth": {"username": "postgres"}}}
    user: dict[str, Any] = {"global": {"domain": "runai.example.com", "tls": {"secret": None}},
            "list": [3], "drop": None, "extra": {"k": "v"},
            "postgresql": {"auth": {"password": "pw"}}}
    out = coalesce_values(chart, user)
    assert out == {
        "global": {"domain": "runai.example.com", "tls": {"enabled": True}},
        "replicas": 1, "list": [3], "keep": None, "extra": {"k": "v"},
        "postgresql": {"enabled": True, "auth": {"username": "postgres", "password": "pw"}},
    }
    # inputs are untouched
    assert chart["global"]["tls"] == {"enabled": True, "secret": "x"}
    assert user["drop"] is None
