"""A real PostgreSQL behind a database pod of the loopback API server (a pod backend).

    pg = add_postgres_backend(srv)                 # runai-backend/runai-backend-postgresql-N
    ... helm installs the chart; the StatefulSet's pod turns Running ...
    srv.wait_pod_ready("runai-backend", "runai-backend-postgresql-0")
    pg.current.psql("SELECT 1")                    # the PgServer of the latest started pod
    pg.server_for("runai-backend", "runai-backend-postgresql-0")

When a matching pod turns Running, a PostgreSQL 15 server is started for it, like the
Bitnami image does on its first start: an empty data directory (initdb), the superuser
`postgres` with the container's resolved POSTGRES_PASSWORD (POSTGRES_POSTGRES_PASSWORD when
POSTGRES_USER names another user, who then gets POSTGRES_PASSWORD), TCP authentication
scram-sha-256, and the database POSTGRES_DATABASE (or POSTGRESQL_DATABASE) created. The pod
turns Ready only then. Exec into the pod gets PGHOST/PGPORT of that server and PATH with the
PostgreSQL programs first; while it starts, PGPORT points at a closed port (pg_isready: no
response). Without a password the container fails (CrashLoopBackOff), as Bitnami's does.

The data lives with the pod's volume (its claim's PersistentVolume): a pod that is deleted
and re-created on the same volume finds its data (and its old password) again; a new volume
(a re-installed chart, a deleted namespace) starts empty. A volume provisioned from a
VolumeSnapshot starts empty too (a real CSI driver would copy the snapshot's files).
Deleting the pod stops its server; the kept data directories go at server stop.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .pgserver import PgServer, find_bindir, free_port
from .server import ApiServer

DEFAULT_NAMESPACE = "runai-backend"
DEFAULT_POD_REGEX = r"runai-backend-postgresql-\d+"


_TEMPLATES: dict[tuple[str, str], Path] = {}
_TEMPLATES_LOCK = threading.Lock()


def _base_dir() -> str | None:
    """Where data directories go: memory (/dev/shm) when writable, copying one is 10x quicker there."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class VolumePgServer(PgServer):
    """A PgServer whose data directory can outlive a stop (`pause`) and serve again (`resume`).

    `start()` copies a data directory made once per process by initdb (a fresh cluster, the same
    as initdb would make; 1 MB WAL segments) and sets the superuser's password: much quicker than
    initdb each time. Data directories are in /dev/shm when it is writable."""

    volume: str | None = None  # the PersistentVolume (name/uid) holding its data, if any

    def _template(self) -> Path:
        key = (str(self.bindir), self.host_auth)
        with _TEMPLATES_LOCK:
            t = _TEMPLATES.get(key)
            if t is None:
                proto = PgServer(self.bindir, password=uuid.uuid4().hex, host_auth=self.host_auth)
                proto.dir = Path(tempfile.mkdtemp(prefix="pgtemplate-", dir=_base_dir()))
                if proto._as_postgres:
                    pw = pwd.getpwnam("postgres")
                    os.chown(proto.dir, pw.pw_uid, pw.pw_gid)
                r = proto._run_server_tool(
                    "initdb", "-D", str(proto.datadir), "-U", proto.user, "--auth-local=trust",
                    f"--auth-host={self.host_auth}", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
                    "--wal-segsize=1")
                if r.returncode != 0:
                    shutil.rmtree(proto.dir, ignore_errors=True)
                    raise RuntimeError(f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
                atexit.register(shutil.rmtree, proto.dir, True)
                t = _TEMPLATES[key] = proto.datadir
            return t

    def start(self) -> VolumePgServer:
        if self.dir is not None:
            raise RuntimeError("server already started")
        template = self._template()
        self.dir = Path(tempfile.mkdtemp(prefix="pgserver-", dir=_base_dir()))
        try:
            if self._as_postgres:
                pw = pwd.getpwnam("postgres")
                os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            subprocess.run(["cp", "-a", str(template), str(self.datadir)], check=True, capture_output=True)
            self.resume()
            escaped = self.password.replace("'", "''")
            r = subprocess.run([str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.dir),
                                "-p", str(self.port), "-U", self.user, "-d", "postgres", "-c",
                                f"ALTER ROLE {self.user} PASSWORD '{escaped}'"],
                               capture_output=True, text=True, timeout=60, check=False)
            if r.returncode != 0:
                raise RuntimeError(f"setting the password failed: {r.stderr}")
        except BaseException:
            self.stop()
            raise
        return self

    def pause(self) -> None:
        """Stop the server and keep its data directory."""
        if self.dir is not None and (self.datadir / "postmaster.pid").exists():
            self._run_server_tool("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def resume(self) -> VolumePgServer:
        """Start again on the kept data directory (a new port)."""
        if self.dir is None:
            raise RuntimeError("no data directory")
        last = ""
        for _ in range(5):
            self.port = free_port()
            opts = (f"-c listen_addresses={self.host} -p {self.port} -k {self.dir} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            r = self._run_server_tool("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile),
                                      "-w", "-t", "30", "-o", opts, "start")
            if r.returncode == 0:
                return self
            last = r.stdout + r.stderr + self._log_tail()
        raise RuntimeError(f"PostgreSQL did not start again:\n{last}")

    def exec_env(self) -> dict[str, str]:
        return {"PGHOST": self.host, "PGPORT": str(self.port), "PATH": f"{self.bindir}:/usr/local/bin:/usr/bin:/bin"}


@dataclass
class PgPodBackend:
    """The PodBackend of one pod: exec env of its server; stop() keeps the volume's data."""

    owner: PostgresBackend
    key: tuple[str, str]
    server: VolumePgServer
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None

    def stop(self) -> None:
        self.owner._stopped(self)


class PostgresBackend:
    """The `start` callable of a pod backend, and the handle to the servers it started."""

    def __init__(self, srv: ApiServer, *, bindir: str | Path | None = None, container: str = "postgresql") -> None:
        self.srv = srv
        self.bindir = bindir
        self.container = container
        self.servers: dict[tuple[str, str], VolumePgServer] = {}  # running, by (namespace, pod)
        self.started: list[VolumePgServer] = []  # every start, oldest first
        self._volumes: dict[str, VolumePgServer] = {}  # stopped servers whose volume may come back
        self._releasing: dict[str, threading.Event] = {}  # volumes whose server is stopping
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    # ------------------------------------------------------------------ handles for tests
    @property
    def current(self) -> VolumePgServer | None:
        """The server of the most recently started pod that still runs."""
        with self._lock:
            running = set(map(id, self.servers.values()))
            return next((s for s in reversed(self.started) if id(s) in running), None)

    def server_for(self, namespace: str, pod: str) -> VolumePgServer | None:
        with self._lock:
            return self.servers.get((namespace, pod))

    def wait_running(self, namespace: str, pod: str, timeout: float = 60) -> VolumePgServer:
        """Wait until the pod's server runs (the pod is about to turn Ready)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (namespace, pod) not in self.servers:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no PostgreSQL for pod {namespace}/{pod} after {timeout}s")
                self._changed.wait(left)
            return self.servers[(namespace, pod)]

    def wait_stopped(self, namespace: str, pod: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while (namespace, pod) in self.servers:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"PostgreSQL of pod {namespace}/{pod} still runs after {timeout}s")
                self._changed.wait(left)

    # ------------------------------------------------------------------ the pod backend
    def _volume_of(self, pod: dict[str, Any]) -> str | None:
        """The PersistentVolume behind the pod's claim ("data" first), as name/uid."""
        ns = pod["metadata"]["namespace"]
        claims = [(v.get("name"), (v.get("persistentVolumeClaim") or {}).get("claimName"))
                  for v in (pod.get("spec") or {}).get("volumes") or []]
        claims = sorted((c for c in claims if c[1]), key=lambda c: c[0] != "data")
        for _vol, claim in claims:
            pvc = self.srv.get("v1", "PersistentVolumeClaim", str(claim), ns)
            pv_name = ((pvc or {}).get("spec") or {}).get("volumeName")
            pv = self.srv.get("v1", "PersistentVolume", pv_name) if pv_name else None
            if pv is not None:
                return f"{pv_name}/{pv['metadata']['uid']}"
        return None

    def _prune_volumes(self) -> None:
        """Drop kept data whose PersistentVolume is gone."""
        with self._lock:
            kept = dict(self._volumes)
        for key, server in kept.items():
            name, _, uid = key.partition("/")
            pv = self.srv.get("v1", "PersistentVolume", name)
            if pv is None or pv["metadata"]["uid"] != uid:
                with self._lock:
                    self._volumes.pop(key, None)
                server.stop()

    def __call__(self, pod: dict[str, Any]) -> PgPodBackend:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        names = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        env = self.srv.container_env(pod, self.container if self.container in names else None)
        self._prune_volumes()
        volume = self._volume_of(pod)
        if volume:
            with self._lock:
                releasing = self._releasing.get(volume)
            if releasing is not None:  # the previous pod still holds the volume
                releasing.wait(60)
        with self._lock:
            kept = self._volumes.pop(volume, None) if volume else None
        if kept is not None:
            server = kept.resume()
        else:
            user = env.get("POSTGRESQL_USERNAME") or env.get("POSTGRES_USER") or "postgres"
            user_pw = env.get("POSTGRESQL_PASSWORD") or env.get("POSTGRES_PASSWORD") or ""
            super_pw = env.get("POSTGRESQL_POSTGRES_PASSWORD") or env.get("POSTGRES_POSTGRES_PASSWORD") or ""
            if user == "postgres":
                super_pw = user_pw or super_pw
            if not super_pw:
                raise RuntimeError("postgresql: the POSTGRESQL_PASSWORD environment variable is empty or not set. "
                                   "Set the environment variable ALLOW_EMPTY_PASSWORD=yes to allow the container "
                                   "to be started with blank passwords. This is recommended only for development.")
            server = VolumePgServer(self.bindir, password=super_pw, host_auth="scram-sha-256")
            server.start()
            try:
                database = env.get("POSTGRESQL_DATABASE") or env.get("POSTGRES_DATABASE") or env.get("POSTGRES_DB")
                if user != "postgres":
                    escaped = user_pw.replace("'", "''")
                    server.psql(f"CREATE ROLE \"{user}\" LOGIN PASSWORD '{escaped}'")
                if database and database != "postgres":
                    server.psql(f'CREATE DATABASE "{database}"' + (f' OWNER "{user}"' if user != "postgres" else ""))
            except BaseException:
                server.stop()
                raise
        server.volume = volume
        backend = PgPodBackend(self, (ns, name), server, env=server.exec_env())
        with self._changed:
            self.servers[(ns, name)] = server
            self.started.append(server)
            self._changed.notify_all()
        return backend

    def _stopped(self, backend: PgPodBackend) -> None:
        server, volume = backend.server, backend.server.volume
        old = None
        if volume is not None:
            with self._lock:
                released = self._releasing[volume] = threading.Event()
        try:
            if volume is not None:
                server.pause()
            else:
                server.stop()
        finally:
            with self._changed:
                if self.servers.get(backend.key) is server:
                    del self.servers[backend.key]
                if volume is not None:
                    old = self._volumes.get(volume)
                    self._volumes[volume] = server
                    if self._releasing.get(volume) is released:
                        del self._releasing[volume]
                    released.set()
                self._changed.notify_all()
        if old is not None and old is not server:
            old.stop()

    def close(self) -> None:
        """At server stop: stop everything, remove the kept data."""
        with self._lock:
            servers = [*self.servers.values(), *self._volumes.values()]
            self.servers.clear()
            self._volumes.clear()
        for s in servers:
            with contextlib.suppress(Exception):
                s.stop()


def add_postgres_backend(srv: ApiServer, namespace: str | None = DEFAULT_NAMESPACE,
                         name_regex: str = DEFAULT_POD_REGEX, *, bindir: str | Path | None = None,
                         container: str = "postgresql") -> PostgresBackend:
    """Put a real PostgreSQL behind the matching pods (by default the control plane's database pod)."""
    pg = PostgresBackend(srv, bindir=bindir, container=container)
    probe_bindir = pg.bindir or find_bindir()
    srv.add_pod_backend(namespace, name_regex, pg, starting_env={
        "PGHOST": "127.0.0.1", "PGPORT": "1", "PATH": f"{probe_bindir}:/usr/local/bin:/usr/bin:/bin"})
    return pg
