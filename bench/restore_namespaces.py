"""Benchmark: `kubectl runai-dr namespaces BUNDLE` against `kubectl apply -f` of the same
manifests, on the same loopback API server, in the same run.

The server is seeded with a Run:ai installation (2,000 projects with 7 role bindings each by
default) and backed up once. Each round wipes the project namespaces (their role bindings go
with them), restores them with one program, wipes again and restores with the other; the
order alternates between rounds. Prints the median times and kubectl's time divided by
ours (goal: at least 3).

    .venv/bin/python bench/restore_namespaces.py [--projects 2000] [--rolebindings 7]
        [--rounds 1] [--workers 8]

The loopback API server is the package kubeapi (testing/), installed by
scripts/bootstrap-tests.sh.
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

from kubeapi import ApiServer
from kubeapi.seed import crd_paths, seed_runai

from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components.namespaces import work_from_bundle

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       check=False)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({p.returncode}): "
                         f"{p.stderr.decode()[-2000:]}")
    return elapsed


def wipe(srv: ApiServer, namespaces: list[str]) -> None:
    for ns in namespaces:
        srv.delete_object("v1", "Namespace", ns)
    deadline = time.monotonic() + 600
    while any(srv.get("v1", "Namespace", ns) for ns in namespaces):
        if time.monotonic() > deadline:
            raise SystemExit("project namespaces did not go away")
        time.sleep(0.2)


def count(srv: ApiServer, namespaces: list[str]) -> int:
    return sum(1 + len(srv.list("rbac.authorization.k8s.io/v1", "RoleBinding", ns))
               for ns in namespaces if srv.get("v1", "Namespace", ns))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--projects", type=int, default=2000)
    ap.add_argument("--rolebindings", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workers", type=int, default=8)
    args = ap.parse_args()
    tools = f"{ROOT / '.tools' / 'bin'}:{os.environ['PATH']}"
    kubectl = shutil.which("kubectl", path=tools)
    if not kubectl:
        raise SystemExit("kubectl not found: run scripts/bootstrap-tests.sh")

    srv = ApiServer()
    srv.install_crds(crd_paths())
    srv.start()
    t0 = time.perf_counter()
    info = seed_runai(srv, projects=args.projects, rolebindings_per_project=args.rolebindings)
    print(f"seeded {args.projects} projects x {args.rolebindings} role bindings in "
          f"{time.perf_counter() - t0:.1f}s")
    work = Path(tempfile.mkdtemp(prefix="runai-dr-bench-"))
    kc = srv.write_kubeconfig(work / "kubeconfig")
    env = {**os.environ, "PATH": tools, "NO_COLOR": "1",
           "HOME": str(work)}
    bundle = work / "bundle.tar.gz"
    plugin = [sys.executable, "-m", "kubectl_runai_dr"]
    run([*plugin, "backup", "--kubeconfig", str(kc), "--to", str(bundle), "--no-record",
         "--skip", "database"], env)

    # the same objects, cleaned the same way, as one manifest file for kubectl
    b = Bundle.open(bundle)
    items, _ = work_from_bundle(b)
    b.close()
    manifests = [obj for w in items for obj in (w.namespace, *w.rolebindings)]
    (work / "manifests.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                                     "items": manifests}))
    expected = len(manifests)
    print(f"{expected} objects to restore ({len(items)} namespaces)")

    ours = [*plugin, "namespaces", str(bundle), "--kubeconfig", str(kc), "--workers",
            str(args.workers)]
    # --validate=false: the loopback server serves no OpenAPI document (a real one does, and
    # kubectl would download and check against it: kubectl gets the faster path here)
    theirs = [kubectl, "--kubeconfig", str(kc), "apply", "--validate=false", "-f",
              str(work / "manifests.json")]
    times: dict[str, list[float]] = {"runai-dr": [], "kubectl": []}
    namespaces = info.project_namespaces
    for i in range(args.rounds):
        order = [("runai-dr", ours), ("kubectl", theirs)]
        if i % 2:
            order.reverse()
        for name, cmd in order:
            wipe(srv, namespaces)
            elapsed = run(cmd, env)
            got = count(srv, namespaces)
            if got != expected:
                raise SystemExit(f"{name} restored {got} objects, expected {expected}")
            times[name].append(elapsed)
            print(f"round {i + 1}: {name:8s} {elapsed:7.2f}s")
    srv.stop()
    shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["kubectl"] / med["runai-dr"]
    print(f"median: runai-dr {med['runai-dr']:.2f}s, kubectl apply {med['kubectl']:.2f}s")
    print(f"kubectl apply / runai-dr = {ratio:.2f}x (goal: >= 3x)")


if __name__ == "__main__":
    main()
