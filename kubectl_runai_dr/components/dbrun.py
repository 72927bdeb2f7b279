"""Where the PostgreSQL tools run: inside the database pod (exec) or on this machine.

Both runners offer the same two things: ``run(argv, stdout=, stdin=)`` streams a tool's
output to a sink / its input from chunks and returns how it ended (exit code, stderr
tail); ``session(database)`` is an interactive psql for small queries (the snapshot,
the row counts) that stays open while pg_dump runs. Finding the pod and its container
also lives here, shared by backup, restore and drill.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
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
    lock_wait_timeout: float  # for pg_dump --lock-wait-timeout

    def run(self, argv: list[str], *, stdout: Any = None, stdin: Iterable[bytes] | None = None,
            stdin_size: int | None = None,
            on_stdout: Callable[[int], None] | None = None) -> ExecResult: ...
    def session(self, database: str) -> Session: ...


# How long ending one's work may take: a session after ``\q``, and the clean-up (a new
# exec that ends the commands and database sessions of a run) when something failed or
# the run was interrupted.
CLOSE_TIMEOUT = 5.0
CANCEL_TIMEOUT = 15.0


def failure(what: str, where: str, res: ExecResult) -> ComponentError:
    """A tool that failed, with its own last words (stderr tail)."""
    tail = res.stderr_tail.strip()
    tail = tail[-1500:] if tail else "(no error output)"
    return ComponentError(
        f"{what} {res.describe()} in {where}: {tail}",
        hint="fix the cause shown above (database server, credentials, disk space in the "
             "pod) and run again; nothing partial was kept")


class _Work:
    """What one runner started: each command and session gets a tag (its sessions'
    ``application_name``), all of them the run's prefix, so that a failure or an interrupt
    can end exactly what it left behind."""

    def __init__(self) -> None:
        self.run_id = secrets.token_hex(4)
        self._count = itertools.count(1)

    def tag(self) -> str:
        return p.run_tag(self.run_id, next(self._count))

    @property
    def prefix(self) -> str:
        return p.run_prefix(self.run_id)


# -- in the pod ------------------------------------------------------------------------------
class PodSession:
    """An interactive psql in the pod. A query that fails or is interrupted ends the session
    (and, when interrupted, everything else the runner started)."""

    def __init__(self, runner: PodRunner, stream: kexec.ExecStream, what: str,
                 tag: str) -> None:
        self.runner = runner
        self.stream = stream
        self.what = what
        self.tag = tag

    def query(self, sql: str) -> bytes:
        try:
            self.stream.send(p.sql_exchange(sql))
            out, _err = self.stream.read_until((p.SENTINEL + "\n").encode())
        except Exception:
            self.stream.abort()
            self.runner.cancel(self.tag)
            raise
        except BaseException:  # interrupted: end the whole run's work, at once
            self.runner.cancel()
            raise
        return out

    def close(self) -> None:
        self.runner.forget(self)
        if self.stream.closed:
            return
        ended = False
        try:
            self.stream.sock.settimeout(CLOSE_TIMEOUT)
            self.stream.send(b"\\q\n")
            self.stream.close_stdin()
            while (item := self.stream.recv()) is not None:
                if item[0] == kexec.STATUS:
                    ended = True
                    break
        except Exception:  # a broken or silent stream: ended below
            pass
        except BaseException:
            self.stream.abort()
            self.runner.cancel()
            raise
        finally:
            self.stream.close()
        if not ended:
            self.runner.cancel(self.tag)


class PodRunner:
    """The tools inside the database pod, through the exec API. The password comes from
    the container's environment (``password=None``) or is sent as the first stdin line.

    Every command runs under :func:`plan.database.pod_command`'s supervision (it dies with
    its connection, or at a deadline); every read waits at most the client's
    --request-timeout when one is given; a command that fails or is interrupted is ended
    in the pod, with its database session, through a new exec (:meth:`cancel`)."""

    def __init__(self, kube: KubeApi, namespace: str, pod: str, container: str, *,
                 conn: dict[str, Any] | None = None, password: str | None = None,
                 lock_wait_timeout: float = p.DEFAULT_LOCK_WAIT,
                 statement_timeout: float = p.DEFAULT_STATEMENT_TIMEOUT) -> None:
        self.kube = kube
        self.namespace = namespace
        self.pod = pod
        self.container = container
        self.conn = dict(conn or {})
        self._password = password
        self.where = f'pod "{pod}" (namespace "{namespace}", container "{container}")'
        self.lock_wait_timeout = lock_wait_timeout
        self._settings = p.session_settings(statement_timeout=statement_timeout,
                                            lock_timeout=lock_wait_timeout)
        self.timeout = getattr(kube, "request_timeout", None) or None
        self._work = _Work()
        self._sessions: set[PodSession] = set()

    def _password_from(self) -> str:
        return "stdin" if self._password is not None else "env"

    def _command(self, argv: list[str], *, stdin: str, tag: str) -> list[str]:
        return p.pod_command(argv, password_from=self._password_from(), stdin=stdin, tag=tag,
                             settings=self._settings, deadline=p.COMMAND_DEADLINE)

    def _with_password(self, stdin: Iterable[bytes] | None) -> Iterable[bytes] | None:
        if self._password is None:
            return stdin
        first = (self._password + "\n").encode()
        return _chain([first], stdin or [])

    def run(self, argv: list[str], *, stdout: Any = None, stdin: Iterable[bytes] | None = None,
            stdin_size: int | None = None,
            on_stdout: Callable[[int], None] | None = None) -> ExecResult:
        """``stdin_size``: the exact size of ``stdin``, so the input ends without the v5
        close frame (clusters before Kubernetes 1.30 only speak v4). Without ``stdin`` the
        command's stream keeps an open, empty stdin: its end tells the pod that this
        client went away."""
        tag = self._work.tag()
        feeding = stdin is not None
        if feeding and stdin_size is not None and self._password is not None:
            stdin_size += len(self._password.encode()) + 1
        try:
            res = kexec.run(self.kube, self.namespace, self.pod,
                            self._command(argv, stdin="drain" if feeding else "watch",
                                          tag=tag),
                            container=self.container, stdout=stdout,
                            stdin=self._with_password(stdin if feeding else []),
                            stdin_size=stdin_size if feeding else None, end_stdin=feeding,
                            on_stdout=on_stdout, timeout=self.timeout)
        except Exception:
            self.cancel(tag)
            raise
        except BaseException:  # interrupted: end the whole run's work, at once
            self.cancel()
            raise
        if res.exit_code is None:  # no exit status: the command may still run
            self.cancel(tag)
        return res

    def session(self, database: str) -> PodSession:
        tag = self._work.tag()
        argv = p.psql_argv(database, **self.conn)
        stream = kexec.open_exec(self.kube, self.namespace, self.pod,
                                 self._command(argv, stdin="feed", tag=tag),
                                 container=self.container, stdin=True, timeout=self.timeout)
        session = PodSession(self, stream, f"psql in {self.where}", tag)
        self._sessions.add(session)
        if self._password is not None:
            session.stream.send((self._password + "\n").encode())
        return session

    def forget(self, session: PodSession) -> None:
        self._sessions.discard(session)

    def cancel(self, tag: str | None = None) -> None:
        """End, in the pod, one command and its database session (``tag``) or everything
        this runner started (no tag: its open sessions are dropped first). Best effort,
        bounded: the run is failing or interrupted already, and the pod ends what is left
        by itself when the streams close (or at the deadline)."""
        if tag is None:
            for s in list(self._sessions):
                s.stream.abort()
            self._sessions.clear()
        command = p.cancel_command(tag or self._work.prefix,
                                   password_from=self._password_from(), **self.conn)
        with contextlib.suppress(Exception):  # unreachable or refused: nothing more to do
            kexec.run(self.kube, self.namespace, self.pod, command, container=self.container,
                      stdin=self._with_password([]), end_stdin=False, timeout=CANCEL_TIMEOUT)


def _chain(*parts: Iterable[bytes]) -> Iterator[bytes]:
    for part in parts:
        yield from part


# -- on this machine ------------------------------------------------------------------------
class LocalSession:
    def __init__(self, runner: LocalRunner, proc: subprocess.Popen[bytes], what: str,
                 tag: str) -> None:
        self.runner = runner
        self.proc = proc
        self.what = what
        self.tag = tag
        self._err = kexec._Tail()
        self._t = threading.Thread(target=_pump, args=(proc.stderr, self._err), daemon=True)
        self._t.start()

    def query(self, sql: str) -> bytes:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        marker = (p.SENTINEL + "\n").encode()
        out = bytearray()
        try:
            self.proc.stdin.write(p.sql_exchange(sql))
            self.proc.stdin.flush()
            while not out.endswith(marker):
                line = self.proc.stdout.readline()
                if not line:
                    self.proc.wait()
                    self._t.join(timeout=5)  # all of its stderr, for the message
                    raise ComponentError(f"{self.what} ended early (exit code "
                                         f"{self.proc.returncode}): {self._err.text().strip()}")
                out += line
        except Exception:
            self.proc.kill()
            self.runner.cancel(self.tag)
            raise
        except BaseException:
            self.proc.kill()
            self.runner.cancel()
            raise
        return bytes(out[: -len(marker)])

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.write(b"\\q\n")
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.runner.cancel(self.tag)


class LocalRunner:
    """The PostgreSQL client programs of this machine (``--db-mode local``): for an external
    database. The password travels in the child's environment only."""

    def __init__(self, conn: dict[str, Any], password: str | None,
                 environ: Mapping[str, str] | None = None, *,
                 lock_wait_timeout: float = p.DEFAULT_LOCK_WAIT,
                 statement_timeout: float = p.DEFAULT_STATEMENT_TIMEOUT) -> None:
        self.conn = dict(conn)
        self._password = password
        self._environ = dict(os.environ if environ is None else environ)
        self.where = f'database server {conn.get("host")}:{conn.get("port") or 5432}'
        self.lock_wait_timeout = lock_wait_timeout
        self._settings = p.session_settings(statement_timeout=statement_timeout,
                                            lock_timeout=lock_wait_timeout)
        self._work = _Work()

    def _env(self, tag: str | None = None) -> dict[str, str]:
        env = dict(self._environ)
        if self._password is not None:
            env["PGPASSWORD"] = self._password
        if tag is not None:
            env["PGAPPNAME"] = tag
            options = " ".join(f"-c {k}={v}" for k, v in self._settings.items())
            if options:
                env["PGOPTIONS"] = " ".join(x for x in (env.get("PGOPTIONS"), options) if x)
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
        tag = self._work.tag()
        proc = subprocess.Popen(self._exe(argv), env=self._env(tag),
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
        interrupted: BaseException | None = None
        try:
            while chunk := proc.stdout.read1(_CHUNK):  # type: ignore[attr-defined]
                total += len(chunk)
                if stdout is not None:
                    stdout.write(chunk)
                if on_stdout is not None:
                    on_stdout(len(chunk))
        except BaseException as exc:
            proc.kill()
            interrupted = exc
            raise
        finally:
            code = proc.wait()
            for t in threads:
                t.join(timeout=10)
            if interrupted is not None:  # its database session may wait on, for a lock
                self.cancel(tag if isinstance(interrupted, Exception) else None)
        if errors and not isinstance(errors[0], OSError):
            raise errors[0]
        return ExecResult(exit_code=code, stderr_tail=err.text(), stdout_bytes=total,
                          protocol="local")

    def session(self, database: str) -> LocalSession:
        tag = self._work.tag()
        proc = subprocess.Popen(self._exe(p.psql_argv(database, **self.conn)),
                                env=self._env(tag), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return LocalSession(self, proc, f"psql on {self.where}", tag)

    def cancel(self, tag: str | None = None) -> None:
        """End the database sessions of one command (``tag``) or of all this runner
        started: a killed client does not end a session that waits for a lock."""
        argv = ["psql", "-X", "-q", "-A", "-t", "-w", "-c",
                p.terminate_sql(tag or self._work.prefix), *p.conn_args("postgres", **self.conn)]
        with contextlib.suppress(OSError, subprocess.SubprocessError, DrError):
            subprocess.run(self._exe(argv), env=self._env(), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=CANCEL_TIMEOUT, check=False)


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
            return Located(LocalRunner(conn, password, env, **_timeouts(opts)),
                           details={"mode": "local", **conn})
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
        return Located(PodRunner(kube, ns, name, container, conn=conn, password=password,
                                 **_timeouts(opts)),
                       details={"mode": "pod", "namespace": ns, "pod": name,
                                "container": container, **conn})
    conn = {"user": opts.user} if opts.user else {}
    return Located(PodRunner(kube, ns, name, container, conn=conn, **_timeouts(opts)),
                   details={"mode": "pod", "namespace": ns, "pod": name, "container": container})


def _timeouts(opts: p.DbOptions) -> dict[str, Any]:
    return {"lock_wait_timeout": opts.lock_wait_timeout,
            "statement_timeout": opts.statement_timeout}


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
