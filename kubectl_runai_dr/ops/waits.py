"""Waiting for what the next restore step needs, after a step that installs it.

A chart that ``helm upgrade --install`` has just deployed is not yet usable: its database
pod is Pending, then Running, then Ready, and PostgreSQL answers only after that; the CRDs
of its ``crds/`` folder are served only once Established. Each wait polls the cluster
with a growing interval, shows the last state as progress, and on timeout names what it
waited for, that last state (the pod's conditions and events) and how to go on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubectl_runai_dr.components.base import NullProgress, Progress
from kubectl_runai_dr.components.dbrun import control_plane_values, locate
from kubectl_runai_dr.errors import DrError
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import Forbidden, ServerError, TooManyRequests, Unreachable
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.plan import database as p
from kubectl_runai_dr.plan.readiness import (
    Probe,
    State,
    crd_probe,
    format_seconds,
    namespace_probe,
    pod_probe,
)
from kubectl_runai_dr.plan.restore import (
    CLUSTER_NAMESPACE,
    DATABASE_READY,
    RUNAICONFIG_CRD,
    Prerequisite,
)


class WaitTimeout(DrError):
    """A prerequisite did not become ready in time."""


@dataclass
class Waiter:
    timeout: float
    progress: Progress = NullProgress()  # noqa: RUF009 - stateless
    interval: float = 0.5
    max_interval: float = 5.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def wait(self, title: str, probe: Callable[[], Probe], *, expect: bool,
             hint: str, settle: float | None = None, missing: str = "") -> float:
        """Poll ``probe`` until ready; the seconds waited.

        ``expect``: an earlier step of this run creates it, so its absence is waited for
        too, but only for ``settle`` seconds (then ``missing`` says what is wrong: waiting
        longer would not help); otherwise only something on its way (Pending, not
        Established) is waited for and an absent one returns at once (the step then says
        what is missing)."""
        start = self.clock()
        delay = self.interval
        while True:
            try:
                last = probe()
            except (Unreachable, ServerError, TooManyRequests) as exc:
                last = Probe(State.PENDING, f"the API server did not answer: {exc.message}")
            elapsed = self.clock() - start
            if last.ready or (last.state is State.ABSENT and not expect):
                return elapsed
            if (last.state is State.ABSENT and settle is not None
                    and elapsed >= min(settle, self.timeout)):
                raise WaitTimeout(f"{missing or last.detail} (still absent after "
                                  f"{format_seconds(elapsed)}: {last.detail})", hint=hint)
            if elapsed >= self.timeout:
                raise WaitTimeout(
                    f"gave up after {format_seconds(elapsed)} waiting for {title}; last "
                    f"state: {last.detail}", hint=hint)
            self.progress.update(description=f"waiting for {title}: {last.detail} "
                                             f"({format_seconds(elapsed)})")
            self.sleep(max(0.0, min(delay, self.timeout - elapsed)))
            delay = min(delay * 1.5, self.max_interval)


def _events(kube: KubeApi, namespace: str, kind: str, name: str) -> list[dict[str, Any]]:
    """The object's events, newest last; [] when they cannot be read (best effort)."""
    try:
        return list(kube.list(r.EVENTS, namespace=namespace, field_selector=(
            f"involvedObject.kind={kind},involvedObject.name={name}")))
    except DrError:
        return []


def database_probe(kube: KubeApi, names: Names, db: p.DbOptions) -> Probe:
    """The control plane's PostgreSQL: its StatefulSet's pod Ready, then ``pg_isready``
    through exec. An external database (values ``postgresql.enabled: false``) has
    nothing to wait for."""
    ns = db.namespace or names.control_plane_namespace
    if db.pod:
        pod: Mapping[str, Any] | None = kube.get_or_none(r.PODS, db.pod, ns)
        pod_name = db.pod
    else:
        sts_name = db.statefulset or names.database_statefulset
        sts = kube.get_or_none(r.STATEFULSETS, sts_name, ns)
        if sts is None:
            if db.mode == "local" or db.host or p.external_database(
                    control_plane_values(kube, names)) is not None:
                return Probe(State.READY, "external database")
            return Probe(State.ABSENT, f'StatefulSet "{sts_name}" in namespace "{ns}" does '
                                       "not exist yet")
        labels = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = [x for x in kube.list(r.PODS, namespace=ns, label_selector=selector or None)
                if str(x["metadata"]["name"]).startswith(sts_name + "-")]
        pod = p.choose_pod(sts_name, pods)
        if pod is None:
            st = sts.get("status") or {}
            return Probe(State.PENDING, f'StatefulSet "{sts_name}" has no pod yet '
                         f"({st.get('readyReplicas', 0)}/"
                         f"{(sts.get('spec') or {}).get('replicas', 1)} ready)")
        pod_name = str(pod["metadata"]["name"])
    state = pod_probe(pod, name=pod_name)
    if state.state is State.PENDING:
        state = pod_probe(pod, _events(kube, ns, "Pod", pod_name), name=pod_name)
    if not state.ready:
        where = f'pod "{pod_name}" (namespace "{ns}")'
        return Probe(state.state, f"{where}: {state.detail}")
    runner = locate(kube, names, db).runner
    if runner is None:
        return Probe(State.ABSENT, "no database pod")
    try:
        res = runner.run(p.pg_isready_argv(**runner.conn))
    except DrError as exc:
        return Probe(State.PENDING, f'pod "{pod_name}" is Ready, exec failed: {exc.message}')
    if res.ok:
        return Probe(State.READY, "PostgreSQL accepts connections")
    why = {1: "rejecting connections (starting up)", 2: "no answer",
           3: "no attempt made"}.get(res.exit_code or -1, res.describe())
    return Probe(State.PENDING, f'pod "{pod_name}" is Ready, PostgreSQL is not: {why}')


def crd_served_probe(kube: KubeApi, res: r.Resource) -> Probe:
    """The CRD Established, and its resource in (refreshed) discovery."""
    name = res.group_resource
    try:
        probe = crd_probe(kube.get_or_none(r.CRDS, name), name=name)
    except Forbidden:  # may not read CRDs: discovery alone says whether it is served
        probe = Probe(State.READY, "")
    if not probe.ready:
        return probe
    kube.refresh_discovery()
    if kube.served(res) is None:
        return Probe(State.PENDING, f"CRD {name} Established, not in discovery yet")
    return Probe(State.READY, f"CRD {name} served")


def probe_for(need: Prerequisite, kube: KubeApi, names: Names,
              db: p.DbOptions | None = None) -> Callable[[], Probe]:
    """How to tell whether a prerequisite is there."""
    if need is DATABASE_READY:
        return lambda: database_probe(kube, names, db or p.DbOptions())
    if need is RUNAICONFIG_CRD:
        return lambda: crd_served_probe(kube, r.RUNAICONFIGS)
    if need is CLUSTER_NAMESPACE:
        return lambda: namespace_probe(kube.get_or_none(r.NAMESPACES, names.cluster_namespace),
                                       name=names.cluster_namespace)
    raise KeyError(need.key)
