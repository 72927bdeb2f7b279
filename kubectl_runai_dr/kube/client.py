"""The only module that talks HTTP to the Kubernetes API server.

Objects travel as plain dictionaries (the JSON the server sends), not as the client's
generated model classes: that keeps backup and restore generic over kinds and is several
times faster on large lists. The official client is still used for configuration,
authentication (tokens, certificates, exec plugins, refresh) and connection pooling.
"""

from __future__ import annotations

import builtins
import json
import math
import os
import queue
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client as k8s
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import load_incluster_config

from kubectl_runai_dr import errors as e
from kubectl_runai_dr._version import __version__
from kubectl_runai_dr.kube import errors as ke
from kubectl_runai_dr.kube.credentials import Loader, resolve_tokens
from kubectl_runai_dr.kube.errors import error_from_response
from kubectl_runai_dr.kube.kubeconfig import kubeconfig_paths, read_kubeconfig, select_context
from kubectl_runai_dr.kube.resources import PODS, SSAR, Resource

PATCH_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
_MAX_RETRIES = 5
_MAX_RETRY_AFTER = 30.0
# Establishing a connection (TCP and the TLS handshake) never waits longer than this,
# whatever --request-timeout says: kubectl gives up after 10 s too. Only reading an
# answer may take longer (up to --request-timeout, or forever with "0").
CONNECT_TIMEOUT = 10.0
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class ConnectOptions:
    kubeconfig: str | None = None
    context: str | None = None
    request_timeout: float | None = None  # seconds; None or 0 = no timeout (kubectl's "0")


def connect(opts: ConnectOptions, environ: Mapping[str, str] | None = None) -> Kube:
    """Build a client the way kubectl would: --kubeconfig, KUBECONFIG, ~/.kube/config,
    then the in-cluster service account."""
    env = os.environ if environ is None else environ
    paths = kubeconfig_paths(opts.kubeconfig, env)
    cfg = read_kubeconfig(paths, explicit=bool(opts.kubeconfig))
    configuration = k8s.Configuration()
    if cfg is None:
        if env.get("KUBERNETES_SERVICE_HOST") and not opts.context:
            try:
                load_incluster_config(client_configuration=configuration)
            except ConfigException as exc:
                raise e.ConfigError(f"in-cluster configuration failed: {exc}",
                                    hint="run with a kubeconfig (--kubeconfig)") from exc
            return Kube(k8s.ApiClient(configuration), context="in-cluster",
                        server=str(configuration.host), request_timeout=opts.request_timeout)
        looked = ", ".join(str(p) for p in paths)
        raise e.ConfigError(
            f"no kubeconfig found (looked at {looked}) and not running inside a pod",
            hint="pass --kubeconfig PATH or set KUBECONFIG, or run `kubectl config view` "
                 "to check that kubectl itself has a configuration",
        )
    name, ctx, _cluster = select_context(cfg, opts.context)
    user = ctx.get("user")
    cfg = resolve_tokens(cfg, user)
    try:
        loader = Loader(config_dict=cfg, active_context=name, user_name=str(user or ""))
        loader.load_and_set(configuration)
        _cheap_token_refresh(configuration, loader)
    except (ConfigException, OSError, ValueError) as exc:
        raise e.ConfigError(
            f'cannot use context "{name}" from the kubeconfig: {exc}'.splitlines()[0],
            hint="check its certificate files, token and exec plugin (`kubectl config view`)",
        ) from exc
    return Kube(k8s.ApiClient(configuration), context=name, server=str(configuration.host),
                request_timeout=opts.request_timeout)


def _cheap_token_refresh(configuration: k8s.Configuration, loader: Loader) -> None:
    """The loader's refresh hook re-applies the whole configuration before every request
    (re-reading proxy settings from the environment: a third of a small request's CPU) even
    when the token cannot expire. Keep it only for tokens that carry an expiry (exec and
    auth-provider plugins); its behaviour for them is unchanged."""
    original = configuration.refresh_api_key_hook
    if original is None:
        return

    def refresh(cfg: k8s.Configuration) -> None:
        if "expiry" in loader.__dict__:
            original(cfg)

    configuration.refresh_api_key_hook = refresh


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Kube:
    """Raw JSON access to one API server, with the tool's error mapping and retries."""

    def __init__(self, api_client: k8s.ApiClient, *, context: str, server: str,
                 request_timeout: float | None = None) -> None:
        self.api = api_client
        self.context = context
        self.server = server
        self.request_timeout = request_timeout or None
        self.api.user_agent = f"kubectl-runai_dr/{__version__}"
        self._host = str(api_client.configuration.host).rstrip("/")
        self._pool = api_client.rest_client.pool_manager
        self._direct: Any = None
        self._base_path = urllib3.util.parse_url(self._host).path or ""
        if type(self._pool) is urllib3.PoolManager:  # not a ProxyManager
            self._direct = self._pool.connection_from_url(self._host)
        self._headers = {"Accept": "application/json",
                         "User-Agent": f"kubectl-runai_dr/{__version__}"}
        rt = self.request_timeout
        self.connect_timeout = min(CONNECT_TIMEOUT, rt) if rt else CONNECT_TIMEOUT
        self._timeout = urllib3.Timeout(total=rt, connect=self.connect_timeout)
        self._groups: dict[str, list[str]] = {}
        self._resources: dict[str, list[dict[str, Any]]] = {}
        # Shared by every thread using this client: after a 429 with Retry-After, no
        # request is sent until that time, so a pool of workers backs off together; and
        # the window of requests sent at once shrinks (API Priority and Fairness answers
        # 429 when the queues of our priority level are full: send fewer at once).
        self._throttle_lock = threading.Lock()
        self._not_before = 0.0
        self.window = Window()
        # exec: set when the server refused an upgrade offering v5 alone (before 1.30)
        self.exec_v4_only = False

    # -- the one request path ------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, Any]] = (),
        body: Any = None,
        content_type: str = "application/json",
        verb: str = "",
        resource: str = "",
        namespace: str | None = None,
        name: str | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON answer.

        429 answers are retried after their Retry-After; 5xx answers to reads are retried
        with backoff. Everything else becomes a :class:`KubeError` naming the request.
        """
        verb = verb or method.lower()
        resource = resource or path
        attempt = 0
        while True:
            attempt += 1
            self._wait_throttle()
            target = path
            if query:
                target += "?" + urlencode([(k, _query_value(v)) for k, v in query])
            headers = dict(self._headers)
            payload = None
            if body is not None:
                headers["Content-Type"] = content_type
                payload = json.dumps(body, separators=(",", ":")).encode()
            try:
                # The client's own token (and its refresh hook, for expiring tokens).
                token = self.api.configuration.get_api_key_with_prefix(
                    "BearerToken", alias="authorization")
                if token:
                    headers["Authorization"] = token
                # The official client's connection pool (TLS, client certificates, proxy)
                # without its per-request serialization layers: a third of the CPU of a
                # small request, which matters when thousands of objects are restored.
                self.window.acquire()
                status = 0
                try:
                    resp = self._send(method, target, payload, headers)
                    data = resp.data
                    status = resp.status
                finally:
                    self.window.release(status)
            except urllib3.exceptions.HTTPError as exc:
                # Only a connection that broke before any answer (a pooled keep-alive
                # connection the server had closed) is worth a second try, and only
                # for a request that may be repeated.
                if (isinstance(exc, urllib3.exceptions.ProtocolError) and attempt == 1
                        and method in _IDEMPOTENT):
                    continue
                raise self._unreachable(exc, verb, resource, namespace, name) from exc
            except ConfigException as exc:  # an auth-provider's token refresh failed
                raise e.ConfigError(
                    f'credentials of context "{self.context}" could not be obtained: '
                    f"{ke.clean_text(str(exc), limit=500)}",
                    hint="log in again; check the kubeconfig's exec plugin or token",
                ) from exc
            except ValueError as exc:
                if "header" not in str(exc).lower():
                    raise
                # http.client quotes the refused header, credential included: say which
                # header it was, never its value, and drop the original.
                raise e.ConfigError(
                    f'the credentials of context "{self.context}" cannot be sent: a request '
                    "header holds a line break or a character HTTP does not allow",
                    hint="check the user's token, token file or plugin output in the "
                         "kubeconfig (`kubectl config view`)") from None
            if 200 <= resp.status < 300:
                return json.loads(data) if data else {}
            err = error_from_response(
                resp.status, data, verb=verb, resource=resource, namespace=namespace,
                name=name, context=self.context, server=self.server,
                retry_after=resp.headers.get("Retry-After"),
            )
            retryable = resp.status == 429 or (resp.status in (500, 502, 503, 504)
                                               and method == "GET")
            if retryable and attempt < _MAX_RETRIES:
                delay = err.retry_after if err.retry_after is not None else 0.2 * 2 ** attempt
                delay = min(max(delay, 0.0), _MAX_RETRY_AFTER)
                if resp.status == 429:
                    self._throttle(delay)
                else:
                    time.sleep(delay)
                continue
            raise err

    def _send(self, method: str, target: str, payload: bytes | None,
              headers: dict[str, str]) -> Any:
        """One HTTP exchange. Without a proxy, straight to the server's connection pool
        (the pool manager's per-request URL parsing and pool lookup cost as much as the
        rest of a small request); through a proxy, via the pool manager, which knows how."""
        if self._direct is not None:
            return self._direct.urlopen(method, self._base_path + target, body=payload,
                                        headers=headers, timeout=self._timeout,
                                        preload_content=True, redirect=False,
                                        assert_same_host=False, retries=False)
        return self._pool.request(method, self._host + target, body=payload, headers=headers,
                                  timeout=self._timeout, preload_content=True, retries=False)

    def _throttle(self, delay: float) -> None:
        with self._throttle_lock:
            self._not_before = max(self._not_before, time.monotonic() + delay)

    def _wait_throttle(self) -> None:
        while True:
            with self._throttle_lock:
                wait = self._not_before - time.monotonic()
            if wait <= 0:
                return
            time.sleep(wait)

    def _unreachable(self, exc: Exception, verb: str, resource: str,
                     namespace: str | None = None, name: str | None = None) -> ke.Unreachable:
        return ke.unreachable(exc, server=self.server, context=self.context, verb=verb,
                              resource=resource, namespace=namespace, name=name,
                              connect_timeout=self.connect_timeout,
                              read_timeout=self.request_timeout)

    # -- typed helpers -------------------------------------------------------------------
    def get(self, res: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        obj: dict[str, Any] = self.request(
            "GET", res.path(namespace, name), verb="get", resource=res.group_resource,
            namespace=namespace, name=name)
        return obj

    def get_or_none(self, res: Resource, name: str,
                    namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self.get(res, name, namespace)
        except ke.NotFound:
            return None

    def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
        ahead: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Yield every object, page by page (``limit``/``continue``).

        Items get ``apiVersion`` and ``kind`` (typed lists omit them). When a continue token
        expires (410) the list is read again from the start, skipping what was yielded.

        ``ahead`` > 0: the first request is sent at once, and a background thread reads up
        to that many pages ahead of the caller (who decodes, cleans and writes meanwhile);
        several such lists run concurrently. An error comes out of the iteration, where it
        would have without ``ahead``.
        """
        pages = self._pages(res, namespace, label_selector, field_selector, limit)
        if ahead > 0:
            return _PagesAhead(pages, ahead)
        return (item for page in pages for item in page)

    def _pages(self, res: Resource, namespace: str | None, label_selector: str | None,
               field_selector: str | None, limit: int) -> Iterator[builtins.list[dict[str, Any]]]:
        seen: set[str] | None = None
        cont: str | None = None
        while True:
            query: list[tuple[str, Any]] = [("limit", limit)]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if cont:
                query.append(("continue", cont))
            try:
                page = self.request("GET", res.path(namespace), query=query, verb="list",
                                    resource=res.group_resource, namespace=namespace)
            except ke.Gone:
                if seen is None or not cont:
                    raise
                cont = None
                continue
            items: list[dict[str, Any]] = page.get("items") or []
            if seen is not None:
                fresh = []
                for item in items:
                    uid = item.get("metadata", {}).get("uid", "")
                    if uid not in seen:
                        seen.add(uid)
                        fresh.append(item)
                items = fresh
            for item in items:
                item.setdefault("apiVersion", res.api_version)
                item.setdefault("kind", res.kind)
            cont = (page.get("metadata") or {}).get("continue") or None
            if cont and seen is None:
                seen = {item.get("metadata", {}).get("uid", "") for item in items}
            yield items
            if not cont:
                return

    def create(self, res: Resource, obj: Mapping[str, Any], *, namespace: str | None = None,
               dry_run: bool = False) -> dict[str, Any]:
        query = [("dryRun", "All")] if dry_run else []
        name = (obj.get("metadata") or {}).get("name")
        out: dict[str, Any] = self.request(
            "POST", res.path(namespace), query=query, body=dict(obj), verb="create",
            resource=res.group_resource, namespace=namespace, name=name)
        return out

    def replace(self, res: Resource, obj: Mapping[str, Any], *, namespace: str | None = None,
                dry_run: bool = False) -> dict[str, Any]:
        name = obj["metadata"]["name"]
        query = [("dryRun", "All")] if dry_run else []
        out: dict[str, Any] = self.request(
            "PUT", res.path(namespace, name), query=query, body=dict(obj), verb="update",
            resource=res.group_resource, namespace=namespace, name=name)
        return out

    def patch(self, res: Resource, name: str, patch: Any, *, namespace: str | None = None,
              patch_type: str = "merge", subresource: str | None = None,
              dry_run: bool = False) -> dict[str, Any]:
        query = [("dryRun", "All")] if dry_run else []
        out: dict[str, Any] = self.request(
            "PATCH", res.path(namespace, name, subresource), query=query, body=patch,
            content_type=PATCH_TYPES[patch_type], verb="patch", resource=res.group_resource,
            namespace=namespace, name=name)
        return out

    def delete(self, res: Resource, name: str, *, namespace: str | None = None,
               propagation: str | None = None) -> None:
        body = {"propagationPolicy": propagation} if propagation else None
        self.request("DELETE", res.path(namespace, name), body=body, verb="delete",
                     resource=res.group_resource, namespace=namespace, name=name)

    def pod_log(self, name: str, namespace: str, *, container: str | None = None,
                tail_lines: int = 50, limit_bytes: int = 64 * 1024) -> str:
        """The tail of a container's log (``pods/log``), bounded, as text with the control
        characters other than line breaks and tabs removed."""
        query: list[tuple[str, Any]] = [("tailLines", tail_lines), ("limitBytes", limit_bytes)]
        if container:
            query.append(("container", container))
        path = PODS.path(namespace, name, "log") + "?" + urlencode(query)
        headers = dict(self._headers, Accept="text/plain")
        token = self.api.configuration.get_api_key_with_prefix("BearerToken",
                                                               alias="authorization")
        if token:
            headers["Authorization"] = token
        try:
            resp = self._send("GET", path, None, headers)
        except urllib3.exceptions.HTTPError as exc:
            raise self._unreachable(exc, "get", "pods/log", namespace, name) from exc
        if not 200 <= resp.status < 300:
            raise error_from_response(resp.status, resp.data, verb="get", resource="pods/log",
                                      namespace=namespace, name=name, context=self.context,
                                      server=self.server)
        text = bytes(resp.data[:limit_bytes]).decode("utf-8", "replace")
        return ke.clean_text(text, limit=limit_bytes, keep_end=True)

    # -- discovery -----------------------------------------------------------------------
    def server_version(self) -> dict[str, Any]:
        """The server's version info; its strings (shown in summaries and manifests) are the
        server's to choose, so they come cleaned of control characters and bounded."""
        out = self.request("GET", "/version", verb="get", resource="server version")
        return {str(k): ke.clean_text(v, limit=200, multiline=False) if isinstance(v, str)
                else v for k, v in (out.items() if isinstance(out, dict) else ())}

    def group_versions(self, group: str) -> builtins.list[str]:
        """The group's served versions, preferred first then in the server's priority order;
        [] when the group is not served."""
        if group not in self._groups:
            try:
                data = self.request("GET", f"/apis/{group}", verb="discover",
                                    resource=f"API group {group}")
            except ke.NotFound:
                self._groups[group] = []
            else:
                preferred = (data.get("preferredVersion") or {}).get("version")
                versions = [str(v.get("version")) for v in data.get("versions") or []]
                if preferred:
                    versions = [preferred] + [v for v in versions if v != preferred]
                self._groups[group] = versions
        return self._groups[group]

    def _api_resources(self, group: str, version: str) -> builtins.list[dict[str, Any]]:
        """The APIResourceList of one group version (cached; [] when not served)."""
        key = f"{group}/{version}"
        if key not in self._resources:
            try:
                data = self.request("GET", f"/apis/{key}", verb="discover", resource=f"API {key}")
            except ke.NotFound:
                data = {}
            self._resources[key] = list(data.get("resources") or [])
        return self._resources[key]

    def refresh_discovery(self) -> None:
        """Forget what discovery said: after a step that may install CRDs (a chart's
        ``crds/``), the API surface is read again on the next question."""
        self._groups.clear()
        self._resources.clear()

    def served(self, res: Resource) -> Resource | None:
        """``res`` at a version the server serves, or None when the server does not serve it.

        The group's preferred version wins when it has the resource; otherwise the first
        version (in the server's priority order) that does: ``run.ai`` prefers v2, which has
        projects, while runaiconfigs exist only in v1.
        """
        if not res.group:
            return res
        for version in self.group_versions(res.group):
            for r in self._api_resources(res.group, version):
                if r.get("name") == res.plural:
                    return Resource(res.group, version, res.plural,
                                    str(r.get("kind", res.kind)),
                                    bool(r.get("namespaced", res.namespaced)))
        return None

    def can_i(self, verb: str, res: Resource, namespace: str | None = None,
              name: str | None = None, subresource: str | None = None) -> tuple[bool, str]:
        """SelfSubjectAccessReview: may the current user do this? (allowed, reason).
        ``subresource``: e.g. ``exec`` for ``create pods/exec``."""
        attrs: dict[str, Any] = {"verb": verb, "group": res.group, "resource": res.plural}
        if subresource:
            attrs["subresource"] = subresource
        if namespace:
            attrs["namespace"] = namespace
        if name:
            attrs["name"] = name
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs}}
        out = self.request("POST", SSAR.path(), body=body, verb="create",
                           resource=SSAR.group_resource)
        status = out.get("status") or {}
        reason = ke.clean_text(str(status.get("reason", "")), limit=500, multiline=False)
        return bool(status.get("allowed")), reason

    def close(self) -> None:
        self.api.close()


class _PagesAhead:
    """The items of a paged list whose pages a background thread reads, up to ``depth``
    pages ahead of the consumer. Dropping or closing the iterator stops the thread."""

    def __init__(self, pages: Iterator[builtins.list[dict[str, Any]]], depth: int) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._items: Iterator[dict[str, Any]] = iter(())
        self._done = False
        threading.Thread(target=_produce, args=(pages, self._queue, self._stop),
                         name="list-ahead", daemon=True).start()

    def __iter__(self) -> _PagesAhead:
        return self

    def __next__(self) -> dict[str, Any]:
        while True:
            item = next(self._items, None)
            if item is not None:
                return item
            if self._done:
                raise StopIteration
            kind, payload = self._queue.get()
            if kind == "page":
                self._items = iter(payload)
                continue
            self._done = True
            if kind == "error":
                raise payload
            raise StopIteration

    def close(self) -> None:
        self._stop.set()

    def __del__(self) -> None:
        self._stop.set()


def _produce(pages: Iterator[builtins.list[dict[str, Any]]],
             out: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
    def put(msg: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                out.put(msg, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    try:
        for page in pages:
            if not put(("page", page)):
                return
    except BaseException as exc:  # handed to the consumer, raised where it iterates
        put(("error", exc))
        return
    put(("end", None))


class Window:
    """How many requests one client has in flight at once, shared by its threads: no
    limit until the server answers 429 (API Priority and Fairness: the queues of the
    request's priority level are full); then half of what was in flight, growing back by
    one after each window-full of answers that were not 429 (additive increase,
    multiplicative decrease, as TCP does)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.limit: float = math.inf
        self.inflight = 0
        self.smallest: float = math.inf  # the smallest the window became (for reports)
        self._good = 0

    def acquire(self) -> None:
        with self._cond:
            while self.inflight >= self.limit:
                self._cond.wait()
            self.inflight += 1

    def release(self, status: int) -> None:
        """``status``: the answer's HTTP status (0: none came)."""
        with self._cond:
            before = self.inflight
            self.inflight -= 1
            if status == 429:
                self.limit = max(1, min(self.limit, before) // 2)
                self.smallest = min(self.smallest, self.limit)
                self._good = 0
            elif status and self.limit != math.inf:
                self._good += 1
                if self._good >= self.limit:
                    self.limit += 1
                    self._good = 0
            self._cond.notify()
