"""Benchmark: the plugin's database dump against a direct `pg_dump -Fc` to a file.

Same PostgreSQL 15 database, same run. The plugin reaches it the way it reaches a real
installation: pg_dump inside the database pod through the API server's exec (here the
loopback API server, which runs the command locally). Prints:
- stream throughput: pg_dump over the exec websocket into a file (the plugin's code path)
  against pg_dump writing the file itself: ratio, goal >= 0.9;
- the whole `kubectl runai-dr backup database` as a separate process: wall time (it also
  packs the bundle) and its peak RSS, goal < 150 MB whatever the database size.

    .venv/bin/python bench/database.py [--size 200M|1G] [--rounds 3]

The loopback API server and PostgreSQL come from the package kubeapi (testing/),
installed by scripts/bootstrap-tests.sh.
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
from kubeapi.pgserver import PgServer
from kubeapi.seed import crd_paths, seed_runai

from kubectl_runai_dr.components.dbrun import PodRunner
from kubectl_runai_dr.kube.client import ConnectOptions, connect
from kubectl_runai_dr.plan import database as p

ROOT = Path(__file__).resolve().parent.parent

PASSWORD = "pg-Secr3t-for-tests"
NS, POD = "runai-backend", "runai-backend-postgresql-0"
ROW = 128  # bytes of random payload per row (8 decoded md5 digests of random(): incompressible)


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def fill(pg: PgServer, size: int) -> None:
    pg.create_database("backend")
    rows = max(1, size // (ROW + 40))
    pg.psql("CREATE TABLE big (id bigint, payload bytea)", db="backend")
    digests = " || ".join(["md5(random()::text)"] * (ROW // 16))
    step = 500_000
    for start in range(0, rows, step):
        pg.psql(f"INSERT INTO big SELECT g, decode({digests}, 'hex') "
                f"FROM generate_series({start + 1}, {min(rows, start + step)}) g", db="backend")
    pg.psql("VACUUM ANALYZE big", db="backend")


def direct(pg: PgServer, out: Path) -> float:
    t = time.perf_counter()
    subprocess.run([str(pg.bindir / "pg_dump"), "-Fc", "-f", str(out), "--dbname=backend"],
                   env=pg.env(), check=True)
    return time.perf_counter() - t


def plugin_stream(kube: object, out: Path) -> float:
    runner = PodRunner(kube, NS, POD, "postgresql")
    t = time.perf_counter()
    with open(out, "wb") as fh:
        res = runner.run(p.pg_dump_argv("backend", None), stdout=fh)
    assert res.ok, res.stderr_tail
    return time.perf_counter() - t


def plugin_process(kc: Path, out: Path) -> tuple[float, int]:
    env = {**os.environ, "NO_COLOR": "1"}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "kubectl_runai_dr", "backup", "database",
                             "--kubeconfig", str(kc), "--to", str(out), "--force",
                             "--no-record"], env=env, stdout=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    assert os.waitstatus_to_exitcode(status) == 0, "backup failed"
    return wall, usage.ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="200M", help="database size (default 200M; 1G)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="bench-db-"))
    with PgServer(password=PASSWORD) as pg:
        print(f"filling a database of about {size >> 20} MiB ...", flush=True)
        fill(pg, size)
        actual = int(pg.psql("SELECT pg_database_size('backend')"))
        srv = ApiServer()
        srv.install_crds(crd_paths())
        srv.start()
        try:
            seed_runai(srv, projects=3, rolebindings_per_project=1)
            srv.set_pod_exec(NS, POD, env={"PGHOST": pg.host, "PGPORT": str(pg.port),
                                           "PATH": f"{pg.bindir}:/usr/bin:/bin"})
            kc = srv.write_kubeconfig(work / "kubeconfig")
            kube = connect(ConnectOptions(kubeconfig=str(kc)))
            d_times, s_times, walls, rss = [], [], [], []
            for _ in range(args.rounds):
                d_times.append(direct(pg, work / "direct.dump"))
                s_times.append(plugin_stream(kube, work / "plugin.dump"))
                w, r = plugin_process(kc, work / "bundle.tar.gz")
                walls.append(w)
                rss.append(r)
            dump = (work / "direct.dump").stat().st_size
            same = abs((work / "plugin.dump").stat().st_size - dump) < dump * 0.01 + 4096
            d, s, w = (statistics.median(x) for x in (d_times, s_times, walls))
            print(f"database {actual / 2**20:.0f} MiB, dump {dump / 2**20:.0f} MiB "
                  f"(plugin dump of the same size: {same})")
            print(f"direct pg_dump -Fc to a file : {d:6.2f} s  {dump / d / 2**20:7.1f} MiB/s")
            print(f"plugin exec stream to a file : {s:6.2f} s  {dump / s / 2**20:7.1f} MiB/s")
            print(f"throughput ratio plugin/direct: {d / s:.2f} (goal >= 0.9)")
            print(f"`backup database` process    : {w:6.2f} s wall (ratio to direct "
                  f"{d / w:.2f}; includes packing the bundle)")
            print(f"peak RSS of the plugin process: {max(rss) / 2**20:.0f} MiB (goal < 150)")
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
