#!/usr/bin/env python3
"""Start-up time of the built plugin binary, against `kubectl version --client`.

Runs each command N times, interleaved so that both see the same machine load, and
prints the median, min and max of each and the ratio of each median to kubectl's.
The goal is `kubectl-runai_dr --help` under 0.5 s median.

    python3 bench/startup.py                      # dist/kubectl-runai_dr/kubectl-runai_dr
    python3 bench/startup.py -n 31 --json out.json
    python3 bench/startup.py --limit 1.0          # exit 1 if --help's median is over 1.0 s
    python3 bench/startup.py --also onefile=/tmp/onefile/kubectl-runai_dr   # compare builds

--also LABEL=PATH (repeatable) adds another build's `--help` to the same interleaved runs,
e.g. the one-file build (BUILD_MODE=onefile DIST_DIR=/tmp/onefile scripts/build.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_HELP_MEDIAN = 0.5


def time_once(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                       check=False)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.decode()[-500:]}")
    return dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", type=Path,
                    default=ROOT / "dist" / "kubectl-runai_dr" / "kubectl-runai_dr")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=PATH",
                    help="another build whose --help to measure in the same runs")
    ap.add_argument("--kubectl", default=None,
                    help="kubectl to compare with (default: .tools/bin/kubectl, else PATH)")
    ap.add_argument("-n", "--runs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--limit", type=float,
                    help="exit 1 when the binary's --help median exceeds this many seconds")
    args = ap.parse_args()

    kubectl = args.kubectl or (str(ROOT / ".tools/bin/kubectl")
                               if (ROOT / ".tools/bin/kubectl").exists()
                               else shutil.which("kubectl"))
    if not kubectl:
        raise SystemExit("no kubectl: run scripts/bootstrap-tests.sh or pass --kubectl")
    binary: Path = args.binary
    if not binary.is_file():
        raise SystemExit(f"{binary} missing: build it with scripts/build.sh")
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)

    cases: dict[str, list[str]] = {
        "kubectl version --client": [kubectl, "version", "--client"],
        "kubectl-runai_dr --help": [str(binary), "--help"],
        "kubectl-runai_dr version": [str(binary), "version"],
    }
    complete = ROOT / "kubectl_complete-runai_dr"
    if complete.exists():
        # What each <TAB> after `kubectl runai-dr` costs (the script runs the binary).
        cases["kubectl_complete-runai_dr ''"] = [str(complete), ""]
        env["PATH"] = f"{binary.parent}{os.pathsep}{env.get('PATH', '')}"
    for spec in args.also:
        label, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"--also {spec!r}: expected LABEL=PATH of an executable")
        cases[f"{label} --help"] = [path, "--help"]

    for _ in range(args.warmup):
        for cmd in cases.values():
            time_once(cmd, env)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for k, cmd in cases.items():
            times[k].append(time_once(cmd, env))

    base = statistics.median(times["kubectl version --client"])
    rows = []
    print(f"start-up, {args.runs} runs each, interleaved (seconds)")
    print(f"{'command':34} {'median':>8} {'min':>8} {'max':>8} {'x kubectl':>10}")
    for k, ts in times.items():
        med = statistics.median(ts)
        rows.append({"command": k, "median": med, "min": min(ts), "max": max(ts),
                     "ratio_to_kubectl": med / base})
        print(f"{k:34} {med:8.3f} {min(ts):8.3f} {max(ts):8.3f} {med / base:10.1f}")
    # The size users download and unpack: the whole folder of a one-folder build.
    size = (sum(f.stat().st_size for f in binary.parent.rglob("*") if f.is_file())
            if (binary.parent / "_internal").is_dir() else binary.stat().st_size)
    help_median = statistics.median(times["kubectl-runai_dr --help"])
    verdict = "met" if help_median < GOAL_HELP_MEDIAN else "NOT met"
    print(f"binary size: {size / 1e6:.1f} MB ({binary})")
    print(f"goal --help median < {GOAL_HELP_MEDIAN} s: {verdict} ({help_median:.3f} s)")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "binary_bytes": size,
                                         "results": rows}, indent=2) + "\n")
    if args.limit is not None and help_median > args.limit:
        print(f"FAIL: --help median {help_median:.3f} s over the limit {args.limit} s",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
