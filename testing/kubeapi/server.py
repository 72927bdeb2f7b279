"""The core of the loopback API server: the aiohttp application in its own thread and event loop
(plain HTTP and TLS), the routing of each request to its concern (the mixins ApiServer is made
of: auth, faults, discovery, crud, lists, watch, execws), the life cycle, and the helpers tests
call directly (seed, get, wait_for, write_kubeconfig, ...). What the server does, and where each
part is: the package docstring (__init__.py)."""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import copy
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from aiohttp import web

from . import validation as val
from .auth import AuthMixin, DenyRule, User
from .crud import CrudMixin
from .discovery import DiscoveryMixin, split_api_path
from .execws import PROTOCOLS, ExecMixin, PodExec, handle_exec
from .faults import Fault, FaultsMixin
from .latency import LatencyModel
from .lists import ListsMixin
from .request import RECORD_KEY, RequestRecord, Target
from .resources import CRD_GROUP, ResourceType, builtin_types, type_from_crd
from .status import NOT_FOUND_PAGE, ApiError
from .store import Entry, Event, ResKey, Store, dumps, now
from .watch import WatchMixin
from .workloads import BackendRule, PodBackend, Workloads

if TYPE_CHECKING:
    from .seed import SeedInfo

__all__ = ["ApiError", "ApiServer", "DenyRule", "Fault", "RequestRecord", "ServerBug", "now"]

# A client that went away while a handler wrote its answer: not the server's bug.
CLIENT_GONE = (ConnectionResetError, BrokenPipeError)


class ServerBug(AssertionError):
    """Raised by ApiServer.stop(): the server had bugs (unexpected exceptions in its request
    handlers or controllers) while it ran, each with its traceback."""

    def __init__(self, bugs: list[str]) -> None:
        self.bugs = bugs
        super().__init__(f"the loopback API server had {len(bugs)} bug(s) while it ran (unexpected exceptions; "
                         "in a request handler one became an HTTP 500, which a client may have retried):\n\n"
                         + "\n".join(bugs))


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when it is installed (and not turned off with
    KUBEAPI_LOOP=asyncio): its transports and TLS are in C, so relaying an exec stream
    costs a fraction of the CPU that asyncio's take, CPU the database pod's programs share
    with the server on a small machine."""
    if os.environ.get("KUBEAPI_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class ApiServer(AuthMixin, FaultsMixin, DiscoveryMixin, CrudMixin, ListsMixin, WatchMixin, ExecMixin):
    """A loopback Kubernetes API server. See the package docstring for the public API."""

    def __init__(self) -> None:
        self.store = Store()
        self.types: dict[ResKey, ResourceType] = {}
        for t in builtin_types():
            self.types[t.key] = t
        self.users: dict[str, User] = {"admin-token": User("admin", ["system:masters", "system:authenticated"])}
        self.deny_rules: list[DenyRule] = []
        self.faults: list[Fault] = []
        # None: answer at the loopback server's own speed (the tests); a LatencyModel: as slowly
        # as a real API server, with APF's 429 under overload (the benchmarks; latency.py)
        self.latency: LatencyModel | None = None
        self.requests: list[RequestRecord] = []
        self.pod_exec: dict[tuple[str, str], PodExec] = {}
        self.exec_processes: set[int] = set()  # process groups of running exec commands
        self.exec_stdin_hang_timeout = 3.0
        # exec subprotocols served, preferred first; ("v4.channel.k8s.io",) acts as a
        # cluster before Kubernetes 1.30, which has no v5 (no end-of-stdin frame)
        self.exec_protocols: tuple[str, ...] = PROTOCOLS
        self.exec_no_protocol = False  # upgrade exec without choosing a subprotocol
        self.exec_protocol_errors: list[str] = []  # websocket protocol errors of exec clients
        self.namespaces_linger = False  # True: deleted namespaces stay Terminating ("stuck")
        # the lag of a real cluster, in seconds (see the package docstring); 0 makes a step immediate
        self.pod_schedule_delay = 0.1  # Pending and unscheduled -> bound to the node (ContainerCreating)
        self.pod_start_delay = 0.1  # ContainerCreating -> Running (containers started, not ready)
        self.pod_ready_delay = 0.2  # Running -> Ready (and not before a pod backend's start returned)
        self.crd_establish_delay = 0.2  # a CRD created through HTTP: NamesAccepted -> Established (served)
        self.node_name = "loopback-node-1"
        # an ephemeral container (kubectl debug) waits for its image and starts: slower than a pod's
        self.ephemeral_start_delay = 1.0
        # image -> programs it lacks: exec into its containers cannot run them (containers.py)
        self.image_missing: dict[str, set[str]] = {}
        self._local_dir: str | None = None  # local volumes and container roots (containers.py)
        self.workloads = Workloads(self)
        self._cluster_ips = 0
        self.url = ""
        self.port = 0
        self.https_url = ""
        self.https_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._watchers: set[tuple[ResKey, asyncio.Queue[Event | None]]] = set()
        self._req_lock = threading.Lock()
        self.bugs: list[str] = []  # tracebacks of unexpected exceptions; stop() raises ServerBug
        self.seed_info: SeedInfo | None = None  # what seed_runai seeded, for the runai_server fixture
        self._bugs_lock = threading.Lock()
        self.store.listeners.append(self._on_event)
        self.store.listeners.append(self.workloads.on_store_event)
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.seed({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> ApiServer:
        if self._thread is not None:
            return self
        self.stopping = False
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = _new_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as e:  # pragma: no cover
                errors.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="kubeapi", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{self.port}"
        # kubectl and helm (client-go) send credentials only over TLS: serve HTTPS on a second port
        import ssl

        cert, key = _tls_files()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        tsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tsock.bind(("127.0.0.1", 0))
        self.https_port = tsock.getsockname()[1]
        await web.SockSite(self._runner, tsock, ssl_context=ctx).start()
        self.https_url = f"https://127.0.0.1:{self.https_port}"

    async def _shutdown(self) -> None:
        await self.workloads.cancel_tasks()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        """Stop serving, then raise ServerBug if the server had bugs while it ran (see record_bug)."""
        self._stop()
        with self._bugs_lock:
            bugs, self.bugs = self.bugs, []
        if bugs:
            raise ServerBug(bugs)

    def record_bug(self, where: str, exc: BaseException) -> None:
        """Keep an unexpected exception of the server (not an ApiError: a Status it meant to answer)
        with its traceback: stop() raises it, so the test fails instead of a client's retries hiding
        the HTTP 500 it became."""
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        print(f"kubeapi: bug in {where}:\n{tb}", file=sys.stderr, end="")
        with self._bugs_lock:
            self.bugs.append(f"-- {where}\n{tb}")

    def _stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop = self._loop
        self.workloads.stopping = True
        # commands still running in "pods" (they outlive their clients) die first, so their
        # exec handlers end while the loop still runs; as the server is going away, they drop
        # their connections without an exit status (execws)
        self.stopping = True
        for pid in list(self.exec_processes):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2
        while self.exec_processes and time.monotonic() < deadline:
            time.sleep(0.01)
        for _, q in list(self._watchers):
            loop.call_soon_threadsafe(q.put_nowait, None)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None
        for pid in list(self.exec_processes):  # started while stopping
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.exec_processes.clear()
        self.workloads.shutdown()
        if self._local_dir is not None:
            import shutil

            shutil.rmtree(self._local_dir, ignore_errors=True)
            self._local_dir = None

    def local_dir(self) -> str:
        """The directory of local volumes (`volumes/`) and container roots (`roots/`), made on first
        use and removed at stop()."""
        if self._local_dir is None:
            import tempfile

            self._local_dir = os.path.realpath(tempfile.mkdtemp(prefix="kubeapi-local-"))
            os.makedirs(os.path.join(self._local_dir, "volumes"))
            os.makedirs(os.path.join(self._local_dir, "roots"))
        return self._local_dir

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the server's loop from another thread."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    # ------------------------------------------------------------------ test-facing helpers
    def write_kubeconfig(self, path: str | Path, *, context: str = "loopback", token: str = "admin-token",
                         namespace: str | None = None, tls: bool = True) -> Path:
        """A kubeconfig with one cluster, user and context. The server is `https_url` (with its CA) by
        default, because kubectl and helm never send a token over plain HTTP; tls=False uses `url`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        ctx: dict[str, Any] = {"cluster": context, "user": f"{context}-user"}
        if namespace:
            ctx["namespace"] = namespace
        cluster: dict[str, Any] = {"server": self.url}
        if tls:
            cluster = {"server": self.https_url,
                       "certificate-authority-data": base64.b64encode(Path(_tls_files()[0]).read_bytes()).decode()}
        cfg = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": context, "cluster": cluster}],
            "users": [{"name": f"{context}-user", "user": {"token": token}}],
            "contexts": [{"name": context, "context": ctx}],
            "current-context": context,
        }
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    def clear_requests(self) -> None:
        with self._req_lock:
            self.requests.clear()

    def add_pod_backend(self, namespace: str | None, name_regex: str,
                        start: Callable[[dict[str, Any]], PodBackend], *,
                        starting_env: dict[str, str] | None = None) -> BackendRule:
        """Put a real process behind the pods named `name_regex` (fullmatch) in `namespace` (None: any).
        `start(pod)` runs in a worker thread when such a pod turns Running; the pod is Ready only once it
        returned. The backend's env/cwd then apply to exec into that pod; its stop() is called when the pod
        is deleted (however) and at server stop. `starting_env`: exec env while start() runs.
        `start.close()`, if it has one, is called at server stop."""
        rule = BackendRule(namespace, name_regex, start, dict(starting_env) if starting_env is not None else None)
        with self.store.lock:
            self.workloads.rules.append(rule)
        return rule

    def add_pod_runner(self, namespace: str | None, name_regex: str,
                       run: Callable[[dict[str, Any], float | None], tuple[int, bytes]]) -> None:
        """Run the container of a Job's pod (batch.py): when a matching pod is Ready,
        `run(pod, timeout)` -> (exit code, log) decides how it ends."""
        from .batch import RunnerRule

        self.workloads.jobs.runners.append(RunnerRule(namespace, name_regex, run))

    def _pod_log(self, t: Target, q1: dict[str, str]) -> web.Response:
        with self.store.lock:
            e = self.store.get(t.rt.key, t.namespace or "", t.name or "")
            if e is None:
                raise ApiError(404, f'pods "{t.name}" not found', reason="NotFound",
                               details={"name": t.name, "kind": "pods"})
            data = self.workloads.jobs.log_of(t.namespace or "", e.obj, q1)
        return web.Response(status=200, body=data, content_type="text/plain")

    def pod_backend(self, namespace: str, pod: str) -> PodBackend | None:
        """The started backend of the pod that exists now under that name, if any."""
        with self.store.lock:
            b = self.workloads.backends.get((namespace, pod))
            return b[1] if b is not None else None

    def wait_for(self, api_version: str, kind: str, name: str, namespace: str | None = None, *,
                 until: Callable[[dict[str, Any] | None], bool], timeout: float = 30,
                 what: str = "") -> dict[str, Any] | None:
        """Poll the store until `until(obj or None)` holds; the object. AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                obj = self.get(api_version, kind, name, namespace)
            except KeyError:
                obj = None
            if until(obj):
                return obj
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {kind} {namespace or ''}/{name} "
                                     f"{what}: last state {json.dumps(obj, default=str)[:2000]}")
            time.sleep(0.02)

    def wait_pod_ready(self, namespace: str, name: str, timeout: float = 30) -> dict[str, Any]:
        def ready(p: dict[str, Any] | None) -> bool:
            return p is not None and any(c.get("type") == "Ready" and c.get("status") == "True"
                                         for c in (p.get("status") or {}).get("conditions") or [])

        obj = self.wait_for("v1", "Pod", name, namespace, until=ready, timeout=timeout, what="to be Ready")
        assert obj is not None
        return obj

    def expire_continue_tokens(self) -> None:
        """Compact history: outstanding continue tokens and watch resourceVersions answer 410 Expired."""
        with self.store.lock:
            self.store.compact()

    def install_crds(self, crds: Iterable[str | Path | dict[str, Any]] | str | Path | dict[str, Any]) -> list[dict[str, Any]]:
        if isinstance(crds, (str, Path, dict)):
            crds = [crds]
        out = []
        for c in crds:
            docs: list[dict[str, Any]]
            if isinstance(c, dict):
                docs = [c]
            else:
                docs = [d for d in yaml.safe_load_all(Path(c).read_text()) if d]
            for d in docs:
                with self.store.lock:
                    existing = self.store.get((CRD_GROUP, "customresourcedefinitions"), "", d["metadata"]["name"])
                    if existing is not None:
                        out.append(existing.copy_obj())
                        continue
                    _code, entry = self._create(self.types[(CRD_GROUP, "customresourcedefinitions")], "v1", None,
                                               copy.deepcopy(d), dry_run=False, field_manager="kubectl-create")
                    out.append(entry.copy_obj())
        return out

    def seed(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store directly, without auth, validation or the request log."""
        with self.store.lock:
            rt, version = self._type_for_object(obj)
            o = copy.deepcopy(obj)
            md = o.setdefault("metadata", {})
            ns = md.get("namespace")
            if rt.namespaced:
                if not ns:
                    ns = md["namespace"] = "default"
                if self.store.get(("", "namespaces"), "", ns) is None:
                    raise ValueError(f'namespace "{ns}" does not exist')
            else:
                md.pop("namespace", None)
            o["apiVersion"] = rt.api_version()
            o["kind"] = rt.kind
            self._defaults(rt, o, creating=True)
            rv = self.store.next_rv()
            md.setdefault("uid", str(uuid.uuid4()))
            md.setdefault("creationTimestamp", now())
            md["resourceVersion"] = str(rv)
            if rt.has_generation:
                md.setdefault("generation", 1)
            existing = self.store.get(rt.key, ns or "", md["name"])
            e = self.store.put(rt.key, o, rv, "MODIFIED" if existing else "ADDED")
            if rt.key == (CRD_GROUP, "customresourcedefinitions"):
                self._register_crd(o)
            return e.copy_obj(rt.api_version(version))

    def seed_many(self, objs: Iterable[dict[str, Any]]) -> int:
        n = 0
        for o in objs:
            self.seed(o)
            n += 1
        return n

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        with self.store.lock:
            rt, version = self._type_for(api_version, kind)
            e = self.store.get(rt.key, namespace or "" if rt.namespaced else "", name)
            return e.copy_obj(rt.api_version(version)) if e else None

    def list(self, api_version: str, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.store.lock:
            rt, version = self._type_for(api_version, kind)
            entries = self.store.sorted_entries(rt.key)
            if namespace is not None and rt.namespaced:
                lo, hi = Store.range_for_namespace(entries, namespace)
                entries = entries[lo:hi]
            return [e.copy_obj(rt.api_version(version)) for e in entries]

    def delete_object(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        with self.store.lock:
            rt, _ = self._type_for(api_version, kind)
            try:
                self._delete(rt, namespace if rt.namespaced else None, name, {}, dry_run=False)
                return True
            except ApiError as e:
                if e.code == 404:
                    return False
                raise

    def finalize_namespace(self, name: str) -> None:
        """Let a lingering Terminating namespace go."""
        with self.store.lock:
            self._finalize_namespace(name, force=True)

    # ------------------------------------------------------------------ type lookup
    def _type_for(self, api_version: str, kind: str) -> tuple[ResourceType, str]:
        group, _, version = api_version.rpartition("/")
        for t in self.types.values():
            if t.group == group and t.kind == kind and version in t.versions:
                return t, version
        raise KeyError(f"no resource type for {api_version} {kind}")

    def _type_for_object(self, obj: dict[str, Any]) -> tuple[ResourceType, str]:
        return self._type_for(obj["apiVersion"], obj["kind"])

    def _register_crd(self, crd: dict[str, Any]) -> None:
        rt = type_from_crd(crd)
        for _path, rule in val.collect_rules(rt.schemas.get(rt.storage_version, {})):
            val.check_rule_supported(rule["rule"])
        self.types[rt.key] = rt

    def _unregister_crd(self, crd: dict[str, Any]) -> None:
        key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
        t = self.types.get(key)
        if t is not None and t.is_custom:
            del self.types[key]

    # ------------------------------------------------------------------ HTTP entry point
    # (`list` is the method above in this class body: annotations say builtins.list)
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = {k: request.query.getall(k) for k in request.query}
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        body = None if is_ws or request.method == "GET" else await request.read()
        user = self._authenticate(request)
        rec = RequestRecord(request.method, request.path, query, user.name if user else None, None,
                            request.headers.get("Content-Type"), body)
        with self._req_lock:
            self.requests.append(rec)
        request[RECORD_KEY] = rec
        try:
            model = self.latency
            if model is None or is_ws or _long_running(request, query):
                resp = await self._handle_inner(request, user, body, query)
            else:
                resp = await model.serve(request.method,
                                         lambda: self._handle_inner(request, user, body, query))
        except ApiError as e:
            resp = e.response()
        except Exception as e:  # a bug in the server: answer 500, keep serving, fail at stop()
            if not isinstance(e, CLIENT_GONE):
                self.record_bug(f"{request.method} {request.path_qs}", e)
            resp = ApiError(500, f"Internal error occurred: {type(e).__name__}: {e}").response()
        if rec.status is None:
            rec.status = resp.status
        return resp

    async def _handle_inner(self, request: web.Request, user: User | None, body: bytes | None,
                            query: dict[str, builtins.list[str]]) -> web.StreamResponse:
        await self._apply_faults(request)
        path = request.path
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if user is None:
            raise ApiError(401, "Unauthorized")
        resp = self._discovery(path)
        if resp is not None:
            return resp
        group, version, rest = split_api_path(path)
        target = self._parse_target(group, version, rest, query)
        return await self._dispatch(request, target, user, body, query)

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=dumps(obj), content_type="application/json")

    def _parse_target(self, group: str, version: str, rest: builtins.list[str],
                      query: dict[str, builtins.list[str]]) -> Target:
        watch_path = False
        if rest and rest[0] == "watch":
            watch_path, rest = True, rest[1:]
        ns: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces" and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            ns, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise NOT_FOUND_PAGE
        with self.store.lock:
            rt = self.types.get((group, rest[0]))
        if rt is None or version not in rt.versions:
            raise NOT_FOUND_PAGE
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if rt.namespaced and ns is None and name is not None:
            raise NOT_FOUND_PAGE
        if not rt.namespaced and ns is not None:
            raise NOT_FOUND_PAGE
        if sub is not None and sub not in rt.subresources:
            raise NOT_FOUND_PAGE
        return Target(group, version, rt, ns, name, sub, watch_path)

    # ------------------------------------------------------------------ dispatch
    async def _dispatch(self, request: web.Request, t: Target, user: User, body: bytes | None,
                        query: dict[str, builtins.list[str]]) -> web.StreamResponse:
        method = request.method
        q1 = {k: v[-1] for k, v in query.items()}
        dry_run = "All" in query.get("dryRun", [])
        if query.get("dryRun") and not dry_run:
            raise ApiError(400, f'Invalid dryRun value: "{query["dryRun"][0]}"')
        if t.sub == "exec":
            if method not in ("GET", "POST"):
                raise ApiError(405, 'the server does not allow this method on the requested resource')
            self._authorize(user, "create", t)
            return await handle_exec(self, request, t, query)
        if t.sub == "log":
            if method != "GET":
                raise ApiError(405, 'the server does not allow this method on the requested resource')
            self._authorize(user, "get", t)
            return self._pod_log(t, q1)
        if t.sub == "scale":
            return self._scale(request, t, user, body, q1, dry_run)
        if t.rt.plural == "selfsubjectaccessreviews":
            if method != "POST" or t.name:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            return self._ssar(user, t, body)
        is_watch = t.watch_path or q1.get("watch") in ("true", "1")
        if method == "GET":
            if t.name is None:
                self._authorize(user, "watch" if is_watch else "list", t)
                if is_watch:
                    return await self._watch(request, t, q1)
                return self._list_response(request, t, q1)
            if is_watch:
                self._authorize(user, "watch", t)
                q1 = {**q1, "fieldSelector": f"metadata.name={t.name}"}
                return await self._watch(request, t, q1)
            self._authorize(user, "get", t)
            return self._get_response(t)
        if method in ("POST", "DELETE") and t.rt.namespaced and t.namespace is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if method == "POST":
            if t.name is not None:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            self._authorize(user, "create", t)
            obj = self._decode(body, request.content_type, t)
            manager = q1.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0]
            with self.store.lock:
                self._check_namespace_for_create(t, obj)
                code, entry = self._create(t.rt, t.version, t.namespace, obj, dry_run=dry_run,
                                           field_manager=manager, validation=q1.get("fieldValidation"),
                                           via_api=True)
                if not dry_run:
                    self.workloads.after_api_write(t.rt.plural, entry, True, t.sub)
            return self._obj_response(entry, t, code)
        if method == "PUT":
            if t.name is None:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            self._authorize(user, "update", t)
            obj = self._decode(body, request.content_type, t)
            with self.store.lock:
                code, entry = self._update(t, obj, dry_run=dry_run, validation=q1.get("fieldValidation"))
                if not dry_run:
                    self.workloads.after_api_write(t.rt.plural, entry, False, t.sub)
            return self._obj_response(entry, t, code)
        if method == "PATCH":
            if t.name is None:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            self._authorize(user, "patch", t)
            ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
            with self.store.lock:
                code, entry = self._patch(t, ctype, body or b"", dry_run=dry_run, q=q1)
                if not dry_run:
                    self.workloads.after_api_write(t.rt.plural, entry, code == 201, t.sub)
            return self._obj_response(entry, t, code)
        if method == "DELETE":
            opts: dict[str, Any] = {}
            if body:
                try:
                    if request.content_type == "application/vnd.kubernetes.protobuf":  # client-go typed clients
                        from .protobuf import decode

                        opts = decode(body)
                    else:
                        opts = json.loads(body)
                except ValueError as e:
                    raise ApiError(400, f"invalid DeleteOptions: {e}") from e
            if "All" in (opts.get("dryRun") or []):
                dry_run = True
            if q1.get("propagationPolicy"):
                opts["propagationPolicy"] = q1["propagationPolicy"]
            if t.name is None:
                if "deletecollection" not in t.rt.verbs:
                    raise ApiError(405, "the server does not allow this method on the requested resource")
                self._authorize(user, "deletecollection", t)
                return self._delete_collection(t, q1, opts, dry_run)
            if t.sub:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            self._authorize(user, "delete", t)
            with self.store.lock:
                result = self._delete(t.rt, t.namespace, t.name, opts, dry_run=dry_run)
            if isinstance(result, Entry):
                return web.Response(status=200, body=result.bytes_for(t.rt.api_version(t.version)),
                                    content_type="application/json")
            return self._json(result)
        raise ApiError(405, "the server does not allow this method on the requested resource")


def _long_running(request: web.Request, query: dict[str, builtins.list[str]]) -> bool:
    """Watches and the health endpoints: not subject to the latency model (a real server's
    APF does not hold a seat for a watch once it is established)."""
    path = request.path
    return (path in ("/healthz", "/livez", "/readyz") or "/watch/" in path
            or any(v in ("true", "1") for v in query.get("watch", [])))


_TLS: tuple[str, str] | None = None
_TLS_LOCK = threading.Lock()


def _tls_files() -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1/localhost (made once per process with openssl)."""
    global _TLS
    with _TLS_LOCK:
        if _TLS is None:
            import atexit
            import shutil
            import subprocess
            import tempfile

            d = tempfile.mkdtemp(prefix="kubeapi-tls-")
            atexit.register(shutil.rmtree, d, True)
            cert, key = f"{d}/tls.crt", f"{d}/tls.key"
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", cert, "-days", "3650", "-subj", "/CN=kube-apiserver",
                 "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,digitalSignature,keyCertSign"],
                check=True, capture_output=True)
            _TLS = (cert, key)
        return _TLS
