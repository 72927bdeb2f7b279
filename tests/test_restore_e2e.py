"""`kubectl runai-dr restore` end to end on the loopback API server: seed → backup → wipe →
restore → every backed-up object equal to the original apart from server-set fields."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
from kubeapi import ApiServer
from kubeapi.seed import SeedInfo, seed_runai

from kubectl_runai_dr.sanitize import clean
from tests.e2e import cli, subprocess_cli

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE"}
PROJECTS = 6


@pytest.fixture
def seeded(apiserver: ApiServer, tmp_path: Path) -> tuple[ApiServer, Path, SeedInfo]:
    info = seed_runai(apiserver, projects=PROJECTS, rolebindings_per_project=7)
    kc = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    return apiserver, kc, info


def snapshot(srv: ApiServer, info: SeedInfo) -> dict[str, dict[str, Any]]:
    """Every object a backup holds and a restore writes, cleaned of server-set fields."""
    out: dict[str, dict[str, Any]] = {}
    for ns in info.project_namespaces:
        obj = srv.get("v1", "Namespace", ns)
        if obj is not None:
            out[f"ns/{ns}"] = clean(obj)
    for ns, name in info.rolebindings:
        obj = srv.get("rbac.authorization.k8s.io/v1", "RoleBinding", name, ns)
        if obj is not None:
            out[f"rb/{ns}/{name}"] = clean(obj)
    rc = srv.get("run.ai/v1", "RunaiConfig", "runai", "runai")
    if rc is not None:
        out["runaiconfig"] = clean(rc)
    for t in info.templates:
        obj = srv.get("v1", "ConfigMap", t, "runai")
        if obj is not None:
            out[f"cm/{t}"] = clean(obj)
    return out


def wipe(srv: ApiServer, info: SeedInfo) -> None:
    """The disaster: project namespaces (with their contents), RunaiConfig and templates."""
    for ns in info.project_namespaces:
        srv.delete_object("v1", "Namespace", ns)
    srv.delete_object("run.ai/v1", "RunaiConfig", "runai", "runai")
    for t in info.templates:
        srv.delete_object("v1", "ConfigMap", t, "runai")
    deadline = time.monotonic() + 10
    while any(srv.get("v1", "Namespace", ns) for ns in info.project_namespaces):
        assert time.monotonic() < deadline, "namespaces did not go away"
        time.sleep(0.05)


def backup(kc: Path, out: Path) -> Path:
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(out), "--no-record",
            "--skip", "database")
    assert r.code == 0, r.stderr
    return out


def writes(srv: ApiServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in srv.requests
            if r.method in WRITE_VERBS and "selfsubjectaccessreviews" not in r.path]


def test_round_trip(seeded: tuple[ApiServer, Path, SeedInfo], tmp_path: Path) -> None:
    srv, kc, info = seeded
    before = snapshot(srv, info)
    assert len(before) == PROJECTS * 8 + 1 + len(info.templates)
    bundle = backup(kc, tmp_path / "b.tar.gz")
    wipe(srv, info)
    assert snapshot(srv, info) == {}

    r = subprocess_cli("restore", str(bundle), "--yes", "--kubeconfig", str(kc), "-o", "json")
    assert r.code == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    steps = {s["name"]: s for s in report["steps"]}
    assert [s["name"] for s in report["steps"]] == [
        "preflight", "volumes", "secrets", "control-plane", "database", "cluster",
        "runaiconfig", "templates", "namespaces"]
    assert steps["namespaces"]["counts"] == {"created": PROJECTS * 8}
    assert steps["templates"]["counts"] == {"created": len(info.templates)}
    assert steps["runaiconfig"]["counts"] == {"created": 1}
    # the releases are still deployed with the saved values: nothing to re-install
    assert steps["control-plane"]["counts"] == {"unchanged": 1}
    assert steps["cluster"]["counts"] == {"unchanged": 1}
    # same server as the bundle's source: warned
    assert report["preflight"]["sameCluster"] is True
    after = snapshot(srv, info)
    assert after.keys() == before.keys()
    for key in before:
        assert after[key] == before[key], key

    # idempotent: a second run changes nothing and writes nothing
    srv.clear_requests()
    r2 = cli("restore", str(bundle), "--yes", "--kubeconfig", str(kc), "-o", "json")
    assert r2.code == 0, r2.stderr
    totals = json.loads(r2.stdout)["totals"]
    assert totals == {"unchanged": PROJECTS * 8 + len(info.templates) + 1 + 2}
    assert writes(srv) == []


def test_dry_run_writes_nothing(seeded: tuple[ApiServer, Path, SeedInfo],
                                tmp_path: Path) -> None:
    srv, kc, info = seeded
    bundle = backup(kc, tmp_path / "b.tar.gz")
    wipe(srv, info)
    # one namespace back with a changed label, one binding with an extra subject: drift
    ns0 = info.project_namespaces[0]
    srv.seed({"apiVersion": "v1", "kind": "Namespace",
              "metadata": {"name": ns0, "labels": {"runai/queue": "someone-else"}}})
    srv.clear_requests()
    r = cli("restore", str(bundle), "--dry-run", "--existing", "update", "--kubeconfig", str(kc))
    assert r.code == 0, r.stderr
    assert writes(srv) == []
    assert "nothing was written" in r.stdout
    assert f"update Namespace/{ns0}" in r.stdout
    assert "-  runai/queue: someone-else" in r.stdout.replace("    ", "  ") or \
        "runai/queue: someone-else" in r.stdout
    ns1 = info.project_namespaces[1]
    assert f"create Namespace/{ns1}" in r.stdout
    assert f"create RoleBinding/{ns1}/runai-user-psp" in r.stdout
    assert "create RunaiConfig/runai/runai" in r.stdout
    # the plan, with a reason per step
    assert "volumes" in r.stdout and "the bundle has no data for it" in r.stdout
    assert srv.get("v1", "Namespace", ns1) is None


def test_resume_after_failure(seeded: tuple[ApiServer, Path, SeedInfo],
                              tmp_path: Path) -> None:
    srv, kc, info = seeded
    before = snapshot(srv, info)
    bundle = backup(kc, tmp_path / "b.tar.gz")
    wipe(srv, info)
    half = info.project_namespaces[PROJECTS // 2]
    # every create of a RoleBinding in one namespace half way through fails
    srv.inject_fault(method="POST", path_regex=f"/namespaces/{half}/rolebindings$", status=500,
                     times=None, message="Internal error occurred: injected")
    r = cli("restore", str(bundle), "--yes", "--kubeconfig", str(kc), "--workers", "3")
    assert r.code == 3, r.stdout + r.stderr
    assert "failed" in r.stdout
    assert f"RoleBinding/{half}/runai-user-psp" in r.stdout
    assert "run the same command again" in r.stderr and "--only namespaces" in r.stderr

    srv.clear_faults()
    r2 = cli("restore", str(bundle), "--yes", "--kubeconfig", str(kc), "-o", "json")
    assert r2.code == 0, r2.stderr
    ns_step = next(s for s in json.loads(r2.stdout)["steps"] if s["name"] == "namespaces")
    assert ns_step["counts"] == {"created": 7, "unchanged": PROJECTS * 8 - 7}
    assert snapshot(srv, info) == before


def test_restore_database_argument_and_selection(seeded: tuple[ApiServer, Path, SeedInfo],
                                                 tmp_path: Path) -> None:
    _srv, kc, _info = seeded
    bundle = backup(kc, tmp_path / "b.tar.gz")  # made with --skip database
    # asking for a database the bundle does not hold is a usage error, not "done"
    r = cli("restore", "database", str(bundle), "--yes", "--kubeconfig", str(kc), "-o", "json")
    assert r.code == 2, r.stderr
    assert "the bundle holds no data for: database" in r.stderr and r.stdout == ""
    r = cli("restore", str(bundle), "--yes", "--only", "templates", "--kubeconfig", str(kc),
            "-o", "json")
    assert r.code == 0, r.stderr
    steps = {s["name"]: s for s in json.loads(r.stdout)["steps"]}
    assert all(not s["ran"] for n, s in steps.items() if n not in ("preflight", "templates"))
    # a drill of a bundle without a dump: the same usage error, before anything is checked
    r = cli("verify", str(bundle), "--drill", "--kubeconfig", str(kc))
    assert r.code == 2 and "holds no database dump" in r.stderr and "valid" not in r.stdout
    bad = cli("restore", str(bundle), "--only", "bogus", "--kubeconfig", str(kc))
    assert bad.code == 2 and "unknown step" in bad.stderr


def test_existing_update_fixes_drift(seeded: tuple[ApiServer, Path, SeedInfo],
                                     tmp_path: Path) -> None:
    srv, kc, info = seeded
    before = snapshot(srv, info)
    bundle = backup(kc, tmp_path / "b.tar.gz")
    ns, name = info.rolebindings[0]
    rb = srv.get("rbac.authorization.k8s.io/v1", "RoleBinding", name, ns)
    assert rb is not None
    rb["subjects"] = [{"kind": "User", "name": "intruder",
                       "apiGroup": "rbac.authorization.k8s.io"}]
    srv.seed(rb)
    r = cli("restore", str(bundle), "--yes", "--only", "namespaces", "--kubeconfig", str(kc))
    assert r.code == 0, r.stderr
    assert f"drift RoleBinding/{ns}/{name}" in r.stdout
    assert "intruder" in r.stdout  # the diff
    assert snapshot(srv, info) != before
    r = cli("restore", str(bundle), "--yes", "--only", "namespaces", "--existing", "update",
            "--kubeconfig", str(kc))
    assert r.code == 0, r.stderr
    assert f"updated RoleBinding/{ns}/{name}" in r.stdout
    assert snapshot(srv, info) == before


def test_preflight_permissions_stop_before_writing(seeded: tuple[ApiServer, Path, SeedInfo],
                                                   tmp_path: Path) -> None:
    srv, kc, info = seeded
    bundle = backup(kc, tmp_path / "b.tar.gz")
    wipe(srv, info)
    srv.deny(verb="create", resource="rolebindings", group="rbac.authorization.k8s.io")
    srv.clear_requests()
    r = cli("restore", str(bundle), "--yes", "--kubeconfig", str(kc))
    assert r.code == 6, r.stdout + r.stderr  # forbidden, as the restore's help says
    assert "may not create rolebindings.rbac.authorization.k8s.io" in r.stderr
    assert writes(srv) == []


def test_confirmation_required_without_yes(seeded: tuple[ApiServer, Path, SeedInfo],
                                           tmp_path: Path) -> None:
    srv, kc, _info = seeded
    bundle = backup(kc, tmp_path / "b.tar.gz")
    srv.clear_requests()
    r = cli("restore", str(bundle), "--kubeconfig", str(kc))
    assert r.code == 2
    assert "pass --yes" in r.stderr
    assert "target server" in r.stderr and srv.https_url in r.stderr
    assert "cluster this bundle came from" in r.stderr
    assert writes(srv) == []


def test_corrupt_bundle_fails_preflight(seeded: tuple[ApiServer, Path, SeedInfo],
                                        tmp_path: Path) -> None:
    srv, kc, _info = seeded
    bundle = backup(kc, tmp_path / "b.tar.gz")
    tampered = tmp_path / "t.tar.gz"
    with tarfile.open(bundle) as src, tarfile.open(tampered, "w:gz") as dst:
        for m in src.getmembers():
            fh = src.extractfile(m)
            assert fh is not None, m.name  # a bundle holds regular files only
            data = fh.read()
            if m.name == "objects/namespaces.json":
                data = data.replace(b"runai/queue", b"runai/qveue")
            m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    bundle = tampered
    srv.clear_requests()
    r = cli("restore", str(bundle), "--yes", "--kubeconfig", str(kc))
    assert r.code == 4, r.stderr
    assert writes(srv) == []


def test_server_sets_namespace_name_label(apiserver: ApiServer, tmp_path: Path) -> None:
    """The loopback server, like kube-apiserver >= 1.21, labels namespaces with their name."""
    kc = apiserver.write_kubeconfig(tmp_path / "kc")
    from kubectl_runai_dr.kube import resources as r
    from kubectl_runai_dr.kube.client import ConnectOptions, connect

    kube = connect(ConnectOptions(kubeconfig=str(kc)))
    made = kube.create(r.NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": "x1"}})
    assert made["metadata"]["labels"] == {"kubernetes.io/metadata.name": "x1"}


def test_secrets_step_restores_and_never_shows_values(seeded: tuple[ApiServer, Path, SeedInfo],
                                                      tmp_path: Path) -> None:
    srv, kc, info = seeded
    bundle = tmp_path / "s.tar.gz"
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(bundle), "--no-record",
            "--skip", "database", "--include-secrets", "--allow-plaintext-secrets")
    assert r.code == 0, r.stderr
    ca = srv.get("v1", "Secret", "runai-ca-cert", "runai")
    tls = srv.get("v1", "Secret", "runai-backend-tls", "runai-backend")
    assert ca is not None and tls is not None
    project_creds = [(ns, n) for ns, n in info.credential_secrets if ns in info.project_namespaces]
    assert project_creds
    wipe(srv, info)
    srv.delete_object("v1", "Secret", "runai-ca-cert", "runai")
    changed = dict(tls["data"])
    changed["tls.key"] = "Y2hhbmdlZA=="
    srv.delete_object("v1", "Secret", "runai-backend-tls", "runai-backend")
    srv.seed({**{k: tls[k] for k in ("apiVersion", "kind", "type")},
              "metadata": {"name": "runai-backend-tls", "namespace": "runai-backend"},
              "data": changed})

    # dry run: the drift is shown key by key, never a value
    r = cli("restore", str(bundle), "--only", "secrets", "--dry-run", "--existing", "update",
            "--kubeconfig", str(kc))
    assert r.code == 0, r.stderr
    values = [v for s in (ca, tls) for v in s["data"].values()] + ["Y2hhbmdlZA=="]
    assert not [v for v in values if v in r.stdout or v in r.stderr]
    assert "redacted sha256:" in r.stdout

    r = cli("restore", str(bundle), "--only", "secrets", "--yes", "--kubeconfig", str(kc),
            "-o", "json")
    assert r.code == 0, r.stderr
    report = json.loads(r.stdout)
    assert not [v for v in values if v in r.stdout]
    objects = [o for s in report["steps"] for o in s.get("objects", [])]
    by = {(o["namespace"], o["name"]): o["outcome"] for o in objects if o["kind"] == "Secret"}
    assert by[("runai", "runai-ca-cert")] == "created"
    assert by[("runai-backend", "runai-backend-tls")] == "drift"  # left alone by default
    for key in project_creds:  # their namespaces come back in the namespaces step
        assert by[key] == "skipped"
    restored = srv.get("v1", "Secret", "runai-ca-cert", "runai")
    assert restored is not None and restored["data"] == ca["data"]

    # after the namespaces step, the same step finishes the project credentials
    r = cli("restore", str(bundle), "--only", "namespaces", "--yes", "--kubeconfig", str(kc))
    assert r.code == 0, r.stderr
    r = cli("restore", str(bundle), "--only", "secrets", "--yes", "--kubeconfig", str(kc))
    assert r.code == 0, r.stderr
    for ns, name in project_creds:
        assert srv.get("v1", "Secret", name, ns) is not None


def test_wiped_cluster_with_the_same_url_is_not_the_source(
        seeded: tuple[ApiServer, Path, SeedInfo], tmp_path: Path) -> None:
    """Same API server URL, but every Run:ai object gone: no same-cluster warning; the
    preflight says what it found. Comma lists work for --skip (as kubectl users type)."""
    srv, kc, info = seeded
    bundle = backup(kc, tmp_path / "b.tar.gz")
    wipe(srv, info)
    for ns in ("runai", "runai-backend"):
        srv.delete_object("v1", "Namespace", ns)
        srv.finalize_namespace(ns)
    deadline = time.monotonic() + 10
    while srv.get("v1", "Namespace", "runai") or srv.get("v1", "Namespace", "runai-backend"):
        assert time.monotonic() < deadline, "namespaces did not go away"
        time.sleep(0.05)
    r = cli("restore", str(bundle), "--dry-run", "--skip", "volumes,control-plane",
            "--skip", "database", "--kubeconfig", str(kc), "-o", "json")
    assert r.code == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    pf = report["preflight"]
    assert pf["sameCluster"] is False
    assert not [w for w in pf["warnings"] if "came from" in w]
    assert f"same API server URL ({srv.https_url})" in pf["detected"]
    assert "Run:ai objects: none (an empty cluster)" in pf["detected"]
    steps = {s["name"]: s for s in report["steps"]}
    assert [n for n, s in steps.items() if not s["ran"]] == [
        "volumes", "secrets", "control-plane", "database"]  # secrets: none in the bundle
    assert "skipped (--skip)" in steps["control-plane"]["whyNot"]
    # the cluster chart would create the namespace the templates and RunaiConfig go to
    assert steps["templates"]["after"] == "cluster"
    assert steps["templates"]["counts"] == {"create": len(info.templates)}
    assert steps["runaiconfig"]["after"] == "cluster"
    assert report["failed"] is False
    # the table says the same in words
    t = cli("restore", str(bundle), "--dry-run", "--skip", "volumes,control-plane,database",
            "--kubeconfig", str(kc))
    assert t.code == 0, t.stderr
    assert "after cluster" in t.stdout and "none (an empty cluster)" in t.stdout
    assert "came from" not in t.stderr


def test_interrupt_stops_the_restore_and_says_how_to_resume(
        seeded: tuple[ApiServer, Path, SeedInfo], tmp_path: Path) -> None:
    """Ctrl-C in the middle of the namespaces step: the worker pool stops (requests in flight
    finish), the outcome lists what was done and what was not, and the resume command names
    the bundle and the unfinished steps."""
    import _thread
    import threading

    from kubectl_runai_dr.components.restore_base import RestoreSettings
    from kubectl_runai_dr.kube.client import ConnectOptions, connect
    from kubectl_runai_dr.ops.restore import RestoreOptions, run_restore

    srv, kc, info = seeded
    bundle = backup(kc, tmp_path / "b.tar.gz")
    wipe(srv, info)
    # every namespace create takes a while: the interrupt lands in the middle
    srv.inject_fault(method="POST", path_regex=r"/api/v1/namespaces$", status=None,
                     times=None, delay=1.0)
    kube = connect(ConnectOptions(kubeconfig=str(kc)))
    done = threading.Event()

    def interrupt_once_writing() -> None:  # Ctrl-C as soon as the first namespace is sent
        while not done.is_set():
            if any(r.method == "POST" and r.path == "/api/v1/namespaces"
                   for r in list(srv.requests)):
                _thread.interrupt_main()
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=interrupt_once_writing, daemon=True)
    watcher.start()
    try:
        outcome = run_restore(kube, RestoreOptions(
            bundle=bundle, only=("templates", "namespaces"), assume_yes=True,
            settings=RestoreSettings(workers=2)))
    finally:
        done.set()
        kube.close()
    assert outcome.interrupted and outcome.failed
    steps = {s.name: s for s in outcome.steps}
    ns_step = steps["namespaces"]
    assert ns_step.failed and ns_step.reason.startswith("interrupted after")
    created = [o for o in ns_step.objects if o.kind == "Namespace"]
    assert 0 < len(created) < PROJECTS  # stopped part way: not every namespace was written
    time.sleep(0.5)  # nothing keeps going in the background after the return
    live = [ns for ns in info.project_namespaces if srv.get("v1", "Namespace", ns)]
    assert len(live) == len(created)
    assert outcome.unfinished_steps == ["namespaces"]
    assert f"restore {bundle} --only namespaces" in outcome.hint
    assert outcome.to_json()["interrupted"] is True


def test_sigterm_stops_a_restore_like_ctrl_c(seeded: tuple[ApiServer, Path, SeedInfo],
                                            tmp_path: Path) -> None:
    """What `timeout`, systemd and a CronJob's deadline send: the restore stops, prints what
    was done, names the bundle and the steps to resume with, exits 130, and says nothing
    about bundles left behind."""
    import os
    import signal
    import subprocess
    import sys

    from tests.e2e import ROOT

    srv, kc, info = seeded
    bundle = backup(kc, tmp_path / "b.tar.gz")
    wipe(srv, info)
    srv.inject_fault(method="POST", path_regex=r"/api/v1/namespaces$", status=None,
                     times=None, delay=1.0)
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "kubectl_runai_dr", "restore", str(bundle),
                             "--yes", "--only", "namespaces", "--workers", "2",
                             "--kubeconfig", str(kc)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not any(r.method == "POST" and r.path == "/api/v1/namespaces"
                  for r in list(srv.requests)):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    text = " ".join((out + err).split())
    assert "interrupted" in text
    assert f"restore {bundle} --only namespaces" in text
    assert "left behind" not in text
    created = sum(1 for ns in info.project_namespaces if srv.get("v1", "Namespace", ns))
    assert 0 < created < PROJECTS
