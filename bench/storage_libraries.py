"""Measurement behind the choice of S3 client (docs/storage-libraries.md): minio, boto3 and
obstore, each in a throwaway virtualenv of its own, same run.

For each library: the installed size (site-packages against an empty virtualenv's), the
start-up cost of a fresh interpreter that imports it (and that also builds a client), the
median of --starts runs, interleaved, less a bare interpreter's; and the throughput of a
--size (default 256 MiB) streaming multipart upload from a file object to the loopback S3
server (SeaweedFS, kubeapi.s3server) through the library's normal streaming call, with
16 MiB parts and the library's own default concurrency, as a separate process (peak RSS
through bench/rss.py's launcher).

    .venv/bin/python bench/storage_libraries.py [--venvs /tmp] [--size 256M] [--rounds 3]

The virtualenvs are DIR/libvenv-{base,minio,boto3,obstore}; a missing one is created with
`python -m venv` and `pip install LIBRARY` (from the package index pip is configured with).
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

from database import parse_size
from kubeapi.s3server import running_s3
from rss import run

ROOT = Path(__file__).resolve().parent.parent

LIBS = ("minio", "boto3", "obstore")
PART = 16 * 1024 * 1024

IMPORT = {
    "minio": "import minio",
    "boto3": "import boto3",
    "obstore": "import obstore, obstore.store",
}
CLIENT = {
    "minio": "from minio import Minio; Minio('127.0.0.1:9', access_key='a', secret_key='b', "
             "secure=False, region='us-east-1')",
    "boto3": "import boto3; boto3.client('s3', endpoint_url='http://127.0.0.1:9', "
             "region_name='us-east-1', aws_access_key_id='a', aws_secret_access_key='b')",
    "obstore": "from obstore.store import S3Store; S3Store('b', endpoint='http://127.0.0.1:9', "
               "region='us-east-1', access_key_id='a', secret_access_key='b', "
               "client_options={'allow_http': True})",
}
# Each reads the file object itself, as it comes, in parts of PART bytes.
UPLOAD = {
    "minio": """
from urllib.parse import urlsplit
from minio import Minio
c = Minio(urlsplit(E["AWS_ENDPOINT_URL"]).netloc, secure=False, region="us-east-1",
          access_key=E["AWS_ACCESS_KEY_ID"], secret_key=E["AWS_SECRET_ACCESS_KEY"])
with open(path, "rb") as f:
    c.put_object(bucket, key, f, length=-1, part_size=PART)
""",
    "boto3": """
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
c = boto3.client("s3", endpoint_url=E["AWS_ENDPOINT_URL"], region_name="us-east-1",
                 config=Config(s3={"addressing_style": "path"}))
with open(path, "rb") as f:
    c.upload_fileobj(f, bucket, key, Config=TransferConfig(multipart_threshold=PART,
                                                           multipart_chunksize=PART))
""",
    "obstore": """
import obstore
from obstore.store import S3Store
s = S3Store(bucket, endpoint=E["AWS_ENDPOINT_URL"], region="us-east-1",
            access_key_id=E["AWS_ACCESS_KEY_ID"], secret_access_key=E["AWS_SECRET_ACCESS_KEY"],
            virtual_hosted_style_request=False, client_options={"allow_http": True})
with open(path, "rb") as f:
    obstore.put(s, key, f, chunk_size=PART)
""",
}


def venv(base: Path, name: str) -> Path:
    d = base / f"libvenv-{name}"
    py = d / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
        if name != "base":
            subprocess.run([str(py), "-m", "pip", "install", "-q", name], check=True)
    return py


def site_size(py: Path) -> int:
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True)
    total = 0
    for dirpath, _dirs, files in os.walk(site.stdout.strip()):  # pip's .pyc files included
        total += sum(os.lstat(os.path.join(dirpath, n)).st_size for n in files)
    return total


def version(py: Path, lib: str) -> str:
    return subprocess.run([str(py), "-c", f"import importlib.metadata as m; "
                           f"print(m.version({lib!r}))"], check=True, capture_output=True,
                          text=True).stdout.strip()


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venvs", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--size", default="256M")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    size = parse_size(args.size)
    pys = {name: venv(args.venvs, name) for name in ("base", *LIBS)}
    base_size = site_size(pys["base"])

    # start-up: a bare interpreter, the import, the import and a client; interleaved
    starts: dict[str, list[float]] = {}
    for _ in range(args.starts + 1):  # the first pass warms the page cache, not counted
        for lib in LIBS:
            for kind, code in (("bare", "pass"), ("import", IMPORT[lib]),
                               ("client", CLIENT[lib])):
                starts.setdefault(f"{lib} {kind}", []).append(
                    timed([str(pys[lib]), "-c", code]))
    start = {k: statistics.median(v[1:]) for k, v in starts.items()}

    up: dict[str, list[float]] = {lib: [] for lib in LIBS}
    rss: dict[str, int] = {lib: 0 for lib in LIBS}
    with tempfile.TemporaryDirectory() as tmp, running_s3() as s3:
        data = Path(tmp) / "data"
        with open(data, "wb") as f:
            for _ in range(size // (1 << 20)):
                f.write(os.urandom(1 << 20))
        bucket = s3.bucket()
        client = s3.client()
        env = {**os.environ, **s3.env()}
        for r in range(args.rounds):
            for lib in LIBS:
                key = f"{lib}/{r}"
                code = (f"import os\nE = os.environ\npath, bucket, key, PART = {str(data)!r}, "
                        f"{bucket!r}, {key!r}, {PART}\n" + UPLOAD[lib])
                wall, peak = run([str(pys[lib]), "-c", code], env, Path(tmp) / "log")
                st = client.stat_object(bucket, key)
                assert st.size == size, (lib, st.size)
                client.remove_object(bucket, key)
                up[lib].append(wall)
                rss[lib] = max(rss[lib], peak)

    mib = size / 2**20
    print(f"{'library':8} {'version':>9} {'installed':>10} {'import':>8} {'+client':>8} "
          f"{'upload MiB/s':>13} {'runs (s)':>18} {'peak RSS':>9}")
    for lib in LIBS:
        bare = start[f"{lib} bare"]
        t = statistics.median(up[lib])
        print(f"{lib:8} {version(pys[lib], lib):>9} "
              f"{(site_size(pys[lib]) - base_size) / 1e6:8.1f} MB "
              f"{(start[f'{lib} import'] - bare) * 1000:6.0f} ms "
              f"{(start[f'{lib} client'] - bare) * 1000:6.0f} ms "
              f"{mib / t:13.1f} {' '.join(f'{x:.2f}' for x in up[lib]):>18} "
              f"{rss[lib] / 2**20:6.0f} MiB")
    bare_ms = statistics.median(start[f"{lib} bare"] for lib in LIBS) * 1000
    print(f"bare interpreter start: {bare_ms:.0f} ms; upload of {mib:.0f} MiB from a file "
          f"object, {PART >> 20} MiB parts, median of {args.rounds}")

if __name__ == "__main__":
    main()
