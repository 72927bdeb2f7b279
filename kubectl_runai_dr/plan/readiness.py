"""What a restore waits for, described from the objects the server returns (pure).

Each function reads a Pod, a CustomResourceDefinition or a Namespace as JSON and says
whether it is ready and, when not, why, in the words ``kubectl describe`` would use: the
pod's phase, its conditions and container states, and the latest events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kubectl_runai_dr.plan.database import pod_problem


class State(str, Enum):
    READY = "ready"
    PENDING = "pending"  # exists and is on its way (a wait is worth it)
    ABSENT = "absent"  # not there at all


@dataclass(frozen=True)
class Probe:
    state: State
    detail: str  # the last state in words, for progress and for a timeout message

    @property
    def ready(self) -> bool:
        return self.state is State.READY


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return None


def _cond_text(cond: Mapping[str, Any]) -> str:
    text = f"{cond.get('type')}={cond.get('status')}"
    why = " ".join(str(x) for x in (cond.get("reason"), cond.get("message")) if x)
    return f"{text} ({why})" if why else text


def _container_text(pod: Mapping[str, Any]) -> list[str]:
    out = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        state = cs.get("state") or {}
        name = cs.get("name", "?")
        if "waiting" in state:
            w = state["waiting"] or {}
            out.append(f"container {name} waiting: " + " ".join(
                str(x) for x in (w.get("reason"), w.get("message")) if x))
        elif "terminated" in state:
            t = state["terminated"] or {}
            out.append(f"container {name} terminated ({t.get('reason', '')}, exit code "
                       f"{t.get('exitCode', '?')})")
        elif not cs.get("ready"):
            out.append(f"container {name} running, not ready"
                       + (f" (restarts: {cs['restartCount']})" if cs.get("restartCount") else ""))
    return out


def latest_events(events: Sequence[Mapping[str, Any]], limit: int = 3) -> list[str]:
    """The newest events, as ``Reason: message`` (Warning ones marked)."""
    def when(ev: Mapping[str, Any]) -> str:
        return str(ev.get("lastTimestamp") or ev.get("eventTime")
                   or (ev.get("metadata") or {}).get("creationTimestamp") or "")

    out = []
    for ev in sorted(events, key=when)[-limit:]:
        kind = "warning " if ev.get("type") == "Warning" else ""
        out.append(f"{kind}{ev.get('reason', '')}: {ev.get('message', '')}".strip())
    return out


def pod_probe(pod: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]] = (),
              *, name: str = "") -> Probe:
    """Is the pod Ready? When not: phase, the failing conditions, containers, events."""
    if pod is None:
        return Probe(State.ABSENT, f'pod "{name}" does not exist yet' if name
                     else "no pod yet")
    problem = pod_problem(pod)
    if problem is None:
        return Probe(State.READY, "Ready")
    if problem == "is terminating":
        return Probe(State.PENDING, "terminating")
    parts = [problem.removeprefix("is ")]
    for kind in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        cond = _condition(pod, kind)
        if cond is not None and cond.get("status") != "True":
            parts.append(_cond_text(cond))
    parts += _container_text(pod)
    evs = latest_events(events)
    if evs:
        parts.append("events: " + "; ".join(evs))
    return Probe(State.PENDING, "; ".join(parts))


def crd_probe(crd: Mapping[str, Any] | None, *, name: str) -> Probe:
    """Is the CRD Established? (served only then)."""
    if crd is None:
        return Probe(State.ABSENT, f"CRD {name} is not installed")
    if (crd.get("metadata") or {}).get("deletionTimestamp"):
        return Probe(State.PENDING, f"CRD {name} is being deleted")
    est = _condition(crd, "Established")
    if est is not None and est.get("status") == "True":
        return Probe(State.READY, f"CRD {name} Established")
    conds = [_cond_text(c) for c in (crd.get("status") or {}).get("conditions") or []
             if isinstance(c, Mapping)]
    return Probe(State.PENDING, f"CRD {name} created, not Established yet"
                 + (f" ({', '.join(conds)})" if conds else ""))


def namespace_probe(ns: Mapping[str, Any] | None, *, name: str) -> Probe:
    if ns is None:
        return Probe(State.ABSENT, f'namespace "{name}" does not exist')
    phase = (ns.get("status") or {}).get("phase")
    if phase == "Terminating" or (ns.get("metadata") or {}).get("deletionTimestamp"):
        return Probe(State.PENDING, f'namespace "{name}" is Terminating')
    return Probe(State.READY, f'namespace "{name}" exists')


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m07s``, ``1h02m``: durations in summaries and messages."""
    s = round(seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
