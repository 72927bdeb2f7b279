"""Benchmark: `kubectl runai-dr backup` against `kubectl get namespaces,rolebindings -A -o json`.

Both run as separate processes against the same loopback API server, seeded with a
Run:ai installation of the chosen size, alternating, in the same run. Prints the median
times, their ratio (goal: backup within 1.5x of kubectl) and each program's peak RSS.

    .venv/bin/python bench/backup.py [--projects 2000] [--rolebindings 7] [--rounds 3]

The loopback API server is the package kubeapi (testing/), installed by
scripts/bootstrap-tests.sh.
"""

from __future__ import annotations

import argparse
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

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd[:3])}... failed ({proc.returncode}): {err}")
    return elapsed, usage.ru_maxrss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--projects", type=int, default=2000)
    ap.add_argument("--rolebindings", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    kubectl = shutil.which("kubectl", path=f"{ROOT / '.tools' / 'bin'}:{os.environ['PATH']}")
    if not kubectl:
        raise SystemExit("kubectl not found: run scripts/bootstrap-tests.sh")

    srv = ApiServer()
    srv.install_crds(crd_paths())
    srv.start()
    t0 = time.perf_counter()
    seed_runai(srv, projects=args.projects, rolebindings_per_project=args.rolebindings)
    print(f"seeded {args.projects} projects x {args.rolebindings} role bindings in "
          f"{time.perf_counter() - t0:.1f}s")
    work = Path(tempfile.mkdtemp(prefix="runai-dr-bench-"))
    kc = srv.write_kubeconfig(work / "kubeconfig")
    env = {**os.environ, "KUBECONFIG": str(kc), "NO_COLOR": "1"}
    plugin = [sys.executable, "-m", "kubectl_runai_dr", "backup", "--no-record", "--force",
              "--skip", "database",
              "--to", str(work / "bench.tar.gz")]
    peer = [kubectl, "get", "namespaces,rolebindings", "-A", "-o", "json"]

    times: dict[str, list[float]] = {"backup": [], "kubectl": []}
    rss: dict[str, int] = {"backup": 0, "kubectl": 0}
    try:
        run(peer, env)  # warm-up: discovery cache, server caches
        for _ in range(args.rounds):
            for name, cmd in (("backup", plugin), ("kubectl", peer)):
                t, m = run(cmd, env)
                times[name].append(t)
                rss[name] = max(rss[name], m)
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    b, k = statistics.median(times["backup"]), statistics.median(times["kubectl"])
    print(f"backup  median {b:.2f}s  peak RSS {rss['backup'] / 1024:.0f} MiB  runs "
          + " ".join(f"{t:.2f}" for t in times["backup"]))
    print(f"kubectl median {k:.2f}s  peak RSS {rss['kubectl'] / 1024:.0f} MiB  runs "
          + " ".join(f"{t:.2f}" for t in times["kubectl"]))
    print(f"ratio backup/kubectl = {b / k:.2f}  (goal <= 1.5)")


if __name__ == "__main__":
    main()
