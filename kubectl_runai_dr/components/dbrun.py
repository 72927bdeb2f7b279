"""Where the PostgreSQL tools run: inside the database pod (exec) or on this machine.

Both runners offer the same two things: ``run(argv, stdout=, stdin=)`` streams a tool's
output to a sink / its input from chunks and returns how it ended (exit code, stderr
tail); ``session(database)`` is an interactive psql for small queries (the snapshot,
the row counts) that stays open while pg_dump runs. Finding the pod and its container
also lives here, shared by backup, restore and drill.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubectl_runai_dr.components import helm
from kubectl_runai_dr.errors import ComponentError, DrError
from kubectl_runai_dr.kube import exec as kexec
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import NotFound
from kubectl_runai_dr.kube.exec import ExecResult
from kubectl_runai_dr.kube.resources import PODS, SECRETS, STATEFULSETS
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.plan import database as p

_CHUNK = 1024 * 1024


class Session(Protocol):
    def query(self, sql: str) -> bytes: ...
    def close(self) -> None: ...


class Runner(Protocol):
    where: str
    conn: dict[str, Any]

    def run(self, argv: list[str], *, stdout: Any = None, stdin: Iterable[bytes] | None = None,
            stdin_size: int | None = None,
            on_stdout: Callable[[int], None] | None = None) -> ExecResult: ...
    def session(self, database: str) -> Session: ...


def failure(what: str, where: str, res: ExecResult) -> ComponentError:
    """A tool that failed, with its own last words (stderr tail)."""
    tail = res.stderr_tail.strip()
    tail = tail[-1500:] if tail else "(no error output)"
    return ComponentError(
        f"{what} {res.describe()} in {where}: {tail}",
        hint="fix the cause shown above (database server, credentials, disk space in the "
             "pod) and run again; nothing partial was kept")


# -- in the pod ------------------------------------------------------------------------------
class PodSession:
    def __init__(self, stream: kexec.ExecStream, what: str) -> None:
        self.stream = stream
        self.what = what

    def query(self, sql: str) -> bytes:
        self.stream.send(p.sql_exchange(sql))
        out, _err = self.stream.read_until((p.SENTINEL + "\n").encode())
        return out

    def close(self) -> None:
        try:
            self.stream.send(b"\\q\n")
            self.stream.close_stdin()
            while (item := self.stream.recv()) is not None:
                if item[0] == kexec.STATUS:
                    break
        except Exception:  # the session is done either way
            pass
        finally:
            self.stream.close()


class PodRunner:
    """The tools inside the database pod, through the exec API. The password comes from
    the container's environment (``password=None``) or is sent as the first stdin line."""

    def __init__(self, kube: KubeApi, namespace: str, pod: str, container: str, *,
                 conn: dict[str, Any] | None = None, password: str | None = None) -> None:
        self.kube = kube
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.conn = dict(conn or {})
        self._password = password
        self.where = f'pod "{pod}" (namespace "{namespace}", container "{container}")'

    def _command(self, argv: list[str], *, drain: bool) -> list[str]:
        return p.pod_command(argv, password_from="stdin" if self._password else "env",
                             drain_stdin=drain)

    def _with_password(self, stdin: Iterable[bytes] | None) -> Iterable[bytes] | None:
        if self._password is None:
            return stdin
        first = (self._password + "\n").encode()
        return _chain([first], stdin or [])

    def run(self, argv: list[str], *, stdout: Any = None, stdin: Iterable[bytes] | None = None,
            stdin_size: int | None = None,
            on_stdout: Callable[[int], None] | None = None) -> ExecResult:
        """``stdin_size``: the exact size of ``stdin``, so the input ends without the v5
        close frame (clusters before Kubernetes 1.30 only speak v4)."""
        if stdin_size is not None and self._password is not None:
            stdin_size += len(self._password.encode()) + 1
        return kexec.run(self.kube, self.namespace, self.pod,
                         self._command(argv, drain=stdin is not None),
                         container=self.container, stdout=stdout,
                         stdin=self._with_password(stdin), stdin_size=stdin_size,
                         on_stdout=on_stdout)

    def session(self, database: str) -> PodSession:
        argv = p.psql_argv(database, **self.conn)
        stream = kexec.open_exec(self.kube, self.namespace, self.pod,
                                 self._command(argv, drain=False), container=self.container,
                                 stdin=True)
        if self._password is not None:
            stream.send((self._password + "\n").encode())
        return PodSession(stream, f"psql in {self.where}")


def _chain(*parts: Iterable[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield from part


# -- on this machine ------------------------------------------------------------------------
class LocalSession:
    def __init__(self, proc: subprocess.Popen[bytes], what: str) -> None:
        self.proc = proc
        self.what = what
        self._err = kexec._Tail()
        self._t = threading.Thread(target=_pump, args=(proc.stderr, self._err), daemon=True)
        self._t.start()

    def query(self, sql: str) -> bytes:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(p.sql_exchange(sql))
        self.proc.stdin.flush()
        marker = (p.SENTINEL + "\n").encode()
        out = bytearray()
        while not out.endswith(marker):
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                raise ComponentError(f"{self.what} ended early (exit code "
                                     f"{self.proc.returncode}): {self._err.text().strip()}")
            out += line
        return bytes(out[: -len(marker)])

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.write(b"\\q\n")
                self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=30)


class LocalRunner:
    """The PostgreSQL client programs of this machine (``--db-mode local``): for an external
    database. The password travels in the child's environment only."""

    def __init__(self, conn: dict[str, Any], password: str | None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.conn = dict(conn)
        self._password = password
        self._environ = dict(os.environ if environ is None else environ)
        self.where = f'database server {conn.get("host")}:{conn.get("port") or 5432}'

    def _env(self) -> dict[str, str]:
        env = dict(self._environ)
        if self._password is not None:
            env["PGPASSWORD"] = self._password
        return env

    def _exe(self, argv: list[str]) -> list[str]:
        path = shutil.which(argv[0], path=self._environ.get("PATH"))
        if path is None:
            raise ComponentError(
                f"{argv[0]} is not installed on this machine (--db-mode local needs the "
                "PostgreSQL client programs: psql, pg_dump, pg_dumpall, pg_restore)",
                hint="install the PostgreSQL client matching the server's major version "
                     "(e.g. `apt-get install postgresql-client`), or use --db-mode pod")
        return [path, *argv[1:]]

    def run(self, argv: list[str], *, stdout: Any = None, stdin: Iterable[bytes] | None = None,
            stdin_size: int | None = None,
            on_stdout: Callable[[int], None] | None = None) -> ExecResult:
        del stdin_size  # a local pipe ends when stdin is closed
        proc = subprocess.Popen(self._exe(argv), env=self._env(),
                                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        err = kexec._Tail()
        errors: list[BaseException] = []
        threads = [threading.Thread(target=_pump, args=(proc.stderr, err), daemon=True)]
        if stdin is not None:
            threads.append(threading.Thread(target=_feed_proc, args=(proc, stdin, errors),
                                            daemon=True))
        for t in threads:
            t.start()
        total = 0
        assert proc.stdout is not None
        try:
            while chunk := proc.stdout.read1(_CHUNK):  # type: ignore[attr-defined]
                total += len(chunk)
                if stdout is not None:
                    stdout.write(chunk)
                if on_stdout is not None:
                    on_stdout(len(chunk))
        except BaseException:
            proc.kill()
            raise
        finally:
            code = proc.wait()
            for t in threads:
                t.join(timeout=10)
        if errors and not isinstance(errors[0], OSError):
            raise errors[0]
        return ExecResult(exit_code=code, stderr_tail=err.text(), stdout_bytes=total,
                          protocol="local")

    def session(self, database: str) -> LocalSession:
        proc = subprocess.Popen(self._exe(p.psql_argv(database, **self.conn)), env=self._env(),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        return LocalSession(proc, f"psql on {self.where}")


def _pump(src: Any, tail: kexec._Tail) -> None:
    while chunk := src.read1(65536):
        tail.write(chunk)


def _feed_proc(proc: subprocess.Popen[bytes], chunks: Iterable[bytes],
               errors: list[BaseException]) -> None:
    assert proc.stdin is not None
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
        proc.stdin.close()
    except OSError as exc:
        errors.append(exc)
    except BaseException as exc:  # the source failed: the tool must not see a clean end
        errors.append(exc)
        proc.kill()


# -- finding the database -------------------------------------------------------------------
@dataclass
class Located:
    runner: Runner | None
    reason: str = ""  # why there is nothing to back up (runner is None)
    details: dict[str, Any] | None = None


def control_plane_values(kube: KubeApi, names: Names) -> dict[str, Any] | None:
    try:
        releases = helm.read_releases(kube, names.control_plane_release,
                                      names.control_plane_namespace)
    except (DrError, NotFound):
        return None
    deployed, latest = helm.pick_revision(releases)
    rel = deployed or latest
    return rel.computed_values() if rel is not None else None


def locate(kube: KubeApi, names: Names, opts: p.DbOptions,
           environ: Mapping[str, str] | None = None) -> Located:
    """The runner for the control plane's database, following the flags.

    Internal PostgreSQL: the StatefulSet's Ready pod. External database (values say
    ``postgresql.enabled: false``): ``--db-mode local``, or a pod given by ``--db-pod``.
    Nothing at all (a cluster-only installation): ``runner=None`` with the reason."""
    env = os.environ if environ is None else environ
    ns = opts.namespace or names.control_plane_namespace
    external: p.ExternalDb | None = None
    if opts.mode == "local" or opts.host:
        values = None if opts.host else control_plane_values(kube, names)
        external = p.external_database(values) if values else None
        host = opts.host or (external.host if external else "")
        if not host:
            raise ComponentError(
                "no database host: the control plane's values name no external database",
                hint="pass --db-host (and --db-port, --db-user) for the database server")
        conn = {"host": host, "port": opts.port or (external.port if external else 5432),
                "user": opts.user or (external.user if external else "postgres")}
        password = _password(kube, ns, opts, external, env)
        if opts.mode == "local":
            return Located(LocalRunner(conn, password, env), details={"mode": "local", **conn})
        if not opts.pod:
            raise ComponentError(
                f"the database is external ({host}): say where the PostgreSQL client runs",
                hint="use --db-mode local (pg_dump on this machine), or --db-pod POD for a "
                     "pod that has the PostgreSQL client and reaches the server")
    if opts.pod:
        pod: Mapping[str, Any] | None = kube.get_or_none(PODS, opts.pod, ns)
        if pod is None:
            raise ComponentError(f'database pod "{opts.pod}" not found in namespace "{ns}"',
                                 hint="check --db-pod and --db-namespace "
                                      f"(`kubectl get pods -n {ns}`)")
    else:
        sts_name = opts.statefulset or names.database_statefulset
        sts = kube.get_or_none(STATEFULSETS, sts_name, ns)
        if sts is None:
            values = control_plane_values(kube, names)
            ext = p.external_database(values)
            if ext is not None:
                raise ComponentError(
                    f"the control plane uses an external database ({ext.host or 'host not set'}"
                    f":{ext.port}, database {ext.database}); it is not in the cluster",
                    hint="back it up with --db-mode local (pg_dump on this machine, "
                         "--db-host/--db-user if the values lack them), or skip it with "
                         "--no-database")
            return Located(None, reason=f'no StatefulSet "{sts_name}" in namespace "{ns}" '
                                        "(no control-plane database here)")
        labels = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = [x for x in kube.list(PODS, namespace=ns, label_selector=selector or None)
                if str(x["metadata"]["name"]).startswith(sts_name + "-")]
        pod = p.choose_pod(sts_name, pods)
        if pod is None:
            raise ComponentError(f'StatefulSet "{sts_name}" in namespace "{ns}" has no pod',
                                 hint=f"check it: `kubectl get statefulset {sts_name} -n {ns}`")
    name = str(pod["metadata"]["name"])
    problem = p.pod_problem(pod)
    if problem:
        raise ComponentError(f'database pod "{name}" in namespace "{ns}" {problem}',
                             hint=f"wait until it is Ready (`kubectl get pod {name} -n {ns}`), "
                                  "or point --db-pod at a Ready replica")
    try:
        container = p.choose_container(pod, opts.container)
    except ValueError as exc:
        raise ComponentError(f'database pod "{name}": {exc}', hint="check --db-container") from exc
    if external is not None or opts.host:
        conn = {"host": opts.host or (external.host if external else None),
                "port": opts.port or (external.port if external else None),
                "user": opts.user or (external.user if external else None)}
        password = _password(kube, ns, opts, external, env)
        return Located(PodRunner(kube, ns, name, container, conn=conn, password=password),
                       details={"mode": "pod", "namespace": ns, "pod": name,
                                "container": container, **conn})
    conn = {"user": opts.user} if opts.user else {}
    return Located(PodRunner(kube, ns, name, container, conn=conn),
                   details={"mode": "pod", "namespace": ns, "pod": name, "container": container})


def _password(kube: KubeApi, ns: str, opts: p.DbOptions, ext: p.ExternalDb | None,
              env: Mapping[str, str]) -> str | None:
    """An external database's password: --db-password-env VAR, PGPASSWORD, or the values'
    existingSecret (key ``password``, else ``postgres-password``). Never from a flag."""
    if opts.password_env:
        if opts.password_env not in env:
            raise ComponentError(f"environment variable {opts.password_env} is not set",
                                 hint="export it with the database password")
        return env[opts.password_env]
    if env.get("PGPASSWORD"):
        return env["PGPASSWORD"]
    if ext is not None and ext.existing_secret:
        import base64

        secret = kube.get_or_none(SECRETS, ext.existing_secret, ns) or {}
        data = secret.get("data") or {}
        for key in ("password", "postgres-password", "postgresql-password"):
            if key in data:
                return base64.b64decode(data[key]).decode()
    return None
