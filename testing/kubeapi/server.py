"""A strict Kubernetes API server on loopback, for tests: as strict, and as slow, as a cluster.

Runs an aiohttp application in its own thread and event loop. State lives in a Store; every
HTTP request is recorded in `requests`. Plain HTTP on `url`, TLS on `https_url` (kubectl and
helm send a token only over TLS; `write_kubeconfig` writes the CA).

Using it
    srv = ApiServer(); srv.install_crds(paths_or_dicts); srv.start()   # or `with ApiServer() as srv`
    srv.write_kubeconfig(path, context="loopback", token="admin-token", namespace=None, tls=True)
    srv.seed(obj) / seed_many(objs)      store directly: no HTTP, auth, validation, controllers or delays
    srv.get / list / delete_object(api_version, kind, ...)   read and delete in the store (delete cascades)
    srv.wait_for(api_version, kind, name, ns, until=fn, timeout=30); srv.wait_pod_ready(ns, pod)
    srv.stop()                           also stops exec commands still running and every pod backend

The API (what clients see)
- Authentication: bearer tokens (`add_user(token, username, groups)`; "admin-token" is admin);
  no or an unknown token answers 401. Authorization: everything is allowed except `deny(verb=,
  resource=, group=, namespace=, user=)` rules, which answer 403 with the apiserver's message and
  are reflected in SelfSubjectAccessReview.
- Discovery: /version, /api, /apis (with or without a trailing slash), /apis/<group>,
  /apis/<group>/<version>, /api/v1, and a minimal OpenAPI v3 (/openapi/v3 and per group-version);
  aggregated discovery is not served (clients fall back to the above). Built-in types: see
  resources.builtin_types(); others come from CRDs.
- CRUD as the apiserver: create 201 (uid, resourceVersion, creationTimestamp, generation,
  managedFields), 409 AlreadyExists / Conflict on a stale resourceVersion, 404 with the real
  messages, 422 Invalid with causes, PUT, PATCH (json, merge, strategic merge for built-ins,
  server-side apply which also creates), DELETE with preconditions and propagationPolicy,
  deletecollection, dryRun=All, fieldValidation Strict/Warn, status and finalize subresources
  (a write of the main resource keeps `status`), scale as an autoscaling/v1 Scale (kubectl scale). Request bodies as JSON, YAML, or protobuf for
  Secrets, ConfigMaps and DeleteOptions (client-go typed clients: helm's release storage).
- Defaults the apiserver fills: Secret stringData->data and type, namespace name label and
  phase, Pod status Pending, PVC/PV status Pending, StorageClass reclaim/binding mode,
  StatefulSet replicas, revisionHistoryLimit, podManagementPolicy OrderedReady, updateStrategy
  RollingUpdate (partition 0: kubectl reports "partitioned roll out complete"),
  persistentVolumeClaimRetentionPolicy Retain; a Service created or updated through HTTP gets
  type ClusterIP and a cluster IP (kept on update), ipFamilies, port protocol and targetPort.
- Validation: object names, labels, annotations and sizes; the built-in checks of
  validation.validate_builtin (immutable fields, selectors matching templates, role refs, ...);
  CRD structural schemas with pruning of unknown fields, defaults and the CEL rules used.
- Lists: labelSelector and fieldSelector (per-type supported fields), limit/continue with
  consistent snapshots, 410 Expired after `expire_continue_tokens()`, Table output
  (Accept: as=Table). Watches: from a resourceVersion or from now, with 410 on a compacted one;
  streaming lists (sendInitialEvents=true, which needs resourceVersionMatch=NotOlderThan, else
  422): the current objects as ADDED, then a BOOKMARK annotated k8s.io/initial-events-end, as a
  1.32 apiserver does (client-go 0.35, e.g. helm 4 --wait, lists this way).
- Namespaces: deletion sets Terminating, deletes the content, then the namespace goes (at once, or
  never while `namespaces_linger` is True until `finalize_namespace(name)`); creating in a
  Terminating namespace answers 403. Finalizers other than the built-in ones keep an object
  Terminating. Deleting an owner deletes its dependents (ownerReferences), unless Orphan.
- Faults: `inject_fault(method=, path_regex=, status=, times=, retry_after=, delay=, message=)`
  answers 429/500/503/504 (with Retry-After) or just delays; `clear_faults()`.
- Pod exec over websocket (v5/v4 channel protocols, `exec_protocols` to serve v4 only): the
  command runs locally with the container's resolved env (env, envFrom, secretKeyRef,
  configMapKeyRef, fieldRef); `set_pod_exec(ns, pod, env=, cwd=)` adds env/cwd (it wins over a pod
  backend's). See execws.py for the kubelet behaviours copied (stdin hang, exit codes, the
  refusals below); `exec_stdin_hang_timeout`.

What a cluster does after the API server stored an object (workloads.py)
Writes through the HTTP API drive controllers; `seed()` never does. The lag is configurable
(seconds; 0 makes a step immediate); the defaults are small but not zero:
    srv.pod_schedule_delay = 0.1     Pending, not scheduled -> on the node (ContainerCreating)
    srv.pod_start_delay    = 0.1     ContainerCreating -> Running (containers running, not ready)
    srv.pod_ready_delay    = 0.2     Running -> Ready (not before a pod backend's start returned)
    srv.crd_establish_delay = 0.2    CRD created through HTTP: NamesAccepted -> Established
    srv.node_name = "loopback-node-1"
- Kubelet: a pod created through HTTP or by the StatefulSet controller is first Pending with no
  nodeName (PodScheduled=False, reason Unschedulable, while its claims cannot bind); after
  `pod_schedule_delay` it is bound to `node_name` (PodScheduled True, containers waiting
  ContainerCreating, Ready/ContainersReady False ContainersNotReady); after `pod_start_delay`
  Running (podIP, containers running and started, ready false); after `pod_ready_delay` (and once a
  pod backend started) Ready (Ready/ContainersReady True, containers ready). A backend whose start
  fails makes the container crash: waiting CrashLoopBackOff, restartCount up, a Warning BackOff
  event with the error, retried with a growing back-off. Exec is refused as a kubelet does: no
  nodeName -> 400 "pod X does not have a host assigned"; container not running (creating, crashed)
  -> 400 `unable to upgrade connection: container not found ("<name>")`; Succeeded/Failed -> 400.
  Deleting a pod removes it at once (no grace period).
- Events (core/v1 Event, involvedObject = the object, counted up when repeated): Scheduled and
  FailedScheduling (default-scheduler), Pulled/Created/Started/BackOff (kubelet, fieldPath
  spec.containers{name}), SuccessfulCreate/SuccessfulDelete (statefulset-controller),
  WaitForFirstConsumer and ProvisioningSucceeded on claims.
- Volumes: at scheduling, every claim of the pod must exist and bind: a claim naming a volume binds
  to it; otherwise its StorageClass (or the default one, assigned retroactively) provisions a
  PersistentVolume `pvc-<claim uid>` (csi driver = the class's provisioner, its reclaim policy)
  and both are Bound. No class at all, a missing claim, or a VolumeSnapshot data source not
  readyToUse -> the pod stays Pending with a FailedScheduling event saying why. A deleted claim
  releases its volume: reclaim policy Delete deletes the PersistentVolume, Retain makes it
  Released. A fresh server has no StorageClass: seed one (seed_runai seeds gp3-csi).
- StatefulSet controller, for StatefulSets created or updated through HTTP (a seeded one is left
  alone until then; its seeded pods are adopted): pods `<sts>-0 .. <sts>-(replicas-1)` from the
  template (labels plus statefulset.kubernetes.io/pod-name, apps.kubernetes.io/pod-index,
  controller-revision-hash; ownerReference to the StatefulSet with controller true; hostname,
  subdomain = serviceName), a claim `<template>-<sts>-<i>` per volumeClaimTemplate when absent
  (labels = the selector's; owned by the StatefulSet only with whenDeleted: Delete).
  OrderedReady creates each pod once the ones before are Ready, Parallel all at once; scale down
  removes the highest ordinals first; a deleted pod is re-created; a template change rolls the
  pods (highest ordinal first, each once all are Ready; partition and OnDelete honoured; pods
  without a revision label count as current). Status: replicas, readyReplicas,
  availableReplicas, currentReplicas, updatedReplicas, currentRevision, updateRevision,
  observedGeneration (kubectl rollout status works). Deleting the StatefulSet deletes its pods
  (garbage collection), claims stay; deleting the namespace deletes everything.
- Pod backends: `add_pod_backend(namespace, name_regex, start, starting_env=None)`: when a matching
  pod (namespace None: any) turns Running, `start(pod) -> PodBackend` runs in a worker thread; the
  pod turns Ready only after it returned; its `env`/`cwd` then apply to exec into the pod
  (`starting_env` while it starts); its `stop()` runs when the pod is deleted in any way (pod
  delete, StatefulSet or namespace deletion, scale down) and at `stop()`. `pod_backend(ns, pod)`
  is the current one. `workloads.SimpleBackend(env, cwd, on_stop)` is a ready-made PodBackend;
  pgbackend.add_postgres_backend(srv) puts a real PostgreSQL behind the database pod.
- CRDs created through HTTP (helm's crds/ folder, kubectl apply) get NamesAccepted True and
  Established False (reason Installing) at once, Established True after `crd_establish_delay`;
  until then their group/version/resources are absent from discovery and OpenAPI, and requests
  for their resources answer 404 as for an unknown type. `install_crds` and `seed` are instant.
  Deleting a CRD deletes its objects and its API at once.
- Errors of the controllers are kept in `srv.workloads.errors` (tracebacks).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import datetime as _dt
import json
import os
import random
import re
import signal
import socket
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import validation as val
from .patch import PatchError, apply_merge, json_patch, merge_patch, strategic_merge
from .resources import CRD_GROUP, ResourceType, builtin_types, sort_versions, type_from_crd
from .selectors import SelectorError, parse_field_selector, parse_label_selector
from .store import Entry, Event, ResKey, Store, dumps
from .workloads import BackendRule, PodBackend, Workloads

SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.3", "gitCommit": "32cc146f75aad04beaaa245a7157eb35063a9f99",
    "gitTreeState": "clean", "buildDate": "2025-03-11T19:52:21Z", "goVersion": "go1.23.6",
    "compiler": "gc", "platform": "linux/amd64",
}
REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
           406: "NotAcceptable", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
           429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
DEFAULT_FAULT_MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected fault",
    503: "the server is currently unable to handle the request",
    504: "Timeout: request did not complete within requested timeout - context deadline exceeded",
}
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml",
               "application/apply-patch+cbor")
FORGIVEN_FINALIZERS = {"kubernetes.io/pvc-protection", "kubernetes.io/pv-protection", "foregroundDeletion",
                       "orphan", "kubernetes", "customresourcecleanup.apiextensions.k8s.io"}


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict[str, list[str]]
    user: str | None
    status: int | None
    content_type: str | None
    body: bytes | None


@dataclass
class Fault:
    method: str | None
    path_regex: str
    status: int | None
    times: int | None
    retry_after: int | float | None = None
    delay: float = 0.0
    message: str | None = None
    hits: int = 0


@dataclass
class DenyRule:
    verb: str
    resource: str
    group: str = ""
    namespace: str | None = None
    user: str | None = None

    def matches(self, user: str, verb: str, resource: str, group: str, namespace: str | None) -> bool:
        if self.user is not None and self.user != user:
            return False
        if self.verb not in ("*", verb):
            return False
        if self.group not in ("*", group):
            return False
        if self.resource not in ("*", resource) and not (
            "/" not in self.resource and resource.split("/")[0] == self.resource and self.resource + "/*" == resource
        ):
            return False
        # namespace None: everywhere; "": only requests at the cluster scope (all namespaces, cluster objects)
        return self.namespace is None or (self.namespace or None) == (namespace or None)


@dataclass
class User:
    name: str
    groups: list[str] = field(default_factory=list)


@dataclass
class PodExec:
    env: dict[str, str] | None = None
    cwd: str | None = None


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str | None = "", details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = REASONS.get(code, "") if reason == "" else reason
        self.details = details
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)

    def response(self) -> web.Response:
        return web.Response(status=self.code, body=dumps(self.body()), content_type="application/json",
                            headers=self.headers)


def status_body(code: int, reason: str | None, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    b: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                         "message": message}
    if reason:
        b["reason"] = reason
    if details is not None:
        b["details"] = details
    b["code"] = code
    return b


def _details(rt: ResourceType, name: str | None, **kw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.plural
    d.update(kw)
    return d


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.qualified()} "{name}" not found', details=_details(rt, name))


def invalid_error(rt: ResourceType, name: str, causes: list[val.Cause]) -> ApiError:
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    if len(causes) == 1:
        summary = causes[0].text()
    else:
        summary = "[" + ", ".join(c.text() for c in causes) + "]"
    return ApiError(422, f'{kind} "{name}" is invalid: {summary}',
                    details={"name": name, **({"group": rt.group} if rt.group else {}), "kind": rt.kind,
                             "causes": [c.as_dict() for c in causes]})


def conflict(rt: ResourceType, name: str, why: str) -> ApiError:
    return ApiError(409, f'Operation cannot be fulfilled on {rt.qualified()} "{name}": {why}',
                    details=_details(rt, name))


def namespace_type_error(ns: str) -> ApiError:
    return ApiError(404, f'namespaces "{ns}" not found', details={"name": ns, "kind": "namespaces"})


RECORD_KEY: Any = getattr(web, "RequestKey", lambda name, t: name)("kubeapi_record", RequestRecord)
NOT_FOUND_PAGE = ApiError(404, "the server could not find the requested resource", details={})


@dataclass
class Target:
    group: str
    version: str
    rt: ResourceType
    namespace: str | None
    name: str | None
    sub: str | None
    watch_path: bool = False


class ApiServer:
    """A loopback Kubernetes API server. See the package docstring for the public API."""

    def __init__(self) -> None:
        self.store = Store()
        self.types: dict[ResKey, ResourceType] = {}
        for t in builtin_types():
            self.types[t.key] = t
        self.users: dict[str, User] = {"admin-token": User("admin", ["system:masters", "system:authenticated"])}
        self.deny_rules: list[DenyRule] = []
        self.faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self.pod_exec: dict[tuple[str, str], PodExec] = {}
        self.exec_processes: set[int] = set()  # process groups of running exec commands
        self.exec_stdin_hang_timeout = 3.0
        # exec subprotocols served, preferred first; ("v4.channel.k8s.io",) acts as a
        # cluster before Kubernetes 1.30, which has no v5 (no end-of-stdin frame)
        self.exec_protocols: tuple[str, ...] = ("v5.channel.k8s.io", "v4.channel.k8s.io")
        self.namespaces_linger = False  # True: deleted namespaces stay Terminating ("stuck")
        # the lag of a real cluster, in seconds (see the module docstring); 0 makes a step immediate
        self.pod_schedule_delay = 0.1  # Pending and unscheduled -> bound to the node (ContainerCreating)
        self.pod_start_delay = 0.1  # ContainerCreating -> Running (containers started, not ready)
        self.pod_ready_delay = 0.2  # Running -> Ready (and not before a pod backend's start returned)
        self.crd_establish_delay = 0.2  # a CRD created through HTTP: NamesAccepted -> Established (served)
        self.node_name = "loopback-node-1"
        self.workloads = Workloads(self)
        self._cluster_ips = 0
        self.url = ""
        self.port = 0
        self.https_url = ""
        self.https_port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._watchers: set[tuple[ResKey, asyncio.Queue[Event]]] = set()
        self._req_lock = threading.Lock()
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
            loop = asyncio.new_event_loop()
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
            loop.call_soon_threadsafe(q.put_nowait, None)  # type: ignore[arg-type]
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop = None
        for pid in list(self.exec_processes):  # started while stopping
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        self.exec_processes.clear()
        self.workloads.shutdown()

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

    def add_user(self, token: str, username: str, groups: Iterable[str] = ()) -> None:
        self.users[token] = User(username, [*groups, "system:authenticated"])

    def deny(self, *, verb: str, resource: str, group: str = "", namespace: str | None = None,
             user: str | None = None) -> DenyRule:
        """Forbid `verb` on `resource` ("pods/exec" for a subresource, "*" for any) in `group`.
        namespace=None: everywhere; "": only at the cluster scope; user=None: every user."""
        r = DenyRule(verb, resource, group, namespace, user)
        self.deny_rules.append(r)
        return r

    def clear_denies(self) -> None:
        self.deny_rules.clear()

    def inject_fault(self, *, method: str | None = None, path_regex: str, status: int | None, times: int | None = 1,
                     retry_after: int | float | None = None, delay: float = 0.0,
                     message: str | None = None) -> Fault:
        """Answer matching requests with a Status of `status` (None: only delay, then serve normally).
        times=None: every matching request."""
        f = Fault(method.upper() if method else None, path_regex, status, times, retry_after, delay, message)
        self.faults.append(f)
        return f

    def clear_faults(self) -> None:
        self.faults.clear()

    def clear_requests(self) -> None:
        with self._req_lock:
            self.requests.clear()

    def set_pod_exec(self, namespace: str, pod: str, *, env: dict[str, str] | None = None,
                     cwd: str | None = None) -> None:
        self.pod_exec[(namespace, pod)] = PodExec(env=dict(env or {}), cwd=cwd)

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

    def pod_backend(self, namespace: str, pod: str) -> PodBackend | None:
        """The started backend of the pod that exists now under that name, if any."""
        with self.store.lock:
            b = self.workloads.backends.get((namespace, pod))
            return b[1] if b is not None else None

    def container_env(self, pod: dict[str, Any], container: str | None = None) -> dict[str, str]:
        """A container's environment as the kubelet resolves it (env, envFrom, secretKeyRef, ...)."""
        from .execws import _container_env

        containers = (pod.get("spec") or {}).get("containers") or []
        c = next((x for x in containers if container is None or x.get("name") == container), None)
        if c is None:
            raise KeyError(f"no container {container!r} in pod {pod['metadata']['name']}")
        with self.store.lock:
            return _container_env(self, pod, c)

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
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        query = {k: request.query.getall(k) for k in request.query}
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        body = None if is_ws or request.method == "GET" else await request.read()
        token = ""
        auth = request.headers.get("Authorization", "")
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() == "bearer":  # the scheme is case-insensitive (RFC 7235), as in kube
            token = credentials.strip()
        user = self.users.get(token)
        rec = RequestRecord(request.method, request.path, query, user.name if user else None, None,
                            request.headers.get("Content-Type"), body)
        with self._req_lock:
            self.requests.append(rec)
        request[RECORD_KEY] = rec
        try:
            resp = await self._handle_inner(request, rec, user, body, query)
        except ApiError as e:
            resp = e.response()
        except Exception as e:  # a bug in the fake: answer 500 and keep serving
            import traceback

            traceback.print_exc()
            resp = ApiError(500, f"Internal error occurred: {type(e).__name__}: {e}").response()
        if rec.status is None:
            rec.status = resp.status
        return resp

    async def _handle_inner(self, request: web.Request, rec: RequestRecord, user: User | None, body: bytes | None,
                            query: dict[str, list[str]]) -> web.StreamResponse:
        for f in list(self.faults):
            if f.method and f.method != request.method:
                continue
            if not re.search(f.path_regex, request.path):
                continue
            if f.times is not None and f.hits >= f.times:
                continue
            f.hits += 1
            if f.delay:
                await asyncio.sleep(f.delay)
            if f.status is None:
                break
            headers = {}
            if f.retry_after is not None or f.status == 429:
                headers["Retry-After"] = str(int(f.retry_after) if f.retry_after is not None else 1)
            msg = f.message or DEFAULT_FAULT_MESSAGES.get(f.status, f"injected fault {f.status}")
            details = {"retryAfterSeconds": int(f.retry_after or 1)} if f.status == 429 else None
            raise ApiError(f.status, msg, details=details, headers=headers)
        path = request.path
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if user is None:
            raise ApiError(401, "Unauthorized")
        if path in ("/version", "/version/"):
            return web.json_response(SERVER_VERSION)
        if path in ("/api", "/api/"):
            return self._json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}]})
        if path in ("/apis", "/apis/"):
            return self._json(self._group_list())
        if path.startswith("/openapi/v3"):
            return self._openapi_v3(path)
        if path.startswith("/openapi/"):
            raise NOT_FOUND_PAGE
        parts = [p for p in path.split("/") if p]
        if parts[0] == "api":
            if len(parts) < 2 or parts[1] != "v1":
                raise NOT_FOUND_PAGE
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis":
            if len(parts) == 2:
                g = self._group_entry(parts[1])
                if g is None:
                    raise NOT_FOUND_PAGE
                return self._json({"kind": "APIGroup", "apiVersion": "v1", **g})
            if len(parts) < 3:
                raise NOT_FOUND_PAGE
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise NOT_FOUND_PAGE
        if not rest:
            rl = self._resource_list(group, version)
            if rl is None:
                raise NOT_FOUND_PAGE
            return self._json(rl)
        target = self._parse_target(group, version, rest, query)
        return await self._dispatch(request, target, user, body, query)

    def _json(self, obj: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=dumps(obj), content_type="application/json")

    def _parse_target(self, group: str, version: str, rest: list[str], query: dict[str, list[str]]) -> Target:
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

    # ------------------------------------------------------------------ discovery
    def _served_groups(self) -> dict[str, list[str]]:
        groups: dict[str, set[str]] = {}
        for t in self.types.values():
            if t.group:
                groups.setdefault(t.group, set()).update(t.versions)
        return {g: sort_versions(list(vs)) for g, vs in groups.items()}

    def _group_entry(self, group: str) -> dict[str, Any] | None:
        vs = self._served_groups().get(group)
        if not vs:
            return None
        versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in vs]
        return {"name": group, "versions": versions, "preferredVersion": versions[0]}

    def _group_list(self) -> dict[str, Any]:
        with self.store.lock:
            order = ["apps", "authorization.k8s.io", "rbac.authorization.k8s.io", "storage.k8s.io", CRD_GROUP]
            groups = self._served_groups()
            names = [g for g in order if g in groups] + sorted(g for g in groups if g not in order)
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group_entry(g) for g in names]}

    def _resource_list(self, group: str, version: str) -> dict[str, Any] | None:
        with self.store.lock:
            types = [t for t in self.types.values() if t.group == group and version in t.versions]
            if not types:
                return None
            resources = []
            for t in sorted(types, key=lambda t: t.plural):
                r: dict[str, Any] = {"name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
                                     "kind": t.kind, "verbs": sorted(t.verbs)}
                if t.short_names:
                    r["shortNames"] = t.short_names
                if t.categories:
                    r["categories"] = t.categories
                if not t.is_custom and t.verbs != ["create"]:
                    r["storageVersionHash"] = base64.b64encode(t.plural.encode()[:8]).decode()
                resources.append(r)
                for s in t.subresources:
                    verbs = {"status": ["get", "patch", "update"], "exec": ["create", "get"], "log": ["get"],
                             "scale": ["get", "patch", "update"], "finalize": ["update"]}[s]
                    sk = {"exec": "PodExecOptions", "log": "Pod", "scale": "Scale"}.get(s, t.kind)
                    sub = {"name": f"{t.plural}/{s}", "singularName": "", "namespaced": t.namespaced,
                           "kind": sk, "verbs": verbs}
                    if s == "scale":
                        sub.update(group="autoscaling", version="v1")
                    resources.append(sub)
            gv = f"{group}/{version}" if group else version
            return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}

    def _openapi_v3(self, path: str) -> web.Response:
        """A minimal OpenAPI v3: the index and per group-version documents with the operations and their
        query parameters (kubectl reads them to learn that the server validates fields itself)."""
        with self.store.lock:
            gvs: dict[str, list[ResourceType]] = {}
            for t in self.types.values():
                for v in t.versions:
                    gvs.setdefault(f"apis/{t.group}/{v}" if t.group else f"api/{v}", []).append(t)
            rest = path[len("/openapi/v3"):].strip("/")
            if not rest:
                return self._json({"paths": {gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash=0"} for gv in sorted(gvs)}})
            if rest not in gvs:
                raise NOT_FOUND_PAGE
            version = rest.rsplit("/", 1)[1]
            paths: dict[str, Any] = {}
            for t in gvs[rest]:
                gvk = {"group": t.group, "version": version, "kind": t.kind}
                base = f"/{rest}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"/{rest}/{t.plural}"
                write_params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                                for n in ("dryRun", "fieldManager", "fieldValidation")]

                def op(action: str, params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
                    return {"operationId": f"{action}{t.kind}", "x-kubernetes-action": action,  # noqa: B023
                            "x-kubernetes-group-version-kind": gvk, "parameters": params or [],  # noqa: B023
                            "responses": {"200": {"description": "OK"}}}

                paths[base] = {"get": op("list"), "post": op("post", write_params),
                               "delete": op("deletecollection")}
                paths[base + "/{name}"] = {"get": op("get"), "put": op("put", write_params),
                                           "patch": op("patch", [*write_params, {"name": "force", "in": "query", "schema": {"type": "boolean"}}]),
                                           "delete": op("delete")}
            return self._json({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.3"},
                               "paths": paths, "components": {"schemas": {}}})

    # ------------------------------------------------------------------ auth
    def _authorize(self, user: User, verb: str, t: Target, name: str | None = None) -> None:
        resource = t.rt.plural + (f"/{t.sub}" if t.sub else "")
        ns = t.namespace
        if t.rt.plural == "namespaces" and t.name:
            ns = t.name
        reason = self._denied(user, verb, resource, t.group, ns)
        if reason:
            scope = f'in the namespace "{ns}"' if ns else "at the cluster scope"
            nm = name if name is not None else t.name
            subject = f'{t.rt.qualified()} "{nm}"' if nm else t.rt.qualified()
            raise ApiError(403, f'{subject} is forbidden: User "{user.name}" cannot {verb} resource "{resource}" '
                                f'in API group "{t.group}" {scope}', details=_details(t.rt, nm))

    def _denied(self, user: User, verb: str, resource: str, group: str, ns: str | None) -> bool:
        return any(r.matches(user.name, verb, resource, group, ns) for r in self.deny_rules)

    # ------------------------------------------------------------------ dispatch
    async def _dispatch(self, request: web.Request, t: Target, user: User, body: bytes | None,
                        query: dict[str, list[str]]) -> web.StreamResponse:
        method = request.method
        q1 = {k: v[-1] for k, v in query.items()}
        dry_run = "All" in query.get("dryRun", [])
        if query.get("dryRun") and not dry_run:
            raise ApiError(400, f'Invalid dryRun value: "{query["dryRun"][0]}"')
        if t.sub == "exec":
            if method not in ("GET", "POST"):
                raise ApiError(405, 'the server does not allow this method on the requested resource')
            self._authorize(user, "create", t)
            from .execws import handle_exec

            return await handle_exec(self, request, t, query)
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

    def _scale(self, request: web.Request, t: Target, user: User, body: bytes | None, q1: dict[str, str],
               dry_run: bool) -> web.Response:
        """The scale subresource: an autoscaling/v1 Scale view of spec.replicas (kubectl scale)."""
        assert t.name is not None
        method = request.method
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(method)
        if verb is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        self._authorize(user, verb, t)
        with self.store.lock:
            e = self.store.get(t.rt.key, t.namespace or "", t.name)
            if e is None:
                raise not_found(t.rt, t.name)

            def view(obj: dict[str, Any]) -> dict[str, Any]:
                md = obj["metadata"]
                sel = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
                return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                        "metadata": {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                                        "creationTimestamp") if k in md},
                        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
                        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                                   "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items()))}}

            cur = view(e.obj)
            if method == "GET":
                return self._json(cur)
            if method == "PUT":
                new = self._decode(body, request.content_type, t)
            else:
                ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
                try:
                    patch = json.loads(body or b"null")
                    if ctype == "application/json-patch+json":
                        new = json_patch(cur, patch)
                    elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                        new = merge_patch(cur, patch)
                    else:
                        raise ApiError(415, f"the body of the request was in an unknown format: {ctype}")
                except (ValueError, PatchError) as err:
                    raise ApiError(400, f"error decoding patch: {err}") from err
            replicas = ((new or {}).get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise invalid_error(t.rt, t.name, [val.invalid("spec.replicas", replicas,
                                                               "must be greater than or equal to 0")])
            rv = ((new.get("metadata") or {}).get("resourceVersion")) if method == "PUT" else None
            obj = copy.deepcopy(e.obj)
            obj["spec"]["replicas"] = replicas
            if rv:
                obj["metadata"]["resourceVersion"] = rv
            _code, entry = self._update(Target(t.group, t.version, t.rt, t.namespace, t.name, None), obj,
                                        dry_run=dry_run, from_patch=True)
            if not dry_run:
                self.workloads.after_api_write(t.rt.plural, entry, False, None)
            return self._json(view(entry.obj))

    def _obj_response(self, entry: Entry, t: Target, code: int) -> web.Response:
        return web.Response(status=code, body=entry.bytes_for(t.rt.api_version(t.version)),
                            content_type="application/json")

    def _decode(self, body: bytes | None, ctype: str, t: Target) -> dict[str, Any]:
        if not body:
            raise ApiError(400, "the body of the request was empty")  # like "Object 'Kind' is missing in ''"
        try:
            if ctype == "application/vnd.kubernetes.protobuf":
                from .protobuf import ProtobufError, decode

                try:
                    obj = decode(body)
                except ProtobufError as e:
                    raise ApiError(415, f"the body of the request could not be decoded: {e}") from e
            elif ctype in ("application/yaml", "application/apply-patch+yaml"):
                obj = yaml.safe_load(body)
            elif ctype in ("application/json", "", "text/plain", "application/octet-stream"):
                obj = json.loads(body)
            else:
                raise ApiError(415, 'the body of the request was in an unknown format - accepted media types '
                                    'include: application/json, application/yaml, application/vnd.kubernetes.protobuf')
        except ApiError:
            raise
        except ValueError as e:
            raise ApiError(400, f"couldn't get version/kind; json parse error: {e}") from e
        except yaml.YAMLError as e:
            raise ApiError(400, f"error converting YAML to JSON: {e}") from e
        if not isinstance(obj, dict):
            raise ApiError(400, "couldn't get version/kind; json parse error: expected an object")
        return obj

    def _check_type_fields(self, rt: ResourceType, version: str, obj: dict[str, Any]) -> None:
        av, kind = obj.get("apiVersion"), obj.get("kind")
        expected = rt.api_version(version)
        if rt.is_custom:
            if not kind:
                raise ApiError(400, f"Object 'Kind' is missing in '{json.dumps(obj)[:200]}'")
            if not av:
                raise ApiError(400, f"Object 'apiVersion' is missing in '{json.dumps(obj)[:200]}'")
        if av and av != expected:
            raise ApiError(400, f"the API version in the data ({av}) does not match the expected API version "
                                f"({expected})")
        if kind and kind != rt.kind:
            raise ApiError(400, f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")
        obj["apiVersion"] = expected
        obj["kind"] = rt.kind

    def _check_namespace_for_create(self, t: Target, obj: dict[str, Any]) -> None:
        if not t.rt.namespaced or t.namespace is None:
            return
        ns = self.store.get(("", "namespaces"), "", t.namespace)
        if ns is None:
            raise namespace_type_error(t.namespace)
        if ns.obj["metadata"].get("deletionTimestamp"):
            name = (obj.get("metadata") or {}).get("name") or ""
            raise ApiError(403, f'{t.rt.qualified()} "{name}" is forbidden: unable to create new content in namespace '
                                f'{t.namespace} because it is being terminated',
                           details={"name": name, **({"group": t.group} if t.group else {}), "kind": t.rt.plural,
                                    "causes": [{"reason": "NamespaceTerminating",
                                                "message": f"namespace {t.namespace} is being terminated",
                                                "field": "metadata.namespace"}]})

    # ------------------------------------------------------------------ write paths (called under the lock)
    def _defaults(self, rt: ResourceType, obj: dict[str, Any], *, creating: bool) -> None:
        p = rt.plural
        if p == "secrets":
            obj.setdefault("type", "Opaque")
            sd = obj.pop("stringData", None)
            if sd:
                data = dict(obj.get("data") or {})
                for k, v in sd.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
                obj["data"] = data
        elif p == "namespaces":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            # like kube-apiserver >= 1.21: the immutable name label, set on create and update
            md = obj.setdefault("metadata", {})
            if md.get("name"):
                md["labels"] = {**(md.get("labels") or {}), "kubernetes.io/metadata.name": md["name"]}
            if creating:
                obj.setdefault("status", {"phase": "Active"})
        elif p == "pods" and creating:
            obj.setdefault("status", {"phase": "Pending", "qosClass": "BestEffort"})
        elif (p == "persistentvolumeclaims" and creating) or (p == "persistentvolumes" and creating):
            obj.setdefault("status", {"phase": "Pending"})
        elif p == "storageclasses":
            obj.setdefault("reclaimPolicy", "Delete")
            obj.setdefault("volumeBindingMode", "Immediate")
        elif p in ("deployments", "statefulsets"):
            spec = obj.setdefault("spec", {})
            if creating:
                spec.setdefault("replicas", 1)
                spec.setdefault("revisionHistoryLimit", 10)
                obj.setdefault("status", {"replicas": 0} if p == "statefulsets" else {})
            if p == "statefulsets":
                spec.setdefault("podManagementPolicy", "OrderedReady")
                spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
                spec.setdefault("persistentVolumeClaimRetentionPolicy",
                                {"whenDeleted": "Retain", "whenScaled": "Retain"})
        elif p == "customresourcedefinitions" and creating:
            names = obj.get("spec", {}).get("names", {})
            accepted = {**names}
            accepted.setdefault("singular", names.get("kind", "").lower())
            accepted.setdefault("listKind", names.get("kind", "") + "List")
            storage = [v["name"] for v in obj.get("spec", {}).get("versions", []) if v.get("storage")]
            obj["status"] = {
                "acceptedNames": accepted, "storedVersions": storage,
                "conditions": [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": now()},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": now()},
                ]}

    def _prepare(self, rt: ResourceType, version: str, obj: dict[str, Any], old: Entry | None,
                 validation: str | None, warnings: list[str] | None = None) -> dict[str, Any]:
        """Schema pruning/validation shared by create and update. Returns the object to store."""
        if rt.is_custom:
            schema = rt.schemas.get(version) or {}
            unknown: list[str] = []
            pruned = val.prune_and_default(obj, schema, "", unknown, root=True)
            if unknown and validation == "Strict":
                raise ApiError(400, "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
            if unknown and validation == "Warn" and warnings is not None:
                warnings.extend(f'unknown field "{u}"' for u in unknown)
            obj = pruned
        return obj

    def _validate(self, rt: ResourceType, version: str, obj: dict[str, Any], old: Entry | None,
                  creating: bool) -> None:
        name = obj["metadata"].get("name") or ""
        causes = val.validate_metadata(obj, rt.plural, creating=creating)
        if rt.is_custom:
            schema = rt.schemas.get(version) or {}
            body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
            sch = {**schema, "properties": {k: v for k, v in (schema.get("properties") or {}).items()
                                            if k not in ("apiVersion", "kind", "metadata")}}
            val.validate_schema(body, sch, "", causes)
            if not causes:
                causes.extend(val.validate_cel(obj, old.obj if old else None, schema))
        else:
            causes.extend(val.validate_builtin(obj, rt.plural, old.obj if old else None))
            if rt.plural == "customresourcedefinitions":
                causes.extend(self._validate_crd(obj))
        if causes:
            raise invalid_error(rt, name, causes)

    def _validate_crd(self, obj: dict[str, Any]) -> list[val.Cause]:
        causes: list[val.Cause] = []
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        want = f"{names.get('plural')}.{spec.get('group')}"
        if obj["metadata"].get("name") != want:
            causes.append(val.invalid("metadata.name", obj["metadata"].get("name"),
                                      'must be spec.names.plural+"."+spec.group'))
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            causes.append(val.Cause("spec.scope", f'Unsupported value: "{spec.get("scope")}": supported values: '
                                    '"Cluster", "Namespaced"', "FieldValueNotSupported"))
        versions = spec.get("versions") or []
        if sum(1 for v in versions if v.get("storage")) != 1:
            causes.append(val.invalid("spec.versions", versions, "must have exactly one version marked as storage version"))
        for i, v in enumerate(versions):
            for _path, rule in val.collect_rules(((v.get("schema") or {}).get("openAPIV3Schema")) or {}):
                try:
                    val.check_rule_supported(rule["rule"])
                except val.UnsupportedRule:
                    causes.append(val.invalid(f"spec.versions[{i}].schema.openAPIV3Schema", rule["rule"],
                                              "rule not implemented by this test server"))
        return causes

    def _create(self, rt: ResourceType, version: str, ns: str | None, obj: dict[str, Any], *, dry_run: bool,
                field_manager: str | None = None, validation: str | None = None,
                via_api: bool = False) -> tuple[int, Entry]:
        self._check_type_fields(rt, version, obj)
        md = obj.get("metadata")
        if not isinstance(md, dict):
            md = obj["metadata"] = {}
        if rt.namespaced:
            if md.get("namespace") and ns is not None and md["namespace"] != ns:
                raise ApiError(400, "the namespace of the provided object does not match the namespace sent on "
                                    "the request")
            md["namespace"] = ns or md.get("namespace") or "default"
        else:
            md.pop("namespace", None)
        if md.get("resourceVersion") not in (None, "", "0"):
            raise ApiError(500, "resourceVersion should not be set on objects to be created", reason=None)
        if not md.get("name") and md.get("generateName"):
            md["name"] = md["generateName"] + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        obj = self._prepare(rt, version, obj, None, validation)
        md = obj["metadata"]
        self._validate(rt, version, obj, None, creating=True)
        if "status" in rt.subresources and rt.plural not in ("namespaces",):
            obj.pop("status", None)
        self._defaults(rt, obj, creating=True)
        establish_later = via_api and rt.plural == "customresourcedefinitions" and self.crd_establish_delay > 0 \
            and self._loop is not None
        if establish_later:
            for c in obj["status"]["conditions"]:
                if c["type"] == "Established":
                    c.update(status="False", reason="Installing", message="the initial names have been accepted")
        if via_api and rt.plural == "services":
            self._service_defaults(obj, None)
        if rt.plural == "customresourcedefinitions":
            crd_causes = []
            try:
                type_from_crd(obj)
            except (KeyError, TypeError) as e:
                crd_causes.append(val.invalid("spec", None, f"invalid CustomResourceDefinition: {e}"))
            if crd_causes:
                raise invalid_error(rt, md["name"], crd_causes)
        name = md["name"]
        if self.store.get(rt.key, md.get("namespace", "") if rt.namespaced else "", name) is not None:
            raise ApiError(409, f'{rt.qualified()} "{name}" already exists', reason="AlreadyExists",
                           details=_details(rt, name))
        for k in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(k, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now()
        if rt.has_generation:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        md.pop("managedFields", None)
        md["managedFields"] = [self._managed_entry(field_manager or "unknown", "Update", obj)]
        obj["apiVersion"] = rt.api_version()  # stored at the storage version
        if dry_run:
            md["resourceVersion"] = ""
            md.pop("resourceVersion")
            return 201, Entry(obj, self.store.rv)
        rv = self.store.next_rv()
        md["resourceVersion"] = str(rv)
        e = self.store.put(rt.key, obj, rv, "ADDED")
        if rt.plural == "customresourcedefinitions":
            if establish_later:
                self._establish_later(md["name"], md["uid"])
            else:
                self._register_crd(obj)
        return 201, e

    def _establish_later(self, name: str, uid: str) -> None:
        loop = self._loop
        if loop is None:
            return
        delay = self.crd_establish_delay

        def arm() -> None:
            loop.call_later(delay, self._establish_crd, name, uid)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(arm)

    def _establish_crd(self, name: str, uid: str) -> None:
        """A CRD created through HTTP turns Established: its resources are served from now on."""
        with self.store.lock:
            e = self.store.get((CRD_GROUP, "customresourcedefinitions"), "", name)
            if e is None or e.obj["metadata"].get("uid") != uid or _crd_established(e.obj):
                return
            obj = copy.deepcopy(e.obj)
            for c in (obj.get("status") or {}).get("conditions") or []:
                if c.get("type") == "Established":
                    c.update(status="True", reason="InitialNamesAccepted",
                             message="the initial names have been accepted", lastTransitionTime=now())
            rv = self.store.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            self.store.put((CRD_GROUP, "customresourcedefinitions"), obj, rv, "MODIFIED")
            self._register_crd(obj)

    def _service_defaults(self, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """What the API server fills in a Service: type, a cluster IP (kept on update), port protocols."""
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        ospec = (old or {}).get("spec") or {}
        if spec["type"] != "ExternalName":
            if not spec.get("clusterIP") and ospec.get("clusterIP"):
                spec["clusterIP"] = ospec["clusterIP"]
                spec["clusterIPs"] = list(ospec.get("clusterIPs") or [ospec["clusterIP"]])
            if not spec.get("clusterIP"):
                self._cluster_ips += 1
                spec["clusterIP"] = f"10.96.{self._cluster_ips // 250 % 250}.{self._cluster_ips % 250 + 2}"
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            if spec["clusterIP"] != "None":
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))

    @staticmethod
    def _managed_entry(manager: str, operation: str, obj: dict[str, Any]) -> dict[str, Any]:
        def fields(o: Any, depth: int) -> dict[str, Any]:
            if not isinstance(o, dict) or depth == 0:
                return {}
            return {f"f:{k}": fields(v, depth - 1) for k, v in o.items()
                    if k not in ("apiVersion", "kind", "status")}

        fv = fields({k: v for k, v in obj.items() if k != "metadata"}, 3)
        md = obj.get("metadata") or {}
        mdf = {f"f:{k}": fields(md[k], 1) for k in ("labels", "annotations") if md.get(k)}
        if mdf:
            fv["f:metadata"] = mdf
        return {"manager": manager, "operation": operation, "apiVersion": obj.get("apiVersion"), "time": now(),
                "fieldsType": "FieldsV1", "fieldsV1": fv}

    def _update(self, t: Target, obj: dict[str, Any], *, dry_run: bool, validation: str | None = None,
                from_patch: bool = False, field_manager: str | None = None) -> tuple[int, Entry]:
        rt = t.rt
        self._check_type_fields(rt, t.version, obj)
        md = obj.get("metadata")
        if not isinstance(md, dict):
            md = obj["metadata"] = {}
        if rt.namespaced and md.get("namespace") and md["namespace"] != t.namespace:
            raise ApiError(400, "the namespace of the provided object does not match the namespace sent on the "
                                "request")
        if md.get("name") and md["name"] != t.name:
            raise ApiError(400, f"the name of the object ({md['name']}) does not match the name on the URL "
                                f"({t.name})")
        md["name"] = t.name
        if rt.namespaced:
            md["namespace"] = t.namespace
        else:
            md.pop("namespace", None)
        assert t.name is not None
        old = self.store.get(rt.key, t.namespace or "", t.name)
        if old is None:
            raise not_found(rt, t.name)
        rv = md.get("resourceVersion")
        if rv:
            try:
                int(rv)
            except ValueError as e:
                raise invalid_error(rt, t.name, [val.invalid("metadata.resourceVersion", rv,
                                                              "must be a valid resourceVersion")]) from e
            if rv != old.obj["metadata"]["resourceVersion"]:
                raise conflict(rt, t.name, "the object has been modified; please apply your changes to the latest "
                                           "version and try again")
        elif rt.is_custom and not from_patch:
            raise invalid_error(rt, t.name, [val.invalid("metadata.resourceVersion", "0x0",
                                                          "must be specified for an update")])
        obj = self._prepare(rt, t.version, obj, old, validation)
        md = obj["metadata"]
        oldmd = old.obj["metadata"]
        if t.sub == "status":
            new = copy.deepcopy(old.obj)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
            obj = new
            md = obj["metadata"]
        elif t.sub == "finalize":
            new = copy.deepcopy(old.obj)
            new["spec"] = obj.get("spec") or {}
            obj = new
            md = obj["metadata"]
        else:
            if "status" in rt.subresources:
                if "status" in old.obj:
                    obj["status"] = copy.deepcopy(old.obj["status"])
                else:
                    obj.pop("status", None)
            self._defaults(rt, obj, creating=False)
            if rt.plural == "services":
                self._service_defaults(obj, old.obj)
        # system fields are not the client's to change
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if k in oldmd:
                md[k] = oldmd[k]
            else:
                md.pop(k, None)
        if "managedFields" not in md and "managedFields" in oldmd:
            md["managedFields"] = oldmd["managedFields"]
        if oldmd.get("deletionTimestamp"):
            added = set(md.get("finalizers") or []) - set(oldmd.get("finalizers") or [])
            if added:
                raise invalid_error(rt, t.name, [val.forbidden("metadata.finalizers",
                                                               f"no new finalizers can be added if the object is being "
                                                               f"deleted, found new finalizers {sorted(added)!r}")])
        self._validate(rt, t.version, obj, old, creating=False)
        obj["apiVersion"] = rt.api_version()
        md["resourceVersion"] = oldmd["resourceVersion"]
        if rt.has_generation and t.sub is None:
            strip = ("metadata", "status")
            if {k: v for k, v in obj.items() if k not in strip} != {k: v for k, v in old.obj.items() if k not in strip}:
                md["generation"] = int(oldmd.get("generation") or 0) + 1
        if obj == old.obj:
            return 200, old
        if dry_run:
            return 200, Entry(obj, old.rv)
        if oldmd.get("deletionTimestamp") and not self._blocking_finalizers(obj):
            gone = self.store.remove(rt.key, old, self.store.next_rv())
            self._after_delete(rt, gone)
            return 200, gone
        newrv = self.store.next_rv()
        md["resourceVersion"] = str(newrv)
        e = self.store.put(rt.key, obj, newrv, "MODIFIED")
        if rt.plural == "customresourcedefinitions" and _crd_established(obj):
            self._register_crd(obj)
        return 200, e

    def _patch(self, t: Target, ctype: str, body: bytes, *, dry_run: bool, q: dict[str, str]) -> tuple[int, Entry]:
        rt = t.rt
        assert t.name is not None
        if ctype not in PATCH_TYPES or ctype == "application/apply-patch+cbor":
            raise ApiError(415, 'the body of the request was in an unknown format - accepted media types include: '
                                'application/json-patch+json, application/merge-patch+json, '
                                'application/apply-patch+yaml' +
                                ("" if rt.is_custom else ", application/strategic-merge-patch+json"))
        if ctype == "application/strategic-merge-patch+json" and rt.is_custom:
            raise ApiError(415, "strategic merge patch is not supported for custom resources: use "
                                "application/merge-patch+json or application/json-patch+json")
        old = self.store.get(rt.key, t.namespace or "", t.name)
        try:
            if ctype == "application/apply-patch+yaml":
                patch = yaml.safe_load(body) if body else None
            else:
                patch = json.loads(body) if body else None
        except (ValueError, yaml.YAMLError) as e:
            raise ApiError(400, f"error decoding patch: {e}") from e
        if ctype == "application/apply-patch+yaml":
            fm = q.get("fieldManager")
            if not fm:
                raise ApiError(400, "PATCH, application/apply-patch+yaml requires fieldManager to be set")
            if not isinstance(patch, dict):
                raise ApiError(400, "error decoding YAML: expected an object")
            pmd = patch.get("metadata") or {}
            if pmd.get("name") and pmd["name"] != t.name:
                raise ApiError(400, f"the name of the object ({pmd['name']}) does not match the name on the URL "
                                    f"({t.name})")
            if old is None:
                if t.sub:
                    raise not_found(rt, t.name)
                obj = copy.deepcopy(patch)
                obj.setdefault("metadata", {})["name"] = t.name
                self._check_namespace_for_create(t, obj)
                return self._create(rt, t.version, t.namespace, obj, dry_run=dry_run, field_manager=fm,
                                    validation=q.get("fieldValidation"), via_api=True)
            cur = old.copy_obj(rt.api_version(t.version))
            new = apply_merge(cur, patch)
        else:
            if old is None:
                raise not_found(rt, t.name)
            cur = old.copy_obj(rt.api_version(t.version))
            try:
                if ctype == "application/json-patch+json":
                    new = json_patch(cur, patch)
                elif ctype == "application/merge-patch+json":
                    if not isinstance(patch, dict):
                        raise PatchError("merge patch must be an object")
                    new = merge_patch(cur, patch)
                else:
                    if not isinstance(patch, dict):
                        raise PatchError("strategic merge patch must be an object")
                    new = strategic_merge(cur, patch)
            except PatchError as e:
                raise invalid_error(rt, t.name, [val.Cause("", str(e))]) if ctype == "application/json-patch+json" \
                    else ApiError(400, str(e)) from e
        if not isinstance(new, dict):
            raise ApiError(422, "patched object is not an object")
        # a resourceVersion in the patch is a precondition; without one the patch applies to the current object
        prv = ((patch or {}).get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        new.setdefault("metadata", {})["resourceVersion"] = prv or old.obj["metadata"]["resourceVersion"]
        return self._update(t, new, dry_run=dry_run, validation=q.get("fieldValidation"), from_patch=True)

    def _blocking_finalizers(self, obj: dict[str, Any]) -> list[str]:
        return [f for f in obj["metadata"].get("finalizers") or [] if f not in FORGIVEN_FINALIZERS]

    def _delete(self, rt: ResourceType, ns: str | None, name: str, opts: dict[str, Any], *,
                dry_run: bool) -> Entry | dict[str, Any]:
        e = self.store.get(rt.key, ns or "", name)
        if e is None:
            raise not_found(rt, name)
        pre = opts.get("preconditions") or {}
        md = e.obj["metadata"]
        if pre.get("uid") and pre["uid"] != md["uid"]:
            raise conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                                     f"meta: {md['uid']}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != md["resourceVersion"]:
            raise conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                                     f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                     f"{md['resourceVersion']}")
        if rt.plural == "namespaces":
            if md.get("deletionTimestamp"):
                raise conflict(rt, name, "The system is ensuring all content is removed from this namespace.  "
                                         "Upon completion, this namespace will automatically be purged by the "
                                         "system.")
            if name in ("default", "kube-system", "kube-public"):
                raise ApiError(403, f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                               details={"name": name, "kind": "namespaces"})
            obj = copy.deepcopy(e.obj)
            obj["metadata"]["deletionTimestamp"] = now()
            obj["status"] = {"phase": "Terminating"}
            if dry_run:
                return Entry(obj, e.rv)
            rv = self.store.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            ne = self.store.put(rt.key, obj, rv, "MODIFIED")
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._finalize_namespace_locked, name)
            else:
                self._finalize_namespace(name)
            return ne
        if dry_run:
            return e if rt.return_deleted_object else self._success_status(rt, e)
        if self._blocking_finalizers(e.obj):
            if md.get("deletionTimestamp"):
                return e
            obj = copy.deepcopy(e.obj)
            obj["metadata"]["deletionTimestamp"] = now()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            rv = self.store.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            return self.store.put(rt.key, obj, rv, "MODIFIED")
        gone = self.store.remove(rt.key, e, self.store.next_rv())
        self._after_delete(rt, gone, orphan=opts.get("propagationPolicy") == "Orphan")
        if rt.return_deleted_object:
            return gone
        return self._success_status(rt, e)

    def _success_status(self, rt: ResourceType, e: Entry) -> dict[str, Any]:
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": _details(rt, e.name, uid=e.obj["metadata"]["uid"])}

    def _after_delete(self, rt: ResourceType, gone: Entry, orphan: bool = False) -> None:
        if rt.plural == "customresourcedefinitions":
            spec = gone.obj["spec"]
            self.store.drop_resource((spec["group"], spec["names"]["plural"]))
            self._unregister_crd(gone.obj)
        uid = gone.obj["metadata"].get("uid")
        if not orphan and uid:
            # garbage collection of dependents
            for t in list(self.types.values()):
                if t.namespaced != rt.namespaced and rt.namespaced:
                    continue
                for d in list(self.store.data.get(t.key, {}).values()):
                    if rt.namespaced and d.namespace != gone.namespace:
                        continue
                    if any(r.get("uid") == uid for r in d.obj["metadata"].get("ownerReferences") or []):
                        with contextlib.suppress(ApiError):
                            self._delete(t, d.namespace or None, d.name, {}, dry_run=False)
        if rt.namespaced and gone.namespace:
            nse = self.store.get(("", "namespaces"), "", gone.namespace)
            if nse is not None and nse.obj["metadata"].get("deletionTimestamp") and self._loop is not None:
                self._loop.call_soon_threadsafe(self._finalize_namespace_locked, gone.namespace)

    def _finalize_namespace_locked(self, name: str) -> None:
        with self.store.lock:
            self._finalize_namespace(name)

    def _finalize_namespace(self, name: str, force: bool = False) -> None:
        nse = self.store.get(("", "namespaces"), "", name)
        if nse is None or not nse.obj["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for t in list(self.types.values()):
            if not t.namespaced:
                continue
            bucket = self.store.data.get(t.key)
            if not bucket:
                continue
            for e in [e for e in bucket.values() if e.namespace == name]:
                if self._blocking_finalizers(e.obj):
                    remaining += 1
                    if not e.obj["metadata"].get("deletionTimestamp"):
                        self._delete(t, name, e.name, {}, dry_run=False)
                    continue
                self.store.remove(t.key, e, self.store.next_rv())
        if remaining or (self.namespaces_linger and not force):
            return
        self.store.remove(("", "namespaces"), nse, self.store.next_rv())

    def _delete_collection(self, t: Target, q: dict[str, str], opts: dict[str, Any], dry_run: bool) -> web.Response:
        with self.store.lock:
            entries = self._select(t, q)
            items = []
            for e in entries:
                r = self._delete(t.rt, e.namespace or None, e.name, opts, dry_run=dry_run)
                items.append(r if isinstance(r, Entry) else e)
            return self._list_bytes(t, items, self.store.rv, None, None)

    # ------------------------------------------------------------------ reads
    def _get_response(self, t: Target) -> web.Response:
        assert t.name is not None
        with self.store.lock:
            e = self.store.get(t.rt.key, t.namespace or "", t.name)
            if e is None:
                raise not_found(t.rt, t.name)
            return web.Response(body=e.bytes_for(t.rt.api_version(t.version)), content_type="application/json")

    def _matchers(self, t: Target, q: dict[str, str]) -> tuple[Any, Any]:
        try:
            lsel = parse_label_selector(q.get("labelSelector", ""))
            fsel = parse_field_selector(q.get("fieldSelector", ""), t.rt.field_selectors, t.rt.namespaced)
        except SelectorError as e:
            raise ApiError(400, str(e)) from e
        return lsel, fsel

    def _select(self, t: Target, q: dict[str, str]) -> list[Entry]:
        lsel, fsel = self._matchers(t, q)
        entries = self.store.sorted_entries(t.rt.key)
        if t.namespace is not None:
            lo, hi = Store.range_for_namespace(entries, t.namespace)
            entries = entries[lo:hi]
        return [e for e in entries if lsel(e.obj["metadata"].get("labels") or {}) and fsel(e.obj)]

    @staticmethod
    def _encode_continue(rv: int, start: str) -> str:
        raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_continue(token: str) -> tuple[int, str]:
        try:
            pad = "=" * (-len(token) % 4)
            d = json.loads(base64.urlsafe_b64decode(token + pad))
            if d.get("v") != "meta.k8s.io/v1" or not isinstance(d.get("rv"), int) or not isinstance(d.get("start"), str):
                raise ValueError("bad token")
            return d["rv"], d["start"]
        except (ValueError, binascii.Error, UnicodeDecodeError) as e:
            raise ApiError(400, f"continue key is not valid: {e}", reason="BadRequest") from e

    def _list_response(self, request: web.Request, t: Target, q: dict[str, str]) -> web.Response:
        lsel, fsel = self._matchers(t, q)
        try:
            limit = int(q.get("limit") or 0)
        except ValueError as e:
            raise ApiError(400, f"invalid limit: {q.get('limit')}") from e
        cont = q.get("continue")
        has_selector = bool(q.get("labelSelector") or q.get("fieldSelector"))
        with self.store.lock:
            if cont:
                rv, start = self._decode_continue(cont)
                snap = self.store.snapshot(t.rt.key, rv)
                if rv < self.store.compacted_rv or snap is None:
                    raise ApiError(410, "The provided continue parameter is too old to display a consistent list "
                                        "result. You can start a new list without the continue parameter, or use "
                                        "the continue token in this response to retrieve the remainder of the "
                                        "results. Continuing with the provided token results in an inconsistent "
                                        "list - objects that were created, modified, or deleted between the time "
                                        "the first chunk was returned and now may show up in the list.",
                                   reason="Expired")
                entries = snap
            else:
                rv = self.store.rv
                start = ""
                entries = self.store.sorted_entries(t.rt.key)
            lo, hi = 0, len(entries)
            if t.namespace is not None:
                lo, hi = Store.range_for_namespace(entries, t.namespace)
            if start:
                import bisect

                lo = max(lo, bisect.bisect_left(entries, start, lo=lo, hi=hi, key=lambda e: e.key))
            items: list[Entry] = []
            pos = lo
            more = False
            while pos < hi:
                e = entries[pos]
                pos += 1
                if (not has_selector) or (lsel(e.obj["metadata"].get("labels") or {}) and fsel(e.obj)):
                    items.append(e)
                    if limit and len(items) >= limit:
                        break
            if limit and len(items) >= limit and pos < hi:
                # is anything left that matches?
                more = True
                if has_selector:
                    more = any(lsel(x.obj["metadata"].get("labels") or {}) and fsel(x.obj) for x in entries[pos:hi])
            token = None
            remaining = None
            if more:
                if not cont:
                    self.store.keep_snapshot(t.rt.key, rv, entries)
                token = self._encode_continue(rv, items[-1].key + "\x00")
                if not has_selector:
                    remaining = hi - pos
            accept = request.headers.get("Accept", "")
            if "as=Table" in accept:
                return self._table(t, items, rv, token, remaining, q)
            return self._list_bytes(t, items, rv, token, remaining)

    def _list_bytes(self, t: Target, items: list[Entry], rv: int, token: str | None,
                    remaining: int | None) -> web.Response:
        av = t.rt.api_version(t.version)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        with_type = t.rt.is_custom
        head = dumps({"kind": t.rt.list_kind_name, "apiVersion": av, "metadata": meta})[:-1]
        body = head + b',"items":[' + b",".join(e.bytes_for(av, with_type) for e in items) + b"]}"
        return web.Response(body=body, content_type="application/json")

    def _table(self, t: Target, items: list[Entry], rv: int, token: str | None, remaining: int | None,
               q: dict[str, str]) -> web.Response:
        cols = [{"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a "
                 "namespace.", "priority": 0},
                {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp", "priority": 0}]
        rows = []
        nowt = time.time()
        av = t.rt.api_version(t.version)
        for e in items:
            md = e.obj["metadata"]
            try:
                created = _dt.datetime.strptime(md.get("creationTimestamp", ""), "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=_dt.timezone.utc).timestamp()
                age = _age(nowt - created)
            except ValueError:
                age = "<unknown>"
            pm = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                  "metadata": {k: v for k, v in md.items() if k != "managedFields"}}
            rows.append({"cells": [e.name, age], "object": pm})
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if token:
            meta["continue"] = token
        if remaining is not None:
            meta["remainingItemCount"] = remaining
        del av
        return self._json({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
                           "columnDefinitions": cols, "rows": rows})

    # ------------------------------------------------------------------ watch
    def _on_event(self, ev: Event) -> None:
        if not self._watchers or self._loop is None:
            return
        loop = self._loop
        for res, q in list(self._watchers):
            if res == ev.res:
                loop.call_soon_threadsafe(q.put_nowait, ev)

    async def _watch(self, request: web.Request, t: Target, q: dict[str, str]) -> web.StreamResponse:
        lsel, fsel = self._matchers(t, q)
        timeout = float(q.get("timeoutSeconds") or 1800)
        rv_param = q.get("resourceVersion") or ""
        # streaming lists (WatchList, on by default in 1.32): the current state as ADDED events, then a
        # BOOKMARK annotated k8s.io/initial-events-end; client-go 0.35 (helm 4) lists this way
        send_initial = q.get("sendInitialEvents") in ("true", "1")
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise invalid_error(t.rt, "", [val.Cause(
                "resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                "FieldValueForbidden")])
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        initial: list[tuple[str, Entry]] = []
        with self.store.lock:
            key = (t.rt.key, queue)
            self._watchers.add(key)  # type: ignore[arg-type]
            if rv_param in ("", "0") or send_initial:
                for e in self.store.sorted_entries(t.rt.key):
                    initial.append(("ADDED", e))
                last_rv = self.store.rv
            else:
                try:
                    start = int(rv_param)
                except ValueError as err:
                    self._watchers.discard(key)  # type: ignore[arg-type]
                    raise ApiError(400, f"invalid resource version: {rv_param}") from err
                if start < self.store.compacted_rv or (self.store.events and start < self.store.events[0].rv - 1
                                                         and len(self.store.events) == self.store.events.maxlen):
                    initial.append(("ERROR", None))  # type: ignore[arg-type]
                else:
                    for ev in self.store.events:
                        if ev.res == t.rt.key and ev.rv > start:
                            initial.append((ev.type, ev.entry))
                last_rv = max(start, self.store.rv)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Transfer-Encoding": "chunked"})
        await resp.prepare(request)
        request[RECORD_KEY].status = 200
        av = t.rt.api_version(t.version)
        ns = t.namespace

        def visible(e: Entry) -> bool:
            if ns is not None and e.namespace != ns:
                return False
            return lsel(e.obj["metadata"].get("labels") or {}) and fsel(e.obj)

        async def send(typ: str, e: Entry) -> None:
            await resp.write(b'{"type":"' + typ.encode() + b'","object":' + e.bytes_for(av) + b"}\n")

        try:
            for typ, e in initial:
                if typ == "ERROR":
                    st = status_body(410, "Expired", f"too old resource version: {rv_param} ({self.store.rv})")
                    await resp.write(dumps({"type": "ERROR", "object": st}) + b"\n")
                    return resp
                if visible(e):
                    await send(typ, e)
            if send_initial:
                mark = {"kind": t.rt.kind, "apiVersion": av, "metadata": {
                    "resourceVersion": str(last_rv), "annotations": {"k8s.io/initial-events-end": "true"}}}
                await resp.write(dumps({"type": "BOOKMARK", "object": mark}) + b"\n")
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    ev = await asyncio.wait_for(queue.get(), left)
                except asyncio.TimeoutError:
                    break
                if ev is None:
                    break
                if ev.rv <= last_rv:
                    continue
                last_rv = ev.rv
                now_vis = visible(ev.entry)
                was_vis = ev.old is not None and visible(ev.old)
                if ev.type == "MODIFIED" and was_vis and not now_vis:
                    await send("DELETED", ev.entry)
                elif ev.type == "MODIFIED" and now_vis and not was_vis:
                    await send("ADDED", ev.entry)
                elif now_vis:
                    await send(ev.type, ev.entry)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._watchers.discard(key)  # type: ignore[arg-type]
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await resp.write_eof()
        return resp

    # ------------------------------------------------------------------ SelfSubjectAccessReview
    def _ssar(self, user: User, t: Target, body: bytes | None) -> web.Response:
        obj = self._decode(body, "application/json", t)
        self._check_type_fields(t.rt, t.version, obj)
        spec = obj.get("spec") or {}
        ra = spec.get("resourceAttributes")
        nra = spec.get("nonResourceAttributes")
        if not ra and not nra:
            raise invalid_error(t.rt, "", [val.invalid("spec.resourceAttributes", None,
                                                       "exactly one of nonResourceAttributes or resourceAttributes "
                                                       "must be specified")])
        status: dict[str, Any]
        if ra:
            resource = ra.get("resource", "") + (f"/{ra['subresource']}" if ra.get("subresource") else "")
            denied = self._denied(user, ra.get("verb", ""), resource, ra.get("group", ""), ra.get("namespace") or None)
            status = {"allowed": not denied}
            if denied:
                status.update(denied=True, reason="denied by test server rule")
            else:
                status["reason"] = "allowed by test server (no matching deny rule)"
        else:
            status = {"allowed": True}
        out = {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
               "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}
        return self._json(out, status=201)


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


def _crd_established(crd: dict[str, Any]) -> bool:
    return any(c.get("type") == "Established" and c.get("status") == "True"
               for c in (crd.get("status") or {}).get("conditions") or [])


def _age(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 3600 * 3:
        return f"{s // 60}m"
    if s < 86400 * 2:
        return f"{s // 3600}h"
    return f"{s // 86400}d"
