"""`kubectl runai-dr backup | inspect | verify` end to end against the loopback API server."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from kubeapi import ApiServer
from kubeapi.seed import seed_runai

from kubectl_runai_dr.components import namespaces
from tests.e2e import ROOT, cli, components, manifest_of, member, subprocess_cli

SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation")


@pytest.fixture
def seeded(apiserver: ApiServer, tmp_path: Path) -> tuple[ApiServer, Path]:
    seed_runai(apiserver, projects=12, rolebindings_per_project=7)
    kc = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    return apiserver, kc


def _backup(kc: Path, out: Path, *extra: str) -> tuple[int, str, str, Path]:
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(out), "--skip", "database",
            *extra)
    return r.code, r.stdout, r.stderr, out


def test_full_backup_contents(seeded: tuple[ApiServer, Path], tmp_path: Path) -> None:
    srv, kc = seeded
    code, stdout, stderr, bundle = _backup(kc, tmp_path / "b.tar.gz")
    assert code == 0, stderr
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o600
    m = manifest_of(bundle)
    comps = components(m)
    assert m["status"] == "complete" and m["failedComponents"] == []
    assert {n: c["status"] for n, c in comps.items()} == {
        "runaiconfig": "ok", "control-plane": "ok", "cluster": "ok",
        "templates": "ok", "namespaces": "ok", "secrets": "skipped", "database": "skipped",
        "volumes": "skipped", "scheduling": "ok",
    }
    assert comps["database"]["reason"] == "skipped (--skip)"
    assert comps["volumes"]["reason"] == "only with --snapshots"
    src = m["source"]
    assert src["server"] == srv.https_url and src["context"] == "loopback"
    assert src["kubernetesVersion"].startswith("v1.")
    assert src["runaiVersion"] == "2.16.79"
    assert "runaiconfig" in stdout and "complete" in stdout
    # the summary shows each component's size, from the files it wrote
    row = next(ln for ln in stdout.splitlines() if ln.strip().startswith("namespaces"))
    assert "KiB" in row and " 0 B" not in row

    # RunaiConfig: the object cleaned, and the spec as kubectl's jsonpath prints it
    live = srv.get("run.ai/v1", "RunaiConfig", "runai", "runai")
    assert live is not None
    saved = json.loads(member(bundle, "runaiconfig/runaiconfig.json"))
    assert saved["spec"] == live["spec"]
    assert not set(SERVER_SET) & set(saved["metadata"]) and "status" not in saved
    assert member(bundle, "runaiconfig/spec.json").decode() == json.dumps(
        live["spec"], separators=(",", ":"), sort_keys=True, ensure_ascii=False)

    # projects, namespaces, role bindings: exactly the project ones, nothing else
    projects = json.loads(member(bundle, "objects/projects.run.ai.json"))["items"]
    namespaces = json.loads(member(bundle, "objects/namespaces.json"))["items"]
    rbs = json.loads(member(bundle, "objects/rolebindings.rbac.authorization.k8s.io.json"))
    live_ns = [n for n in srv.list("v1", "Namespace")
               if "runai/queue" in (n["metadata"].get("labels") or {})]
    assert len(projects) == 12
    assert sorted(n["metadata"]["name"] for n in namespaces) == sorted(
        n["metadata"]["name"] for n in live_ns)
    ns_names = {n["metadata"]["name"] for n in live_ns}
    live_rbs = [rb for rb in srv.list("rbac.authorization.k8s.io/v1", "RoleBinding")
                if rb["metadata"]["namespace"] in ns_names]
    assert len(rbs["items"]) == len(live_rbs) == 12 * 7
    assert all(rb["kind"] == "RoleBinding" and rb["apiVersion"] for rb in rbs["items"])
    assert {rb["metadata"]["namespace"] for rb in rbs["items"]} == ns_names
    # labels and annotations of namespaces survive
    by_name = {n["metadata"]["name"]: n for n in live_ns}
    for n in namespaces:
        assert n["metadata"]["labels"] == by_name[n["metadata"]["name"]]["metadata"]["labels"]
        assert n["metadata"].get("annotations") == \
            by_name[n["metadata"]["name"]]["metadata"].get("annotations")

    # templates
    templates = json.loads(member(bundle, "objects/templates.configmaps.json"))["items"]
    live_t = [c for c in srv.list("v1", "ConfigMap", "runai")
              if (c["metadata"].get("labels") or {}).get("runai/template") == "true"]
    assert templates and len(templates) == len(live_t)

    # every file is in the manifest with its checksum, and verify agrees
    assert cli("verify", str(bundle)).code == 0


def test_helm_values_are_from_latest_deployed_revision(seeded: tuple[ApiServer, Path],
                                                       tmp_path: Path) -> None:
    from kubectl_runai_dr.components.helm import coalesce_values, release_from_object

    srv, kc = seeded
    code, _, stderr, bundle = _backup(kc, tmp_path / "b.tar.gz")
    assert code == 0, stderr
    for release, ns in (("runai-backend", "runai-backend"), ("runai-cluster", "runai")):
        revs = [release_from_object(s) for s in srv.list("v1", "Secret", ns)
                if (s["metadata"].get("labels") or {}).get("name") == release
                and (s["metadata"].get("labels") or {}).get("owner") == "helm"]
        deployed = max((r for r in revs if r.status == "deployed"), key=lambda r: r.revision)
        info = json.loads(member(bundle, f"helm/{release}/release.json"))
        assert info["revision"] == deployed.revision and info["status"] == "deployed"
        assert info["chart"] and info["chartVersion"] and info["appVersion"]
        values = yaml.safe_load(member(bundle, f"helm/{release}/values.yaml"))
        assert values == deployed.raw["config"]
        all_values = yaml.safe_load(member(bundle, f"helm/{release}/values-all.yaml"))
        assert all_values == coalesce_values(deployed.raw["chart"]["values"],
                                             deployed.raw["config"])


def test_saas_cluster_has_no_control_plane(apiserver: ApiServer, tmp_path: Path) -> None:
    seed_runai(apiserver, projects=3, control_plane=False)
    kc = apiserver.write_kubeconfig(tmp_path / "kc")
    code, _, stderr, bundle = _backup(kc, tmp_path / "b.tar.gz")
    assert code == 0, stderr
    comps = components(manifest_of(bundle))
    assert comps["control-plane"]["status"] == "not present"
    assert "runai-backend" in comps["control-plane"]["reason"]
    assert comps["cluster"]["status"] == "ok"


def test_forbidden_component_gives_partial_bundle(seeded: tuple[ApiServer, Path],
                                                  tmp_path: Path) -> None:
    srv, _kc = seeded
    srv.add_user("limited-token", "limited")
    srv.deny(verb="list", resource="configmaps", namespace="runai", user="limited")
    kc2 = srv.write_kubeconfig(tmp_path / "kc2", token="limited-token")
    code, _, stderr, bundle = _backup(kc2, tmp_path / "b.tar.gz")
    assert code == 3, stderr
    assert "PARTIAL" in stderr and "templates" in stderr
    m = manifest_of(bundle)
    assert m["status"] == "partial" and m["failedComponents"] == ["templates"]
    t = components(m)["templates"]
    assert t["files"] == [] and "not allowed to list configmaps" in t["reason"]
    assert "objects/templates.configmaps.json" not in m["files"]
    assert components(m)["namespaces"]["status"] == "ok"
    assert cli("verify", str(bundle)).code == 0  # valid, but partial
    assert "PARTIAL" in cli("verify", str(bundle)).stderr


def test_rolebindings_fall_back_to_per_namespace_lists(seeded: tuple[ApiServer, Path],
                                                       tmp_path: Path) -> None:
    srv, _kc = seeded
    srv.add_user("ns-token", "ns-admin")
    srv.deny(verb="list", resource="rolebindings", group="rbac.authorization.k8s.io",
             namespace="", user="ns-admin")  # "" = at cluster scope only
    kc2 = srv.write_kubeconfig(tmp_path / "kc2", token="ns-token")
    srv.clear_requests()
    code, _, stderr, bundle = _backup(kc2, tmp_path / "b.tar.gz")
    assert code == 0, stderr
    assert components(manifest_of(bundle))["namespaces"]["details"]["rolebindings"] == 12 * 7
    rb = [r for r in srv.requests if r.path.endswith("/rolebindings")]
    assert [r.status for r in rb if "/namespaces/" not in r.path] == [403]
    assert len([r for r in rb if "/namespaces/" in r.path and r.status == 200]) == 12


def test_lists_are_paginated_not_one_get_per_object(apiserver: ApiServer,
                                                    tmp_path: Path) -> None:
    seed_runai(apiserver, projects=150, rolebindings_per_project=7)  # 1,050 bindings > 1 page
    kc = apiserver.write_kubeconfig(tmp_path / "kc")
    apiserver.clear_requests()
    code, _, stderr, _ = _backup(kc, tmp_path / "b.tar.gz")
    assert code == 0, stderr
    rb_reqs = [r for r in apiserver.requests if "rolebindings" in r.path]
    assert rb_reqs and all(r.method == "GET" for r in rb_reqs)
    assert all(r.path.endswith("/rolebindings") for r in rb_reqs)  # lists, never by name
    assert all(r.query.get("limit") == [str(namespaces.PAGE)] for r in rb_reqs)
    assert len(rb_reqs) == 2 and "continue" in rb_reqs[1].query
    project_ns = {n["metadata"]["name"] for n in apiserver.list("v1", "Namespace")
                  if "runai/queue" in (n["metadata"].get("labels") or {})}
    assert len(project_ns) == 150
    single_gets = [r.path for r in apiserver.requests if r.method == "GET" and (
        "/rolebindings/" in r.path or r.path.rsplit("/", 1)[-1] in project_ns)]
    assert single_gets == []


def test_timeout_is_a_component_failure_with_reason(seeded: tuple[ApiServer, Path],
                                                    tmp_path: Path) -> None:
    srv, kc = seeded
    srv.inject_fault(method="GET", path_regex=r"/api/v1/namespaces/runai/configmaps$",
                     status=None, delay=3.0, times=10)
    code, _, stderr, bundle = _backup(kc, tmp_path / "b.tar.gz", "--request-timeout", "1s")
    assert code == 3, stderr
    t = components(manifest_of(bundle))["templates"]
    assert t["status"] == "failed" and "timed out" in t["reason"]


def test_unreachable_server_one_line_no_file(tmp_path: Path) -> None:
    kc = tmp_path / "kc"
    kc.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "gone",
        "clusters": [{"name": "gone", "cluster": {"server": "http://127.0.0.1:9"}}],
        "contexts": [{"name": "gone", "context": {"cluster": "gone", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "x"}}]}))
    r = subprocess_cli("backup", "--kubeconfig", str(kc), cwd=tmp_path)
    assert r.code == 5
    assert "Traceback" not in r.stderr
    assert 'cannot connect: API server http://127.0.0.1:9 (context "gone")' in r.stderr
    assert "hint:" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kc"]


def test_bad_credentials_and_unknown_context(seeded: tuple[ApiServer, Path],
                                             tmp_path: Path) -> None:
    srv, _ = seeded
    kc = srv.write_kubeconfig(tmp_path / "kc", token="expired-token")
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(tmp_path / "x.tar.gz"))
    assert r.code == 5 and "rejected the credentials" in r.stderr
    assert not (tmp_path / "x.tar.gz").exists()
    r = cli("backup", "--kubeconfig", str(kc), "--context", "nope")
    assert r.code == 5 and 'context "nope" not found' in r.stderr


def test_kubeconfig_env_with_several_files(seeded: tuple[ApiServer, Path],
                                           tmp_path: Path) -> None:
    _srv, kc = seeded
    other = tmp_path / "other"
    other.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "x", "cluster": {"server": "http://127.0.0.1:9"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "users": [{"name": "x", "user": {"token": "x"}}]}))
    env = {"KUBECONFIG": f"{other}{os.pathsep}{kc}"}
    r = cli("backup", "--to", str(tmp_path / "b.tar.gz"), "--skip", "database", env=env)
    assert r.code == 0, r.stderr  # current-context comes from the second file
    assert manifest_of(tmp_path / "b.tar.gz")["source"]["context"] == "loopback"


def test_never_overwrites_and_default_name(seeded: tuple[ApiServer, Path],
                                           tmp_path: Path) -> None:
    _, kc = seeded
    target = tmp_path / "b.tar.gz"
    target.write_text("old")
    code, _, stderr, _ = _backup(kc, target)
    assert code == 2 and "already exists" in stderr and target.read_text() == "old"
    code, _, stderr, _ = _backup(kc, target, "--force")
    assert code == 0 and manifest_of(target)["status"] == "complete"
    outdir = tmp_path / "dir"
    outdir.mkdir()
    code, _, stderr, _ = _backup(kc, outdir)
    assert code == 0, stderr
    [made] = list(outdir.iterdir())
    assert made.name.startswith("runai-dr-loopback-") and made.name.endswith("Z.tar.gz")


def test_include_secrets_and_inspect_never_prints_them(seeded: tuple[ApiServer, Path],
                                                       tmp_path: Path) -> None:
    _srv, kc = seeded
    code, _, stderr, bundle = _backup(kc, tmp_path / "b.tar.gz", "--include-secrets", "--allow-plaintext-secrets")
    assert code == 0, stderr
    assert "bundle will hold Secret values" in stderr
    m = manifest_of(bundle)
    assert m["containsSecrets"] is True
    saved = json.loads(member(bundle, "secrets/secrets.json"))["items"]
    names = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in saved}
    assert ("runai", "runai-ca-cert") in names and ("runai-backend", "runai-backend-tls") in names
    values = [v for s in saved for v in (s.get("data") or {}).values()]
    assert values
    for fmt in ("table", "json", "yaml"):
        r = cli("inspect", str(bundle), "-o", fmt)
        assert r.code == 0
        assert not [v for v in values if v in r.stdout or v in r.stderr]
    data = json.loads(cli("inspect", str(bundle), "-o", "json").stdout)
    assert data["containsSecrets"] is True and data["source"]["context"] == "loopback"


def test_inspect_table_and_verify_tampered(seeded: tuple[ApiServer, Path],
                                           tmp_path: Path) -> None:
    _, kc = seeded
    code, _, _, bundle = _backup(kc, tmp_path / "b.tar.gz")
    assert code == 0
    r = cli("inspect", str(bundle))
    assert r.code == 0
    for word in ("Context", "loopback", "namespaces", "runaiconfig", "Components", "ago"):
        assert word in r.stdout
    y = yaml.safe_load(cli("inspect", str(bundle), "-o", "yaml").stdout)
    assert y["status"] == "complete"
    raw = bytearray(bundle.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(raw))
    r = cli("verify", str(bad))
    assert r.code == 4
    assert "not valid" in r.stderr or "error:" in r.stderr


def test_ctrl_c_leaves_nothing_that_looks_complete(seeded: tuple[ApiServer, Path],
                                                   tmp_path: Path) -> None:
    srv, kc = seeded
    srv.inject_fault(method="GET", path_regex=r"/rolebindings$", status=None, delay=30, times=5)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    p = subprocess.Popen([sys.executable, "-m", "kubectl_runai_dr", "backup", "--kubeconfig",
                          str(kc), "--skip", "database"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while time.time() < deadline and not any(
            r.path.endswith("/rolebindings") for r in srv.requests):
        time.sleep(0.1)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    leftovers = [x.name for x in tmp_path.iterdir() if x.name != "kubeconfig"]
    assert not [n for n in leftovers if n.endswith(".tar.gz")], leftovers
    assert leftovers == [], leftovers


def test_help_and_version_do_not_import_the_kubernetes_client() -> None:
    code = ("import sys; sys.argv=['kubectl-runai_dr', '{}']\n"
            "from kubectl_runai_dr.__main__ import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED' if any(m == 'kubernetes' or m.startswith('kubernetes.') "
            "for m in sys.modules) else 'CLEAN', file=sys.stderr)")
    for arg in ("--help", "version"):
        p = subprocess.run([sys.executable, "-c", code.format(arg)], capture_output=True,
                           text=True, cwd=ROOT, timeout=60)
        assert p.stderr.strip().endswith("CLEAN"), (arg, p.stderr)




def test_in_cluster_service_account_is_the_fallback(seeded: tuple[ApiServer, Path],
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import base64
    from urllib.parse import urlparse

    from kubernetes.config import incluster_config

    srv, kc = seeded
    cfg = yaml.safe_load(kc.read_text())
    ca = tmp_path / "ca.crt"
    ca.write_bytes(base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"]))
    token = tmp_path / "token"
    token.write_text("admin-token")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca))
    url = urlparse(srv.https_url)
    env = {"KUBECONFIG": str(tmp_path / "absent"), "KUBERNETES_SERVICE_HOST": str(url.hostname),
           "KUBERNETES_SERVICE_PORT": str(url.port)}
    r = cli("backup", "--to", str(tmp_path / "b.tar.gz"), "--skip", "database",
            "-o", "json", env=env)
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)  # -o json: stdout holds exactly the document
    assert out["bundle"] == str(tmp_path / "b.tar.gz")
    assert out["manifest"]["source"]["context"] == "in-cluster"
    assert components(out["manifest"])["namespaces"]["status"] == "ok"
    # without the pod environment there is nothing to fall back to: a clear error
    r = cli("backup", env={"KUBECONFIG": str(tmp_path / "absent"),
                           "KUBERNETES_SERVICE_HOST": ""})
    assert r.code == 5 and "no kubeconfig found" in r.stderr
