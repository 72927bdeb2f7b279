"""What the benchmarks share: the loopback API server with its latency model on, child
processes timed with their peak RSS, and the one-line result every benchmark prints:

    RESULT <name>: ratio <r> (goal <g>) | peer <s> s | ours <s> s | peak RSS peer <MiB>, ours <MiB>

Run them from the repository root with the worktree's sources first on the path, e.g.
`PYTHONPATH=.:testing .venv/bin/python bench/backup.py`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubeapi import ApiServer, LatencyModel

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools" / "bin"


def add_latency_args(ap: argparse.ArgumentParser) -> None:
    d = LatencyModel()
    g = ap.add_argument_group("latency model of the loopback API server (kubeapi.LatencyModel)")
    g.add_argument("--request-delay", type=float, default=d.request_delay, metavar="S",
                   help=f"seconds per request (default {d.request_delay})")
    g.add_argument("--write-delay", type=float, default=d.write_delay, metavar="S",
                   help=f"seconds more per write (default {d.write_delay})")
    g.add_argument("--list-throughput", type=float, default=d.list_throughput, metavar="B/S",
                   help=f"bytes of answer per second (default {d.list_throughput:.0f})")
    g.add_argument("--max-inflight", type=int, default=None, metavar="N",
                   help="APF seats: requests served at once, the rest queue or get 429 "
                        "(default: unbounded)")
    g.add_argument("--queue-length", type=int, default=d.queue_length, metavar="N")
    g.add_argument("--no-latency", action="store_true",
                   help="answer at the loopback server's own speed (flatters the tool)")


def latency_from(args: argparse.Namespace) -> LatencyModel | None:
    if args.no_latency:
        return None
    return LatencyModel(request_delay=args.request_delay, write_delay=args.write_delay,
                        list_throughput=args.list_throughput, max_inflight=args.max_inflight,
                        queue_length=args.queue_length)


def describe(model: LatencyModel | None) -> str:
    if model is None:
        return "latency model OFF (loopback speed)"
    seats = "unbounded" if model.max_inflight is None else (
        f"{model.max_inflight} seats, queue {model.queue_length}")
    return (f"latency model ON: {model.request_delay * 1000:.1f} ms/request, "
            f"+{model.write_delay * 1000:.1f} ms/write, "
            f"{model.list_throughput / 1e6:.0f} MB/s, {seats}")


def kubectl() -> str:
    found = shutil.which("kubectl", path=f"{TOOLS}:{os.environ.get('PATH', '')}")
    if not found:
        raise SystemExit("kubectl not found: run scripts/bootstrap-tests.sh")
    return found


def child_env(**extra: str) -> dict[str, str]:
    """The environment of the programs measured: bytecode cached (as in an install or the
    built binary; a checkout run with PYTHONDONTWRITEBYTECODE would compile every module
    at every start), in a folder of its own rather than in the source tree."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("PYTHONPYCACHEPREFIX", os.path.join(tempfile.gettempdir(),
                                                       "runai-dr-bench-pycache"))
    env["NO_COLOR"] = "1"
    env.update(extra)
    return env


@dataclass
class Run:
    wall: float
    rss_kib: int


def run(cmd: Sequence[str], env: dict[str, str], *, stdout: int | None = subprocess.DEVNULL,
        check: bool = True) -> Run:
    """One child process: its wall time and peak RSS (ru_maxrss of that child alone)."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), env=env, stdout=stdout, stderr=subprocess.PIPE)
    err = b""
    if proc.stderr is not None:
        err = proc.stderr.read()  # drain, or a chatty child blocks
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if check and code != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({code}): {err.decode()[-2000:]}")
    return Run(elapsed, usage.ru_maxrss)


def start_server(model: LatencyModel | None) -> ApiServer:
    from kubeapi.seed import crd_paths

    srv = ApiServer()
    srv.install_crds(crd_paths())
    srv.start()
    srv.latency = model
    return srv


def span(xs: Sequence[float]) -> str:
    return f"{statistics.median(xs):.2f} s (range {min(xs):.2f}-{max(xs):.2f}, n={len(xs)})"


def result(name: str, ratio: float, goal: str, peer: Sequence[float], ours: Sequence[float],
           rss_peer_kib: int | None, rss_ours_kib: int | None) -> None:
    """The one line: None (or 0) for a peak RSS not measured."""
    def mib(kib: int | None) -> str:
        return f"{kib / 1024:.0f} MiB" if kib else "-"

    print(f"RESULT {name}: ratio {ratio:.2f} (goal {goal}) | peer {span(peer)} | "
          f"ours {span(ours)} | peak RSS peer {mib(rss_peer_kib)}, ours {mib(rss_ours_kib)}",
          flush=True)
