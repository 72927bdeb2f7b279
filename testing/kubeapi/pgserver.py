"""A throwaway PostgreSQL server for tests and benchmarks (the database behind pgbackend's pod).

The server is the real PostgreSQL (Debian's postgresql-15 programs, installed by
scripts/bootstrap-tests.sh), started in a temporary directory on a free loopback port with
fsync off, so it is up in about a second. When the tests run as root, initdb and the
server run as the `postgres` user (PostgreSQL refuses to run as root).

Authentication is `trust` by default; the superuser `postgres` has a password all the
same, and `PgServer(host_auth="scram-sha-256")` makes TCP connections require it, so
code paths that pass a password can be tested.

The pytest fixtures `pg_server` (one server for the whole session) and `pg_database` (a
fresh, empty database on it for one test) are in kubeapi.fixtures.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

DEFAULT_BINDIR = "/usr/lib/postgresql/15/bin"


def find_bindir() -> Path:
    """The PostgreSQL server programs: $PG_BINDIR, else Debian's PostgreSQL 15 place."""
    bindir = Path(os.environ.get("PG_BINDIR", DEFAULT_BINDIR))
    if not (bindir / "postgres").is_file():
        raise FileNotFoundError(
            f"PostgreSQL server programs not found in {bindir} (no {bindir / 'postgres'}); "
            "run scripts/bootstrap-tests.sh (it installs postgresql-15) or set PG_BINDIR"
        )
    return bindir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL server in a temporary directory. Use `start()` / `stop()` or `with`."""

    user = "postgres"
    host = "127.0.0.1"

    def __init__(
        self,
        bindir: str | Path | None = None,
        password: str = "test-superuser-password",
        host_auth: str = "trust",
    ) -> None:
        self.bindir = Path(bindir) if bindir is not None else find_bindir()
        self.password = password
        self.host_auth = host_auth
        self.port = 0
        self.dir: Path | None = None
        self._as_postgres = os.geteuid() == 0

    # -- life cycle -----------------------------------------------------------------------

    @property
    def datadir(self) -> Path:
        assert self.dir is not None, "server not started"
        return self.dir / "data"

    @property
    def logfile(self) -> Path:
        assert self.dir is not None, "server not started"
        return self.dir / "server.log"

    def _run_server_tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run initdb / pg_ctl, as the postgres user when we are root."""
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(
            cmd, cwd=self.dir, capture_output=True, text=True, timeout=120, check=False
        )

    def start(self) -> PgServer:
        if self.dir is not None:
            raise RuntimeError("server already started")
        self.dir = Path(tempfile.mkdtemp(prefix="pgserver-"))
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_postgres:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        r = self._run_server_tool(
            "initdb", "-D", str(self.datadir), "-U", self.user, f"--pwfile={pwfile}",
            "--auth-local=trust", f"--auth-host={self.host_auth}",
            "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
        )
        pwfile.unlink()
        if r.returncode != 0:
            self._cleanup()
            raise RuntimeError(f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        last = ""
        for _ in range(5):  # a free port can be taken between choosing it and binding it
            self.port = free_port()
            opts = (f"-c listen_addresses={self.host} -p {self.port} -k {self.dir} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            r = self._run_server_tool(
                "pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile),
                "-w", "-t", "30", "-o", opts, "start",
            )
            if r.returncode == 0:
                return self
            last = r.stdout + r.stderr + self._log_tail()
        self._cleanup()
        raise RuntimeError(f"PostgreSQL did not start:\n{last}")

    def stop(self) -> None:
        if self.dir is None:
            return
        if (self.datadir / "postmaster.pid").exists():
            self._run_server_tool("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")
        self._cleanup()

    def _cleanup(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def _log_tail(self) -> str:
        try:
            return "\n--- server.log ---\n" + self.logfile.read_text()[-4000:]
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        if self.dir is None:
            return False
        r = self._run_server_tool("pg_ctl", "-D", str(self.datadir), "status")
        return r.returncode == 0

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ----------------------------------------------------------------------------

    @property
    def dsn(self) -> str:
        """libpq URI of the `postgres` database as the superuser, password included."""
        return self.dsn_for("postgres")

    def dsn_for(self, db: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{db}"

    def env(self) -> dict[str, str]:
        """Environment for libpq programs (psql, pg_dump, pg_restore) to reach this server."""
        env = dict(os.environ)
        env.update(PGHOST=self.host, PGPORT=str(self.port), PGUSER=self.user,
                   PGPASSWORD=self.password, PGDATABASE="postgres")
        return env

    def psql(self, sql: str, db: str = "postgres", check: bool = True) -> str:
        """Run SQL with psql (ON_ERROR_STOP, unaligned tuples-only); return its stdout."""
        if self.dir is None:
            raise RuntimeError("server not started")
        r = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.host, "-p", str(self.port), "-U", self.user, "-d", db, "-c", sql],
            capture_output=True, text=True, env=self.env(), timeout=300, check=False,
        )
        if check and r.returncode != 0:
            raise RuntimeError(f"psql failed ({r.returncode}) on {sql!r}:\n{r.stderr}")
        return r.stdout

    def create_database(self, name: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
