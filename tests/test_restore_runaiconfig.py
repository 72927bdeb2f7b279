"""RunaiConfig restore: the saved spec merged into the live object (or created), and the
keys the cluster chart also sets reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubeapi import ApiServer
from kubeapi.seed import SeedInfo, seed_runai

from kubectl_runai_dr.components.runaiconfig import chart_set_keys, merged_spec, wrap_spec
from kubectl_runai_dr.model import Names
from tests.e2e import cli


def test_merged_spec_saved_wins_maps_merge_lists_replace() -> None:
    live = {"a": {"x": 1, "y": 2}, "b": [1, 2], "keep": True}
    saved = {"a": {"x": 9}, "b": [3], "new": {"z": 1}}
    assert merged_spec(live, saved) == {"a": {"x": 9, "y": 2}, "b": [3], "keep": True,
                                        "new": {"z": 1}}
    assert live == {"a": {"x": 1, "y": 2}, "b": [1, 2], "keep": True}


def test_chart_set_keys_same_path_or_under_spec() -> None:
    spec = {"global": {"image": {"registry": "r"}, "subdomainSupport": False},
            "prometheus": {"spec": {"retention": "2h", "retentionSize": "20GB"}},
            "project-controller": {"createNamespaces": True}}
    values = {"global": {"image": {"registry": "x", "tag": "1"}},
              "spec": {"prometheus": {"spec": {"retention": "1h"}}}}
    assert chart_set_keys(spec, values) == ["global.image.registry",
                                            "prometheus.spec.retention"]
    assert chart_set_keys(spec, {}) == []


def test_wrap_spec() -> None:
    obj = wrap_spec({"a": 1}, Names(cluster_namespace="rn", runaiconfig_name="cfg"))
    assert obj == {"apiVersion": "run.ai/v1", "kind": "RunaiConfig",
                   "metadata": {"name": "cfg", "namespace": "rn"}, "spec": {"a": 1}}


@pytest.fixture
def seeded(apiserver: ApiServer, tmp_path: Path) -> tuple[ApiServer, Path, SeedInfo, Path]:
    info = seed_runai(apiserver, projects=1)
    kc = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    bundle = tmp_path / "b.tar.gz"
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(bundle), "--no-record",
            "--skip", "database")
    assert r.code == 0, r.stderr
    return apiserver, kc, info, bundle


def test_merge_into_reinstalled_object(seeded: tuple[ApiServer, Path, SeedInfo, Path]) -> None:
    srv, kc, info, bundle = seeded
    # after a cluster re-install: the chart's RunaiConfig, with defaults, not the saved spec
    live = srv.get("run.ai/v1", "RunaiConfig", "runai", "runai")
    assert live is not None
    live["spec"] = {"global": {"image": {"registry": "runai.jfrog.io"}},
                    "project-controller": {"createNamespaces": False},
                    "chart-only": {"enabled": True}}
    live["metadata"].pop("resourceVersion")
    srv.delete_object("run.ai/v1", "RunaiConfig", "runai", "runai")
    srv.seed(live)

    dry = cli("restore", str(bundle), "--only", "runaiconfig", "--dry-run",
              "--kubeconfig", str(kc))
    assert dry.code == 0, dry.stderr
    assert "update RunaiConfig/runai/runai" in dry.stdout
    assert "+    createNamespaces: true" in dry.stdout
    r = cli("restore", str(bundle), "--yes", "--only", "runaiconfig", "--kubeconfig", str(kc),
            "-o", "json")
    assert r.code == 0, r.stderr
    step = next(s for s in json.loads(r.stdout)["steps"] if s["name"] == "runaiconfig")
    assert step["counts"] == {"updated": 1}
    warning = step["warnings"][0]
    assert "global.image.registry" in warning and "prometheus.spec.retention" in warning
    assert "project-controller" not in warning
    got = srv.get("run.ai/v1", "RunaiConfig", "runai", "runai")
    assert got is not None
    assert got["spec"] == {**info.runaiconfig_spec, "chart-only": {"enabled": True}}
    again = cli("restore", str(bundle), "--yes", "--only", "runaiconfig",
                "--kubeconfig", str(kc), "-o", "json")
    step = next(s for s in json.loads(again.stdout)["steps"] if s["name"] == "runaiconfig")
    assert step["counts"] == {"unchanged": 1}


def test_missing_crd_stops_in_preflight(seeded: tuple[ApiServer, Path, SeedInfo, Path]) -> None:
    srv, kc, _info, bundle = seeded
    srv.delete_object("apiextensions.k8s.io/v1", "CustomResourceDefinition",
                      "runaiconfigs.run.ai")
    r = cli("restore", str(bundle), "--yes", "--only", "runaiconfig", "--kubeconfig", str(kc))
    assert r.code == 1
    assert "RunaiConfig CRD (runaiconfigs.run.ai) is not installed" in r.stderr
    assert "--skip runaiconfig" in r.stderr
