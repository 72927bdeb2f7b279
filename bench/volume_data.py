"""Benchmark: the plugin's file-level copy of a claim against `kubectl exec POD -- tar cf - DIR`.

Same Thanos-like tree (tests/voldata_env.py) on a local-path claim of the loopback API
server, same run. Prints:
- stream throughput: the plugin's tar over the exec websocket (supervised, counted as it
  passes) into a file, against `kubectl exec POD -- tar cf - -C DIR . > file`: ratio, goal
  >= 0.9;
- the whole `kubectl runai-dr backup volumes --volume-data` as a separate process: wall time
  (it also packs the bundle) and its peak RSS, which stays flat whatever the size.

    .venv/bin/python bench/volume_data.py [--size 1G] [--rounds 3]

Runs as root (the loopback's container roots are mount namespaces). The loopback API server
comes from the package kubeapi (testing/), installed by scripts/bootstrap-tests.sh.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kubeapi import ApiServer
from kubeapi import thanos as env
from kubeapi.seed import crd_docs

from kubectl_runai_dr.components import voldata
from kubectl_runai_dr.components.base import NullProgress
from kubectl_runai_dr.kube.client import ConnectOptions, connect
from kubectl_runai_dr.plan import voldata as p

ROOT = Path(__file__).resolve().parent.parent


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def plugin_stream(kube: object, out: Path) -> float:
    with open(out, "wb") as f:
        sink = voldata._Sink(f, NullProgress(), "bench")
        t = time.perf_counter()
        res = voldata._run(kube, env.NS, env.POD, "thanos-receive",  # type: ignore[arg-type]
                           p.BACKUP_SCRIPT, env.MOUNT, stdout=sink)
        took = time.perf_counter() - t
    assert res.ok and sink.counter.ended, res.stderr_tail
    return took


def kubectl_stream(environ: dict[str, str], out: Path) -> float:
    with open(out, "wb") as f:
        t = time.perf_counter()
        subprocess.run(["kubectl", "exec", env.POD, "-n", env.NS, "--", "tar", "cf", "-", "-C",
                        env.MOUNT, "."], stdout=f, env=environ, check=True)
        return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1G")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = parse_size(args.size)
    srv = ApiServer()
    srv.install_crds(crd_docs())
    srv.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            kc = srv.write_kubeconfig(Path(tmp) / "kubeconfig")
            d = env.install(srv)
            blocks = max(1, int(size / (5.6 * env.MiB)))
            written = env.make_tree(d, blocks=blocks, block_mb=5, wal_mb=16)
            environ = {**os.environ, "KUBECONFIG": str(kc),
                       "PATH": f"{ROOT / '.tools' / 'bin'}:{os.environ['PATH']}"}
            kube = connect(ConnectOptions(kubeconfig=str(kc)))
            print(f"tree: {written / env.MiB:.0f} MiB of data, {blocks} blocks")
            ours, theirs = [], []
            for _ in range(args.rounds):
                theirs.append(kubectl_stream(environ, Path(tmp) / "peer.tar"))
                ours.append(plugin_stream(kube, Path(tmp) / "ours.tar"))
            stream_bytes = (Path(tmp) / "ours.tar").stat().st_size
            peer_bytes = (Path(tmp) / "peer.tar").stat().st_size
            t_ours, t_theirs = statistics.median(ours), statistics.median(theirs)
            print(f"kubectl exec tar cf - > file: {t_theirs:.2f} s "
                  f"({peer_bytes / env.MiB / t_theirs:.0f} MiB/s)")
            print(f"plugin tar stream > file:     {t_ours:.2f} s "
                  f"({stream_bytes / env.MiB / t_ours:.0f} MiB/s)")
            print(f"throughput ratio (plugin/kubectl): {t_theirs / t_ours:.2f} (goal >= 0.9)")
            bundle = Path(tmp) / "b.tar.gz"
            cmd = [sys.executable, "-m", "kubectl_runai_dr", "backup", "volumes",
                   "--volume-data", "--to", str(bundle), "--no-record"]
            t = time.perf_counter()
            proc = subprocess.Popen(cmd, env={**environ, "PYTHONPATH": str(ROOT)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            took = time.perf_counter() - t
            assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read() if proc.stderr \
                else ""
            print(f"whole backup (with packing): {took:.1f} s, bundle "
                  f"{bundle.stat().st_size / env.MiB:.0f} MiB, peak RSS "
                  f"{usage.ru_maxrss / 1024:.0f} MB for {written / env.MiB:.0f} MiB of data")
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
