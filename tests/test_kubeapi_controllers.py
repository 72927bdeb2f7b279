"""The loopback API server is as slow and strict as a cluster: StatefulSet controller and kubelet
(pods Pending -> Running -> Ready, events, volumes), pod backends (a real PostgreSQL behind the
database pod), CRDs served only once Established, and the stand-in charts installed by real helm."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubeapi import ApiServer, ServerBug
from kubeapi.pgbackend import add_postgres_backend
from kubeapi.seed import CRD_DIR, backend_chart_values, cluster_chart_values, seed_runai
from kubeapi.workloads import SimpleBackend
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream

from tests.models import as_dict, some

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools" / "bin"
CHARTS = ROOT / "tests" / "charts"
needs_tools = pytest.mark.skipif(not (TOOLS / "helm").exists() or not (TOOLS / "kubectl").exists(),
                                 reason="helm/kubectl not installed (scripts/bootstrap-tests.sh fetches them)")
NS = "default"


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture
def api(kubeconfig: Path) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(str(kubeconfig))  # untyped
    return api


def default_class(srv: ApiServer, binding: str = "WaitForFirstConsumer", reclaim: str = "Delete") -> None:
    srv.seed({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
              "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
              "provisioner": "rancher.io/local-path", "reclaimPolicy": reclaim, "volumeBindingMode": binding})


def sts_body(name: str, replicas: int = 1, *, claim: bool = True, parallel: bool = False,
             env: list[client.V1EnvVar] | None = None, container: str = "app") -> client.V1StatefulSet:
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": name, "tier": "db"}),
        spec=client.V1PodSpec(containers=[client.V1Container(
            name=container, image="registry.example/app:1.0",
            env=env or [client.V1EnvVar(name="MODE", value="test")])]))
    claims = [client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"), spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"})))]
    return client.V1StatefulSet(api_version="apps/v1", kind="StatefulSet", metadata=client.V1ObjectMeta(name=name),
                                spec=client.V1StatefulSetSpec(
                                    replicas=replicas, service_name=f"{name}-hl",
                                    selector=client.V1LabelSelector(match_labels={"app": name}), template=template,
                                    pod_management_policy="Parallel" if parallel else None,
                                    volume_claim_templates=claims if claim else None))


def as_json(model: object) -> Any:
    """A model as the client sends it (for kubectl, or the server's own helpers)."""
    return client.ApiClient().sanitize_for_serialization(model)


def until(cond: Callable[[], Any], timeout: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def cond(pod: client.V1Pod, kind: str) -> str | None:
    return next((c.status for c in some(pod.status).conditions or [] if c.type == kind), None)


def pod_names(core: client.CoreV1Api, ns: str = NS, selector: str | None = None) -> list[str]:
    return sorted(some(some(p.metadata).name) for p in core.list_namespaced_pod(ns, label_selector=selector).items)


def http_get(srv: ApiServer, path: str) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(srv.url + path, headers={"Authorization": "Bearer admin-token"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def exec_status(srv: ApiServer, ns: str, pod: str, container: str = "app") -> tuple[int, dict[str, Any]]:
    """A plain (not upgraded) exec request: the kubelet's refusals come before the upgrade."""
    import urllib.error
    import urllib.parse
    import urllib.request

    q = urllib.parse.urlencode([("command", "true"), ("container", container), ("stdout", "true")])
    req = urllib.request.Request(f"{srv.url}/api/v1/namespaces/{ns}/pods/{pod}/exec?{q}",
                                 headers={"Authorization": "Bearer admin-token"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def run_exec(core: client.CoreV1Api, pod: str, command: list[str], ns: str = NS) -> tuple[int | None, str]:
    ws = stream(core.connect_get_namespaced_pod_exec, pod, ns, command=command, stdout=True, stderr=True,
                stdin=False, tty=False, _preload_content=False)
    ws.run_forever(timeout=20)
    return ws.returncode, ws.read_stdout() + ws.read_stderr()


class PodWatch:
    """Pod states seen through an HTTP watch: (name, phase, node, container state, ready)."""

    def __init__(self, core: client.CoreV1Api, ns: str, selector: str) -> None:
        self.states: list[tuple[str, str, str | None, str, bool]] = []
        self.stopped = False
        self._w = watch.Watch()
        self._t = threading.Thread(target=self._run, args=(core, ns, selector), daemon=True)
        self._t.start()

    def _run(self, core: client.CoreV1Api, ns: str, selector: str) -> None:
        try:
            self._watch(core, ns, selector)
        except Exception:  # the server stops under the watch
            if not self.stopped:
                raise

    def _watch(self, core: client.CoreV1Api, ns: str, selector: str) -> None:
        for ev in self._w.stream(core.list_namespaced_pod, ns, label_selector=selector, timeout_seconds=60):
            p = ev["object"]
            cs = (p.status.container_statuses or [None])[0]
            state = "none" if cs is None else next(k for k in ("running", "waiting", "terminated")
                                                   if getattr(cs.state, k) is not None)
            s = (p.metadata.name, p.status.phase, p.spec.node_name, state, cond(p, "Ready") == "True")
            if not self.states or self.states[-1] != s:
                self.states.append(s)

    def stop(self) -> None:
        self.stopped = True
        self._w.stop()

    def of(self, name: str) -> list[tuple[str, str | None, str, bool]]:
        return [s[1:] for s in self.states if s[0] == name]


def tool(env: dict[str, str], kc: Path, name: str, *args: str, check: bool = True, timeout: float = 120,
         input: str | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(TOOLS / name), "--kubeconfig", str(kc), *args], capture_output=True, text=True,
                       env=env, timeout=timeout, input=input)
    if check:
        assert r.returncode == 0, f"{name} {' '.join(args)}: {r.stdout}\n{r.stderr}"
    return r


# -- defaults --------------------------------------------------------------------------------
def test_default_delays_are_small_but_real() -> None:
    srv = ApiServer()
    for d in (srv.pod_schedule_delay, srv.pod_start_delay, srv.pod_ready_delay, srv.crd_establish_delay):
        assert 0 < d < 1


# -- StatefulSet controller and kubelet ---------------------------------------------------------
def test_statefulset_pods_go_pending_running_ready_in_order(apiserver: ApiServer, api: client.ApiClient) -> None:
    srv = apiserver
    srv.pod_schedule_delay = srv.pod_start_delay = srv.pod_ready_delay = 0.25
    default_class(srv)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    w = PodWatch(core, NS, "app=web")
    t0 = time.monotonic()
    sts = apps.create_namespaced_stateful_set(NS, sts_body("web", replicas=2))
    until(lambda: (some(apps.read_namespaced_stateful_set("web", NS).status).ready_replicas or 0) == 2, what="2 ready")
    elapsed = time.monotonic() - t0
    w.stop()
    assert elapsed >= 2 * 0.75  # OrderedReady: web-1 starts after web-0 is Ready
    assert w.of("web-0") == [("Pending", None, "none", False),
                             ("Pending", srv.node_name, "waiting", False),
                             ("Running", srv.node_name, "running", False),
                             ("Running", srv.node_name, "running", True)]
    assert w.of("web-1")[-1] == ("Running", srv.node_name, "running", True)
    first_web1 = next(i for i, s in enumerate(w.states) if s[0] == "web-1")
    web0_ready = next(i for i, s in enumerate(w.states) if s[0] == "web-0" and s[4])
    assert first_web1 > web0_ready

    pod = core.read_namespaced_pod("web-0", NS)
    meta, spec, status = some(pod.metadata), some(pod.spec), some(pod.status)
    labels = some(meta.labels)
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-0"
    assert labels["app"] == "web" and labels["tier"] == "db"
    assert labels["controller-revision-hash"].startswith("web-")
    ref = some(meta.owner_references)[0]
    assert (ref.kind, ref.name, ref.uid, ref.controller) == ("StatefulSet", "web", some(sts.metadata).uid, True)
    assert spec.hostname == "web-0" and spec.subdomain == "web-hl"
    assert some(spec.containers[0].env)[0].value == "test"
    assert [v.persistent_volume_claim.claim_name for v in some(spec.volumes) if v.persistent_volume_claim] == \
        ["data-web-0"]
    assert all(cond(pod, k) == "True" for k in ("PodScheduled", "Initialized", "ContainersReady", "Ready"))
    assert some(status.container_statuses)[0].ready and status.pod_ip
    pvc = core.read_namespaced_persistent_volume_claim("data-web-0", NS)
    assert some(pvc.status).phase == "Bound" and some(pvc.spec).storage_class_name == "standard"
    assert some(pvc.metadata).labels == {"app": "web"}
    pv_spec = some(core.read_persistent_volume(some(some(pvc.spec).volume_name)).spec)
    # the local-path provisioner's volumes are directories on the node (hostPath), not CSI
    assert some(pv_spec.claim_ref).uid == some(pvc.metadata).uid and os.path.isdir(some(pv_spec.host_path).path)

    st = some(apps.read_namespaced_stateful_set("web", NS).status)
    assert (st.replicas, st.ready_replicas, st.available_replicas, st.current_replicas, st.updated_replicas) == \
        (2, 2, 2, 2, 2)
    assert st.current_revision == st.update_revision == labels["controller-revision-hash"]
    assert st.observed_generation == 1

    events = core.list_namespaced_event(NS, field_selector="involvedObject.kind=Pod,involvedObject.name=web-0")
    assert [e.reason for e in events.items] == ["Scheduled", "Pulled", "Created", "Started"]
    assert some(events.items[0].source).component == "default-scheduler" and events.items[0].involved_object.uid == \
        meta.uid
    sts_events = core.list_namespaced_event(NS, field_selector="involvedObject.kind=StatefulSet")
    assert "create Pod web-1 in StatefulSet web successful" in [e.message for e in sts_events.items]


def test_exec_is_refused_until_the_container_runs(apiserver: ApiServer, api: client.ApiClient) -> None:
    srv = apiserver
    srv.pod_schedule_delay, srv.pod_start_delay = 0.4, 1.0
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_stateful_set(NS, sts_body("web", claim=False))
    until(lambda: srv.get("v1", "Pod", "web-0", NS), what="pod")
    code, body = exec_status(srv, NS, "web-0")
    assert (code, body["message"]) == (400, "pod web-0 does not have a host assigned")
    until(lambda: some(core.read_namespaced_pod("web-0", NS).spec).node_name, what="scheduled")
    status = some(core.read_namespaced_pod("web-0", NS).status)
    assert status.phase == "Pending" and \
        some(some(some(status.container_statuses)[0].state).waiting).reason == "ContainerCreating"
    code, body = exec_status(srv, NS, "web-0")
    assert (code, body["message"]) == (400, 'unable to upgrade connection: container not found ("app")')
    with pytest.raises(ApiException):
        run_exec(core, "web-0", ["true"])
    until(lambda: some(core.read_namespaced_pod("web-0", NS).status).phase == "Running", what="running")
    assert run_exec(core, "web-0", ["sh", "-c", "echo $MODE $HOSTNAME"]) == (0, "test web-0\n")


def test_pod_waits_for_its_volume_and_says_why(apiserver: ApiServer, api: client.ApiClient) -> None:
    srv = apiserver
    srv.pod_schedule_delay = 0.05
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_stateful_set(NS, sts_body("web"))  # no StorageClass at all: the claim cannot bind

    def unschedulable() -> Any:
        events = core.list_namespaced_event(NS, field_selector="involvedObject.name=web-0,reason=FailedScheduling")
        return events.items and (events.items[0].count or 0) >= 2

    until(unschedulable, what="FailedScheduling events")
    pod = core.read_namespaced_pod("web-0", NS)
    sched = next(c for c in some(some(pod.status).conditions) if c.type == "PodScheduled")
    assert (some(pod.status).phase, some(pod.spec).node_name, sched.status, sched.reason) == \
        ("Pending", None, "False", "Unschedulable")
    assert "unbound immediate PersistentVolumeClaims" in some(sched.message)
    assert some(core.read_namespaced_persistent_volume_claim("data-web-0", NS).status).phase == "Pending"
    default_class(srv, binding="Immediate")  # a default class appears: the claim gets it and binds
    srv.wait_pod_ready(NS, "web-0")
    pvc = core.read_namespaced_persistent_volume_claim("data-web-0", NS)
    assert some(pvc.status).phase == "Bound" and some(pvc.spec).storage_class_name == "standard"
    # a pod whose claim does not exist
    core.create_namespaced_pod(NS, client.V1Pod(metadata=client.V1ObjectMeta(name="lonely"), spec=client.V1PodSpec(
        containers=[client.V1Container(name="c", image="x")],
        volumes=[client.V1Volume(name="v", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
            claim_name="nope"))])))
    time.sleep(0.3)
    status = some(core.read_namespaced_pod("lonely", NS).status)
    assert status.phase == "Pending" and 'persistentvolumeclaim "nope" not found' in some(next(
        c.message for c in some(status.conditions) if c.type == "PodScheduled"))


def test_scale_down_up_delete_and_garbage_collection(apiserver: ApiServer, api: client.ApiClient) -> None:
    srv = apiserver
    default_class(srv, reclaim="Delete")
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_stateful_set(NS, sts_body("web", replicas=3, parallel=True))
    until(lambda: (some(apps.read_namespaced_stateful_set("web", NS).status).ready_replicas or 0) == 3,
          what="3 ready")
    scale = apps.patch_namespaced_stateful_set_scale("web", NS, {"spec": {"replicas": 1}})  # as kubectl scale
    assert (scale.kind, some(scale.spec).replicas, some(scale.status).selector) == ("Scale", 1, "app=web")
    until(lambda: pod_names(core, selector="app=web") == ["web-0"], what="scaled down")
    until(lambda: some(apps.read_namespaced_stateful_set("web", NS).status).replicas == 1, what="status")
    assert core.read_namespaced_persistent_volume_claim("data-web-2", NS)  # claims stay (Retain)
    apps.patch_namespaced_stateful_set("web", NS, {"spec": {"replicas": 2}})
    srv.wait_pod_ready(NS, "web-1")
    assert pod_names(core, selector="app=web") == ["web-0", "web-1"]
    with pytest.raises(ApiException) as e:  # claim templates, service name, ... are fixed
        apps.patch_namespaced_stateful_set("web", NS, {"spec": {"serviceName": "other"}})
    assert e.value.status == 422 and "updates to statefulset spec for fields other than 'replicas'" in \
        json.loads(some(e.value.body))["message"]
    apps.delete_namespaced_stateful_set("web", NS)
    until(lambda: pod_names(core, selector="app=web") == [], what="pods collected")
    assert len(core.list_namespaced_persistent_volume_claim(NS).items) == 3
    # a deleted claim gives its volume back: reclaim policy Delete removes it
    pv = some(some(core.read_namespaced_persistent_volume_claim("data-web-0", NS).spec).volume_name)
    core.delete_namespaced_persistent_volume_claim("data-web-0", NS)
    until(lambda: srv.get("v1", "PersistentVolume", pv) is None, what="volume deleted")


def test_deleted_pod_comes_back_and_template_change_rolls(apiserver: ApiServer, api: client.ApiClient,
                                                          kubeconfig: Path, tmp_path: Path) -> None:
    srv = apiserver
    default_class(srv)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_stateful_set(NS, sts_body("web", replicas=2))
    srv.wait_pod_ready(NS, "web-1")
    old = core.read_namespaced_pod("web-0", NS)
    core.delete_namespaced_pod("web-0", NS)
    new = srv.wait_pod_ready(NS, "web-0")
    assert new["metadata"]["uid"] != some(old.metadata).uid
    assert new["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "data-web-0"
    rev1 = some(apps.read_namespaced_stateful_set("web", NS).status).update_revision
    apps.patch_namespaced_stateful_set("web", NS, {"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "registry.example/app:2.0"}]}}}})
    if (TOOLS / "kubectl").exists():
        r = subprocess.run([str(TOOLS / "kubectl"), "--kubeconfig", str(kubeconfig), "--cache-dir",
                            str(tmp_path / "kc"), "rollout", "status", "statefulset/web", "-n", NS, "--timeout=30s"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        # the server defaults rollingUpdate.partition to 0, so kubectl reports a partitioned roll out
        assert "partitioned roll out complete: 2 new pods have been updated" in r.stdout
    def rolled() -> client.V1StatefulSetStatus | None:
        s = some(apps.read_namespaced_stateful_set("web", NS).status)
        return s if s.current_revision == s.update_revision != rev1 and (s.ready_replicas or 0) == 2 else None

    st: client.V1StatefulSetStatus = until(rolled, what="rolled")
    for name in ("web-0", "web-1"):
        pod = core.read_namespaced_pod(name, NS)
        assert some(pod.spec).containers[0].image == "registry.example/app:2.0"
        assert some(some(pod.metadata).labels)["controller-revision-hash"] == st.update_revision


@needs_tools
def test_kubectl_wait_for_ready(apiserver: ApiServer, kubeconfig: Path, tmp_path: Path,
                                tool_env: dict[str, str]) -> None:
    apiserver.pod_ready_delay = 1.0
    tool(tool_env, kubeconfig, "kubectl", "apply", "-n", NS, "-f", "-", input=json.dumps(as_json(sts_body("web", claim=False))))
    until(lambda: apiserver.get("v1", "Pod", "web-0", NS), what="pod")
    t0 = time.monotonic()
    tool(tool_env, kubeconfig, "kubectl", "wait", "--for=condition=Ready", "pod/web-0", "-n", NS, "--timeout=20s")
    assert time.monotonic() - t0 >= 0.5
    out = json.loads(tool(tool_env, kubeconfig, "kubectl", "get", "pod", "web-0", "-n", NS, "-o", "json").stdout)
    assert {c["type"]: c["status"] for c in out["status"]["conditions"]}["Ready"] == "True"


def test_seeded_statefulset_stays_as_seeded(runai_server: ApiServer, api: client.ApiClient) -> None:
    srv = runai_server
    pod = srv.get("v1", "Pod", "runai-backend-postgresql-0", "runai-backend")
    assert pod is not None and pod["status"]["phase"] == "Running"
    time.sleep(0.3)
    assert srv.get("v1", "Pod", "runai-backend-postgresql-0", "runai-backend") == pod
    core = client.CoreV1Api(api)
    core.delete_namespaced_pod("runai-backend-postgresql-0", "runai-backend")
    time.sleep(0.3)  # a seeded StatefulSet is not reconciled until written through HTTP
    assert srv.get("v1", "Pod", "runai-backend-postgresql-0", "runai-backend") is None
    client.AppsV1Api(api).patch_namespaced_stateful_set("runai-backend-postgresql", "runai-backend",
                                                        {"metadata": {"labels": {"touched": "yes"}}})
    srv.wait_pod_ready("runai-backend", "runai-backend-postgresql-0")


# -- pod backends ----------------------------------------------------------------------------
def test_pod_backend_gates_ready_gives_exec_env_and_stops(apiserver: ApiServer, api: client.ApiClient) -> None:
    srv = apiserver
    default_class(srv)
    log: list[str] = []
    started = threading.Event()

    def start(pod: dict[str, Any]) -> SimpleBackend:
        assert threading.current_thread() is not threading.main_thread()
        log.append(f"start {pod['metadata']['name']} {pod['status']['phase']}")
        started.set()
        time.sleep(0.6)  # the real server takes its time
        return SimpleBackend(env={"BACKEND": pod["metadata"]["name"]}, cwd="/tmp",
                             on_stop=lambda: log.append(f"stop {pod['metadata']['name']}"))

    srv.add_pod_backend(NS, r"web-\d+", start, starting_env={"BACKEND": "starting"})
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_stateful_set(NS, sts_body("web", replicas=2, parallel=True))
    assert started.wait(10)
    pod = core.read_namespaced_pod(log[0].split()[1], NS)
    assert some(pod.status).phase == "Running" and cond(pod, "Ready") == "False"
    assert run_exec(core, some(some(pod.metadata).name), ["sh", "-c", "echo $BACKEND"]) == (0, "starting\n")
    srv.wait_pod_ready(NS, "web-0")
    srv.wait_pod_ready(NS, "web-1")
    assert sorted(log) == ["start web-0 Running", "start web-1 Running"]
    assert run_exec(core, "web-1", ["sh", "-c", "echo $BACKEND $PWD"]) == (0, "web-1 /tmp\n")
    be = srv.pod_backend(NS, "web-1")
    assert isinstance(be, SimpleBackend) and be.env == {"BACKEND": "web-1"}
    core.delete_namespaced_pod("web-1", NS)
    until(lambda: "stop web-1" in log, what="backend stopped")
    srv.wait_pod_ready(NS, "web-1")  # re-created by the controller: a new backend
    assert log.count("start web-1 Running") == 2
    srv.stop()
    assert sorted(x for x in log if x.startswith("stop")) == ["stop web-0", "stop web-1", "stop web-1"]


def test_failing_backend_crash_loops_then_recovers(apiserver: ApiServer, api: client.ApiClient) -> None:
    srv = apiserver
    attempts: list[int] = []

    def start(pod: dict[str, Any]) -> SimpleBackend:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("database files are incompatible with server")
        return SimpleBackend()

    srv.add_pod_backend(NS, "web-0", start)
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_stateful_set(NS, sts_body("web", claim=False))

    def backoff() -> Any:
        statuses = some(core.read_namespaced_pod("web-0", NS).status).container_statuses
        waiting = some(statuses[0].state).waiting if statuses else None
        return waiting is not None and waiting.reason == "CrashLoopBackOff"

    until(backoff, what="CrashLoopBackOff")
    code, body = exec_status(srv, NS, "web-0")
    assert (code, body["message"]) == (400, 'unable to upgrade connection: container not found ("app")')
    events = core.list_namespaced_event(NS, field_selector="involvedObject.name=web-0,reason=BackOff").items
    assert events and events[0].type == "Warning" and "database files are incompatible" in some(events[0].message)
    pod = srv.wait_pod_ready(NS, "web-0")
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 2 and len(attempts) == 3


def test_a_bug_in_a_controller_fails_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug of the StatefulSet controller (or the kubelet) is no HTTP answer at all: it would only
    leave pods missing. It fails stop(), as a request handler's does (test_kubeapi_core)."""
    srv = ApiServer().start()

    def planted_bug(ns: str, name: str) -> None:
        raise IndexError(f"planted in the controller for {ns}/{name}")

    monkeypatch.setattr(srv.workloads, "reconcile", planted_bug)
    apps = client.AppsV1Api(config.new_client_from_config(str(srv.write_kubeconfig(tmp_path / "kc"))))
    apps.create_namespaced_stateful_set(NS, sts_body("web", claim=False))
    until(lambda: srv.bugs, what="the controller to run")
    with pytest.raises(ServerBug) as e:
        srv.stop()
    assert f"-- the StatefulSet controller (reconciling {NS}/web)" in str(e.value)
    assert f"IndexError: planted in the controller for {NS}/web" in str(e.value)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_postgres_backend_behind_a_statefulset(apiserver: ApiServer, api: client.ApiClient) -> None:
    srv = apiserver
    default_class(srv)
    pg = add_postgres_backend(srv, NS, r"db-\d+")
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespaced_secret(NS, client.V1Secret(metadata=client.V1ObjectMeta(name="db"),
                                                      string_data={"postgres-password": "pw-1"}))
    env = [client.V1EnvVar(name="POSTGRES_PASSWORD", value_from=client.V1EnvVarSource(
               secret_key_ref=client.V1SecretKeySelector(name="db", key="postgres-password"))),
           client.V1EnvVar(name="POSTGRES_DATABASE", value="backend")]
    apps.create_namespaced_stateful_set(NS, sts_body("db", env=env, container="postgresql"))
    until(lambda: (srv.get("v1", "Pod", "db-0", NS) or {}).get("status", {}).get("phase") == "Running",
          what="running")
    if srv.pod_backend(NS, "db-0") is None:  # still starting: PostgreSQL does not answer yet
        rc, _out = run_exec(core, "db-0", ["pg_isready"])
        assert rc == 2 or srv.pod_backend(NS, "db-0") is not None
    srv.wait_pod_ready(NS, "db-0", timeout=60)
    server = pg.server_for(NS, "db-0")
    assert server is not None and pg.current is server and server.password == "pw-1"
    rc, out = run_exec(core, "db-0", ["pg_isready"])
    assert rc == 0 and "accepting connections" in out
    rc, out = run_exec(core, "db-0", ["sh", "-c", 'PGPASSWORD="$POSTGRES_PASSWORD" psql -U postgres -XAtc '
                                                  '"SELECT datname FROM pg_database ORDER BY 1"'])
    assert (rc, out.split()) == (0, ["backend", "postgres", "template0", "template1"])
    rc, out = run_exec(core, "db-0", ["psql", "-U", "postgres", "-w", "-c", "SELECT 1"])
    assert rc == 2 and "password" in out  # scram-sha-256 on TCP: no password, no entry
    server.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (42)", db="backend")
    # the pod re-created on the same volume finds its data; the server runs again
    core.delete_namespaced_pod("db-0", NS)
    pg.wait_stopped(NS, "db-0")
    assert not server.running
    srv.wait_pod_ready(NS, "db-0", timeout=60)
    again = pg.server_for(NS, "db-0")
    assert again is server and again.psql("SELECT x FROM t", db="backend").strip() == "42"
    # a new volume starts empty
    apps.delete_namespaced_stateful_set("db", NS)
    pg.wait_stopped(NS, "db-0")
    core.delete_namespaced_persistent_volume_claim("data-db-0", NS)
    core.patch_namespaced_secret("db", NS, {"stringData": {"postgres-password": "pw-2"}})
    apps.create_namespaced_stateful_set(NS, sts_body("db", env=env, container="postgresql"))
    srv.wait_pod_ready(NS, "db-0", timeout=60)
    fresh = pg.server_for(NS, "db-0")
    assert fresh is not None and fresh is not server and fresh.password == "pw-2"
    assert fresh.psql("SELECT count(*) FROM pg_tables WHERE tablename = 't'", db="backend").strip() == "0"
    # deleting the namespace stops it (and everything is cleaned up at server stop)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="other")))
    pg2 = add_postgres_backend(srv, "other", r"db-\d+")
    core.create_namespaced_secret("other", client.V1Secret(metadata=client.V1ObjectMeta(name="db"),
                                                           string_data={"postgres-password": "x"}))
    apps.create_namespaced_stateful_set("other", sts_body("db", env=env, container="postgresql"))
    srv.wait_pod_ready("other", "db-0", timeout=60)
    other = pg2.server_for("other", "db-0")
    assert other is not None and other.running
    core.delete_namespace("other")
    pg2.wait_stopped("other", "db-0")
    assert not other.running
    srv.stop()
    assert not fresh.running and fresh.dir is None and server.dir is None


# -- CRDs --------------------------------------------------------------------------------------
def _crd(group: str, plural: str, kind: str) -> client.V1CustomResourceDefinition:
    schema = client.V1JSONSchemaProps(type="object", x_kubernetes_preserve_unknown_fields=True)
    return client.V1CustomResourceDefinition(
        api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition",
        metadata=client.V1ObjectMeta(name=f"{plural}.{group}"),
        spec=client.V1CustomResourceDefinitionSpec(
            group=group, scope="Namespaced",
            names=client.V1CustomResourceDefinitionNames(plural=plural, singular=kind.lower(), kind=kind),
            versions=[client.V1CustomResourceDefinitionVersion(
                name="v1", served=True, storage=True,
                schema=client.V1CustomResourceValidation(open_apiv3_schema=schema))]))


def test_crd_is_served_only_once_established(apiserver: ApiServer, api: client.ApiClient) -> None:
    srv = apiserver
    srv.crd_establish_delay = 0.6
    ext, co = client.ApiextensionsV1Api(api), client.CustomObjectsApi(api)

    def get(path: str) -> int:
        return http_get(srv, path)[0]

    def group_names() -> list[str]:
        return [g.name for g in client.ApisApi(api).get_api_versions().groups]

    def openapi_paths() -> list[str]:
        return list(http_get(srv, "/openapi/v3")[1]["paths"])

    t0 = time.monotonic()
    created = ext.create_custom_resource_definition(_crd("example.com", "gizmos", "Gizmo"))
    conds = {c.type: (c.status, c.reason) for c in some(some(created.status).conditions)}
    assert conds == {"NamesAccepted": ("True", "NoConflicts"), "Established": ("False", "Installing")}
    # a new resource in a group already served: absent from that group's list too
    ext.create_custom_resource_definition(_crd("run.ai", "widgets", "Widget"))
    body = {"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"}}
    assert "example.com" not in group_names()
    assert get("/apis/example.com") == 404 and get("/apis/example.com/v1") == 404
    assert "apis/example.com/v1" not in openapi_paths()
    run_ai = http_get(srv, "/apis/run.ai/v1")[1]
    assert "widgets" not in [r["name"] for r in run_ai["resources"]]
    with pytest.raises(ApiException) as e:
        co.create_namespaced_custom_object("example.com", "v1", NS, "gizmos", body)
    assert e.value.status == 404
    assert get("/apis/example.com/v1/namespaces/default/gizmos") == 404

    def established() -> bool:
        crd = ext.read_custom_resource_definition("gizmos.example.com")
        return any(c.type == "Established" and c.status == "True" for c in some(some(crd.status).conditions))

    until(established, what="Established")
    assert time.monotonic() - t0 >= 0.55
    assert "example.com" in group_names() and get("/apis/example.com/v1") == 200
    assert "apis/example.com/v1" in openapi_paths()
    until(lambda: get("/apis/run.ai/v1/namespaces/default/widgets") == 200, what="widgets served")
    co.create_namespaced_custom_object("example.com", "v1", NS, "gizmos", body)
    # deleting the CRD removes its objects and its discovery entries
    ext.delete_custom_resource_definition("gizmos.example.com")
    assert "example.com" not in group_names() and get("/apis/example.com/v1") == 404
    ext.create_custom_resource_definition(_crd("example.com", "gizmos", "Gizmo"))
    until(established, what="Established again")
    assert as_dict(co.list_namespaced_custom_object("example.com", "v1", NS, "gizmos"))["items"] == []
    # seeding stays instant
    srv.install_crds(as_json(_crd("seeded.example", "things", "Thing")))
    assert get("/apis/seeded.example/v1") == 200


# -- the stand-in charts, installed by real helm ---------------------------------------------------
def test_charts_match_the_seeded_releases(apiserver: ApiServer) -> None:
    info = seed_runai(apiserver, projects=1)
    for release, chart_dir, values in (("runai-backend", "control-plane", backend_chart_values),
                                       ("runai-cluster", "runai-cluster", cluster_chart_values)):
        rel = info.helm_releases[release]
        meta = yaml.safe_load((CHARTS / chart_dir / "Chart.yaml").read_text())
        assert (meta["name"], meta["version"]) == (rel.chart, rel.chart_version)
        assert yaml.safe_load((CHARTS / chart_dir / "values.yaml").read_text()) == values(rel.chart_version)
    crd = yaml.safe_load((CHARTS / "runai-cluster" / "crds" / "runai-2.16.79-runaiconfigs.run.ai.yaml").read_text())
    assert crd == yaml.safe_load((CRD_DIR / "runai-2.16.79-runaiconfigs.run.ai.yaml").read_text())


@needs_tools
def test_control_plane_chart_renders_like_the_seeded_database(apiserver: ApiServer, tmp_path: Path,
                                                               tool_env: dict[str, str]) -> None:
    info = seed_runai(apiserver, projects=1)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(info.helm_releases["runai-backend"].config))
    out = subprocess.run([str(TOOLS / "helm"), "template", "runai-backend", str(CHARTS / "control-plane"),
                          "-n", "runai-backend", "--values", str(values)], capture_output=True, text=True,
                         env=tool_env, check=True).stdout
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}
    seeded = apiserver.get("apps/v1", "StatefulSet", "runai-backend-postgresql", "runai-backend")
    assert seeded is not None
    sts = docs[("StatefulSet", "runai-backend-postgresql")]
    assert sts["spec"]["selector"] == seeded["spec"]["selector"]
    assert sts["metadata"]["labels"] == seeded["metadata"]["labels"]
    assert sts["spec"]["template"]["spec"]["containers"][0]["name"] == "postgresql"
    assert [v["metadata"]["name"] for v in sts["spec"]["volumeClaimTemplates"]] == ["data"]
    secret = docs[("Secret", "runai-backend-postgresql")]
    import base64

    assert base64.b64decode(secret["data"]["postgres-password"]).decode() == info.postgres_password
    # the restored volume's claim, as the tool passes it
    out = subprocess.run([str(TOOLS / "helm"), "template", "runai-backend", str(CHARTS / "control-plane"),
                          "-n", "runai-backend", "--values", str(values), "--set",
                          "postgresql.primary.persistence.existingClaim=data-runai-backend-postgresql-0"],
                         capture_output=True, text=True, env=tool_env, check=True).stdout
    sts = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "StatefulSet")
    assert "volumeClaimTemplates" not in sts["spec"]
    assert sts["spec"]["template"]["spec"]["volumes"] == [
        {"name": "data", "persistentVolumeClaim": {"claimName": "data-runai-backend-postgresql-0"}}]


@needs_tools
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_helm_installs_control_plane_with_a_real_database(apiserver: ApiServer, kubeconfig: Path, tmp_path: Path,
                                                          tool_env: dict[str, str]) -> None:
    srv = apiserver
    srv.pod_schedule_delay = srv.pod_start_delay = 0.3
    default_class(srv)
    pg = add_postgres_backend(srv)
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"postgresql": {"auth": {"postgresPassword": "Pg-pass-1"}}}))
    kc = kubeconfig
    tool(tool_env, kc, "helm", "upgrade", "--install", "runai-backend", str(CHARTS / "control-plane"),
         "--namespace", "runai-backend", "--create-namespace", "--values", str(values))
    ns, pod = "runai-backend", "runai-backend-postgresql-0"
    # helm returned without waiting: the database is not there yet
    first = srv.get("v1", "Pod", pod, ns)
    assert first is None or first["status"]["phase"] == "Pending"
    seen: list[str] = []

    def phase() -> bool:
        p = srv.get("v1", "Pod", pod, ns)
        state = "absent" if p is None else p["status"]["phase"] + (
            "/Ready" if any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            else "")
        if not seen or seen[-1] != state:
            seen.append(state)
        return state == "Running/Ready"

    until(phase, timeout=60, what="database Ready")
    assert [s for s in seen if s != "absent"] == ["Pending", "Running", "Running/Ready"]
    r = tool(tool_env, kc, "kubectl", "exec", "-n", ns, pod, "-c", "postgresql", "--", "pg_isready")
    assert "accepting connections" in r.stdout
    r = tool(tool_env, kc, "kubectl", "exec", "-n", ns, pod, "--", "sh", "-c",
             'PGPASSWORD="$POSTGRES_PASSWORD" psql -U postgres -XAtc "SELECT current_user, current_database()" '
             "backend")
    assert r.stdout.strip() == "postgres|backend"
    server = pg.server_for(ns, pod)
    assert server is not None and server.password == "Pg-pass-1" and server.running
    pvc = srv.get("v1", "PersistentVolumeClaim", "data-runai-backend-postgresql-0", ns)
    assert pvc is not None and pvc["status"]["phase"] == "Bound"
    svc = srv.get("v1", "Service", "runai-backend-postgresql", ns)
    assert svc is not None and svc["spec"]["clusterIP"]
    # uninstall: the StatefulSet and its pod go, PostgreSQL stops; the claim stays until the namespace goes
    tool(tool_env, kc, "helm", "uninstall", "runai-backend", "-n", ns)
    pg.wait_stopped(ns, pod)
    assert not server.running and srv.get("v1", "Pod", pod, ns) is None
    assert srv.get("v1", "PersistentVolumeClaim", "data-runai-backend-postgresql-0", ns) is not None
    pv = pvc["spec"]["volumeName"]
    tool(tool_env, kc, "kubectl", "delete", "namespace", ns, "--wait=true", "--timeout=30s")
    until(lambda: srv.get("v1", "PersistentVolume", pv) is None, what="volume reclaimed")
    # installed again: a new volume, an empty database with the new password
    values.write_text(yaml.safe_dump({"postgresql": {"auth": {"postgresPassword": "Pg-pass-2"}}}))
    tool(tool_env, kc, "helm", "upgrade", "--install", "runai-backend", str(CHARTS / "control-plane"),
         "--namespace", ns, "--create-namespace", "--values", str(values))
    srv.wait_pod_ready(ns, pod, timeout=60)
    again = pg.server_for(ns, pod)
    assert again is not None and again is not server and again.password == "Pg-pass-2"


@needs_tools
def test_helm_installs_runai_cluster_crds_then_runaiconfig(tmp_path: Path, tool_env: dict[str, str]) -> None:
    srv = ApiServer()  # no Run:ai CRDs: the chart brings them
    srv.crd_establish_delay = 1.0
    srv.start()
    try:
        kc = srv.write_kubeconfig(tmp_path / "kc")
        values = tmp_path / "values.yaml"
        values.write_text(yaml.safe_dump({"cluster": {"uid": "u-1", "url": "https://runai.example.com"},
                                          "controlPlane": {"url": "https://cp.example.com"}}))
        t0 = time.monotonic()
        r = tool(tool_env, kc, "helm", "upgrade", "--install", "runai-cluster", str(CHARTS / "runai-cluster"),
                 "--namespace", "runai", "--create-namespace", "--values", str(values), "--debug")
        assert time.monotonic() - t0 >= 1.0  # helm waited for the CRDs to be Established
        assert "STATUS: deployed" in r.stdout
        crd = srv.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "runaiconfigs.run.ai")
        assert crd is not None and {c["type"]: c["status"] for c in crd["status"]["conditions"]}["Established"] == \
            "True"
        assert srv.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "projects.run.ai") is not None
        rc = srv.get("run.ai/v1", "RunaiConfig", "runai", "runai")
        assert rc is not None
        assert rc["spec"]["__cluster_version"] == "2.16.79"
        assert rc["spec"]["global"]["clusterDomain"] == "runai.example.com"
        assert rc["spec"]["researcherService"]["ingress"]["tlsSecret"] == "runai-cluster-domain-tls-secret"
        assert rc["metadata"]["annotations"]["meta.helm.sh/release-name"] == "runai-cluster"
        # the RunaiConfig was created only after its CRD was Established
        crd_est = next(c for c in crd["status"]["conditions"] if c["type"] == "Established")
        assert crd_est["lastTransitionTime"] <= rc["metadata"]["creationTimestamp"]
        tool(tool_env, kc, "helm", "uninstall", "runai-cluster", "-n", "runai")
        assert srv.get("run.ai/v1", "RunaiConfig", "runai", "runai") is None
        # helm leaves CRDs; deleting one removes its objects and its API
        tool(tool_env, kc, "kubectl", "delete", "crd", "runaiconfigs.run.ai")
        with pytest.raises(KeyError):
            srv.get("run.ai/v1", "RunaiConfig", "runai", "runai")
    finally:
        srv.stop()


@needs_tools
@pytest.mark.parametrize("helm", [h for h in ("helm", "helm4") if (TOOLS / h).exists()])
def test_helm_wait_returns_once_the_database_is_ready(apiserver: ApiServer, kubeconfig: Path,
                                                      tool_env: dict[str, str], helm: str) -> None:
    """helm --wait watches the StatefulSet (helm 4 as a streaming list: initial events, then a bookmark)."""
    srv = apiserver
    srv.pod_ready_delay = 0.6
    default_class(srv)
    t0 = time.monotonic()
    tool(tool_env, kubeconfig, helm, "upgrade", "--install", "runai-backend", str(CHARTS / "control-plane"),
         "--namespace", "runai-backend", "--create-namespace", "--set", "postgresql.auth.postgresPassword=x",
         "--wait", "--timeout", "60s", timeout=90)
    assert time.monotonic() - t0 >= 0.6
    pod = srv.get("v1", "Pod", "runai-backend-postgresql-0", "runai-backend")
    assert pod is not None and {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    tool(tool_env, kubeconfig, helm, "uninstall", "runai-backend", "-n", "runai-backend", "--wait", timeout=90)
    assert srv.get("v1", "Pod", "runai-backend-postgresql-0", "runai-backend") is None


def test_streaming_list_ends_its_initial_events_with_a_bookmark(apiserver: ApiServer) -> None:
    code, body = http_get(apiserver, "/api/v1/namespaces?watch=1&sendInitialEvents=true")
    assert code == 422 and "resourceVersionMatch" in body["message"]
    import urllib.request

    req = urllib.request.Request(apiserver.url + "/api/v1/namespaces?watch=1&sendInitialEvents=true"
                                 "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=10",
                                 headers={"Authorization": "Bearer admin-token"})
    events: list[dict[str, Any]] = []
    with urllib.request.urlopen(req) as r:  # the watch goes on after the bookmark: read up to it
        while not events or events[-1]["type"] != "BOOKMARK":
            events.append(json.loads(r.readline()))
    assert [e["type"] for e in events] == ["ADDED"] * 4 + ["BOOKMARK"]
    mark = events[-1]["object"]
    assert mark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(mark["metadata"]["resourceVersion"]) >= max(int(e["object"]["metadata"]["resourceVersion"])
                                                          for e in events[:-1])
