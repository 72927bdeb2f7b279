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
    srv.stop()                           also stops exec commands still running and every pod backend,
                                         then raises ServerBug if the server had bugs (below)
    srv.requests / clear_requests()      every HTTP request, in order (RequestRecord: method, path, user, status, ...)
    seed.seed_runai(srv) -> SeedInfo     a Run:ai installation (seed.crd_paths(): the CRDs it needs)
    pgbackend.add_postgres_backend(srv) -> PostgresBackend (.current, .server_for(ns, pod))
    pgserver.PgServer()                  a throwaway PostgreSQL 15; fixtures.py: the pytest fixtures
    python -m kubeapi serve              a seeded server until Ctrl-C (__main__.py)

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
- Batch (batch.py): CronJobs and Jobs validated and defaulted as the apiserver does; a Job controller
  runs one pod at a time to success, backoffLimit or activeDeadlineSeconds; `add_pod_runner(ns, regex,
  run)` decides how a Job pod's container ends (`run(pod, timeout) -> (exit code, log)`); GET
  pods/<name>/log serves that log (tailLines, limitBytes). No CronJob controller (nothing runs on a
  schedule).
- RBAC (rbac.py): `add_service_account_token(token, ns, name)` (or add_user(..., rbac=True)) makes a user
  whom the Roles, ClusterRoles and bindings in the store authorize, as the RBAC authorizer does; other
  users keep "allowed unless denied".
- Latency model (latency.py; off by default): `srv.latency = LatencyModel(request_delay=,
  write_delay=, list_throughput=, max_inflight=, queue_length=, queue_timeout=, retry_after=)`
  answers each request no sooner than a real API server would (defaults calibrated to one)
  and, with `max_inflight` seats, queues requests and rejects the overflow with 429 and
  Retry-After as API Priority and Fairness does; counters served/rejected/peak_inflight.
- Pod exec over websocket (v5/v4 channel protocols, `exec_protocols` to serve v4 only: an
  upgrade offering none of them gets the kubelet's bare 403; `exec_no_protocol` upgrades
  without choosing one; the event loop is uvloop's when installed, KUBEAPI_LOOP=asyncio not): the
  command runs locally with the container's resolved env (env, envFrom, secretKeyRef,
  configMapKeyRef, fieldRef); `set_pod_exec(ns, pod, env=, cwd=)` adds env/cwd (it wins over a pod
  backend's). See execws.py for the kubelet behaviours copied (stdin hang, exit codes, the
  refusals below); `exec_stdin_hang_timeout`. The websocket after the handshake is served
  frame by frame (wsrelay.py): a malformed client frame fails the connection with 1002 and is
  noted in `exec_protocol_errors`.

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
- Local volumes and container file systems (containers.py): a StorageClass with provisioner
  rancher.io/local-path provisions hostPath volumes, real directories under `srv.local_dir()`
  (removed with the volume on reclaim Delete, and at stop()); exec into a container that mounts
  one runs chrooted in a private mount namespace with each such volume at its mountPath, so
  real programs (GNU tar) read and write real files; `srv.image_missing[image] = {"tar"}`
  leaves programs out of an image's containers (exec answers 127 as a runtime does).
- Ephemeral containers (kubectl debug): PATCH/PUT pods/<name>/ephemeralcontainers, validated as
  the apiserver does (existing ones immutable, no ports/probes/resources, known volumes); in a
  running pod each new one waits `srv.ephemeral_start_delay` (1 s: the image pull), then its
  command runs as a real process in its own root until it exits (status running, then
  terminated with the exit code); exec with container=<its name> reaches it. kubeapi.thanos: a
  Thanos receive StatefulSet on such storage and a Thanos-like tree, for tests and benchmarks.
- Errors of the controllers and of pod backends' start are kept in `srv.workloads.errors`
  (tracebacks).

Bugs fail the test
An unexpected exception (anything but an ApiError, a Status the server means to answer) in a
request handler, the kubelet or a controller is a bug of the server: a handler's still answers
500, but each is kept with its traceback in `srv.bugs`, and `stop()` raises ServerBug with them,
after stopping everything; so the apiserver fixture fails the test at teardown, instead of a
client's retries hiding the 500. Injected faults, a pod backend whose start fails and a client
that goes away mid-answer are not bugs.

Where it is (server.py is the core; each concern of the API is a mixin of ApiServer)
    server.py     the aiohttp app in its own thread, routing, life cycle, the helpers above
    core.py       what the mixins use of the core and of one another (for the type checker)
    auth.py       users and tokens, deny rules, SelfSubjectAccessReview
    faults.py     injected faults; latency.py: the latency model and APF's 429
    discovery.py  /version, /api, /apis, group versions, OpenAPI v3
    crud.py       get, create, update, patch, delete, subresources, defaults, validation calls
    lists.py      lists, selectors, pagination, Table, deletecollection
    watch.py      watches and streaming lists
    execws.py     pod exec over websocket
    status.py     Status errors (ApiError); request.py: the request record and target
    store.py, resources.py, selectors.py, patch.py, validation.py, protobuf.py: storage, types,
                  selectors, patches, validation and protobuf bodies
    workloads.py  controllers and kubelet; pgbackend.py, pgserver.py: PostgreSQL behind a pod
"""

from .latency import LatencyModel
from .server import ApiError, ApiServer, DenyRule, Fault, RequestRecord, ServerBug

__all__ = ["ApiError", "ApiServer", "DenyRule", "Fault", "LatencyModel", "RequestRecord", "ServerBug"]
