"""The helm bridge for re-installation: exact commands (pure), `helm values`, and the real
helm binary re-installing a release on the loopback server with the saved values."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from kubeapi import ApiServer
from kubeapi.seed import seed_runai

from kubectl_runai_dr.components.releases import (
    ChartSource,
    chart_source,
    reinstall_commands,
    upgrade_command,
)
from tests.e2e import ROOT, cli, member

HELM = ROOT / ".tools" / "bin" / "helm"
needs_helm = pytest.mark.skipif(not HELM.exists(), reason="helm not installed "
                                "(scripts/bootstrap-tests.sh fetches it)")


def test_control_plane_commands_with_restored_volume() -> None:
    cmds = reinstall_commands(
        release="runai-backend", namespace="runai-backend", chart="control-plane",
        version="2.16.79", values_file=Path("/v/runai-backend-values.yaml"),
        existing_claim="data-runai-backend-postgresql-0", kube_context="prod",
        kubeconfig="/k/config")
    assert cmds == [
        ["helm", "repo", "add", "runai-backend",
         "https://runai.jfrog.io/artifactory/cp-charts-prod", "--force-update"],
        ["helm", "repo", "update", "runai-backend"],
        ["helm", "upgrade", "--install", "runai-backend", "runai-backend/control-plane",
         "--namespace", "runai-backend", "--create-namespace", "--version", "2.16.79",
         "--values", "/v/runai-backend-values.yaml",
         "--set", "postgresql.primary.persistence.existingClaim=data-runai-backend-postgresql-0",
         "--kubeconfig", "/k/config", "--kube-context", "prod"],
    ]


def test_cluster_commands_and_overrides() -> None:
    cmds = reinstall_commands(release="runai-cluster", namespace="runai", chart="runai-cluster",
                              version="2.20.22", values_file=Path("v.yaml"))
    assert cmds[0][4] == "https://runai.jfrog.io/artifactory/api/helm/run-ai-charts"
    assert cmds[-1] == ["helm", "upgrade", "--install", "runai-cluster", "runai/runai-cluster",
                        "--namespace", "runai", "--create-namespace", "--version", "2.20.22",
                        "--values", "v.yaml"]
    mirror = reinstall_commands(release="runai-cluster", namespace="runai",
                                chart="runai-cluster", version="2.20.22",
                                values_file=Path("v.yaml"), repo_override="https://mirror/x")
    assert mirror[0] == ["helm", "repo", "add", "runai", "https://mirror/x", "--force-update"]
    local = reinstall_commands(release="runai-cluster", namespace="runai",
                               chart="runai-cluster", version="2.20.22",
                               values_file=Path("v.yaml"),
                               chart_override="./runai-cluster-2.20.22.tgz",
                               kube_context="in-cluster")
    assert local == [["helm", "upgrade", "--install", "runai-cluster",
                      "./runai-cluster-2.20.22.tgz", "--namespace", "runai",
                      "--create-namespace", "--values", "v.yaml"]]


def test_older_and_unknown_charts() -> None:
    assert chart_source("runai-backend") == ChartSource(
        "runai-backend/runai-backend", "runai-backend",
        "https://backend-charts.storage.googleapis.com")
    assert chart_source("something-else") == ChartSource("something-else")
    cmd = upgrade_command(release="r", namespace="n", src=ChartSource("c"), version="",
                          values_file=Path("v"), create_namespace=False)
    assert cmd == ["helm", "upgrade", "--install", "r", "c", "--namespace", "n",
                   "--values", "v"]


# -- against the loopback server ---------------------------------------------------------
@pytest.fixture
def seeded(apiserver: ApiServer, tmp_path: Path) -> tuple[ApiServer, Path, Path]:
    seed_runai(apiserver, projects=2)
    kc = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    bundle = tmp_path / "b.tar.gz"
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(bundle), "--no-record",
            "--skip", "database")
    assert r.code == 0, r.stderr
    return apiserver, kc, bundle


def test_helm_values_from_bundle_and_live(seeded: tuple[ApiServer, Path, Path],
                                          tmp_path: Path) -> None:
    _srv, kc, bundle = seeded
    for release in ("runai-backend", "runai-cluster"):
        r = cli("helm", "values", str(bundle), "--release", release)
        assert r.code == 0, r.stderr
        assert r.stdout.encode() == member(bundle, f"helm/{release}/values.yaml")
        live = cli("helm", "values", "--release", release, "--kubeconfig", str(kc))
        assert live.code == 0, live.stderr
        assert yaml.safe_load(live.stdout) == yaml.safe_load(r.stdout)
    r = cli("helm", "values", str(bundle), "--release", "runai-cluster", "--all")
    assert r.stdout.encode() == member(bundle, "helm/runai-cluster/values-all.yaml")
    r = cli("helm", "values", str(bundle), "--release", "runai-cluster", "--values-dir",
            str(tmp_path / "vals"))
    out = tmp_path / "vals" / "runai-cluster-values.yaml"  # the file restore writes
    assert r.code == 0 and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert yaml.safe_load(out.read_text())["cluster"]["uid"]
    as_json = cli("helm", "values", str(bundle), "--release", "runai-cluster", "-o", "json")
    assert json.loads(as_json.stdout) == yaml.safe_load(out.read_text())
    bad = cli("helm", "values", str(bundle), "--release", "nope")
    assert bad.code == 2 and "unknown release" in bad.stderr


def test_commands_printed_without_run_helm(seeded: tuple[ApiServer, Path, Path],
                                           tmp_path: Path) -> None:
    srv, kc, bundle = seeded
    for name in [s["metadata"]["name"] for s in srv.list("v1", "Secret", "runai")
                 if s["metadata"]["name"].startswith("sh.helm.release.v1.runai-cluster.")]:
        srv.delete_object("v1", "Secret", name, "runai")
    r = cli("restore", str(bundle), "--yes", "--only", "cluster", "--kubeconfig", str(kc),
            "--values-dir", str(tmp_path / "vals"))
    assert r.code == 0, r.stderr
    assert "helm upgrade --install runai-cluster runai/runai-cluster --namespace runai" in r.stdout
    assert f"--values {tmp_path / 'vals'}/runai-cluster-values.yaml" in r.stdout
    assert "--run-helm" in r.stdout  # says how to let the tool run them
    assert "c1ient-s3cret" not in r.stdout + r.stderr  # values never on screen
    # the values file the commands name is there, private
    values = tmp_path / "vals" / "runai-cluster-values.yaml"
    assert values.read_bytes() == member(bundle, "helm/runai-cluster/values.yaml")
    assert stat.S_IMODE(values.stat().st_mode) == 0o600


@needs_helm
def test_run_helm_reinstalls_and_waits_for_deployed(seeded: tuple[ApiServer, Path, Path],
                                                    tmp_path: Path) -> None:
    srv, kc, bundle = seeded
    saved = yaml.safe_load(member(bundle, "helm/runai-cluster/values.yaml"))
    for name in [s["metadata"]["name"] for s in srv.list("v1", "Secret", "runai")
                 if s["metadata"]["name"].startswith("sh.helm.release.v1.runai-cluster.")]:
        srv.delete_object("v1", "Secret", name, "runai")
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v2", "name": "runai-cluster", "version": "2.16.79",
        "appVersion": "2.16.79"}))
    (chart / "values.yaml").write_text(yaml.safe_dump({"cluster": {"uid": "", "url": ""}}))
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-identity\n"
        "data:\n  uid: {{ .Values.cluster.uid | quote }}\n")
    env = {"PATH": f"{HELM.parent}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "HELM_CACHE_HOME": str(tmp_path / "hc"), "HELM_CONFIG_HOME": str(tmp_path / "hcfg"),
           "HELM_DATA_HOME": str(tmp_path / "hd")}
    r = cli("restore", str(bundle), "--yes", "--only", "cluster", "--run-helm",
            "--cluster-chart", str(chart), "--kubeconfig", str(kc), "--values-dir",
            str(tmp_path / "vals"), "-o", "json", env=env)
    assert r.code == 0, r.stderr + r.stdout
    step = next(s for s in json.loads(r.stdout)["steps"] if s["name"] == "cluster")
    assert step["counts"] == {"created": 1}
    assert "revision 1 deployed" in step["objects"][0]["message"]
    values_file = tmp_path / "vals" / "runai-cluster-values.yaml"
    assert stat.S_IMODE(values_file.stat().st_mode) == 0o600
    cm = srv.get("v1", "ConfigMap", "runai-cluster-identity", "runai")
    assert cm is not None and cm["data"]["uid"] == saved["cluster"]["uid"]
    got = subprocess.run([str(HELM), "--kubeconfig", str(kc), "get", "values", "runai-cluster",
                          "-n", "runai", "-o", "json"], capture_output=True, text=True,
                         env=env, check=True)
    assert json.loads(got.stdout) == saved
    # run again: the release is deployed with the saved values, nothing to do
    again = cli("restore", str(bundle), "--yes", "--only", "cluster", "--run-helm",
                "--cluster-chart", str(chart), "--kubeconfig", str(kc), "-o", "json", env=env)
    assert again.code == 0, again.stderr
    step = next(s for s in json.loads(again.stdout)["steps"] if s["name"] == "cluster")
    assert step["counts"] == {"unchanged": 1}


@needs_helm
def test_run_helm_failure_is_reported(seeded: tuple[ApiServer, Path, Path],
                                      tmp_path: Path) -> None:
    srv, kc, bundle = seeded
    for name in [s["metadata"]["name"] for s in srv.list("v1", "Secret", "runai")
                 if s["metadata"]["name"].startswith("sh.helm.release.v1.runai-cluster.")]:
        srv.delete_object("v1", "Secret", name, "runai")
    env = {"PATH": f"{HELM.parent}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    r = cli("restore", str(bundle), "--yes", "--only", "cluster", "--run-helm",
            "--cluster-chart", str(tmp_path / "no-such-chart"), "--kubeconfig", str(kc),
            "--values-dir", str(tmp_path / "vals"), env=env)
    assert r.code == 3, r.stdout
    assert "exited 1" in r.stdout and "--only cluster" in r.stderr
