"""Benchmark: `kubectl runai-dr namespaces BUNDLE` against `kubectl apply -f` of the same
objects (without validation, see below), on the same loopback API server with its latency
model on (kubeapi.LatencyModel: answers as slowly as a real API server; with
--max-inflight, APF's seats and 429 + Retry-After under overload), in the same run.

The server is seeded with a Run:ai installation (2,000 projects with 7 role bindings each by
default: 16,000 namespaces and role bindings) and backed up once. Each measurement wipes the
project namespaces (their role bindings go with them) and restores them into the empty
cluster. kubectl runs once per round; ours runs once per round at each concurrency
(--workers, a list), printing objects per second so the point where the server saturates
shows. The ratio is kubectl's median over ours at the default concurrency (goal >= 6).

    PYTHONPATH=.:testing .venv/bin/python bench/restore_namespaces.py [--projects 2000]
        [--rounds 1] [--workers 1,4,8,16,32] [--max-inflight N --queue-length N]

The loopback API server is the package kubeapi (testing/), installed by
scripts/bootstrap-tests.sh.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import (
    add_latency_args,
    child_env,
    describe,
    kubectl,
    latency_from,
    result,
    run,
    start_server,
)
from kubeapi import ApiServer
from kubeapi.seed import seed_runai

from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components.namespaces import work_from_bundle
from kubectl_runai_dr.components.restore_base import RestoreSettings

DEFAULT_WORKERS = RestoreSettings().workers


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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--projects", type=int, default=2000)
    ap.add_argument("--rolebindings", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--workers", default=f"1,4,{DEFAULT_WORKERS},16,32",
                    help="concurrency levels of ours, comma-separated")
    ap.add_argument("--plugin", default=None,
                    help="command line of the plugin (default: this Python, -m kubectl_runai_dr)")
    add_latency_args(ap)
    args = ap.parse_args()
    levels = [int(x) for x in args.workers.split(",")]
    if DEFAULT_WORKERS not in levels:
        levels.append(DEFAULT_WORKERS)
    peer_bin = kubectl()
    model = latency_from(args)

    srv = start_server(None)
    t0 = time.perf_counter()
    info = seed_runai(srv, projects=args.projects, rolebindings_per_project=args.rolebindings)
    print(f"seeded {args.projects} projects x {args.rolebindings} role bindings in "
          f"{time.perf_counter() - t0:.1f}s; {describe(model)}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="runai-dr-bench-"))
    kc = srv.write_kubeconfig(work / "kubeconfig")
    env = child_env(HOME=str(work))
    bundle = work / "bundle.tar.gz"
    plugin = shlex.split(args.plugin) if args.plugin else [sys.executable, "-m",
                                                          "kubectl_runai_dr"]
    run([*plugin, "backup", "--kubeconfig", str(kc), "--to", str(bundle), "--no-record",
         "--skip", "database"], env)
    srv.latency = model

    # the same objects, cleaned the same way, as one manifest file for kubectl
    b = Bundle.open(bundle)
    items, _ = work_from_bundle(b)
    b.close()
    manifests = [obj for w in items for obj in (w.namespace, *w.rolebindings)]
    (work / "manifests.json").write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                                     "items": manifests}))
    expected = len(manifests)
    print(f"{expected} objects to restore ({len(items)} namespaces)", flush=True)

    def ours(workers: int) -> list[str]:
        return [*plugin, "namespaces", str(bundle), "--kubeconfig", str(kc), "--workers",
                str(workers)]

    # --validate=false: kubectl's default validation needs the server's full OpenAPI
    # document, which the loopback server does not serve (a real one does, and kubectl
    # downloads and checks against it): kubectl gets the faster path here, so the ratio
    # is on the conservative side
    theirs = [peer_bin, "--kubeconfig", str(kc), "apply", "--validate=false", "-f",
              str(work / "manifests.json")]
    times: dict[str, list[float]] = {"kubectl": []}
    rss: dict[str, int] = {"kubectl": 0}
    for w in levels:
        times[f"w{w}"] = []
        rss[f"w{w}"] = 0
    namespaces = info.project_namespaces
    try:
        for i in range(args.rounds):
            order: list[tuple[str, list[str]]] = [("kubectl", theirs)] + [
                (f"w{w}", ours(w)) for w in levels]
            if i % 2:
                order.reverse()
            for name, cmd in order:
                wipe(srv, namespaces)
                if model is not None:
                    model.reset_counters()
                r = run(cmd, env)
                got = count(srv, namespaces)
                if got != expected:
                    raise SystemExit(f"{name} restored {got} objects, expected {expected}")
                times[name].append(r.wall)
                rss[name] = max(rss[name], r.rss_kib)
                apf = ""
                if model is not None:
                    apf = (f"  429s {model.rejected}, peak in flight {model.peak_inflight}")
                label = "kubectl apply" if name == "kubectl" else f"ours, {name[1:]:>2} workers"
                print(f"round {i + 1}: {label:18s} {r.wall:7.2f} s  {expected / r.wall:6.0f} "
                      f"objects/s  {r.rss_kib / 1024:4.0f} MiB{apf}", flush=True)
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("objects per second by concurrency (median):")
    for w in levels:
        med = statistics.median(times[f"w{w}"])
        print(f"  {w:3d} workers: {expected / med:6.0f} objects/s ({med:.2f} s)")
    print(f"  kubectl apply: {expected / statistics.median(times['kubectl']):6.0f} objects/s")
    default = f"w{DEFAULT_WORKERS}"
    ratio = statistics.median(times["kubectl"]) / statistics.median(times[default])
    result(f"restore namespaces ({DEFAULT_WORKERS} workers): kubectl apply / ours", ratio,
           ">= 6", times["kubectl"], times[default], rss["kubectl"], rss[default])


if __name__ == "__main__":
    main()
