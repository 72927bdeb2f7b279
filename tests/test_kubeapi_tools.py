"""Real kubectl and helm against the loopback API server, and the Run:ai seed."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Protocol

import pytest
from kubeapi import ApiServer
from kubeapi.seed import decode_helm_release, encode_helm_release, seed_runai

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str | None:
    local = ROOT / ".tools" / "bin" / name
    return str(local) if local.exists() else shutil.which(name)


class Kubectl(Protocol):
    def __call__(self, *args: str, input: str | None = None,
                 check: bool = True) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    exe = _tool("kubectl")
    if exe is None:
        pytest.skip("no kubectl")

    def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([exe, "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "kcache"), *args],
                           input=input, capture_output=True, text=True, timeout=30)
        if check:
            assert r.returncode == 0, r.stderr
        return r

    return run


def test_kubectl_discovery_get_and_apply(apiserver: ApiServer, kubectl: Kubectl) -> None:
    out = kubectl("api-resources").stdout
    for line in ("namespaces ", "rolebindings ", "projects ", "runaiconfigs ", "volumesnapshots "):
        assert line in out
    manifest = """
apiVersion: v1
kind: Namespace
metadata:
  name: runai-team-a
  labels: {runai/queue: team-a}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: runai-job-executor-manual, namespace: runai-team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: runai-job-executor}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice@example.com}]
"""
    first = kubectl("apply", "-f", "-", input=manifest).stdout
    assert "namespace/runai-team-a created" in first and "created" in first.splitlines()[1]
    second = kubectl("apply", "-f", "-", input=manifest).stdout
    assert second.count("unchanged") == 2, second
    data = json.loads(kubectl("get", "namespaces,rolebindings", "-A", "-o", "json").stdout)
    kinds = {(i["kind"], i["metadata"]["name"]) for i in data["items"]}
    assert ("RoleBinding", "runai-job-executor-manual") in kinds and ("Namespace", "runai-team-a") in kinds
    kubectl("wait", "--for=jsonpath={.status.phase}=Active", "namespace/runai-team-a", "--timeout=5s")
    assert kubectl("get", "rb", "-A", check=False).returncode != 0  # real servers have no "rb" short name


def test_kubectl_sees_a_new_crd_once_established(apiserver: ApiServer, kubectl: Kubectl) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.example.com"},
           "spec": {"group": "example.com", "scope": "Cluster",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}
    apiserver.crd_establish_delay = 1.0
    kubectl("get", "namespaces")  # discovery cached before the CRD exists
    kubectl("apply", "-f", "-", input=json.dumps(crd))
    gadget = json.dumps({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}})
    early = kubectl("apply", "-f", "-", input=gadget, check=False)  # not served before Established
    assert early.returncode != 0 and 'no matches for kind "Gadget"' in early.stderr
    kubectl("wait", "--for=condition=Established", "crd/gadgets.example.com", "--timeout=10s")
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "example.com/v1", "kind": "Gadget",
                                                 "metadata": {"name": "g"}, "spec": {"x": 1}}))
    assert kubectl("get", "gadgets", "-o", "name").stdout.strip() == "gadget.example.com/g"


def test_seed_contents(apiserver: ApiServer) -> None:
    info = seed_runai(apiserver, projects=3)
    assert info.project_namespaces == ["runai-proj-0000", "runai-proj-0001", "runai-proj-0002"]
    ns = apiserver.get("v1", "Namespace", "runai-proj-0001")
    assert ns is not None and ns["metadata"]["labels"]["runai/queue"] == "proj-0001"
    assert len(apiserver.list("rbac.authorization.k8s.io/v1", "RoleBinding", "runai-proj-0002")) == 7
    p = apiserver.get("run.ai/v2", "Project", "proj-0000")
    assert p is not None and p["spec"]["namespace"] == p["status"]["namespace"] == "runai-proj-0000"
    secrets = {s["metadata"]["name"]: s for s in apiserver.list("v1", "Secret", "runai-backend")}
    rel = secrets["sh.helm.release.v1.runai-backend.v4"]
    assert rel["type"] == "helm.sh/release.v1" and rel["metadata"]["labels"]["status"] == "deployed"
    decoded = decode_helm_release(base64.b64decode(rel["data"]["release"]).decode())
    assert decoded["config"] == info.helm_releases["runai-backend"].config and decoded["version"] == 4
    assert decoded["chart"]["metadata"]["name"] == "control-plane"
    assert [s for r, s in info.helm_releases["runai-backend"].revisions] == ["superseded", "superseded", "failed",
                                                                           "deployed"]
    pod = apiserver.get("v1", "Pod", "runai-backend-postgresql-0", "runai-backend")
    assert pod is not None and pod["status"]["phase"] == "Running"
    assert apiserver.get("run.ai/v1", "RunaiConfig", "runai", "runai") is not None
    assert decode_helm_release(encode_helm_release({"a": 1})) == {"a": 1}


def test_seed_saas_with_configmap_driver(apiserver: ApiServer) -> None:
    info = seed_runai(apiserver, projects=2, control_plane=False, helm_driver="configmap")
    assert apiserver.get("v1", "Namespace", "runai-backend") is None and "runai-backend" not in info.helm_releases
    cm = apiserver.get("v1", "ConfigMap", "sh.helm.release.v1.runai-cluster.v2", "runai")
    assert cm is not None and decode_helm_release(cm["data"]["release"])["config"]["cluster"]["uid"]


@pytest.mark.parametrize("driver", ["secret", "configmap"])
def test_real_helm_reads_seeded_releases(apiserver: ApiServer, kubeconfig: Path, driver: str) -> None:
    helm = ROOT / ".tools" / "bin" / "helm"
    if not helm.exists():
        pytest.skip("helm is not installed in .tools/bin")
    info = seed_runai(apiserver, projects=1, helm_driver=driver)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(kubeconfig.parent), "HELM_DRIVER": driver}
    r = subprocess.run([str(helm), "get", "values", "runai-backend", "-n", "runai-backend", "-o", "json",
                        "--kubeconfig", str(kubeconfig)], capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == info.helm_releases["runai-backend"].config
    r = subprocess.run([str(helm), "list", "-A", "-o", "json", "--kubeconfig", str(kubeconfig)],
                       capture_output=True, text=True, timeout=30, env=env)
    assert {x["name"]: x["revision"] for x in json.loads(r.stdout)}["runai-backend"] == "4"
