"""Benchmark: `kubectl runai-dr diff A B` against `verify A` and `verify B`.

Two bundles of an installation of the chosen size (default 2,000 projects), the second
after some edits, are written by `backup` against the loopback API server; then `diff`
and `verify` of both bundles run as separate processes, alternating, in the same run.
Prints the median times, the ratio diff / (verify A + verify B) (goal: below 2, less than
reading both bundles twice) and diff's wall time (goal: under 2 s on this machine).

    .venv/bin/python bench/diff.py [--projects 2000] [--rolebindings 7] [--rounds 5]

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

PLUGIN = [sys.executable, "-m", "kubectl_runai_dr"]


def run(cmd: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    """Wall seconds of one child process (its exit code must be one of ``ok``)."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd[2:5])}... failed ({proc.returncode}): "
                         f"{proc.stderr.decode()[-2000:]}")
    return elapsed


def edit(srv: ApiServer, projects: int) -> None:
    """Some of what changes between two nights: labels, access, a removed project."""
    for i in range(0, projects, 20):
        ns = srv.get("v1", "Namespace", f"runai-proj-{i:04d}")
        assert ns is not None
        ns["metadata"]["labels"]["team"] = f"team-{i % 7}"
        srv.seed(ns)
    for rb in srv.list("rbac.authorization.k8s.io/v1", "RoleBinding", "runai-proj-0001"):
        rb["subjects"] = [*rb.get("subjects", []), {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "new@example.com"}]
        srv.seed(rb)
    rc = srv.get("run.ai/v1", "RunaiConfig", "runai", "runai")
    assert rc is not None
    rc["spec"]["global"]["subdomainSupport"] = True
    srv.seed(rc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--projects", type=int, default=2000)
    ap.add_argument("--rolebindings", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    srv = ApiServer()
    srv.install_crds(crd_paths())
    srv.start()
    work = Path(tempfile.mkdtemp(prefix="runai-dr-bench-"))
    try:
        seed_runai(srv, projects=args.projects, rolebindings_per_project=args.rolebindings)
        kc = srv.write_kubeconfig(work / "kubeconfig")
        env = {**os.environ, "KUBECONFIG": str(kc), "NO_COLOR": "1"}
        bundles = [work / "a.tar.gz", work / "b.tar.gz"]
        for n, bundle in enumerate(bundles):
            if n:
                edit(srv, args.projects)
            run([*PLUGIN, "backup", "--no-record", "--skip", "database", "--to", str(bundle)],
                env)
    finally:
        srv.stop()
    try:
        a, b = (str(p) for p in bundles)
        size = sum(p.stat().st_size for p in bundles) / 2 / 1024 / 1024
        print(f"two bundles of {args.projects} projects x {args.rolebindings} role bindings, "
              f"{size:.1f} MiB each")
        diff = [*PLUGIN, "diff", a, b, "-o", "json"]
        verify = [[*PLUGIN, "verify", a], [*PLUGIN, "verify", b]]
        run(diff, env, ok=(1,))  # warm-up: page cache, bytecode
        times: dict[str, list[float]] = {"diff": [], "verify": []}
        for _ in range(args.rounds):
            times["diff"].append(run(diff, env, ok=(1,)))
            times["verify"].append(sum(run(cmd, env) for cmd in verify))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    d, v = statistics.median(times["diff"]), statistics.median(times["verify"])
    print(f"diff A B            median {d:.2f}s  runs " + " ".join(f"{t:.2f}" for t in times["diff"]))
    print(f"verify A + verify B median {v:.2f}s  runs " + " ".join(f"{t:.2f}" for t in times["verify"]))
    print(f"ratio diff/(verify A + verify B) = {d / v:.2f}  (goal < 2: less than reading both "
          "bundles twice)")
    print(f"diff wall time {d:.2f}s  (goal < 2 s)")


if __name__ == "__main__":
    main()
