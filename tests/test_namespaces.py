"""`kubectl runai-dr namespaces`: project namespaces, then their RoleBindings; from a bundle
or from the live projects; a bounded worker pool that backs off together on 429."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubeapi import ApiServer
from kubeapi.seed import SeedInfo, seed_runai

from kubectl_runai_dr.components.namespaces import (
    missing_role,
    missing_roles,
    namespace_for_project,
    select_work,
)
from kubectl_runai_dr.kube.client import ConnectOptions, connect
from kubectl_runai_dr.sanitize import clean
from tests.e2e import cli

WRITES = {"POST", "PUT", "PATCH", "DELETE"}


def ns(name: str, project: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": "u", "labels": {"runai/queue": project}}}


def rb(namespace: str, name: str, role: str = "r", kind: str = "ClusterRole") -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "3"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": []}


def test_select_work_groups_bindings_and_filters_projects() -> None:
    work, notes = select_work([ns("runai-a", "a"), ns("runai-b", "b")],
                              [rb("runai-a", "x"), rb("runai-b", "y"), rb("other", "z")])
    assert [(w.name, [r["metadata"]["name"] for r in w.rolebindings]) for w in work] == [
        ("runai-a", ["x"]), ("runai-b", ["y"])]
    assert "uid" not in work[0].namespace["metadata"]
    assert "resourceVersion" not in work[0].rolebindings[0]["metadata"]
    work, notes = select_work([ns("runai-a", "a"), ns("runai-b", "b")], [], ["b", "zzz"])
    assert [w.name for w in work] == ["runai-b"]
    assert notes == ["no namespace in the bundle for: zzz"]


def test_namespace_for_project_follows_the_manual_procedure() -> None:
    p = {"metadata": {"name": "team-a"}, "spec": {}}
    assert namespace_for_project(p) == {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "runai-team-a", "labels": {"runai/queue": "team-a"}}}
    p = {"metadata": {"name": "team-b"}, "spec": {"namespace": "custom-ns"}}
    assert namespace_for_project(p)["metadata"]["name"] == "custom-ns"


def test_missing_role() -> None:
    assert missing_role(rb("n", "x", "there"), {"there"}, None) is None
    assert "ClusterRole gone" in (missing_role(rb("n", "x", "gone"), {"there"}, None) or "")
    assert missing_role(rb("n", "x", "gone"), None, None) is None  # cannot know: no warning
    assert "Role r" in (missing_role(rb("n", "x", kind="Role"), None, set()) or "")
    assert missing_role(rb("n", "x", kind="Role"), None, {("n", "r")}) is None


def test_missing_roles_are_one_warning_per_kind() -> None:
    """210 bindings to 7 absent ClusterRoles are one line, not 210."""
    bindings = [rb(f"runai-p{i}", f"b{j}", f"role-{j}") for i in range(30) for j in range(7)]
    bindings.append(rb("runai-p0", "local", kind="Role"))
    out = missing_roles(bindings, {"role-0"}, set())
    assert len(out) == 2
    cluster = next(w for w in out if "ClusterRoles" in w)
    assert cluster.startswith("180 RoleBindings refer to ClusterRoles that do not exist (yet): "
                              "role-1 (30), role-2 (30)")
    assert "e.g. runai-p0/b1, runai-p1/b1, runai-p2/b1, …" in cluster
    assert "role-0" not in cluster
    role = next(w for w in out if "ClusterRoles" not in w)
    assert role.startswith("1 RoleBinding refers to Roles") and "runai-p0/local)" in role
    assert missing_roles(bindings, None, None) == []


# -- against the loopback server ------------------------------------------------------------
@pytest.fixture
def seeded(apiserver: ApiServer, tmp_path: Path) -> tuple[ApiServer, Path, SeedInfo, Path]:
    info = seed_runai(apiserver, projects=10, rolebindings_per_project=7)
    kc = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    bundle = tmp_path / "b.tar.gz"
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(bundle), "--no-record",
            "--skip", "database")
    assert r.code == 0, r.stderr
    return apiserver, kc, info, bundle


def delete_namespaces(srv: ApiServer, names: list[str]) -> None:
    for n in names:
        srv.delete_object("v1", "Namespace", n)
    deadline = time.monotonic() + 10
    while any(srv.get("v1", "Namespace", n) for n in names):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_from_bundle_with_project_filter(seeded: tuple[ApiServer, Path, SeedInfo, Path]) -> None:
    srv, kc, info, bundle = seeded
    originals = {n: clean(srv.get("v1", "Namespace", n) or {}) for n in info.project_namespaces}
    delete_namespaces(srv, info.project_namespaces)
    chosen = info.projects[:2]
    r = cli("namespaces", str(bundle), "--kubeconfig", str(kc), "--project", chosen[0],
            "--project", chosen[1], "-o", "json")
    assert r.code == 0, r.stderr
    step = json.loads(r.stdout)
    assert step["counts"] == {"created": 16}
    # namespace first, then its bindings
    objs = step["objects"]
    assert objs[0]["kind"] == "Namespace" and objs[1]["kind"] == "RoleBinding"
    for p, n in zip(info.projects, info.project_namespaces, strict=True):
        got = srv.get("v1", "Namespace", n)
        if p in chosen:
            assert got is not None and clean(got) == originals[n]
            assert len(srv.list("rbac.authorization.k8s.io/v1", "RoleBinding", n)) == 7
        else:
            assert got is None


def test_dry_run_writes_nothing(seeded: tuple[ApiServer, Path, SeedInfo, Path]) -> None:
    srv, kc, info, bundle = seeded
    delete_namespaces(srv, info.project_namespaces[:3])
    srv.clear_requests()
    r = cli("namespaces", str(bundle), "--kubeconfig", str(kc), "--dry-run")
    assert r.code == 0, r.stderr
    assert [q for q in srv.requests if q.method in WRITES] == []
    assert f"create Namespace/{info.project_namespaces[0]}" in r.stdout
    assert "56 unchanged" in r.stdout  # 7 namespaces, 8 objects each
    assert "nothing was written" in r.stdout


def test_missing_role_is_a_warning(seeded: tuple[ApiServer, Path, SeedInfo, Path]) -> None:
    srv, kc, info, bundle = seeded
    delete_namespaces(srv, info.project_namespaces[:1])
    srv.delete_object("rbac.authorization.k8s.io/v1", "ClusterRole", "runai-job-executor")
    r = cli("namespaces", str(bundle), "--kubeconfig", str(kc), "--project", info.projects[0])
    assert r.code == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "refers to ClusterRoles that do not exist (yet): runai-job-executor (1)" in err
    assert srv.get("rbac.authorization.k8s.io/v1", "RoleBinding", "runai-job-executor-manual",
                   info.project_namespaces[0]) is not None


def test_from_live_creates_missing_project_namespaces(
        seeded: tuple[ApiServer, Path, SeedInfo, Path]) -> None:
    srv, kc, info, _ = seeded
    gone = info.project_namespaces[:4]
    delete_namespaces(srv, gone)
    srv.clear_requests()
    r = cli("namespaces", "--from-live", "--kubeconfig", str(kc), "-o", "json")
    assert r.code == 0, r.stderr
    counts = json.loads(r.stdout)["counts"]
    assert counts == {"created": 4, "unchanged": 6}
    posts = [q.path for q in srv.requests if q.method == "POST"
             and "selfsubjectaccessreviews" not in q.path]
    assert posts == ["/api/v1/namespaces"] * 4
    for p, n in zip(info.projects[:4], gone, strict=True):
        got = srv.get("v1", "Namespace", n)
        assert got is not None and got["metadata"]["labels"]["runai/queue"] == p


def test_bundle_or_from_live_is_required(tmp_path: Path) -> None:
    r = cli("namespaces", "--kubeconfig", str(tmp_path / "none"))
    assert r.code == 2 and "BUNDLE or --from-live" in r.stderr


def test_pool_honours_429_retry_after(seeded: tuple[ApiServer, Path, SeedInfo, Path]) -> None:
    srv, kc, info, bundle = seeded
    delete_namespaces(srv, info.project_namespaces)
    srv.inject_fault(method="POST", path_regex="/rolebindings$", status=429, times=3,
                     retry_after=1)
    srv.clear_requests()
    started = time.monotonic()
    r = cli("namespaces", str(bundle), "--kubeconfig", str(kc), "--workers", "8", "-o", "json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["counts"] == {"created": 80}
    assert sum(1 for q in srv.requests if q.status == 429) == 3
    assert time.monotonic() - started >= 1.0


def test_client_pauses_every_thread_after_retry_after(apiserver: ApiServer,
                                                      tmp_path: Path) -> None:
    """One 429 with Retry-After holds back the requests of every thread sharing the client."""
    kube = connect(ConnectOptions(kubeconfig=str(apiserver.write_kubeconfig(tmp_path / "k"))))
    kube._throttle(0.6)
    seen: list[float] = []

    def call() -> None:
        t = time.monotonic()
        kube.server_version()
        seen.append(time.monotonic() - t)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and min(seen) >= 0.5
