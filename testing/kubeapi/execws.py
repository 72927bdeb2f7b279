"""Pod exec over websocket (v5.channel.k8s.io / v4.channel.k8s.io): the command runs locally.

Frames are binary; byte 0 is the channel: 0 stdin, 1 stdout, 2 stderr, 3 status (a JSON Status when the
command ends), 4 resize; v5 adds 255 = close, whose one-byte payload names the channel closed (0: end of
stdin). Reproduced kubelet behaviours:
- over v4 stdin never ends (there is no close frame), so a command reading stdin to the end never exits;
- when the command exits while the client still sends more stdin than the runtime's buffers hold
  (about 1 MiB), the stream stalls: the server stops reading, and after `exec_stdin_hang_timeout`
  seconds the connection drops without a status (the exit code is lost);
- a command that cannot be found ends with exit code 127 (126 if not executable) and the runtime's
  message on stdout;
- a command outlives its client: when the connection goes away the command is not killed; its stdin
  is closed (the stream that fed it ended) and its output is no longer read, so a command that keeps
  writing blocks, as a pg_dump in a pod does when its client was stopped.
After the handshake the websocket is served by wsrelay.ExecSocket (frames parsed as they arrive,
stdin written to the command from the buffer it was decrypted into).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .containers import BASE_PATH as BASE_PATH
from .containers import Root, container_root, preexec
from .core import ServerCore
from .request import RECORD_KEY, Target
from .status import ApiError
from .wsrelay import STATUS, STDERR, STDOUT, ExecSocket, handshake_problem, upgrade

if TYPE_CHECKING:
    from .server import ApiServer

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN_BUFFER = 1024 * 1024  # what the runtime's FIFO and the sockets on the way absorb
QUIET_AFTER_EXIT = 0.2  # how long stdin must stay quiet after the command ended to finish normally
CHUNK = 32 * 1024
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


def _bool(q: dict[str, list[str]], name: str, default: bool = False) -> bool:
    v = q.get(name)
    if not v:
        return default
    return v[-1].lower() in ("1", "true", "yes")


def _container_env(srv: ServerCore, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    ns = pod["metadata"]["namespace"]
    env: dict[str, str] = {}

    def secret_data(name: str) -> dict[str, str]:
        e = srv.store.get(("", "secrets"), ns, name)
        if e is None:
            return {}
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (e.obj.get("data") or {}).items()}

    def cm_data(name: str) -> dict[str, str]:
        e = srv.store.get(("", "configmaps"), ns, name)
        return dict(e.obj.get("data") or {}) if e else {}

    for ef in container.get("envFrom") or []:
        prefix = ef.get("prefix", "")
        if "secretRef" in ef:
            for k, v in secret_data(ef["secretRef"]["name"]).items():
                env[prefix + k] = v
        if "configMapRef" in ef:
            for k, v in cm_data(ef["configMapRef"]["name"]).items():
                env[prefix + k] = v
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = str(item["value"])
            continue
        vf = item.get("valueFrom") or {}
        if "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            d = secret_data(ref["name"])
            if ref["key"] in d:
                env[name] = d[ref["key"]]
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            d = cm_data(ref["name"])
            if ref["key"] in d:
                env[name] = d[ref["key"]]
        elif "fieldRef" in vf:
            path = vf["fieldRef"].get("fieldPath", "")
            env[name] = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": ns,
                         "status.podIP": (pod.get("status") or {}).get("podIP", ""),
                         "spec.nodeName": (pod.get("spec") or {}).get("nodeName", ""),
                         "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName", "")
                         }.get(path, "")
        elif name not in env:
            env[name] = ""
    return env


def _status(code: int | None, message: str | None = None) -> bytes:
    if code == 0:
        return json.dumps({"metadata": {}, "status": "Success"}).encode()
    if code is None:
        return json.dumps({"metadata": {}, "status": "Failure", "message": message or "",
                           "reason": "InternalError", "code": 500}).encode()
    return json.dumps({"metadata": {}, "status": "Failure",
                       "message": f"command terminated with non-zero exit code: error executing command "
                                  f"[{message}], exit code {code}",
                       "reason": "NonZeroExitCode",
                       "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}).encode()


async def handle_exec(srv: ApiServer, request: web.Request, t: Target, query: dict[str, list[str]]) -> web.StreamResponse:
    assert t.name is not None and t.namespace is not None
    with srv.store.lock:
        e = srv.store.get(("", "pods"), t.namespace, t.name)
        if e is None:
            raise ApiError(404, f'pods "{t.name}" not found', details={"name": t.name, "kind": "pods"})
        pod = e.copy_obj()
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    containers = spec.get("containers") or []
    cname = (query.get("container") or [""])[-1]
    if not cname:
        if len(containers) != 1:
            names = " ".join(c["name"] for c in containers)
            raise ApiError(400, f"a container name must be specified for pod {t.name}, choose one of: [{names}]")
        cname = containers[0]["name"]
    container = next((c for c in containers if c.get("name") == cname), None)
    ephemeral = next((c for c in spec.get("ephemeralContainers") or [] if c.get("name") == cname), None)
    if container is None and ephemeral is not None:
        container = ephemeral
    if container is None:
        raise ApiError(400, f"container {cname} is not valid for pod {t.name}")
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        raise ApiError(400, f"cannot exec into a container in a completed pod; current phase is {phase}")
    if not spec.get("nodeName"):
        raise ApiError(400, f"pod {t.name} does not have a host assigned")
    statuses = status.get("ephemeralContainerStatuses" if ephemeral is not None else "containerStatuses")
    cstatus = next((cs for cs in statuses or [] if cs.get("name") == cname), None)
    if ephemeral is not None and cstatus is None:
        cstatus = {"state": {"waiting": {"reason": "ContainerCreating"}}}
    if phase != "Running" or (cstatus is not None and "running" not in (cstatus.get("state") or {})):
        # the kubelet finds no running container (still being created, or crashed and backing off)
        raise ApiError(400, f'unable to upgrade connection: container not found ("{cname}")')
    command = query.get("command") or []
    want_stdin, want_stdout = _bool(query, "stdin"), _bool(query, "stdout", True)
    want_stderr, tty = _bool(query, "stderr", True), _bool(query, "tty")
    if not (want_stdin or want_stdout or want_stderr):
        raise ApiError(400, "you must specify at least 1 of stdin, stdout, stderr")
    if not command:
        raise ApiError(400, "you must specify at least one command for the container")
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise ApiError(400, "Upgrade request required")  # SPDY is not served: clients fall back to it only on 4xx/5xx
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    served = tuple(srv.exec_protocols)
    if not any(p in served for p in offered):
        # the kubelet's websocket handshake (golang.org/x/net/websocket) refuses with a bare
        # 403 and no body, which the API server passes on as it is
        return web.Response(status=403, reason="Forbidden")

    with srv.store.lock:
        env = {"PATH": BASE_PATH, "HOSTNAME": t.name}
        env.update(_container_env(srv, pod, container))
        backend = srv.workloads.exec_override(t.namespace, t.name, pod["metadata"].get("uid", ""))
        extra = srv.pod_exec.get((t.namespace, t.name))
        try:
            root = container_root(srv, pod, container, BASE_PATH.split(":"))
        except (OSError, ValueError) as err:
            raise ApiError(500, f"the loopback container root for {t.name}/{cname}: {err}") from err
    cwd = None
    if backend is not None:  # the process behind the pod (add_pod_backend)
        env.update(backend[0])
        cwd = backend[1]
    if extra is not None:  # set_pod_exec: the test's own override wins
        env.update(extra.env or {})
        cwd = extra.cwd or cwd

    problem = handshake_problem(request)
    if problem is not None:
        raise ApiError(400, f"unable to upgrade connection: {problem}")
    # the client's first offered protocol that is served; exec_no_protocol: upgrade without
    # choosing one, as servers older than the channel protocols' negotiation did (the
    # client must notice that it has no v5)
    chosen = None if srv.exec_no_protocol else next(p for p in offered if p in served)
    v5 = chosen == "v5.channel.k8s.io"

    stdin_r = stdin_w = None
    if want_stdin:
        # the command's input, as deep as a runtime's FIFO (the kernel doubles SO_SNDBUF):
        # a socket pair, as uvloop gives a subprocess, not a pipe. A pipe wakes its writer
        # for every page the command reads (pg_restore reads 4 KiB at a time), a socket
        # once a good part of its buffer is free; a relay in Python pays for each wake-up
        # on the cores the command needs (measured: 3.7 s of relay CPU per GiB into a
        # command reading 4 KiB at a time, against 7.7 s through a pipe). Unlike a FIFO, a
        # socket cannot be opened again by name (/dev/stdin), and the kernel caps its
        # buffer at net.core.wmem_max (the hang model's depth follows)
        ours, theirs = socket.socketpair()
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, STDIN_BUFFER // 2)
        stdin_r, stdin_w = theirs.detach(), ours.detach()
        os.set_blocking(stdin_w, False)
    try:  # (the socket owns stdin_w from here, even when the upgrade fails)
        sock, resp = await upgrade(request, chosen, v5=v5, stdin_fd=stdin_w,
                                   hang_after=STDIN_BUFFER,
                                   on_problem=srv.exec_protocol_errors.append)
    except BaseException:
        if stdin_r is not None:
            os.close(stdin_r)
        raise
    request[RECORD_KEY].status = 101
    try:
        await _relay(srv, sock, t, command, stdin_r, env=env, cwd=cwd, root=root,
                     want_stdout=want_stdout, want_stderr=want_stderr, tty=tty)
        return resp  # prepared already: aiohttp writes nothing more
    finally:
        sock.close_stdin()  # (_relay closed the command's end once it was handed over)


async def _relay(srv: ApiServer, sock: ExecSocket, t: Target,
                 command: list[str], stdin_r: int | None, *, env: dict[str, str],
                 cwd: str | None, root: Root | None, want_stdout: bool, want_stderr: bool,
                 tty: bool) -> None:
    """Run the command and relay its streams over ``sock`` until it has ended."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=stdin_r if stdin_r is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT if tty else asyncio.subprocess.PIPE,
            env=env, cwd=cwd if root is None else None, start_new_session=True,
            preexec_fn=preexec(root, cwd if root is not None else None))
    except (FileNotFoundError, PermissionError, NotADirectoryError) as err:
        code = 127 if isinstance(err, FileNotFoundError) else 126
        why = "executable file not found in $PATH" if code == 127 else "permission denied"
        msg = (f'OCI runtime exec failed: exec failed: unable to start container process: exec: "{command[0]}": '
               f"{why}: unknown\r\n")
        with contextlib.suppress(ConnectionError):
            if want_stdout:
                await sock.send(STDOUT, msg.encode())
            await sock.send(STATUS, _status(code, " ".join(command)))
        await sock.close()
        return
    finally:
        if stdin_r is not None:
            os.close(stdin_r)  # the command holds it now: when it ends, so does its input

    srv.exec_processes.add(proc.pid)  # killed by srv.stop() if still running then
    _widen_pipes(proc)
    loop = asyncio.get_running_loop()

    async def pump_out(stream: asyncio.StreamReader | None, channel: int, enabled: bool) -> None:
        if stream is None:
            return
        while True:
            chunk = await stream.read(CHUNK)
            if not chunk:
                return
            if enabled:
                try:
                    await sock.send(channel, chunk)
                except ConnectionError:
                    # the client is gone and nobody reads the output any more: a command that
                    # keeps writing blocks, as in a kubelet, until it ends; what it wrote
                    # then is drained, so that its exit is seen
                    while proc.returncode is None:
                        await asyncio.sleep(0.05)
                    enabled = False

    out_task = asyncio.ensure_future(pump_out(proc.stdout, STDOUT, want_stdout or tty))
    err_task = asyncio.ensure_future(pump_out(proc.stderr, STDERR, want_stderr))
    wait_task = asyncio.ensure_future(proc.wait())
    try:
        either: set[asyncio.Future[Any]] = {wait_task, sock.gone}
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if sock.gone.done() and not wait_task.done():
            # the client went away: a kubelet does not kill the command, it only ends its stdin
            sock.close_stdin()
        code = await wait_task
        srv.exec_processes.discard(proc.pid)
        if getattr(srv, "stopping", False):  # the server is going away: no status, the connection drops
            sock.abort()
            return
        sock.command_exited()
        for result in await asyncio.gather(out_task, err_task, return_exceptions=True):
            if isinstance(result, Exception) and not isinstance(result, (ConnectionError, RuntimeError)):
                srv.record_bug(f"exec in pod {t.namespace}/{t.name} (copying the output)", result)
        if stdin_r is not None and not sock.stdin_eof:
            # the command ended: see whether the client is still pushing stdin that nobody will read
            sock.last_frame = max(sock.last_frame, loop.time())
            while not sock.gone.done() and not sock.stdin_eof and not sock.hang:
                quiet = loop.time() - sock.last_frame
                if quiet >= QUIET_AFTER_EXIT:
                    break
                await asyncio.sleep(min(0.05, QUIET_AFTER_EXIT - quiet + 0.001))
        if sock.hang:
            await asyncio.sleep(srv.exec_stdin_hang_timeout)
            sock.abort()  # no status, no close frame: the exit code is lost
            return
        if not sock.gone.done():
            with contextlib.suppress(ConnectionError):
                await sock.send(STATUS, _status(code, " ".join(command)))
            await sock.close()
    finally:
        for task in (out_task, err_task, wait_task):
            if not task.done():
                task.cancel()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)


def _widen_pipes(proc: asyncio.subprocess.Process) -> None:
    """The command's output pipes as deep as a runtime's (STDIN_BUFFER, 1 MiB; asyncio's
    loop: uvloop's connects the output through socket pairs, which keep their size). A Go
    kubelet's relay is back at the pipe within microseconds; this one, in Python on the
    same cores as the command, may be off the CPU for some milliseconds, and with shallow
    buffers the command would block meanwhile. (Its input is a socket pair of that size,
    made in handle_exec.)"""
    for stream in (proc.stdout, proc.stderr):
        transport = getattr(stream, "transport", None) or getattr(stream, "_transport", None)
        if transport is None:
            continue
        pipe = transport.get_extra_info("pipe")
        with contextlib.suppress(OSError, ValueError):  # ValueError: a pipe already closed
            if pipe is not None:
                fcntl.fcntl(pipe.fileno(), F_SETPIPE_SZ, STDIN_BUFFER)


@dataclass
class PodExec:
    env: dict[str, str] | None = None
    cwd: str | None = None


class ExecMixin(ServerCore):
    """The exec settings a test gives a pod, mixed into ApiServer (server.py); the exec requests
    themselves are served by handle_exec."""

    pod_exec: dict[tuple[str, str], PodExec]

    def set_pod_exec(self, namespace: str, pod: str, *, env: dict[str, str] | None = None,
                     cwd: str | None = None) -> None:
        self.pod_exec[(namespace, pod)] = PodExec(env=dict(env or {}), cwd=cwd)

    def container_env(self, pod: dict[str, Any], container: str | None = None) -> dict[str, str]:
        """A container's environment as the kubelet resolves it (env, envFrom, secretKeyRef, ...)."""
        containers = (pod.get("spec") or {}).get("containers") or []
        c = next((x for x in containers if container is None or x.get("name") == container), None)
        if c is None:
            raise KeyError(f"no container {container!r} in pod {pod['metadata']['name']}")
        with self.store.lock:
            return _container_env(self, pod, c)
