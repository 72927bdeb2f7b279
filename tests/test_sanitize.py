"""Restore clean-up: the deny-list plus per-kind actions, checked against golden pairs
``tests/golden/<name>-raw.json`` ↔ ``<name>-clean.json`` (``null``: not restored)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from kubectl_runai_dr.sanitize import (
    RESTORE_ACTIONS,
    RestoreCleanContext,
    Skip,
    clean_for_restore,
)

GOLDEN = Path(__file__).parent / "golden"
PAIRS = sorted(p.name[: -len("-raw.json")] for p in GOLDEN.glob("*-raw.json"))


def test_every_raw_file_has_its_clean_pair() -> None:
    assert len(PAIRS) >= 8
    for name in PAIRS:
        assert (GOLDEN / f"{name}-clean.json").exists(), name


@pytest.mark.parametrize("name", PAIRS)
def test_golden_pair(name: str) -> None:
    raw = json.loads((GOLDEN / f"{name}-raw.json").read_text())
    want = json.loads((GOLDEN / f"{name}-clean.json").read_text())
    original = copy.deepcopy(raw)
    got = clean_for_restore(raw)
    assert raw == original, "clean_for_restore must not modify its input"
    if want is None:
        assert isinstance(got, Skip) and got.reason
    else:
        assert got == want


def test_clean_is_idempotent_on_goldens() -> None:
    for name in PAIRS:
        want = json.loads((GOLDEN / f"{name}-clean.json").read_text())
        if want is not None:
            assert clean_for_restore(want) == want, name


def test_rolebinding_subjects_follow_namespace_mapping() -> None:
    raw = json.loads((GOLDEN / "rolebinding-raw.json").read_text())
    out = clean_for_restore(raw, RestoreCleanContext(namespace_map={"runai": "runai-dr"}))
    assert not isinstance(out, Skip)
    assert out["subjects"][1] == {"kind": "ServiceAccount", "name": "runai-job-controller",
                                  "namespace": "runai-dr"}
    assert "namespace" not in out["subjects"][0]


def test_namespace_keeps_a_name_label_that_is_not_its_own() -> None:
    raw = {"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": "a", "labels": {"kubernetes.io/metadata.name": "b"}}}
    out = clean_for_restore(raw)
    assert not isinstance(out, Skip)
    assert out["metadata"]["labels"] == {"kubernetes.io/metadata.name": "b"}


def test_service_without_last_applied_drops_every_node_port() -> None:
    raw = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n"},
           "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1", "healthCheckNodePort": 32000,
                    "ports": [{"port": 80, "nodePort": 30001}]}}
    out = clean_for_restore(raw)
    assert not isinstance(out, Skip)
    assert out["spec"] == {"type": "LoadBalancer", "ports": [{"port": 80}]}


def test_actions_apply_only_to_their_kinds() -> None:
    seen = set()
    for action in RESTORE_ACTIONS:
        assert action.kinds and action.name
        for kind in action.kinds:
            assert action.applies_to({"kind": kind})
            assert not action.applies_to({"kind": kind + "X"})
            seen.add(kind)
    assert {"Namespace", "RoleBinding", "PersistentVolumeClaim", "Service", "ConfigMap"} <= seen
