"""Benchmark: `kubectl runai-dr backup` of the objects against
`kubectl get namespaces,rolebindings -A -o json`.

Both run as separate processes against the same loopback API server with its latency model
on (answers as slowly as a real API server: kubeapi.LatencyModel), seeded with a Run:ai
installation of the chosen size (2,000 projects x 7 role bindings: 2,000 namespaces,
14,000 role bindings, 2,000 Project objects), alternating, in the same run. Prints each
program's times and peak RSS and the ratio of the medians, ours / kubectl's (goal <= 0.30).

    PYTHONPATH=.:testing .venv/bin/python bench/backup.py [--projects 2000] [--rounds 5]
        [--plugin "kubectl runai-dr"]      # e.g. the built binary instead of python -m
        [--profile OUT.html]               # one more backup, under pyinstrument if installed

The loopback API server is the package kubeapi (testing/), installed by
scripts/bootstrap-tests.sh.
"""

from __future__ import annotations

import argparse
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
from kubeapi.seed import seed_runai


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--projects", type=int, default=2000)
    ap.add_argument("--rolebindings", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--plugin", default=None,
                    help="command line of the plugin (default: this Python, -m kubectl_runai_dr)")
    ap.add_argument("--profile", type=Path, default=None,
                    help="after the rounds, profile one backup with pyinstrument into this file")
    add_latency_args(ap)
    args = ap.parse_args()
    peer_bin = kubectl()
    model = latency_from(args)
    srv = start_server(None)
    t0 = time.perf_counter()
    seed_runai(srv, projects=args.projects, rolebindings_per_project=args.rolebindings)
    print(f"seeded {args.projects} projects x {args.rolebindings} role bindings in "
          f"{time.perf_counter() - t0:.1f}s; {describe(model)}", flush=True)
    srv.latency = model
    work = Path(tempfile.mkdtemp(prefix="runai-dr-bench-"))
    kc = srv.write_kubeconfig(work / "kubeconfig")
    env = child_env(KUBECONFIG=str(kc))
    plugin_cmd = shlex.split(args.plugin) if args.plugin else [sys.executable, "-m",
                                                               "kubectl_runai_dr"]
    backup_args = ["backup", "--no-record", "--force", "--skip", "database",
                   "--to", str(work / "bench.tar.gz")]
    ours_cmd = [*plugin_cmd, *backup_args]
    peer = [peer_bin, "get", "namespaces,rolebindings", "-A", "-o", "json"]

    times: dict[str, list[float]] = {"backup": [], "kubectl": []}
    rss: dict[str, int] = {"backup": 0, "kubectl": 0}
    try:
        run(peer, env)  # warm-up: discovery cache, page cache
        run(ours_cmd, env)
        for i in range(args.rounds):
            order = [("backup", ours_cmd), ("kubectl", peer)]
            if i % 2:
                order.reverse()
            for name, cmd in order:
                r = run(cmd, env)
                times[name].append(r.wall)
                rss[name] = max(rss[name], r.rss_kib)
                print(f"round {i + 1}: {name:8s} {r.wall:6.2f} s  {r.rss_kib / 1024:4.0f} MiB",
                      flush=True)
        if args.profile:
            prof = [sys.executable, "-m", "pyinstrument", "-r", "html", "-o",
                    str(args.profile), "-m", "kubectl_runai_dr", *backup_args]
            run(prof, env)
            print(f"profile written to {args.profile}")
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    b, k = statistics.median(times["backup"]), statistics.median(times["kubectl"])
    result("backup (objects) / kubectl get -A -o json", b / k, "<= 0.30",
           times["kubectl"], times["backup"], rss["kubectl"], rss["backup"])


if __name__ == "__main__":
    main()
