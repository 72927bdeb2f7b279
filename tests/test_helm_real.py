"""The helm bridge prints what the real helm binary prints, for the same releases.

Releases are made by real helm against the loopback API server: install, upgrades, a
failed upgrade and a rollback. Then `kubectl runai-dr backup` (no helm involved) must hold
exactly `helm get values` and `helm get values --all` of the latest deployed revision.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeapi import ApiServer
from kubeapi.seed import seed_runai

from tests.e2e import ROOT, cli, components, manifest_of, member

HELMS = [h for h in ("helm", "helm4") if (ROOT / ".tools" / "bin" / h).exists()]
pytestmark = pytest.mark.skipif(not HELMS, reason="helm binaries not installed "
                                "(scripts/bootstrap-tests.sh fetches them)")


def helm(binary: str, kc: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = str(ROOT / ".tools" / "bin" / binary)
    p = subprocess.run([exe, "--kubeconfig", str(kc), *args], capture_output=True, text=True,
                       timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {p.stderr}")
    return p


def get_values(binary: str, kc: Path, release: str, ns: str, *extra: str) -> dict[str, Any]:
    out = helm(binary, kc, "get", "values", release, "-n", ns, "-o", "json", *extra).stdout
    values: dict[str, Any] = json.loads(out) or {}
    return values


def _chart(tmp: Path, *, broken: bool = False) -> Path:
    chart = tmp / ("broken" if broken else "chart")
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    (chart / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "runai-cluster", "version": "2.16.79",
        "appVersion": "2.16.79"}))
    (chart / "values.yaml").write_text(yaml.safe_dump({
        "controlPlane": {"url": "", "clientSecret": "", "existingClientSecret": None},
        "cluster": {"uid": "", "url": ""},
        "global": {"image": {"registry": "gcr.io/run-ai-prod"}, "nodeSelector": {}},
        "replicas": 1, "tolerations": [],
    }))
    cm = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n"
          "  url: {{{{ .Values.controlPlane.url | quote }}}}\n")
    (chart / "templates" / "cm.yaml").write_text(cm.format(name="{{ .Release.Name }}-settings"))
    if broken:  # the same objects plus one the API server refuses (invalid name)
        (chart / "templates" / "bad.yaml").write_text(cm.format(name="Bad_Name"))
    return chart


@pytest.mark.parametrize("binary", HELMS)
def test_seeded_releases_match_helm_get_values(apiserver: ApiServer, tmp_path: Path,
                                               binary: str) -> None:
    seed_runai(apiserver, projects=2)
    kc = apiserver.write_kubeconfig(tmp_path / "kc")
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(tmp_path / "b.tar.gz"),
            "--skip", "database")
    assert r.code == 0, r.stderr
    bundle = tmp_path / "b.tar.gz"
    for release, ns in (("runai-backend", "runai-backend"), ("runai-cluster", "runai")):
        info = json.loads(member(bundle, f"helm/{release}/release.json"))
        rev = str(info["revision"])
        assert yaml.safe_load(member(bundle, f"helm/{release}/values.yaml")) == \
            get_values(binary, kc, release, ns, "--revision", rev)
        assert yaml.safe_load(member(bundle, f"helm/{release}/values-all.yaml")) == \
            get_values(binary, kc, release, ns, "--all", "--revision", rev)


@pytest.mark.parametrize("binary", HELMS)
def test_history_made_by_real_helm(apiserver: ApiServer, tmp_path: Path, binary: str) -> None:
    kc = apiserver.write_kubeconfig(tmp_path / "kc")
    apiserver.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "runai"}})
    chart, broken = _chart(tmp_path), _chart(tmp_path, broken=True)
    v1 = tmp_path / "v1.yaml"
    v1.write_text(yaml.safe_dump({"controlPlane": {"url": "https://cp.example.com",
                                                   "clientSecret": "s3cr3t"},
                                  "cluster": {"uid": "1234", "url": "https://c.example.com"}}))
    v2 = tmp_path / "v2.yaml"
    v2.write_text(yaml.safe_dump({"global": {"nodeSelector": {"pool": "cpu"}},
                                  "tolerations": [{"key": "gpu", "operator": "Exists"}],
                                  "controlPlane": {"existingClientSecret": "x"}}))
    rel = ["-n", "runai", "runai-cluster"]
    helm(binary, kc, "install", *rel, str(chart), "-f", str(v1))
    helm(binary, kc, "upgrade", *rel, str(chart), "-f", str(v1), "-f", str(v2),
         "--set", "replicas=2")
    failed = helm(binary, kc, "upgrade", *rel, str(broken), "-f", str(v1), "--set",
                  "replicas=3", check=False)
    assert failed.returncode != 0  # the API server refused the invalid ConfigMap name
    history = json.loads(helm(binary, kc, "history", *rel[2:], "-n", "runai", "-o",
                              "json").stdout)
    assert [h["status"] for h in history] == ["superseded", "deployed", "failed"]

    # while the latest revision is the failed one, the backup takes revision 2
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(tmp_path / "a.tar.gz"),
            "--skip", "database")
    assert r.code == 0, r.stderr
    c = components(manifest_of(tmp_path / "a.tar.gz"))["cluster"]
    assert c["details"]["revision"] == 2
    assert any("revision 3 is failed" in w for w in c.get("warnings", []))
    assert yaml.safe_load(member(tmp_path / "a.tar.gz", "helm/runai-cluster/values.yaml")) == \
        get_values(binary, kc, "runai-cluster", "runai", "--revision", "2")

    helm(binary, kc, "rollback", "runai-cluster", "1", "-n", "runai")
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(tmp_path / "b.tar.gz"),
            "--skip", "database")
    assert r.code == 0, r.stderr
    bundle = tmp_path / "b.tar.gz"
    info = json.loads(member(bundle, "helm/runai-cluster/release.json"))
    assert info["revision"] == 4 and info["status"] == "deployed"
    assert info["chart"] == "runai-cluster" and info["appVersion"] == "2.16.79"
    assert yaml.safe_load(member(bundle, "helm/runai-cluster/values.yaml")) == \
        get_values(binary, kc, "runai-cluster", "runai")
    assert yaml.safe_load(member(bundle, "helm/runai-cluster/values-all.yaml")) == \
        get_values(binary, kc, "runai-cluster", "runai", "--all")


def test_configmap_driver(apiserver: ApiServer, tmp_path: Path) -> None:
    seed_runai(apiserver, projects=1, helm_driver="configmap")
    kc = apiserver.write_kubeconfig(tmp_path / "kc")
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(tmp_path / "b.tar.gz"),
            "--skip", "database")
    assert r.code == 0, r.stderr
    c = components(manifest_of(tmp_path / "b.tar.gz"))
    assert c["cluster"]["details"]["driver"] == "configmap"
    env_kc = str(kc)
    p = subprocess.run([str(ROOT / ".tools/bin" / HELMS[0]), "--kubeconfig", env_kc, "get",
                        "values", "runai-cluster", "-n", "runai", "-o", "json"],
                       capture_output=True, text=True, env={"HELM_DRIVER": "configmap",
                                                            "PATH": "/usr/bin:/bin",
                                                            "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr
    assert yaml.safe_load(member(tmp_path / "b.tar.gz", "helm/runai-cluster/values.yaml")) == \
        (json.loads(p.stdout) or {})
