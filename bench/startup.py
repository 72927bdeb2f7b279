#!/usr/bin/env python3
"""Start-up time of the built plugin, run through kubectl as users run it, against
`kubectl version --client`.

Runs each command N times, interleaved so that all see the same machine load, and prints
the median, min and max of each and the ratio of each median to kubectl's (goal: --help,
version and completion through kubectl within 5x).

    python3 bench/startup.py                      # dist/kubectl-runai_dr/kubectl-runai_dr
    python3 bench/startup.py -n 31 --json out.json
    python3 bench/startup.py --limit 1.0          # exit 1 if --help's median is over 1.0 s
    python3 bench/startup.py --also onefile=/tmp/onefile/kubectl-runai_dr   # compare builds

--also LABEL=PATH (repeatable) adds another build's `kubectl runai-dr --help` and
`version` (through kubectl, that build alone on PATH) to the same interleaved runs, e.g.
the one-file build (BUILD_MODE=onefile DIST_DIR=/tmp/onefile scripts/build.sh).
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
GOAL_RATIO = 5.0


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

    base_path = env.get("PATH", "")

    def through_kubectl(bindir: Path) -> dict[str, str]:
        return {**env, "PATH": f"{bindir}{os.pathsep}{base_path}"}

    released = through_kubectl(binary.parent)
    cases: dict[str, tuple[list[str], dict[str, str]]] = {
        "kubectl version --client": ([kubectl, "version", "--client"], env),
        "kubectl runai-dr --help": ([kubectl, "runai-dr", "--help"], released),
        "kubectl runai-dr version": ([kubectl, "runai-dr", "version"], released),
    }
    if (binary.parent / "kubectl_complete-runai_dr").exists():
        # What each <TAB> after `kubectl runai-dr` costs: kubectl runs the helper, which
        # runs the binary.
        cases["kubectl __complete runai-dr ''"] = ([kubectl, "__complete", "runai-dr", ""],
                                                   released)
    cases["kubectl-runai_dr --help (direct)"] = ([str(binary), "--help"], env)
    for spec in args.also:
        label, sep, path = spec.partition("=")
        if not sep or not Path(path).is_file():
            raise SystemExit(f"--also {spec!r}: expected LABEL=PATH of an executable")
        other = through_kubectl(Path(path).resolve().parent)
        cases[f"{label}: kubectl runai-dr --help"] = ([kubectl, "runai-dr", "--help"], other)
        cases[f"{label}: kubectl runai-dr version"] = ([kubectl, "runai-dr", "version"], other)

    for _ in range(args.warmup):
        for cmd, cenv in cases.values():
            time_once(cmd, cenv)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.runs):
        for k, (cmd, cenv) in cases.items():
            times[k].append(time_once(cmd, cenv))

    base = statistics.median(times["kubectl version --client"])
    rows = []
    print(f"start-up, {args.runs} runs each, interleaved (seconds)")
    print(f"{'command':44} {'median':>8} {'min':>8} {'max':>8} {'x kubectl':>10}")
    for k, ts in times.items():
        med = statistics.median(ts)
        rows.append({"command": k, "median": med, "min": min(ts), "max": max(ts),
                     "ratio_to_kubectl": med / base})
        print(f"{k:44} {med:8.3f} {min(ts):8.3f} {max(ts):8.3f} {med / base:10.1f}")
    # The size users download and unpack: the whole folder of a one-folder build.
    size = (sum(f.stat().st_size for f in binary.parent.rglob("*") if f.is_file())
            if (binary.parent / "_internal").is_dir() else binary.stat().st_size)
    help_median = statistics.median(times["kubectl runai-dr --help"])
    print(f"binary size: {size / 1e6:.1f} MB ({binary})")
    for k in ("kubectl runai-dr --help", "kubectl runai-dr version",
              "kubectl __complete runai-dr ''"):
        if k in times:
            r = statistics.median(times[k]) / base
            print(f"RESULT start-up `{k}`: ratio {r:.1f} (goal <= {GOAL_RATIO:.0f}) | peer "
                  f"{base:.3f} s | ours {statistics.median(times[k]):.3f} s (range "
                  f"{min(times[k]):.3f}-{max(times[k]):.3f}, n={args.runs})")
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
