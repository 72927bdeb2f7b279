"""What a restore waits for: pure descriptions of pods, CRDs and namespaces, the waiter's
polling, timeout message and resume hint (fake clock), and the plan's prerequisites."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kubectl_runai_dr.cli.options import split_list
from kubectl_runai_dr.components.registry import RESTORE_STEPS
from kubectl_runai_dr.kube.errors import ServerError
from kubectl_runai_dr.ops.waits import Waiter, WaitTimeout
from kubectl_runai_dr.plan.readiness import (
    Probe,
    State,
    crd_probe,
    format_seconds,
    namespace_probe,
    pod_probe,
)
from kubectl_runai_dr.plan.restore import (
    DATABASE_READY,
    RUNAICONFIG_CRD,
    plan_restore,
    providers_in_run,
)

PENDING_POD: dict[str, Any] = {
    "metadata": {"name": "runai-backend-postgresql-0"},
    "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/3 nodes are available: 3 Insufficient memory."}]},
}
RUNNING_NOT_READY: dict[str, Any] = {
    "metadata": {"name": "p-0"},
    "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
        "containerStatuses": [{"name": "postgresql", "ready": False, "restartCount": 2,
                               "state": {"running": {}}}]},
}
READY_POD: dict[str, Any] = {
    "metadata": {"name": "p-0"},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
}


def test_pod_probe_says_why_pending() -> None:
    events = [{"type": "Warning", "reason": "FailedScheduling", "message": "old",
               "lastTimestamp": "2026-01-01T00:00:00Z"},
              {"type": "Warning", "reason": "FailedScheduling", "message": "0/3 nodes",
               "lastTimestamp": "2026-01-01T00:01:00Z"}]
    p = pod_probe(PENDING_POD, events)
    assert p.state is State.PENDING
    assert p.detail.startswith("Pending, not Running")
    assert "PodScheduled=False (Unschedulable 0/3 nodes are available: 3 Insufficient " \
           "memory.)" in p.detail
    assert p.detail.endswith("events: warning FailedScheduling: old; warning "
                             "FailedScheduling: 0/3 nodes")
    q = pod_probe(RUNNING_NOT_READY)
    assert q.state is State.PENDING
    assert "Running but not Ready" in q.detail
    assert "container postgresql running, not ready (restarts: 2)" in q.detail
    assert pod_probe(READY_POD).ready
    assert pod_probe(None, name="x").state is State.ABSENT


def test_crd_and_namespace_probes() -> None:
    name = "runaiconfigs.run.ai"
    assert crd_probe(None, name=name).state is State.ABSENT
    accepted = {"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}]}}
    p = crd_probe(accepted, name=name)
    assert p.state is State.PENDING and "not Established" in p.detail
    est = {"status": {"conditions": [{"type": "Established", "status": "True"}]}}
    assert crd_probe(est, name=name).ready
    assert namespace_probe(None, name="runai").state is State.ABSENT
    assert namespace_probe({"status": {"phase": "Terminating"}},
                           name="runai").state is State.PENDING
    assert namespace_probe({"status": {"phase": "Active"}}, name="runai").ready


def test_format_seconds() -> None:
    assert format_seconds(2.5) == "2.5s"
    assert format_seconds(42) == "42s"
    assert format_seconds(187) == "3m07s"
    assert format_seconds(3720) == "1h02m"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_waiter_polls_until_ready_with_growing_interval() -> None:
    clock = FakeClock()
    states = iter([Probe(State.ABSENT, "no pod yet"), Probe(State.PENDING, "Pending"),
                   Probe(State.PENDING, "Running but not Ready"), Probe(State.READY, "ok")])
    w = Waiter(60, clock=clock, sleep=clock.sleep, interval=1.0)
    waited = w.wait("the database", lambda: next(states), expect=True, hint="h")
    assert clock.sleeps == [1.0, 1.5, 2.25]
    assert waited == pytest.approx(4.75)


def test_waiter_times_out_naming_what_and_last_state() -> None:
    clock = FakeClock()
    w = Waiter(30, clock=clock, sleep=clock.sleep)
    with pytest.raises(WaitTimeout) as err:
        w.wait("the control plane's database", lambda: Probe(State.PENDING, "Pending: why"),
               expect=True, hint="resume with --only database")
    assert "gave up after 30s waiting for the control plane's database" in err.value.message
    assert err.value.message.endswith("last state: Pending: why")
    assert err.value.hint == "resume with --only database"
    assert clock.now == pytest.approx(30)


def test_waiter_does_not_wait_for_what_nobody_creates() -> None:
    clock = FakeClock()
    w = Waiter(600, clock=clock, sleep=clock.sleep)
    assert w.wait("x", lambda: Probe(State.ABSENT, "missing"), expect=False, hint="") == 0
    assert clock.sleeps == []


def test_waiter_rides_out_server_errors() -> None:
    clock = FakeClock()
    calls: Iterator[ServerError | Probe] = iter([ServerError("503 from the API server"),
                                                 Probe(State.READY, "ok")])

    def probe() -> Probe:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    w = Waiter(60, clock=clock, sleep=clock.sleep)
    w.wait("x", probe, expect=True, hint="")
    assert len(clock.sleeps) == 1


def test_prerequisites_come_from_earlier_steps_only() -> None:
    names = [s.name for s in RESTORE_STEPS]
    for step in RESTORE_STEPS:
        for need in step.needs:
            assert names.index(need.provided_by) < names.index(step.name), (step.name, need)
    content = dict.fromkeys(names, True)
    plan = plan_restore(RESTORE_STEPS, content)
    assert providers_in_run(plan) == {"database-ready": "control-plane",
                                      "runaiconfig-crd": "cluster",
                                      "cluster-namespace": "cluster"}
    plan = plan_restore(RESTORE_STEPS, content, skip=["cluster"])
    assert providers_in_run(plan) == {DATABASE_READY.key: "control-plane"}
    assert RUNAICONFIG_CRD.key not in providers_in_run(plan)


def test_split_list() -> None:
    assert split_list(["volumes,control-plane", " database ", "volumes", ""]) == [
        "volumes", "control-plane", "database"]
    assert split_list(None) == []


def test_waiter_gives_up_on_what_never_appears_after_its_settle_time() -> None:
    """A chart that brings no CRD: waiting the whole --wait-timeout would not help."""
    clock = FakeClock()
    w = Waiter(900, clock=clock, sleep=clock.sleep)
    with pytest.raises(WaitTimeout) as err:
        w.wait("the CRD", lambda: Probe(State.ABSENT, "CRD x is not installed"), expect=True,
               hint="h", settle=30, missing="the chart installed no CRD")
    assert err.value.message.startswith("the chart installed no CRD (still absent after 30s")
    assert 30 <= clock.now < 40
    # something on its way is waited for up to the timeout, not the settle time
    clock2 = FakeClock()
    w2 = Waiter(120, clock=clock2, sleep=clock2.sleep)
    with pytest.raises(WaitTimeout, match="gave up after"):
        w2.wait("x", lambda: Probe(State.PENDING, "Pending"), expect=True, hint="",
                settle=30, missing="never")
    assert clock2.now >= 120
