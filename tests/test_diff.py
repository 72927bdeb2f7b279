"""`kubectl runai-dr diff`: golden pairs of bundles with known differences in every
component (table, json, yaml), the live comparison against the loopback API server after
edits, exit codes as diff(1), and bundles that cannot be read."""

from __future__ import annotations

import copy
import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeapi import ApiServer
from kubeapi.pgserver import PgServer
from kubeapi.seed import seed_runai

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.bundle.writer import BundleWriter
from kubectl_runai_dr.components.helm import dump_values, encode_release_payload
from kubectl_runai_dr.plan import compare as c
from kubectl_runai_dr.plan.volumes import records_document
from tests.e2e import cli
from tests.test_database import PASSWORD, env, pg  # noqa: F401 - fixtures
from tests.test_database import backup as db_backup

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("RUNAI_DR_UPDATE_GOLDEN") == "1"  # rewrite the golden files
KEY = b"golden-digest-key"
SECRET_VALUES = ("pg-Secr3t-A", "pg-Secr3t-B", "c1ient-s3cret-A", "c1ient-s3cret-B",
                 "dGxzLWtleS1B", "dGxzLWtleS1C")
RB_GROUP = "rbac.authorization.k8s.io"


# -- a synthetic installation, written as a backup writes it -----------------------------------
def _meta(name: str, ns: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": "101",
                           "creationTimestamp": "2026-10-01T00:00:00Z", **extra}
    if ns:
        out["namespace"] = ns
    return out


def _rb(ns: str, name: str, role: str, subjects: list[str]) -> dict[str, Any]:
    return {"apiVersion": f"{RB_GROUP}/v1", "kind": "RoleBinding", "metadata": _meta(name, ns),
            "roleRef": {"apiGroup": RB_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": RB_GROUP, "kind": "User", "name": s} for s in subjects]}


def installation() -> dict[str, Any]:
    projects, namespaces, rbs = [], [], []
    for i in range(3):
        p, ns = f"proj-{i}", f"runai-proj-{i}"
        projects.append({"apiVersion": "run.ai/v2", "kind": "Project", "metadata": _meta(p),
                         "spec": {"namespace": ns, "department": "default",
                                  "queues": [{"name": p, "gpu": 1 + i}]},
                         "status": {"phase": "Ready"}})
        namespaces.append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(
            ns, labels={"runai/queue": p}, annotations={"runai/project": p}),
            "status": {"phase": "Active"}})
        rbs.append(_rb(ns, "runai-user", "runai-user", [f"user{i}@example.com"]))
        rbs.append(_rb(ns, "runai-admin", "runai-admin", ["admin@example.com"]))
    return {
        "helm": {
            "runai-backend": (
                {"name": "runai-backend", "namespace": "runai-backend", "revision": 4,
                 "status": "deployed", "chart": "control-plane", "chartVersion": "2.16.79",
                 "appVersion": "2.16.79"},
                {"global": {"domain": "runai.example.com"},
                 "postgresql": {"auth": {"postgresPassword": "pg-Secr3t-A"}},
                 "grafana": {"enabled": False}}),
            "runai-cluster": (
                {"name": "runai-cluster", "namespace": "runai", "revision": 2,
                 "status": "deployed", "chart": "runai-cluster", "chartVersion": "2.16.79",
                 "appVersion": "2.16.79"},
                {"controlPlane": {"url": "https://runai.example.com",
                                  "clientSecret": "c1ient-s3cret-A"},
                 "clusterConfig": {"project-controller": {"createNamespaces": False}}}),
        },
        "runaiconfig": {"apiVersion": "run.ai/v1", "kind": "RunaiConfig",
                        "metadata": _meta("runai", "runai", generation=3),
                        "spec": {"project-controller": {"createNamespaces": True},
                                 "prometheus": {"spec": {"retention": "2h"}}},
                        "status": {"ready": True}},
        "templates": [{"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": _meta(f"template-{t}", "runai",
                                         labels={"runai/template": "true"}),
                       "data": {"name": t, "values": "gpu: 1\n"}}
                      for t in ("pytorch", "jupyter")],
        "projects": projects, "namespaces": namespaces, "rolebindings": rbs,
        "scheduling": {
            ("scheduling.run.ai", "departments"): [
                {"apiVersion": "scheduling.run.ai/v2alpha2", "kind": "Department",
                 "metadata": _meta("default"), "spec": {"deservedGpus": 4}}],
            ("run.ai", "nodepools"): [
                {"apiVersion": "run.ai/v1alpha1", "kind": "NodePool",
                 "metadata": _meta("default"), "spec": {"labelKey": "", "labelValue": ""}}],
            ("run.ai", "accessrules"): [
                {"apiVersion": "run.ai/v1", "kind": "AccessRule", "metadata": _meta("rule-1"),
                 "spec": {"subjectId": "alice@example.com", "roleName": "viewer"}}],
        },
        "database": {"server": {"version": "15.4", "versionNum": 150004},
                     "databases": [
                         {"name": "backend", "largeObjects": 2, "tables": [
                             {"schema": "public", "table": "projects", "rows": 500, "bytes": 1},
                             {"schema": "public", "table": "old_audit", "rows": 7, "bytes": 1},
                             {"schema": "workloads", "table": "history", "rows": 1234,
                              "bytes": 1}]},
                         {"name": "keycloak", "largeObjects": 0, "tables": [
                             {"schema": "public", "table": "user_entity", "rows": 3,
                              "bytes": 1}]}]},
        "snapshots": [("runai-backend-postgresql-0", "data-runai-backend-postgresql-0",
                       "database", "20Gi"),
                      ("thanos-0", "data-thanos-0", "metrics", "100Gi")],
        "secrets": [{"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                     "metadata": _meta("runai-backend-tls", "runai-backend"),
                     "data": {"tls.crt": "Y2VydA==", "tls.key": "dGxzLWtleS1B"}}],
    }


def later(a: dict[str, Any]) -> dict[str, Any]:
    """The installation some time later: a known change in every component, and new
    server-set fields everywhere (which must not count)."""
    b = copy.deepcopy(a)
    info, values = b["helm"]["runai-backend"]
    info.update(chartVersion="2.17.3", appVersion="2.17.3", revision=5)
    values["global"]["domain"] = "runai.example.org"
    values["postgresql"]["auth"]["postgresPassword"] = "pg-Secr3t-B"
    values["thanos"] = {"receive": {"persistence": {"size": "200Gi"}}}
    del values["grafana"]
    cvalues = b["helm"]["runai-cluster"][1]
    cvalues["clusterConfig"]["project-controller"]["createNamespaces"] = True
    cvalues["controlPlane"]["clientSecret"] = "c1ient-s3cret-B"
    spec = b["runaiconfig"]["spec"]
    spec["project-controller"]["createNamespaces"] = False
    spec["prometheus"]["spec"]["retention"] = "24h"
    spec["mps-server"] = {"enabled": True}
    b["templates"][0]["data"]["values"] = "gpu: 2\n"
    b["templates"].pop(1)
    b["templates"].append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(
        "template-tf", "runai", labels={"runai/template": "true"}), "data": {"name": "tf"}})
    # projects: proj-2 gone with its namespace and bindings, proj-3 new; access changes
    b["projects"] = [p for p in b["projects"] if p["metadata"]["name"] != "proj-2"]
    b["namespaces"] = [n for n in b["namespaces"] if n["metadata"]["name"] != "runai-proj-2"]
    b["rolebindings"] = [r for r in b["rolebindings"]
                         if r["metadata"]["namespace"] != "runai-proj-2"]
    b["projects"][0]["spec"]["queues"][0]["gpu"] = 8
    b["projects"].append({"apiVersion": "run.ai/v2", "kind": "Project",
                          "metadata": _meta("proj-3"), "spec": {"namespace": "runai-proj-3"}})
    b["namespaces"].append({"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(
        "runai-proj-3", labels={"runai/queue": "proj-3"})})
    b["rolebindings"].append(_rb("runai-proj-3", "runai-user", "runai-user",
                                 ["carol@example.com"]))
    ns0 = b["namespaces"][0]["metadata"]
    ns0["labels"]["team"] = "vision"
    ns0["annotations"]["runai/project"] = "proj-zero"
    user1 = next(r for r in b["rolebindings"] if r["metadata"]["namespace"] == "runai-proj-1"
                 and r["metadata"]["name"] == "runai-user")
    user1["subjects"] = [{"apiGroup": RB_GROUP, "kind": "User", "name": "bob@example.com"}]
    admin0 = next(r for r in b["rolebindings"] if r["metadata"]["namespace"] == "runai-proj-0"
                  and r["metadata"]["name"] == "runai-admin")
    admin0["roleRef"]["name"] = "runai-viewer"
    sched = b["scheduling"]
    sched[("scheduling.run.ai", "departments")].append(
        {"apiVersion": "scheduling.run.ai/v2alpha2", "kind": "Department",
         "metadata": _meta("research"), "spec": {"deservedGpus": 2}})
    sched[("run.ai", "nodepools")][0]["spec"]["labelKey"] = "gpu-type"
    sched[("run.ai", "accessrules")].clear()
    dbs = b["database"]["databases"]
    tables = dbs[0]["tables"]
    tables[0]["rows"] = 512
    tables.pop(1)
    tables.append({"schema": "public", "table": "audit", "rows": 40, "bytes": 1})
    dbs[0]["largeObjects"] = 3
    dbs.pop(1)
    dbs.append({"name": "grafana", "largeObjects": 0,
                "tables": [{"schema": "public", "table": "dashboard", "rows": 9, "bytes": 1}]})
    b["snapshots"] = [("runai-backend-postgresql-0-b", "data-runai-backend-postgresql-0",
                       "database", "20Gi"), ("thanos-0", "data-thanos-0", "metrics", "150Gi")]
    b["secrets"][0]["data"]["tls.key"] = "dGxzLWtleS1C"
    b["secrets"].append({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                         "metadata": _meta("runai-reg-creds", "runai"), "data": {"x": "eQ=="}})
    # what the server and controllers change by themselves: never a difference
    for objs in (b["projects"], b["namespaces"], b["rolebindings"], b["templates"],
                 b["secrets"], [b["runaiconfig"]], *sched.values()):
        for obj in objs:
            obj["metadata"].update(resourceVersion="999", uid="other",
                                   creationTimestamp="2026-11-30T00:00:00Z", generation=9,
                                   managedFields=[{"manager": "kubectl"}])
            if "status" in obj:
                obj["status"] = {"phase": "Changed", "observedGeneration": 9}
    return b


def write_bundle(path: Path, s: dict[str, Any], created: str,
                 skipped: tuple[str, ...] = ()) -> Path:
    """``skipped``: components left out as ``--skip`` leaves them out."""
    w = BundleWriter(path)
    comps: dict[str, list[str]] = {}
    for release, (info, values) in s["helm"].items():
        name = "control-plane" if release == "runai-backend" else "cluster"
        w.write_json(layout.helm_release_info(release), info)
        w.write_text(layout.helm_values(release), dump_values(values))
        w.write_text(layout.helm_values_all(release), dump_values(values))
        comps[name] = [layout.helm_release_info(release), layout.helm_values(release),
                       layout.helm_values_all(release)]
    w.write_json(layout.RUNAICONFIG_OBJECT, s["runaiconfig"])
    comps["runaiconfig"] = [layout.RUNAICONFIG_OBJECT]

    def lst(rel: str, items: list[dict[str, Any]], comp: str) -> None:
        with w.list_file(rel) as lw:
            for item in items:
                lw.append(item)
        comps.setdefault(comp, []).append(rel)

    lst(layout.TEMPLATES, s["templates"], "templates")
    lst(layout.objects("run.ai", "projects"), s["projects"], "namespaces")
    lst(layout.objects("", "namespaces"), s["namespaces"], "namespaces")
    lst(layout.objects(RB_GROUP, "rolebindings"), s["rolebindings"], "namespaces")
    for (group, plural), items in s["scheduling"].items():
        lst(layout.objects(group, plural), items, "scheduling")
    lst(layout.SECRETS, s["secrets"], "secrets")
    w.write_json(layout.DATABASE_METADATA, s["database"])
    with w.open(layout.database_dump("backend")) as f:  # data before the members read
        f.write(b"PGDMP" + bytes(4096))
    comps["database"] = [layout.DATABASE_METADATA, layout.database_dump("backend")]
    w.write_json(layout.SNAPSHOTS, records_document([{"volumeSnapshotName": vs, "namespace": "runai-backend", "role": role,
                       "driver": "csi.example.com", "snapshotHandle": f"h-{vs}",
                       "restoreSize": size, "readyToUse": True,
                       "claim": {"name": claim, "namespace": "runai-backend", "size": size}}
                      for vs, claim, role, size in s["snapshots"]], created, created))
    comps["volumes"] = [layout.SNAPSHOTS]
    manifest = {
        "tool": {"name": "kubectl-runai_dr", "version": "0.0.0", "commit": ""},
        "createdAt": created, "status": "complete", "failedComponents": [],
        "source": {"context": "prod", "server": "https://prod.example:6443"},
        "containsSecrets": True,
        "components": [{"name": n, "status": "ok", "objects": 1, "files": f}
                       for n, f in comps.items() if n not in skipped]
        + [{"name": n, "status": "skipped", "reason": "skipped (--skip)", "objects": 0,
            "files": []} for n in skipped]}
    for n in skipped:
        for rel in comps[n]:
            w.remove(rel)
    return w.finalize(manifest, mtime=0)


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    a = installation()
    return (write_bundle(tmp_path / "a.tar.gz", a, "2026-11-01T02:30:00Z"),
            write_bundle(tmp_path / "b.tar.gz", later(a), "2026-11-30T02:30:00Z"))


@pytest.fixture
def fixed_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's digest key made fixed, so that the golden output is stable."""
    monkeypatch.setattr(secrets, "token_bytes", lambda n: KEY)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert text == path.read_text(), f"differs from {path} (RUNAI_DR_UPDATE_GOLDEN=1 rewrites)"


# -- golden pairs ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt,suffix", [("table", "txt"), ("json", "json"), ("yaml", "yaml")])
def test_golden_pair_in_every_format(pair: tuple[Path, Path], fixed_key: None, fmt: str,
                                     suffix: str) -> None:
    a, b = pair
    r = cli("diff", str(a), str(b), "-o", fmt)
    assert r.code == 1, r.stderr
    assert r.stderr == ""
    for value in SECRET_VALUES:
        assert value not in r.stdout
    _golden(f"diff-bundles.{suffix}", r.stdout.replace(str(a.parent), "<tmp>"))


def test_every_component_has_its_known_differences(pair: tuple[Path, Path],
                                                    fixed_key: None) -> None:
    a, b = pair
    doc = json.loads(cli("diff", str(a), str(b), "-o", "json").stdout)
    by = {comp["name"]: comp for comp in doc["components"]}
    assert all(comp["compared"] and comp["changes"] for comp in by.values()), by
    got = {n: {(ch["change"], ch["what"], ch["item"], ch.get("path", "")) for ch in comp["changes"]}
           for n, comp in by.items()}
    assert ("changed", "chart version", "runai-backend", "") in got["control-plane"]
    assert ("changed", "value", "runai-backend", "global.domain") in got["control-plane"]
    assert ("added", "value", "runai-backend", "thanos.receive.persistence.size") \
        in got["control-plane"]
    assert ("removed", "value", "runai-backend", "grafana.enabled") in got["control-plane"]
    assert ("changed", "value", "runai-cluster",
            "clusterConfig.project-controller.createNamespaces") in got["cluster"]
    assert ("changed", "spec", "runai", "prometheus.spec.retention") in got["runaiconfig"]
    assert got["templates"] == {("changed", "template", "template-pytorch", "data.values"),
                                ("removed", "template", "template-jupyter", ""),
                                ("added", "template", "template-tf", "")}
    ns = got["namespaces"]
    assert {("removed", "project", "proj-2", ""), ("added", "project", "proj-3", ""),
            ("removed", "namespace", "runai-proj-2", ""),
            ("added", "namespace", "runai-proj-3", ""),
            ("added", "label", "runai-proj-0", "team"),
            ("changed", "annotation", "runai-proj-0", "runai/project"),
            ("removed", "subject", "runai-proj-1/runai-user", "User user1@example.com"),
            ("added", "subject", "runai-proj-1/runai-user", "User bob@example.com"),
            ("changed", "role", "runai-proj-0/runai-admin", ""),
            ("removed", "rolebinding", "runai-proj-2/runai-user", ""),
            ("added", "rolebinding", "runai-proj-3/runai-user", ""),
            ("changed", "project", "proj-0", "spec.queues")} <= ns
    assert got["database"] == {("changed", "rows", "backend", "public.projects"),
                               ("changed", "rows", "backend", "(large objects)"),
                               ("removed", "table", "backend", "public.old_audit"),
                               ("added", "table", "backend", "public.audit"),
                               ("removed", "database", "keycloak", ""),
                               ("added", "database", "grafana", "")}
    assert got["volumes"] == {
        ("removed", "snapshot", "runai-backend/runai-backend-postgresql-0",
         "data-runai-backend-postgresql-0"),
        ("added", "snapshot", "runai-backend/runai-backend-postgresql-0-b",
         "data-runai-backend-postgresql-0"),
        ("changed", "size", "runai-backend/thanos-0", "data-thanos-0")}
    assert got["scheduling"] == {("added", "object", "Department research", ""),
                                 ("changed", "object", "NodePool default", "spec.labelKey"),
                                 ("removed", "object", "AccessRule rule-1", "")}
    assert ("changed", "Secret", "runai-backend/runai-backend-tls", "data[\"tls.key\"]") \
        in got["secrets"]
    # who gained access to which project
    subj = next(ch for ch in by["namespaces"]["changes"]
                if ch["what"] == "subject" and ch["change"] == "added")
    assert subj["project"] == "proj-1"
    # no volatile field counted anywhere
    paths = " ".join(ch.get("path", "") for comp in by.values() for ch in comp["changes"])
    for volatile in ("resourceVersion", "uid", "creationTimestamp", "managedFields",
                     "generation", "status"):
        assert volatile not in paths


def test_secrets_are_digests_equal_within_a_run_only(pair: tuple[Path, Path]) -> None:
    a, b = pair
    runs = [json.loads(cli("diff", str(a), str(b), "--only", "control-plane",
                           "-o", "json").stdout) for _ in range(2)]
    digests = []
    for doc in runs:
        ch = next(ch for ch in doc["components"][0]["changes"]
                  if ch.get("path") == "postgresql.auth.postgresPassword")
        assert ch["old"].startswith("<secret:") and ch["new"].startswith("<secret:")
        assert ch["old"] != ch["new"]
        digests.append(ch["old"])
    assert digests[0] != digests[1]  # a new key each run: nothing to look up offline


def test_same_bundle_and_stat_and_selection(pair: tuple[Path, Path]) -> None:
    a, b = pair
    same = cli("diff", str(a), str(a))
    assert same.code == 0 and "no differences" in same.stdout
    stat = cli("diff", str(a), str(b), "--stat")
    assert stat.code == 1
    assert "difference" in stat.stdout and "global.domain" not in stat.stdout
    doc = yaml.safe_load(cli("diff", str(a), str(b), "--stat", "-o", "yaml").stdout)
    assert all("changes" not in comp for comp in doc["components"])
    only = json.loads(cli("diff", str(a), str(b), "--only", "templates,database",
                          "--only", "cluster", "-o", "json").stdout)
    assert [comp["name"] for comp in only["components"]] == ["database", "cluster",
                                                              "templates"]
    skipped = json.loads(cli("diff", str(a), str(b), "--skip", "secrets,volumes", "--skip",
                             "database", "-o", "json").stdout)
    assert {comp["name"] for comp in skipped["components"]}.isdisjoint(
        {"secrets", "volumes", "database"})
    assert cli("diff", str(a), str(b), "--only", "templates", "--skip", "database").code == 1


def test_a_component_one_side_lacks_is_not_compared(tmp_path: Path) -> None:
    a = write_bundle(tmp_path / "a.tar.gz", installation(), "2026-11-01T02:30:00Z")
    s = installation()
    s["database"]["databases"].pop()  # would differ, were it compared
    # a bundle made with --skip database: the database is not compared, and exit 0
    b = write_bundle(tmp_path / "b.tar.gz", s, "2026-11-02T02:30:00Z", skipped=("database",))
    r = cli("diff", str(a), str(b), "-o", "json")
    assert r.code == 0, r.stdout + r.stderr
    db = next(comp for comp in json.loads(r.stdout)["components"] if comp["name"] == "database")
    assert db["compared"] is False and db["b"] == "skipped (--skip)"


# -- errors: exit codes above 1 ------------------------------------------------------------------
def test_errors_exit_above_one(pair: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = pair
    missing = cli("diff", str(a), str(tmp_path / "nope.tar.gz"))
    assert missing.code == 4 and "does not exist" in missing.stderr
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a bundle at all")
    assert cli("diff", str(junk), str(b)).code == 4
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(b.read_bytes()[: b.stat().st_size // 2])
    r = cli("diff", str(a), str(truncated))
    assert r.code == 4 and r.stdout == "", r.stdout
    assert cli("diff", str(a), str(b), "--only", "nonsense").code == 2
    assert cli("diff", str(a), str(b), "--only", "database", "--skip", "database").code == 2
    assert cli("diff").code == 2
    unreachable = tmp_path / "kc"
    unreachable.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "x", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}))
    assert cli("diff", str(a), "--kubeconfig", str(unreachable)).code == 5


def test_tampered_member_is_named(pair: tuple[Path, Path], tmp_path: Path) -> None:
    from tests.e2e import member
    from tests.test_bundle import _rewrite

    a, b = pair
    bad = tmp_path / "bad.tar.gz"
    rel = layout.objects(RB_GROUP, "rolebindings")
    data = member(b, rel)  # one subject changed, the size kept: only the checksum tells
    _rewrite(b, bad, {rel: data.replace(b"carol@", b"eve@x@", 1)})
    r = cli("diff", str(a), str(bad))
    assert r.code == 4
    assert "rolebindings" in r.stderr and "checksum" in r.stderr
    ok = cli("diff", str(a), str(bad), "--skip", "namespaces")  # never read: no error
    assert ok.code == 1, ok.stderr


# -- pure: values by dotted path -------------------------------------------------------------
def test_value_changes_by_dotted_path_with_secrets_masked() -> None:
    a = {"global": {"domain": "a", "x.y": 1}, "auth": {"adminPassword": "p1"},
         "env": [{"name": "DB_PASSWORD", "value": "p2"}], "plain": [1, 2],
         "was": "scalar", "key": "k1", "cert": "-----BEGIN RSA PRIVATE KEY-----\nMII"}
    b = {"global": {"domain": "b", "x.y": 2}, "auth": {"adminPassword": "p9"},
         "env": [{"name": "DB_PASSWORD", "value": "p3"}], "plain": [1, 3],
         "was": {"now": {"token": "t0k"}}, "key": "k2", "cert": "-----BEGIN RSA PRIVATE KEY-----\nMIJ"}
    changes = {ch.path: ch for ch in c.value_changes(a, b, what="value", item="r", key=KEY)}
    assert changes["global.domain"].old == "a" and changes["global.domain"].new == "b"
    assert changes['global["x.y"]'].new == 2
    assert changes["plain"].new == "[1,3]"
    assert changes["was"].change == "removed" and changes["was.now.token"].change == "added"
    text = json.dumps([ch.to_json() for ch in changes.values()])
    for secret in ("p1", "p9", "p2", "p3", "t0k", "k1", "k2", "MII", "MIJ"):
        assert f'"{secret}' not in text and f"{secret}\"" not in text
    assert changes["auth.adminPassword"].old == c.digest("p1", KEY)
    assert c.digest("p1", KEY) != c.digest("p1", b"other key")


# -- the live cluster ---------------------------------------------------------------------------
@pytest.fixture
def live(apiserver: ApiServer, tmp_path: Path) -> tuple[ApiServer, Path]:
    seed_runai(apiserver, projects=6, rolebindings_per_project=4)
    return apiserver, apiserver.write_kubeconfig(tmp_path / "kubeconfig")


def _backup(kc: Path, out: Path) -> Path:
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(out), "--skip", "database",
            "--no-record")
    assert r.code == 0, r.stderr
    return out


def _edit_live(srv: ApiServer) -> None:
    """Edits through the server's store, as other clients would make them."""
    rc = srv.get("run.ai/v1", "RunaiConfig", "runai", "runai")
    assert rc is not None
    rc["spec"]["global"]["subdomainSupport"] = True
    srv.seed(rc)
    # a new deployed revision of the cluster release, with one value changed
    revs = [s for s in srv.list("v1", "Secret", "runai")
            if (s["metadata"].get("labels") or {}).get("name") == "runai-cluster"]
    from kubectl_runai_dr.components.helm import release_from_object

    top = max(revs, key=lambda s: release_from_object(s).revision)
    raw = release_from_object(top).raw
    raw["info"]["status"] = "superseded"
    top["data"]["release"] = encode_release_payload(raw, for_secret=True)
    srv.seed(top)
    new = copy.deepcopy(raw)
    new["version"] += 1
    new["info"]["status"] = "deployed"
    new["config"]["cluster"]["url"] = "https://new.example.com"
    name = f"sh.helm.release.v1.runai-cluster.v{new['version']}"
    srv.seed({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
              "metadata": {"name": name, "namespace": "runai",
                           "labels": {"owner": "helm", "name": "runai-cluster",
                                      "status": "deployed", "version": str(new["version"])}},
              "data": {"release": encode_release_payload(new, for_secret=True)}})
    # access: a subject added to one binding; a project namespace labelled; a template gone
    rb = srv.get("rbac.authorization.k8s.io/v1", "RoleBinding", "runai-user",
                 "runai-proj-0001") or srv.list("rbac.authorization.k8s.io/v1", "RoleBinding",
                                                "runai-proj-0001")[0]
    rb["subjects"].append({"apiGroup": RB_GROUP, "kind": "User", "name": "mallory@example.com"})
    srv.seed(rb)
    ns = srv.get("v1", "Namespace", "runai-proj-0002")
    assert ns is not None
    ns["metadata"]["labels"]["team"] = "nlp"
    srv.seed(ns)
    assert srv.delete_object("v1", "ConfigMap", "template-tf-distributed", "runai")


def test_live_comparison_after_edits(live: tuple[ApiServer, Path], tmp_path: Path) -> None:
    srv, kc = live
    bundle = _backup(kc, tmp_path / "a.tar.gz")
    same = cli("diff", str(bundle), "--kubeconfig", str(kc))
    assert same.code == 0, same.stdout + same.stderr  # right after the backup: nothing
    _edit_live(srv)
    r = cli("diff", str(bundle), "--kubeconfig", str(kc), "-o", "json")
    assert r.code == 1, r.stderr
    doc = json.loads(r.stdout)
    got = {comp["name"]: {(ch["change"], ch["what"], ch["item"], ch.get("path", ""))
                          for ch in comp["changes"]} for comp in doc["components"]}
    assert got["runaiconfig"] == {("changed", "spec", "runai", "global.subdomainSupport")}
    assert got["cluster"] == {("changed", "revision", "runai-cluster", ""),
                              ("changed", "value", "runai-cluster", "cluster.url")}
    assert got["templates"] == {("removed", "template", "template-tf-distributed", "")}
    assert ("added", "subject", f"runai-proj-0001/{_rb_name(doc)}",
            "User mallory@example.com") in got["namespaces"]
    assert ("added", "label", "runai-proj-0002", "team") in got["namespaces"]
    assert len(got["namespaces"]) == 2 and not got["control-plane"] and not got["scheduling"]
    assert doc["b"]["kind"] == "live" and doc["b"]["context"] == "loopback"
    # the live side is read as the backup reads it: a new backup says the same
    after = _backup(kc, tmp_path / "b.tar.gz")
    between = json.loads(cli("diff", str(bundle), str(after), "-o", "json").stdout)
    assert [comp["changes"] for comp in between["components"] if comp["compared"]] == \
        [comp["changes"] for comp in doc["components"] if comp["compared"]]
    table = cli("diff", str(bundle), "--kubeconfig", str(kc))
    assert table.code == 1
    assert "global.subdomainSupport: false → true" in table.stdout
    assert "c1ient-s3cret" not in table.stdout


def _rb_name(doc: dict[str, Any]) -> str:
    ns = next(comp for comp in doc["components"] if comp["name"] == "namespaces")
    return str(next(ch["item"] for ch in ns["changes"]
                    if ch["what"] == "subject")).split("/")[1]


# -- the live database: counted through the pod as the backup counts ---------------------------
def test_live_database_row_counts(env: tuple[ApiServer, Path],  # noqa: F811
                                  pg: PgServer, tmp_path: Path) -> None:  # noqa: F811
    _, kc = env
    bundle = tmp_path / "db.tar.gz"
    code, _, stderr = db_backup(kc, bundle)
    assert code == 0, stderr
    same = cli("diff", str(bundle), "--kubeconfig", str(kc), "--only", "database")
    assert same.code == 0, same.stdout + same.stderr
    pg.psql("INSERT INTO public.projects (name) VALUES ('new'); "
            "CREATE TABLE public.quota (id int); DROP TABLE workloads.history;", db="backend")
    pg.psql("DELETE FROM user_entity WHERE id = 'c'", db="keycloak")
    r = cli("diff", str(bundle), "--kubeconfig", str(kc), "--only", "database", "-o", "json")
    assert r.code == 1, r.stderr
    changes = json.loads(r.stdout)["components"][0]["changes"]
    assert {(ch["change"], ch["item"], ch["path"], ch.get("old"), ch.get("new"))
            for ch in changes} == {
        ("changed", "backend", "public.projects", 500, 501),
        ("added", "backend", "public.quota", None, 0),
        ("removed", "backend", "workloads.history", 1234, None),
        ("changed", "keycloak", "public.user_entity", 3, 2)}
    assert PASSWORD not in r.stdout + r.stderr
