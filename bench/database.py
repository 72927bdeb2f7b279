"""Benchmark: the database dump and restore through the API server's exec, against
pg_dump and pg_restore run inside the database pod.

Same PostgreSQL 15 database, same run. The plugin reaches it the way it reaches a real
installation: pg_dump / pg_restore inside the database pod through the exec API (here the
loopback API server, which runs the command locally with the pod's environment: "inside
the pod" is that same environment without the exec). Prints:
- dump: pg_dump -Fc over the exec stream into a file (the plugin's code path, in a
  process of its own) against
  `pg_dump -Fc > /dev/null` inside the pod: ratio of throughputs, goal >= 0.95;
- restore: the dump streamed into pg_restore over exec (the plugin's code path) against
  `pg_restore < dump` inside the pod, each into a freshly created database: goal >= 0.9;
- the plugin process's CPU per GiB while it streams (its start-up left out);
- the whole `kubectl runai-dr backup database` and `restore --only database` of the one
  database (each restored copy is counted and dropped as soon as it is timed: autovacuum
  going over it would run under the next measurement) as separate processes: wall time
  (they also pack / unpack the bundle and check every table's row count) and peak RSS,
  goal < 150 MB whatever the database size.

    PYTHONPATH=.:testing .venv/bin/python bench/database.py [--size 200M|1G] [--rounds 4]
        [--only dump|restore] [--no-process]

The loopback API server and PostgreSQL come from the package kubeapi (testing/),
installed by scripts/bootstrap-tests.sh.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from common import add_latency_args, child_env, describe, latency_from, result, run
from kubeapi import ApiServer
from kubeapi.latency import LatencyModel
from kubeapi.pgserver import PgServer
from kubeapi.seed import crd_paths, seed_runai

from kubectl_runai_dr.components.dbrun import PodRunner
from kubectl_runai_dr.kube.client import ConnectOptions, connect
from kubectl_runai_dr.plan import database as p

PASSWORD = "pg-Secr3t-for-tests"
NS, POD = "runai-backend", "runai-backend-postgresql-0"
ROW = 128  # bytes of random payload per row (8 decoded md5 digests of random(): incompressible)
CHUNK = 1 << 20


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().rstrip("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


@contextlib.contextmanager
def database_cluster(pg: PgServer, work: Path,
                     model: LatencyModel | None = None) -> Iterator[Path]:
    """A loopback API server with a seeded Run:ai installation whose database pod runs its
    exec'd commands against ``pg``; yields its kubeconfig, stops it afterwards."""
    srv = ApiServer()
    srv.install_crds(crd_paths())
    srv.start()
    try:
        seed_runai(srv, projects=3, rolebindings_per_project=1)
        srv.latency = model
        srv.set_pod_exec(NS, POD, env={"PGHOST": pg.host, "PGPORT": str(pg.port),
                                       "PATH": f"{pg.bindir}:/usr/bin:/bin"})
        yield srv.write_kubeconfig(work / "kubeconfig")
    finally:
        srv.stop()


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


def fresh(pg: PgServer, name: str) -> None:
    pg.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg.psql(f'CREATE DATABASE "{name}"')
    quiet(pg)


def quiet(pg: PgServer) -> None:
    """Before each timed run: the server's dirty buffers written (a checkpoint) and the
    machine's dirty pages too, so that neither side pays for what the other left behind
    (a restore leaves a gigabyte for the next checkpoint; a dump through exec, its file)."""
    pg.psql("CHECKPOINT")
    os.sync()


def in_pod_dump(pg: PgServer) -> float:
    quiet(pg)
    t = time.perf_counter()
    with open(os.devnull, "wb") as null:
        subprocess.run([str(pg.bindir / "pg_dump"), "-Fc", "-w", "--dbname=backend"],
                       env=pg.env(), stdout=null, check=True)
    return time.perf_counter() - t


restored_rows: dict[str, set[str]] = {"restored_peer": set(), "restored_ours": set()}


def settle(pg: PgServer, name: str) -> None:
    """After a timed restore: its row count noted, the copy dropped at once, so that
    autovacuum going over the fresh gigabyte never runs under the next measurement."""
    restored_rows[name].add(pg.psql("SELECT count(*) FROM big", db=name).strip())
    pg.psql(f'DROP DATABASE "{name}" WITH (FORCE)')


def in_pod_restore(pg: PgServer, dump: Path) -> float:
    fresh(pg, "restored_peer")
    t = time.perf_counter()
    with open(dump, "rb") as fh:
        subprocess.run([str(pg.bindir / "pg_restore"), "-w", "--single-transaction",
                        "--exit-on-error", "--no-owner", "--dbname=restored_peer"],
                       env=pg.env(), stdin=fh, check=True)
    took = time.perf_counter() - t
    settle(pg, "restored_peer")
    return took


def child(argv: list[str]) -> None:
    """`database.py --child dump|restore KUBECONFIG FILE [DATABASE]`: the plugin's stream
    code in a process of its own, as in real use (in the benchmark's process it would share
    one interpreter lock with the loopback server relaying the stream). Prints seconds."""
    what, kc, path = argv[:3]
    kube = connect(ConnectOptions(kubeconfig=kc))
    runner = PodRunner(kube, NS, POD, "postgresql")
    t, cpu = time.perf_counter(), time.process_time()
    if what == "dump":
        with open(path, "wb") as fh:
            res = runner.run(p.pg_dump_argv("backend", None), stdout=fh)
    else:
        res = runner.run(p.pg_restore_argv(argv[3], clean=False, owners=False),
                         stdin=_chunks(Path(path)), stdin_size=Path(path).stat().st_size)
    if not res.ok:
        raise SystemExit(res.stderr_tail)
    print(time.perf_counter() - t, time.process_time() - cpu)


cpu_d: list[float] = []  # CPU seconds of the plugin's process while it streamed
cpu_r: list[float] = []


def _in_child(*args: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         stdout=subprocess.PIPE, env=child_env()).stdout
    wall, cpu = out.decode().split()[-2:]
    (cpu_d if args[0] == "dump" else cpu_r).append(float(cpu))
    return float(wall)


def exec_dump(kc: Path, out: Path, pg: PgServer) -> float:
    quiet(pg)
    return _in_child("dump", str(kc), str(out))


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            yield block


def exec_restore(pg: PgServer, kc: Path, dump: Path) -> float:
    fresh(pg, "restored_ours")
    took = _in_child("restore", str(kc), str(dump), "restored_ours")
    settle(pg, "restored_ours")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="200M", help="database size (default 200M; 1G)")
    ap.add_argument("--rounds", type=int, default=4,
                    help="rounds (default 4: even, so each side goes first as often)")
    ap.add_argument("--only", choices=("dump", "restore"),
                    help="time one direction only (restore: one dump is made first)")
    ap.add_argument("--no-process", action="store_true",
                    help="skip the whole backup/restore processes (streams only)")
    add_latency_args(ap)
    args = ap.parse_args()
    size = parse_size(args.size)
    model = latency_from(args)
    work = Path(tempfile.mkdtemp(prefix="bench-db-"))
    with PgServer(password=PASSWORD) as pg:
        t0 = time.perf_counter()
        print(f"filling a database of about {size >> 20} MiB ...", flush=True)
        fill(pg, size)
        actual = int(pg.psql("SELECT pg_database_size('backend')"))
        print(f"filled in {time.perf_counter() - t0:.0f} s; {describe(model)} "
              "(exec streams are long-running requests: no per-request delay)", flush=True)
        with database_cluster(pg, work, model) as kc:
            dump = work / "plugin.dump"
            peer_d: list[float] = []
            ours_d: list[float] = []
            peer_r: list[float] = []
            ours_r: list[float] = []
            if args.only == "restore":  # the dump to restore, made once, not timed
                exec_dump(kc, dump, pg)
                cpu_d.clear()
            directions: list[tuple[str, list[float], list[float], Callable[[], float],
                                   Callable[[], float]]] = [("dump", peer_d, ours_d, lambda: in_pod_dump(pg),
                           lambda: exec_dump(kc, dump, pg)),
                          ("restore", peer_r, ours_r, lambda: in_pod_restore(pg, dump),
                           lambda: exec_restore(pg, kc, dump))]
            for i in range(args.rounds):
                for what, peer, ours, run_peer, run_ours in directions:
                    if args.only not in (None, what):
                        continue
                    pair = [(peer, run_peer), (ours, run_ours)]
                    for times, run_one in (pair if i % 2 == 0 else pair[::-1]):
                        times.append(run_one())
                    print(f"round {i + 1}: {what} in pod {peer[-1]:.2f} s, through exec "
                          f"{ours[-1]:.2f} s", flush=True)
            rows = {"backend": {pg.psql("SELECT count(*) FROM big", db="backend").strip()},
                    **restored_rows}
            if len(set().union(*rows.values())) != 1:
                raise SystemExit(f"row counts differ: {rows}")
            dsize = dump.stat().st_size
            print(f"database {actual / 2**20:.0f} MiB, dump {dsize / 2**20:.0f} MiB, "
                  f"{next(iter(rows['backend']))} rows in each copy")
            for what, cpu in (("dump", cpu_d), ("restore", cpu_r)):
                if cpu:
                    print(f"CPU of the plugin's process while streaming the {what}: "
                          f"{statistics.median(cpu) / (dsize / 2**30):.2f} s per GiB of dump")
            b_rss = r_rss = 0
            b_wall: list[float] = []
            r_wall: list[float] = []
            if not args.no_process:
                env = child_env(HOME=str(work))
                plugin = [sys.executable, "-m", "kubectl_runai_dr"]
                bundle = work / "bundle.tar.gz"
                for _ in range(max(1, args.rounds // 2)):
                    r = run([*plugin, "backup", "database", "--kubeconfig", str(kc),
                             "--to", str(bundle), "--force", "--no-record"], env)
                    b_wall.append(r.wall)
                    b_rss = max(b_rss, r.rss_kib)
                    r = run([*plugin, "restore", "--only", "database", str(bundle),
                             "--kubeconfig", str(kc), "--yes"], env)
                    r_wall.append(r.wall)
                    r_rss = max(r_rss, r.rss_kib)
                print(f"`backup database` process: {statistics.median(b_wall):.2f} s, "
                      f"peak RSS {b_rss / 1024:.0f} MiB; `restore --only database` process: "
                      f"{statistics.median(r_wall):.2f} s (with row-count checks), peak RSS "
                      f"{r_rss / 1024:.0f} MiB (goal < 150 MiB)")
            if peer_d:
                result(f"database dump {actual / 2**30:.2f} GiB: exec stream / pg_dump in the "
                       "pod", statistics.median(peer_d) / statistics.median(ours_d), ">= 0.95",
                       peer_d, ours_d, None, b_rss)
            if peer_r:
                result(f"database restore {dsize / 2**30:.2f} GiB dump: exec stream / "
                       "pg_restore in the pod", statistics.median(peer_r) /
                       statistics.median(ours_r), ">= 0.9", peer_r, ours_r, None, r_rss)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        main()
