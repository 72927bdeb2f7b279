"""What a cluster's controllers and kubelet do after the API server has stored an object.

Runs on the loopback server's event loop (timers) and in worker threads (pod backends).
See the package docstring (__init__.py) for the behaviour; in short:

- kubelet: a pod created through the HTTP API (or by the StatefulSet controller) is
  Pending (not scheduled), then scheduled (nodeName, ContainerCreating), then Running
  (containers running, not ready), then Ready, with the delays `pod_schedule_delay`,
  `pod_start_delay`, `pod_ready_delay` of the ApiServer; events record each step.
- volume binding at scheduling: the pod's claims must exist and bind (a PersistentVolume is
  provisioned from the claim's StorageClass, or the default one); until then the pod stays
  Pending with PodScheduled=False (Unschedulable) and a FailedScheduling event.
- StatefulSet controller: for StatefulSets written through the HTTP API: pods
  `<name>-<ordinal>` from the template, a claim per volumeClaimTemplate, OrderedReady or
  Parallel, scale up/down, rolling update on a template change, status counters.
- pod backends: a real process behind a pod (started when the pod runs, stopped when it
  goes); the pod is Ready only once the backend has started.
- a deleted claim releases its volume: reclaim policy Delete removes the PersistentVolume,
  Retain leaves it Released.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .containers import BASE_PATH, LOCAL_PROVISIONER, container_root, preexec, remove_roots
from .store import Entry, Event, now

if TYPE_CHECKING:
    from .server import ApiServer

PODS = ("", "pods")
PVCS = ("", "persistentvolumeclaims")
PVS = ("", "persistentvolumes")
STS = ("apps", "statefulsets")
EVENTS = ("", "events")
NAMESPACES = ("", "namespaces")
STORAGECLASSES = ("storage.k8s.io", "storageclasses")
SNAPSHOTS = ("snapshot.storage.k8s.io", "volumesnapshots")
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
UNBOUND = ("0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 "
           "nodes are available: 1 Preemption is not helpful for scheduling.")


class PodBackend(Protocol):
    """What `start(pod)` of a pod backend returns: the environment and working directory of
    exec into the pod, and how to stop the process when the pod goes away."""

    @property
    def env(self) -> Mapping[str, str]: ...

    @property
    def cwd(self) -> str | None: ...

    def stop(self) -> None: ...


@dataclass
class SimpleBackend:
    """A PodBackend with fixed env/cwd and an optional stop callback."""

    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    on_stop: Callable[[], None] | None = None

    def stop(self) -> None:
        if self.on_stop is not None:
            self.on_stop()


@dataclass
class BackendRule:
    namespace: str | None  # None: every namespace
    name_regex: str
    start: Callable[[dict[str, Any]], PodBackend]
    starting_env: dict[str, str] | None = None  # exec env while `start` runs (container Running, not Ready)
    started: int = 0

    def matches(self, namespace: str, name: str) -> bool:
        return (self.namespace is None or self.namespace == namespace) and re.fullmatch(
            self.name_regex, name) is not None


def _now() -> str:
    return now()


def _claim_not_found(claim: str) -> str:
    """The scheduler's message for a pod whose claim does not exist."""
    return (f'0/1 nodes are available: persistentvolumeclaim "{claim}" not found. preemption: 0/1 '
            "nodes are available: 1 Preemption is not helpful for scheduling.")


def _cond(kind: str, status: str, reason: str | None = None, message: str | None = None) -> dict[str, Any]:
    c: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": _now()}
    if reason:
        c["reason"] = reason
    if message:
        c["message"] = message
    return c


def _is_ready(pod: Mapping[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def _qos(containers: list[dict[str, Any]]) -> str:
    any_set, guaranteed = False, bool(containers)
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and req[r] != lim[r]):
                guaranteed = False
    if guaranteed and any_set:
        return "Guaranteed"
    return "Burstable" if any_set else "BestEffort"


def template_hash(template: Any) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(HASH_ALPHABET[b % len(HASH_ALPHABET)] for b in digest[:10])


class Workloads:
    """The kubelet, the scheduler's volume binding, the StatefulSet controller and pod backends."""

    def __init__(self, srv: ApiServer) -> None:
        self.srv = srv
        self.rules: list[BackendRule] = []
        self.backends: dict[tuple[str, str], tuple[str, PodBackend]] = {}  # (ns, pod) -> (pod uid, backend)
        self.starting: dict[tuple[str, str], tuple[str, BackendRule]] = {}
        self.managed: set[str] = set()  # uids of StatefulSets the controller reconciles
        self.errors: list[str] = []  # tracebacks of controller bugs and backend start failures
        self._tasks: set[asyncio.Future[Any]] = set()
        self._threads: set[threading.Thread] = set()
        self._threads_lock = threading.Lock()
        self._pending_sts: set[tuple[str, str]] = set()
        self._event_names: dict[tuple[str, str, str], str] = {}  # (uid, reason, message) -> event name
        self._ip = 10
        self.stopping = False
        from .batch import JobController

        self.jobs = JobController(self)  # batch.py: Jobs, pod runners, container logs
        self.ephemeral_pids: dict[tuple[str, str, str], set[int]] = {}  # (ns, pod, uid) -> process groups

    # ------------------------------------------------------------------ plumbing
    @property
    def lock(self) -> Any:
        return self.srv.store.lock

    def _soon(self, fn: Callable[..., Any], *args: Any) -> None:
        loop = self.srv._loop
        if loop is None or loop.is_closed() or self.stopping:
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)

    def _spawn(self, coro: Any) -> None:
        """Start a task on the server's loop (call on the loop thread)."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            self.errors.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
            self.srv.record_bug(f"the kubelet or a controller (task {task!r})", exc)

    def _thread(self, target: Callable[[], None], name: str) -> None:
        def run() -> None:
            try:
                target()
            finally:
                with self._threads_lock:
                    self._threads.discard(t)

        t = threading.Thread(target=run, name=name, daemon=True)
        with self._threads_lock:
            self._threads.add(t)
        t.start()

    async def cancel_tasks(self) -> None:
        """On the loop, at server shutdown."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def shutdown(self) -> None:
        """After the loop has stopped: wait for backend starts, stop every backend."""
        self.stopping = True
        deadline = time.monotonic() + 60
        while True:
            with self._threads_lock:
                threads = list(self._threads)
            if not threads:
                break
            for t in threads:
                t.join(max(0.1, deadline - time.monotonic()))
            if time.monotonic() > deadline:
                break
        with self.lock:
            backends = [b for _, b in self.backends.values()]
            self.backends.clear()
            self.starting.clear()
        for b in backends:
            self._stop_backend(b)
        for rule in self.rules:
            close = getattr(rule.start, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()

    def _stop_backend(self, backend: PodBackend) -> None:
        try:
            backend.stop()
        except Exception:
            self.errors.append(traceback.format_exc())

    def _put(self, key: tuple[str, str], obj: dict[str, Any]) -> Entry:
        st = self.srv.store
        rv = st.next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        return st.put(key, obj, rv, "MODIFIED")

    def _get(self, key: tuple[str, str], ns: str, name: str, uid: str | None = None) -> dict[str, Any] | None:
        e = self.srv.store.get(key, ns, name)
        if e is None or (uid is not None and e.obj["metadata"].get("uid") != uid):
            return None
        return copy.deepcopy(e.obj)

    def _namespace_active(self, ns: str) -> bool:
        e = self.srv.store.get(NAMESPACES, "", ns)
        return e is not None and not e.obj["metadata"].get("deletionTimestamp")

    def _create(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.srv.seed(obj)

    # ------------------------------------------------------------------ events
    def event(self, obj: Mapping[str, Any], reason: str, message: str, *, type_: str = "Normal",
              component: str = "kubelet", field_path: str | None = None) -> None:
        """A core/v1 Event about `obj` (repeated ones count up, as the event recorder does)."""
        md = obj["metadata"]
        ns = md.get("namespace") or "default"
        if not self._namespace_active(ns):
            return
        key = (md.get("uid", ""), reason, message)
        ts = _now()
        name = self._event_names.get(key)
        if name is not None:
            cur = self._get(EVENTS, ns, name)
            if cur is not None:
                cur["count"] = int(cur.get("count") or 1) + 1
                cur["lastTimestamp"] = ts
                self._put(EVENTS, cur)
                return
        name = f"{md['name']}.{time.time_ns():x}"
        self._event_names[key] = name
        ref: dict[str, Any] = {"kind": obj.get("kind"), "namespace": ns, "name": md["name"], "uid": md.get("uid"),
                               "apiVersion": obj.get("apiVersion"), "resourceVersion": md.get("resourceVersion")}
        if field_path:
            ref["fieldPath"] = field_path
        source: dict[str, Any] = {"component": component}
        if component == "kubelet":
            source["host"] = self.srv.node_name
        with contextlib.suppress(ValueError):
            self._create({"apiVersion": "v1", "kind": "Event",
                          "metadata": {"name": name, "namespace": ns},
                          "involvedObject": ref, "reason": reason, "message": message, "source": source,
                          "firstTimestamp": ts, "lastTimestamp": ts, "count": 1, "type": type_,
                          "eventTime": None, "reportingComponent": component,
                          "reportingInstance": self.srv.node_name if component == "kubelet" else ""})

    # ------------------------------------------------------------------ store events (any thread, under the lock)
    def on_store_event(self, ev: Event) -> None:
        if ev.res == PODS:
            md = ev.entry.obj["metadata"]
            key = (ev.entry.namespace, ev.entry.name)
            if ev.type == "DELETED":
                uid = md.get("uid")
                b = self.backends.get(key)
                if b is not None and b[0] == uid:
                    del self.backends[key]
                    self._thread(functools.partial(self._stop_backend, b[1]), f"stop-backend-{key[1]}")
                s = self.starting.get(key)
                if s is not None and s[0] == uid:
                    del self.starting[key]
                for pid in self.ephemeral_pids.pop((key[0], key[1], uid), set()):
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
                if self.srv._local_dir is not None:
                    self._thread(functools.partial(remove_roots, os.path.join(self.srv._local_dir, "roots"),
                                                   f"{key[0]}_{key[1]}_{uid[:8]}_"), f"remove-roots-{key[1]}")
            for ref in md.get("ownerReferences") or []:
                if ref.get("kind") == "StatefulSet" and ref.get("controller") and ref.get("uid") in self.managed:
                    self.request_reconcile(ev.entry.namespace, ref["name"])
        elif ev.res == STS and ev.type == "DELETED":
            self.managed.discard(ev.entry.obj["metadata"].get("uid", ""))
        elif ev.res == PVCS and ev.type == "DELETED":
            self._soon(self._release_volume, ev.entry.obj)

    # ------------------------------------------------------------------ API writes (loop thread, under the lock)
    def after_api_write(self, plural: str, entry: Entry, created: bool, sub: str | None) -> None:
        if plural == "pods" and created:
            md = entry.obj["metadata"]
            self._spawn(self._kubelet(entry.namespace, entry.name, md["uid"]))
        elif plural == "jobs" and created:
            md = entry.obj["metadata"]
            self.jobs.job_created(entry.namespace, entry.name, md["uid"])
        elif plural == "pods" and sub == "ephemeralcontainers":
            self._spawn(self._ephemerals(entry.namespace, entry.name, entry.obj["metadata"]["uid"]))
        elif plural == "statefulsets" and sub != "status":
            self.managed.add(entry.obj["metadata"]["uid"])
            self.request_reconcile(entry.namespace, entry.name)

    # ------------------------------------------------------------------ StatefulSet controller
    def request_reconcile(self, ns: str, name: str) -> None:
        if (ns, name) in self._pending_sts:
            return
        self._pending_sts.add((ns, name))
        self._soon(self._reconcile_soon, ns, name)

    def _reconcile_soon(self, ns: str, name: str) -> None:
        with self.lock:
            self._pending_sts.discard((ns, name))
            try:
                self.reconcile(ns, name)
            except Exception as exc:
                self.errors.append(traceback.format_exc())
                self.srv.record_bug(f"the StatefulSet controller (reconciling {ns}/{name})", exc)

    def reconcile(self, ns: str, name: str) -> None:
        st = self.srv.store
        e = st.get(STS, ns, name)
        if e is None or e.obj["metadata"].get("uid") not in self.managed:
            return
        sts = e.obj
        smd = sts["metadata"]
        if smd.get("deletionTimestamp") or not self._namespace_active(ns):
            return
        spec = sts.get("spec") or {}
        replicas = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        parallel = spec.get("podManagementPolicy") == "Parallel"
        strategy = spec.get("updateStrategy") or {}
        partition = int(((strategy.get("rollingUpdate") or {}).get("partition")) or 0)
        rev = f"{name}-{template_hash(spec.get('template') or {})}"
        old_status = sts.get("status") or {}
        cur_rev = old_status.get("currentRevision") or rev
        uid = smd["uid"]
        pat = re.compile(re.escape(name) + r"-(0|[1-9]\d*)")
        pods: dict[int, dict[str, Any]] = {}
        bucket = st.data.get(PODS, {})
        for pe in list(bucket.values()):
            if pe.namespace != ns:
                continue
            m = pat.fullmatch(pe.name)
            if m and any(r.get("uid") == uid for r in pe.obj["metadata"].get("ownerReferences") or []):
                pods[int(m.group(1))] = pe.obj

        def pod_rev(p: Mapping[str, Any]) -> str:
            return str((p["metadata"].get("labels") or {}).get("controller-revision-hash") or cur_rev)

        # scale down: the highest ordinal first (OrderedReady: one at a time)
        extra = sorted((i for i in pods if i >= replicas), reverse=True)
        for i in extra[: None if parallel else 1]:
            self._delete_pod(sts, pods.pop(i))
        if not extra:
            # create the missing ones (OrderedReady: each after the ones before it are Ready)
            for i in range(replicas):
                if i in pods:
                    if not parallel and not _is_ready(pods[i]):
                        break
                    continue
                pods[i] = self._create_pod(sts, i, rev)
                if not parallel:
                    break
            # rolling update: with every replica there and Ready, replace the highest outdated one
            if strategy.get("type", "RollingUpdate") == "RollingUpdate" and len(pods) == replicas and all(
                    _is_ready(p) for p in pods.values()):
                outdated = [i for i, p in pods.items() if i >= partition and pod_rev(p) != rev]
                if outdated:
                    self._delete_pod(sts, pods.pop(max(outdated)))
        # status
        ready = sum(1 for p in pods.values() if _is_ready(p))
        updated = sum(1 for p in pods.values() if pod_rev(p) == rev)
        current = sum(1 for p in pods.values() if pod_rev(p) == cur_rev)
        if updated == replicas and ready == replicas and len(pods) == replicas:
            cur_rev, current = rev, updated
        status: dict[str, Any] = {"observedGeneration": smd.get("generation", 1), "replicas": len(pods)}
        for k, v in (("readyReplicas", ready), ("currentReplicas", current), ("updatedReplicas", updated)):
            if v:
                status[k] = v
        status.update(currentRevision=cur_rev, updateRevision=rev, collisionCount=0, availableReplicas=ready)
        cur = st.get(STS, ns, name)
        if cur is not None and (cur.obj.get("status") or {}) != status:
            obj = copy.deepcopy(cur.obj)
            obj["status"] = status
            self._put(STS, obj)

    def _delete_pod(self, sts: Mapping[str, Any], pod: Mapping[str, Any]) -> None:
        md = pod["metadata"]
        with contextlib.suppress(Exception):
            self.srv._delete(self.srv.types[PODS], md["namespace"], md["name"], {}, dry_run=False)
            self.event(sts, "SuccessfulDelete", f"delete Pod {md['name']} in StatefulSet "
                       f"{sts['metadata']['name']} successful", component="statefulset-controller")

    def _create_pod(self, sts: Mapping[str, Any], i: int, rev: str) -> dict[str, Any]:
        smd, spec = sts["metadata"], sts.get("spec") or {}
        ns, name = smd["namespace"], smd["name"]
        pod_name = f"{name}-{i}"
        tmpl = copy.deepcopy(spec.get("template") or {})
        tmd = tmpl.get("metadata") or {}
        pspec = tmpl.get("spec") or {}
        volumes = [v for v in pspec.get("volumes") or []]
        selector = ((spec.get("selector") or {}).get("matchLabels")) or {}
        for vct in spec.get("volumeClaimTemplates") or []:
            vname = (vct.get("metadata") or {}).get("name", "")
            claim = f"{vname}-{pod_name}"
            if self.srv.store.get(PVCS, ns, claim) is None:
                self._create_claim(sts, vct, claim, selector)
            volumes = [v for v in volumes if v.get("name") != vname]
            volumes.append({"name": vname, "persistentVolumeClaim": {"claimName": claim}})
        if volumes:
            pspec["volumes"] = volumes
        pspec.setdefault("restartPolicy", "Always")
        pspec.setdefault("terminationGracePeriodSeconds", 30)
        pspec.setdefault("dnsPolicy", "ClusterFirst")
        pspec.setdefault("schedulerName", "default-scheduler")
        pspec.setdefault("serviceAccountName", "default")
        pspec.setdefault("securityContext", {})
        pspec["hostname"] = pod_name
        if spec.get("serviceName"):
            pspec["subdomain"] = spec["serviceName"]
        for c in pspec.get("containers") or []:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("imagePullPolicy", "Always" if str(c.get("image", "")).endswith(":latest") else
                         "IfNotPresent")
            c.setdefault("resources", {})
        labels = {**(tmd.get("labels") or {}), "apps.kubernetes.io/pod-index": str(i),
                  "controller-revision-hash": rev, "statefulset.kubernetes.io/pod-name": pod_name}
        md: dict[str, Any] = {"name": pod_name, "namespace": ns, "labels": labels,
                              "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                                                   "uid": smd["uid"], "controller": True,
                                                   "blockOwnerDeletion": True}]}
        if tmd.get("annotations"):
            md["annotations"] = dict(tmd["annotations"])
        pod = self._create({"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": pspec,
                            "status": {"phase": "Pending", "qosClass": _qos(pspec.get("containers") or [])}})
        self.event(sts, "SuccessfulCreate", f"create Pod {pod_name} in StatefulSet {name} successful",
                   component="statefulset-controller")
        self._spawn(self._kubelet(ns, pod_name, pod["metadata"]["uid"]))
        return pod

    def _create_claim(self, sts: Mapping[str, Any], vct: Mapping[str, Any], claim: str,
                      selector: Mapping[str, str]) -> None:
        smd, spec = sts["metadata"], sts.get("spec") or {}
        vmd = vct.get("metadata") or {}
        md: dict[str, Any] = {"name": claim, "namespace": smd["namespace"],
                              "labels": {**(vmd.get("labels") or {}), **selector},
                              "finalizers": ["kubernetes.io/pvc-protection"]}
        if vmd.get("annotations"):
            md["annotations"] = dict(vmd["annotations"])
        policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        if policy.get("whenDeleted") == "Delete":
            md["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": smd["name"],
                                      "uid": smd["uid"], "controller": True, "blockOwnerDeletion": True}]
        cspec = copy.deepcopy(dict(vct.get("spec") or {}))
        cspec.setdefault("volumeMode", "Filesystem")
        if not cspec.get("storageClassName"):
            default = self._default_class()
            if default is not None:
                cspec["storageClassName"] = default["metadata"]["name"]
        pvc = self._create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": md, "spec": cspec,
                            "status": {"phase": "Pending"}})
        cls = self._get(STORAGECLASSES, "", cspec["storageClassName"]) if cspec.get("storageClassName") else None
        if cls is not None and cls.get("volumeBindingMode") == "WaitForFirstConsumer":
            self.event(pvc, "WaitForFirstConsumer", "waiting for first consumer to be created before binding",
                       component="persistentvolume-controller")
        self.event(sts, "SuccessfulCreate", f"create Claim {claim} Pod {claim.split('-', 1)[1]} in StatefulSet "
                   f"{smd['name']} success", component="statefulset-controller")

    # ------------------------------------------------------------------ volumes
    def _default_class(self) -> dict[str, Any] | None:
        for e in self.srv.store.sorted_entries(STORAGECLASSES):
            if (e.obj["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true":
                return e.obj
        return None

    def _claims_of(self, pod: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any] | None]]:
        """Each claim the pod mounts, with the claim object (None: it does not exist)."""
        ns = pod["metadata"]["namespace"]
        for v in (pod.get("spec") or {}).get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                yield claim, self._get(PVCS, ns, claim)

    def _bind_claims(self, pod: Mapping[str, Any]) -> str | None:
        """Bind (provisioning when needed) every claim of the pod; None when all are bound, else why not."""
        for claim, pvc in self._claims_of(pod):
            if pvc is None:
                return _claim_not_found(claim)
            if pvc["metadata"].get("deletionTimestamp"):
                return f'0/1 nodes are available: persistentvolumeclaim "{claim}" is being deleted. ' \
                       "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
            if (pvc.get("status") or {}).get("phase") == "Bound":
                continue
            if not self._bind_claim(pvc):
                return UNBOUND
        return None

    def _bind_claim(self, pvc: dict[str, Any]) -> bool:
        spec = pvc.setdefault("spec", {})
        md = pvc["metadata"]
        pv: dict[str, Any] | None
        if spec.get("volumeName"):
            pv = self._get(PVS, "", spec["volumeName"])
            if pv is None:
                return False
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            if ref and (ref.get("name") != md["name"] or ref.get("namespace") != md["namespace"]
                        or (ref.get("uid") and ref["uid"] != md["uid"])):
                return False
        else:
            if not spec.get("storageClassName"):
                default = self._default_class()
                if default is None:
                    return False
                spec["storageClassName"] = default["metadata"]["name"]  # retroactive default class
            cls = self._get(STORAGECLASSES, "", spec["storageClassName"])
            if cls is None:
                return False
            ds = spec.get("dataSource") or spec.get("dataSourceRef") or {}
            if ds.get("kind") == "VolumeSnapshot":
                snap = self._get(SNAPSHOTS, md["namespace"], ds.get("name", "")) if SNAPSHOTS in self.srv.types \
                    else None
                if snap is None or not (snap.get("status") or {}).get("readyToUse"):
                    return False
            size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            if cls.get("provisioner") == LOCAL_PROVISIONER:
                return self._provision_local(pvc, cls, size)
            pv = {"apiVersion": "v1", "kind": "PersistentVolume",
                  "metadata": {"name": f"pvc-{md['uid']}", "finalizers": ["kubernetes.io/pv-protection"],
                               "annotations": {"pv.kubernetes.io/provisioned-by": cls.get("provisioner", "")}},
                  "spec": {"accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                           "capacity": {"storage": size},
                           "csi": {"driver": cls.get("provisioner", ""), "fsType": "ext4",
                                   "volumeHandle": f"vol-{uuid.uuid4().hex[:17]}"},
                           "persistentVolumeReclaimPolicy": cls.get("reclaimPolicy", "Delete"),
                           "storageClassName": spec["storageClassName"],
                           "volumeMode": spec.get("volumeMode", "Filesystem")},
                  "status": {"phase": "Pending"}}
            pv = self._create(pv)
            self.event(pvc, "ProvisioningSucceeded", f"Successfully provisioned volume {pv['metadata']['name']}",
                       component=f"{cls.get('provisioner', '')}_loopback")
            md.setdefault("annotations", {}).update({
                "volume.kubernetes.io/storage-provisioner": cls.get("provisioner", ""),
                "volume.beta.kubernetes.io/storage-provisioner": cls.get("provisioner", "")})
        pv["spec"]["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": md["name"],
                                  "namespace": md["namespace"], "uid": md["uid"],
                                  "resourceVersion": md.get("resourceVersion")}
        pv["status"] = {"phase": "Bound"}
        self._put(PVS, pv)
        spec["volumeName"] = pv["metadata"]["name"]
        md.setdefault("annotations", {}).update({"pv.kubernetes.io/bind-completed": "yes",
                                                 "pv.kubernetes.io/bound-by-controller": "yes"})
        pvc["status"] = {"phase": "Bound", "accessModes": pv["spec"].get("accessModes"),
                         "capacity": dict(pv["spec"].get("capacity") or {})}
        self._put(PVCS, pvc)
        return True

    def _provision_local(self, pvc: dict[str, Any], cls: Mapping[str, Any], size: str) -> bool:
        """The local-path provisioner: a hostPath volume, a new directory on the node."""
        md, spec = pvc["metadata"], pvc["spec"]
        name = f"pvc-{md['uid']}"
        path = os.path.join(self.srv.local_dir(), "volumes", f"{name}_{md['namespace']}_{md['name']}")
        os.makedirs(path, mode=0o777, exist_ok=True)
        os.chmod(path, 0o777)
        pv = self._create({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "finalizers": ["kubernetes.io/pv-protection"],
                         "annotations": {"pv.kubernetes.io/provisioned-by": LOCAL_PROVISIONER,
                                         "local.path.provisioner/selected-node": self.srv.node_name}},
            "spec": {"accessModes": spec.get("accessModes") or ["ReadWriteOnce"], "capacity": {"storage": size},
                     "hostPath": {"path": path, "type": "DirectoryOrCreate"},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [{
                         "key": "kubernetes.io/hostname", "operator": "In", "values": [self.srv.node_name]}]}]}},
                     "persistentVolumeReclaimPolicy": cls.get("reclaimPolicy", "Delete"),
                     "storageClassName": spec["storageClassName"],
                     "volumeMode": spec.get("volumeMode", "Filesystem"),
                     "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "name": md["name"],
                                  "namespace": md["namespace"], "uid": md["uid"],
                                  "resourceVersion": md.get("resourceVersion")}},
            "status": {"phase": "Bound"}})
        self.event(pvc, "ProvisioningSucceeded", f"Successfully provisioned volume {name}",
                   component=f"{LOCAL_PROVISIONER}_{self.srv.node_name}")
        md.setdefault("annotations", {}).update({
            "volume.kubernetes.io/storage-provisioner": LOCAL_PROVISIONER,
            "volume.beta.kubernetes.io/storage-provisioner": LOCAL_PROVISIONER,
            "volume.kubernetes.io/selected-node": self.srv.node_name,
            "pv.kubernetes.io/bind-completed": "yes", "pv.kubernetes.io/bound-by-controller": "yes"})
        spec["volumeName"] = pv["metadata"]["name"]
        pvc["status"] = {"phase": "Bound", "accessModes": pv["spec"].get("accessModes"),
                         "capacity": {"storage": size}}
        self._put(PVCS, pvc)
        return True

    def _release_volume(self, pvc: Mapping[str, Any]) -> None:
        name = (pvc.get("spec") or {}).get("volumeName")
        if not name:
            return
        with self.lock:
            e = self.srv.store.get(PVS, "", name)
            if e is None:
                return
            ref = (e.obj.get("spec") or {}).get("claimRef") or {}
            if ref.get("uid") != pvc["metadata"].get("uid"):
                return
            if (e.obj.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Retain") == "Delete":
                self.srv.store.remove(PVS, e, self.srv.store.next_rv())
                path = ((e.obj.get("spec") or {}).get("hostPath") or {}).get("path")
                local = self.srv._local_dir
                if path and local and os.path.dirname(os.path.realpath(path)) == os.path.join(local, "volumes"):
                    shutil.rmtree(path, ignore_errors=True)  # the local-path provisioner's clean-up
            else:
                pv = copy.deepcopy(e.obj)
                pv["status"] = {"phase": "Released"}
                self._put(PVS, pv)

    # ------------------------------------------------------------------ kubelet
    async def _kubelet(self, ns: str, name: str, uid: str) -> None:
        srv = self.srv
        loop = asyncio.get_running_loop()
        # scheduling
        with self.lock:
            pod = self._get(PODS, ns, name, uid)
            if pod is None:
                return
            scheduled = bool((pod.get("spec") or {}).get("nodeName"))
            if not scheduled:
                why = self._unschedulable_reason(pod)
                if why:
                    self._set_unschedulable(pod, why)
        if scheduled:
            with self.lock:
                pod = self._get(PODS, ns, name, uid)
                if pod is None:
                    return
                self._schedule(pod)
        else:
            await asyncio.sleep(srv.pod_schedule_delay)
            while True:
                with self.lock:
                    pod = self._get(PODS, ns, name, uid)
                    if pod is None:
                        return
                    why = self._bind_claims(pod)
                    if why is None:
                        pod = self._get(PODS, ns, name, uid)
                        assert pod is not None
                        self._schedule(pod)
                        break
                    self._set_unschedulable(pod, why)
                await asyncio.sleep(max(srv.pod_schedule_delay, 0.25))
        # containers start
        await asyncio.sleep(srv.pod_start_delay)
        restarts = 0
        while True:
            with self.lock:
                pod = self._get(PODS, ns, name, uid)
                if pod is None:
                    return
                self._set_running(pod, restarts)
                rule = next((r for r in self.rules if r.matches(ns, name)), None)
                done: asyncio.Future[str | None] = loop.create_future()
                if rule is not None:
                    self.starting[(ns, name)] = (uid, rule)
                    self._start_backend(rule, pod, done)
                else:
                    done.set_result(None)
            ready_at = loop.time() + srv.pod_ready_delay
            failure = await done
            if failure is None:
                break
            restarts += 1
            with self.lock:
                pod = self._get(PODS, ns, name, uid)
                if pod is None:
                    return
                self._set_crashed(pod, restarts, failure)
            await asyncio.sleep(min(max(srv.pod_start_delay, 0.1) * 2 ** restarts, 5.0))
        await asyncio.sleep(max(0.0, ready_at - loop.time()))
        with self.lock:
            pod = self._get(PODS, ns, name, uid)
            if pod is None:
                return
            self._set_ready(pod)

    def _unschedulable_reason(self, pod: Mapping[str, Any]) -> str | None:
        """The scheduler's first pass: a missing claim, or an unbound one whose class binds Immediately
        (a WaitForFirstConsumer claim is provisioned by the scheduling itself)."""
        for claim, pvc in self._claims_of(pod):
            if pvc is None:
                return _claim_not_found(claim)
            if (pvc.get("status") or {}).get("phase") == "Bound":
                continue
            cls_name = (pvc.get("spec") or {}).get("storageClassName")
            cls = self._get(STORAGECLASSES, "", cls_name) if cls_name else self._default_class()
            if cls is None or cls.get("volumeBindingMode") != "WaitForFirstConsumer":
                return UNBOUND
        return None

    def _set_unschedulable(self, pod: dict[str, Any], why: str) -> None:
        status = pod.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        old = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if old is None or old.get("message") != why:
            status["conditions"] = [*conds, _cond("PodScheduled", "False", "Unschedulable", why)]
            status["phase"] = "Pending"
            self._put(PODS, pod)
        self.event(pod, "FailedScheduling", why, type_="Warning", component="default-scheduler")

    def _schedule(self, pod: dict[str, Any]) -> None:
        """Bound to the node (unless it named one itself): containers being created."""
        md, spec = pod["metadata"], pod.setdefault("spec", {})
        assigned = not spec.get("nodeName")
        if assigned:
            spec["nodeName"] = self.srv.node_name
        containers = spec.get("containers") or []
        names = " ".join(c["name"] for c in containers)
        pod["status"] = {
            "phase": "Pending", "hostIP": "10.0.0.10", "hostIPs": [{"ip": "10.0.0.10"}], "startTime": _now(),
            "qosClass": (pod.get("status") or {}).get("qosClass") or _qos(containers),
            "conditions": [_cond("PodReadyToStartContainers", "False"), _cond("Initialized", "True"),
                           _cond("Ready", "False", "ContainersNotReady", f"containers with unready status: [{names}]"),
                           _cond("ContainersReady", "False", "ContainersNotReady",
                                 f"containers with unready status: [{names}]"),
                           _cond("PodScheduled", "True")],
            "containerStatuses": [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                                   "started": False, "restartCount": 0, "lastState": {},
                                   "state": {"waiting": {"reason": "ContainerCreating"}}} for c in containers],
        }
        self._put(PODS, pod)
        if assigned:
            self.event(pod, "Scheduled", f"Successfully assigned {md['namespace']}/{md['name']} to "
                       f"{spec['nodeName']}", component="default-scheduler")

    def _set_running(self, pod: dict[str, Any], restarts: int) -> None:
        status = pod.setdefault("status", {})
        if not status.get("podIP"):
            self._ip += 1
            ip = f"10.244.{self._ip // 250 % 250}.{self._ip % 250 + 2}"
            status["podIP"], status["podIPs"] = ip, [{"ip": ip}]
        status["phase"] = "Running"
        ts = _now()
        for c in status.get("conditions") or []:
            if c["type"] == "PodReadyToStartContainers" and c["status"] != "True":
                c.update(status="True", lastTransitionTime=ts)
        by_name = {cs["name"]: cs for cs in status.get("containerStatuses") or []}
        for c in (pod.get("spec") or {}).get("containers") or []:
            cs = by_name.get(c["name"])
            if cs is None:
                continue
            cs.update(state={"running": {"startedAt": ts}}, started=True, ready=False, restartCount=restarts,
                      imageID=f"{c.get('image', '')}@sha256:{hashlib.sha256(c.get('image', '').encode()).hexdigest()}",
                      containerID=f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}")
            fp = f"spec.containers{{{c['name']}}}"
            if restarts == 0:
                self.event(pod, "Pulled", f'Container image "{c.get("image", "")}" already present on machine',
                           field_path=fp)
            self.event(pod, "Created", f"Created container {c['name']}", field_path=fp)
            self.event(pod, "Started", f"Started container {c['name']}", field_path=fp)
        self._put(PODS, pod)

    def _set_crashed(self, pod: dict[str, Any], restarts: int, failure: str) -> None:
        status = pod.setdefault("status", {})
        for cs in status.get("containerStatuses") or []:
            cs.update(ready=False, started=False, restartCount=restarts,
                      lastState={"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": _now()}},
                      state={"waiting": {"reason": "CrashLoopBackOff",
                                         "message": f"back-off restarting failed container {cs['name']} in pod "
                                                    f"{pod['metadata']['name']}"}})
            self.event(pod, "BackOff", f"Back-off restarting failed container {cs['name']} in pod "
                       f"{pod['metadata']['name']}: {failure}", type_="Warning",
                       field_path=f"spec.containers{{{cs['name']}}}")
        self._put(PODS, pod)

    def _set_ready(self, pod: dict[str, Any]) -> None:
        status = pod.setdefault("status", {})
        ts = _now()
        for c in status.get("conditions") or []:
            if c["type"] in ("Ready", "ContainersReady"):
                c.update(status="True", lastTransitionTime=ts)
                c.pop("reason", None)
                c.pop("message", None)
        for cs in status.get("containerStatuses") or []:
            cs["ready"] = True
        self._put(PODS, pod)

    # ------------------------------------------------------------------ pod backends
    def _start_backend(self, rule: BackendRule, pod: dict[str, Any], done: asyncio.Future[str | None]) -> None:
        ns, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"]["uid"]
        loop = done.get_loop()

        def report(failure: str | None) -> None:
            def set_result() -> None:
                if not done.done():
                    done.set_result(failure)

            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(set_result)

        def run() -> None:
            try:
                backend = rule.start(pod)
            except Exception as exc:
                self.errors.append(traceback.format_exc())
                with self.lock:
                    if self.starting.get((ns, name), ("",))[0] == uid:
                        del self.starting[(ns, name)]
                report(f"{type(exc).__name__}: {exc}")
                return
            with self.lock:
                current = self._get(PODS, ns, name, uid) is not None and not self.stopping
                if self.starting.get((ns, name), ("",))[0] == uid:
                    del self.starting[(ns, name)]
                if current:
                    rule.started += 1
                    self.backends[(ns, name)] = (uid, backend)
            if not current:
                self._stop_backend(backend)  # the pod went away (or the server stops) while it started
            report(None)

        self._thread(run, f"start-backend-{name}")

    def exec_override(self, ns: str, name: str, uid: str) -> tuple[dict[str, str], str | None] | None:
        """The env/cwd a backend gives exec into this pod (under the lock)."""
        b = self.backends.get((ns, name))
        if b is not None and b[0] == uid:
            return dict(b[1].env), b[1].cwd
        s = self.starting.get((ns, name))
        if s is not None and s[0] == uid and s[1].starting_env is not None:
            return dict(s[1].starting_env), None
        return None

    # ------------------------------------------------------------------ ephemeral containers (kubectl debug)
    async def _ephemerals(self, ns: str, name: str, uid: str) -> None:
        """Start the pod's ephemeral containers that have no status yet: waiting (the image is pulled)
        for `ephemeral_start_delay`, then their command runs as a real process in the container's root
        (containers.py), running until it exits (terminated, with its exit code)."""
        srv = self.srv
        while True:  # a kubelet starts them in a running pod only
            with self.lock:
                pod = self._get(PODS, ns, name, uid)
                if pod is None:
                    return
                if (pod.get("status") or {}).get("phase") == "Running":
                    break
            await asyncio.sleep(0.1)
        with self.lock:
            pod = self._get(PODS, ns, name, uid)
            if pod is None:
                return
            status = pod.setdefault("status", {})
            statuses = status.setdefault("ephemeralContainerStatuses", [])
            known = {s.get("name") for s in statuses}
            new = [c for c in (pod.get("spec") or {}).get("ephemeralContainers") or [] if c["name"] not in known]
            if not new:
                return
            for c in new:
                statuses.append({"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False,
                                 "restartCount": 0, "lastState": {},
                                 "state": {"waiting": {"reason": "ContainerCreating"}}})
                self.event(pod, "Pulling", f'Pulling image "{c.get("image", "")}"',
                           field_path=f"spec.ephemeralContainers{{{c['name']}}}")
            self._put(PODS, pod)
        await asyncio.sleep(srv.ephemeral_start_delay)
        for c in new:
            self._spawn(self._run_ephemeral(ns, name, uid, c))

    def _ephemeral_state(self, ns: str, name: str, uid: str, cname: str, state: dict[str, Any],
                         event: tuple[str, str] | None = None) -> dict[str, Any] | None:
        with self.lock:
            pod = self._get(PODS, ns, name, uid)
            if pod is None:
                return None
            for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []:
                if s.get("name") == cname:
                    s["state"] = state
                    if "running" in state:
                        s["imageID"] = f"{s.get('image', '')}@sha256:" + hashlib.sha256(
                            str(s.get("image", "")).encode()).hexdigest()
                        s["containerID"] = f"containerd://{uuid.uuid4().hex}{uuid.uuid4().hex}"
            self._put(PODS, pod)
            if event is not None:
                self.event(pod, event[0], event[1], field_path=f"spec.ephemeralContainers{{{cname}}}",
                           type_="Warning" if event[0] == "Failed" else "Normal")
            return pod

    async def _run_ephemeral(self, ns: str, name: str, uid: str, c: dict[str, Any]) -> None:
        from .execws import _container_env

        srv = self.srv
        cname = c["name"]
        argv = [*(c.get("command") or ["sh"]), *(c.get("args") or [])]
        with self.lock:
            pod = self._get(PODS, ns, name, uid)
            if pod is None:
                return
            env = {"PATH": BASE_PATH, "HOSTNAME": name, **_container_env(srv, pod, c)}
            root = container_root(srv, pod, c)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, env=env, start_new_session=True,
                preexec_fn=preexec(root, c.get("workingDir")))
        except (FileNotFoundError, PermissionError) as err:
            self._ephemeral_state(ns, name, uid, cname, {"terminated": {
                "exitCode": 128, "reason": "StartError", "startedAt": "1970-01-01T00:00:00Z", "finishedAt": _now(),
                "message": f'failed to create containerd task: exec: "{argv[0]}": {err.strerror}'}},
                ("Failed", f"Error: failed to start container {cname!r}: {err.strerror}"))
            return
        key = (ns, name, uid)
        with self.lock:
            alive = self._get(PODS, ns, name, uid) is not None and not self.stopping
            if alive:
                self.ephemeral_pids.setdefault(key, set()).add(proc.pid)
                srv.exec_processes.add(proc.pid)
        if not alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return
        started = _now()
        self._ephemeral_state(ns, name, uid, cname, {"running": {"startedAt": started}},
                              ("Started", f"Started container {cname}"))
        code = await proc.wait()
        with self.lock:
            self.ephemeral_pids.get(key, set()).discard(proc.pid)
            srv.exec_processes.discard(proc.pid)
        self._ephemeral_state(ns, name, uid, cname, {"terminated": {
            "exitCode": code, "reason": "Completed" if code == 0 else "Error", "startedAt": started,
            "finishedAt": _now()}})
