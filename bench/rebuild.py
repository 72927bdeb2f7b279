"""Benchmark: the recovery time (RTO) of a rebuild from nothing, split per step, next to
`kubectl apply -f` of the same Kubernetes objects, in the same run.

On the loopback API server with its latency model on (as slowly as a real API server
answers; see bench/common.py), as slow as a cluster (pods Pending -> Running -> Ready, CRDs
served once Established) with a real PostgreSQL behind the database pod: the stand-in
charts are installed with real helm, 2,000 projects x 7 role bindings and templates are
added, the database gets some data, and a bundle is made. Each round wipes everything
(releases, namespaces, CRDs, the database's volume) and runs

    kubectl runai-dr restore BUNDLE --yes --run-helm --control-plane-chart ... --cluster-chart ...

then wipes the objects again (the charts stay) and applies the same objects (project
namespaces, role bindings, templates, the RunaiConfig) with `kubectl apply -f`. Printed: the
recovery time per step and in all (the restore's own `recoveryTimeSeconds`), kubectl's time
for the objects, and kubectl's time divided by ours for the same objects (goal: at least 3).

    .venv/bin/python bench/rebuild.py [--projects 2000] [--rolebindings 7] [--rounds 1]

The loopback server and its PostgreSQL backend come from the package kubeapi (testing/),
installed by scripts/bootstrap-tests.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import add_latency_args, describe, latency_from, result
from kubeapi import ApiServer
from kubeapi.pgbackend import add_postgres_backend

from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components.namespaces import work_from_bundle
from kubectl_runai_dr.components.runaiconfig import saved_object
from kubectl_runai_dr.components.templates import FILE as TEMPLATES_FILE
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.sanitize import Skip, clean_for_restore

ROOT = Path(__file__).resolve().parent.parent
CHARTS = ROOT / "tests" / "charts"
CP_NS, CL_NS, DB_POD = "runai-backend", "runai", "runai-backend-postgresql-0"
OBJECT_STEPS = ("runaiconfig", "templates", "namespaces")


def sh(cmd: list[str], env: dict[str, str], *, out: bool = False) -> tuple[float, str]:
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:5])}... failed ({p.returncode}): "
                         f"{(p.stderr or p.stdout)[-2000:]}")
    return elapsed, p.stdout if out else ""


def seed_projects(srv: ApiServer, projects: int, rolebindings: int) -> list[str]:
    names = []
    for i in range(projects):
        p = f"proj-{i:04d}"
        ns = f"runai-{p}"
        names.append(ns)
        srv.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {
            "name": ns, "labels": {"runai/queue": p}, "annotations": {"owner": f"{p}@example.com"}}})
        for j in range(rolebindings):
            srv.seed({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                      "metadata": {"name": f"binding-{j}", "namespace": ns},
                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": f"runai-role-{j}"},
                      "subjects": [{"kind": "User", "name": f"user-{i}@example.com",
                                    "apiGroup": "rbac.authorization.k8s.io"}]})
    for i in range(5):
        srv.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": f"template-{i}", "namespace": CL_NS, "labels": {"runai/template": "true"}},
            "data": {"name": f"t{i}", "values": "gpu: 1\n"}})
    return names


def wipe(srv: ApiServer, env: dict[str, str], kc: Path, projects: list[str], *,
         everything: bool) -> None:
    kubectl = ["kubectl", "--kubeconfig", str(kc)]
    if everything:
        for release, ns in (("runai-cluster", CL_NS), ("runai-backend", CP_NS)):
            sh(["helm", "--kubeconfig", str(kc), "uninstall", release, "-n", ns], env)
        sh([*kubectl, "delete", "namespace", CP_NS, CL_NS, "--wait=true", "--timeout=300s"], env)
        crds = [c["metadata"]["name"] for c in srv.list("apiextensions.k8s.io/v1",
                                                         "CustomResourceDefinition")
                if c["spec"]["group"] in ("run.ai", "scheduling.run.ai")]
        sh([*kubectl, "delete", "crd", *crds, "--wait=true"], env)
    else:
        for cm in srv.list("v1", "ConfigMap", CL_NS):
            if (cm["metadata"].get("labels") or {}).get("runai/template") == "true":
                srv.delete_object("v1", "ConfigMap", cm["metadata"]["name"], CL_NS)
    for ns in projects:
        srv.delete_object("v1", "Namespace", ns)
    deadline = time.monotonic() + 600
    while any(srv.get("v1", "Namespace", ns) for ns in projects) or (
            everything and srv.list("v1", "PersistentVolume")):
        if time.monotonic() > deadline:
            raise SystemExit("the wipe did not finish")
        time.sleep(0.2)


def objects_of(bundle: Path) -> list[dict[str, Any]]:
    """What the object steps write, cleaned as the restore cleans them."""
    b = Bundle.open(bundle)
    try:
        work, _ = work_from_bundle(b)
        out = [obj for w in work for obj in (w.namespace, *w.rolebindings)]
        for raw in b.iter_list(TEMPLATES_FILE):
            obj = clean_for_restore(raw)
            if not isinstance(obj, Skip):
                out.append(obj)
        rc = saved_object(b, Names())
        if rc is not None:
            out.append(rc)
    finally:
        b.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--projects", type=int, default=2000)
    ap.add_argument("--rolebindings", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=1)
    add_latency_args(ap)
    args = ap.parse_args()
    model = latency_from(args)
    tools = f"{ROOT / '.tools' / 'bin'}:{os.environ['PATH']}"
    if not shutil.which("helm", path=tools) or not shutil.which("kubectl", path=tools):
        raise SystemExit("helm and kubectl not found: run scripts/bootstrap-tests.sh")
    work = Path(tempfile.mkdtemp(prefix="runai-dr-bench-"))
    env = {**os.environ, "PATH": tools, "NO_COLOR": "1", "HOME": str(work)}

    srv = ApiServer()  # as slow as a cluster: the defaults of the loopback server
    srv.seed({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {
        "name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer"})
    pg = add_postgres_backend(srv)
    srv.start()
    try:
        kc = srv.write_kubeconfig(work / "kubeconfig")
        for release, ns, chart, values in (
                ("runai-backend", CP_NS, "control-plane",
                 {"postgresql": {"auth": {"postgresPassword": "bench-pass"}}}),
                ("runai-cluster", CL_NS, "runai-cluster",
                 {"cluster": {"uid": "bench-uid", "url": "https://runai.example.com"}})):
            vf = work / f"{release}.yaml"
            vf.write_text(yaml.safe_dump(values))
            sh(["helm", "--kubeconfig", str(kc), "upgrade", "--install", release,
                str(CHARTS / chart), "-n", ns, "--create-namespace", "--values", str(vf)], env)
        srv.wait_pod_ready(CP_NS, DB_POD, timeout=120)
        db = pg.server_for(CP_NS, DB_POD)
        assert db is not None
        db.psql("CREATE TABLE history AS SELECT g AS id, md5(g::text) AS v "
                "FROM generate_series(1, 200000) g", db="backend")
        t0 = time.perf_counter()
        projects = seed_projects(srv, args.projects, args.rolebindings)
        print(f"installed the charts and seeded {args.projects} projects x {args.rolebindings} "
              f"role bindings in {time.perf_counter() - t0:.1f}s")
        srv.latency = model  # from here on, as slowly as a real API server
        print(describe(model))
        bundle = work / "bundle.tar.gz"
        plugin = [sys.executable, "-m", "kubectl_runai_dr"]
        sh([*plugin, "backup", "--kubeconfig", str(kc), "--to", str(bundle), "--no-record"], env)
        manifests = objects_of(bundle)
        (work / "objects.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                                       "items": manifests}))
        print(f"{len(manifests)} objects in the object steps")

        restore = [*plugin, "restore", str(bundle), "--yes", "--run-helm", "-o", "json",
                   "--control-plane-chart", str(CHARTS / "control-plane"),
                   "--cluster-chart", str(CHARTS / "runai-cluster"),
                   "--values-dir", str(work / "values"), "--kubeconfig", str(kc)]
        # --validate=false: the loopback server serves no full OpenAPI document (a real one
        # does, and kubectl would fetch and check against it: kubectl gets the faster path)
        apply = ["kubectl", "--kubeconfig", str(kc), "apply", "--validate=false",
                 "-f", str(work / "objects.json")]
        rto: list[float] = []
        ours_objects: list[float] = []
        theirs: list[float] = []
        per_step: dict[str, list[float]] = {}
        for i in range(args.rounds):
            wipe(srv, env, kc, projects, everything=True)
            _, out = sh(restore, env, out=True)
            report = json.loads(out)
            if report["failed"]:
                raise SystemExit(f"restore failed: {json.dumps(report)[:2000]}")
            rto.append(report["recoveryTimeSeconds"])
            for s in report["steps"]:
                if s["ran"]:
                    per_step.setdefault(s["name"], []).append(s["durationSeconds"])
            ours_objects.append(sum(s["durationSeconds"] for s in report["steps"]
                                    if s["name"] in OBJECT_STEPS))
            wipe(srv, env, kc, projects, everything=False)
            elapsed, _ = sh(apply, env)
            theirs.append(elapsed)
            print(f"round {i + 1}: rebuild {rto[-1]:.1f}s (object steps {ours_objects[-1]:.1f}s); "
                  f"kubectl apply of the same objects {elapsed:.1f}s")
        print("\nrecovery time per step (median):")
        for name, values in per_step.items():
            print(f"  {name:14s} {statistics.median(values):8.2f}s")
        print(f"  {'in all':14s} {statistics.median(rto):8.2f}s")
        ratio = statistics.median(theirs) / statistics.median(ours_objects)
        print(f"\nkubectl apply / runai-dr for the same objects: {ratio:.2f}x "
              f"({'meets' if ratio >= 3 else 'misses'} the goal of 3x)")
        result("rebuild, object steps: kubectl apply / ours", ratio, ">= 3", theirs,
               ours_objects, None, None)
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
