"""batch/v1 CronJobs and Jobs: validation and defaults as the apiserver's, a Job controller, pod
runners and container logs.

What the API does
- CronJob: spec.schedule required and a valid cron expression (5 fields or a macro; a TZ= prefix
  is refused as the apiserver does), spec.jobTemplate.spec.template required, concurrencyPolicy
  Allow|Forbid|Replace, non-negative startingDeadlineSeconds and history limits; defaults
  concurrencyPolicy Allow, suspend false, successfulJobsHistoryLimit 3, failedJobsHistoryLimit 1.
- Job: a pod template with at least one container (name and image), restartPolicy Never or
  OnFailure (Always is refused), non-negative backoffLimit and positive activeDeadlineSeconds;
  spec.template is immutable. Defaults: completions 1, parallelism 1, backoffLimit 6,
  completionMode NonIndexed, suspend false, and (after the uid is known) the selector
  batch.kubernetes.io/controller-uid=<uid> with the labels batch.kubernetes.io/controller-uid,
  batch.kubernetes.io/job-name, controller-uid and job-name on the template.
- Pod logs: GET pods/<name>/log (tailLines, limitBytes, container) answers what the pod's runner
  wrote, as text/plain; 400 while the container has not started, as a kubelet.

The Job controller (Jobs created through HTTP; a seeded Job is left alone)
One pod at a time (`<job>-<5 random>`, owned by the Job, labelled as above), run by the kubelet of
workloads.py. When the pod is Ready and a pod runner matches it (`srv.add_pod_runner(namespace,
name_regex, run)`), `run(pod, timeout) -> (exit_code, log bytes)` runs in a worker thread: exit 0
terminates the container Completed and the pod Succeeded, anything else Error and Failed. Without
a runner a pod runs forever, as a long-running container would. Job status: startTime, active,
ready, succeeded, failed, terminating 0, conditions SuccessCriteriaMet then Complete (with
completionTime), or FailureTarget then Failed: reason BackoffLimitExceeded once failures exceed
backoffLimit (a new pod after each failure until then), DeadlineExceeded after
activeDeadlineSeconds (the runner's timeout is what remains of it). No CronJob controller: nothing
runs on a schedule; tests create the Jobs a CronJob controller would.
"""

from __future__ import annotations

import asyncio
import copy
import random
import re
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .validation import Cause, forbidden, invalid, required

if TYPE_CHECKING:
    from .workloads import Workloads

JOBS = ("batch", "jobs")
PODS = ("", "pods")
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_ITEM = re.compile(r"^(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?$")
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_NAMES: tuple[dict[str, int], ...] = ({}, {}, {},
          {m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])},
          {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])})
PodRun = Callable[[dict[str, Any], "float | None"], tuple[int, bytes]]


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cron_error(expr: str) -> str | None:
    """What the apiserver (robfig/cron's standard parser) says is wrong, or None."""
    text = expr.strip()
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        return "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
    if text.lower() in CRON_MACROS:
        return None
    fields = text.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: {expr}"
    for i, f in enumerate(fields):
        low, high = _CRON_RANGES[i]
        for item in f.split(","):
            m = _CRON_ITEM.match(item)
            if not m:
                return f"failed to parse int from {item}"
            if m.group(3) and int(m.group(3)[1:]) == 0:
                return f"step of range should be a positive number: {item}"
            if m.group(1) in ("*", "?"):
                continue
            for part in m.group(1).split("-"):
                v = _NAMES[i].get(part.lower())
                if v is None:
                    if not part.isdigit():
                        return f"failed to parse int from {part}"
                    v = int(part)
                if not low <= v <= high:
                    return f"end of range ({v}) above maximum ({high}): {item}" if v > high else \
                        f"beginning of range ({v}) below minimum ({low}): {item}"
    return None


def _pod_template_causes(tmpl: Any, path: str, *, job: bool) -> list[Cause]:
    if not isinstance(tmpl, dict) or not tmpl:
        return [required(path)]
    spec = tmpl.get("spec")
    if not isinstance(spec, dict):
        return [required(f"{path}.spec")]
    out: list[Cause] = []
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        out.append(required(f"{path}.spec.containers"))
    else:
        for i, c in enumerate(containers):
            if not isinstance(c, dict) or not c.get("name"):
                out.append(required(f"{path}.spec.containers[{i}].name"))
            elif not c.get("image"):
                out.append(required(f"{path}.spec.containers[{i}].image"))
    rp = spec.get("restartPolicy")
    if job and rp not in ("Never", "OnFailure"):
        out.append(Cause(f"{path}.spec.restartPolicy",
                         'Required value: valid values: "OnFailure", "Never"' if rp is None else
                         f'Unsupported value: "{rp}": supported values: "OnFailure", "Never"',
                         "FieldValueRequired" if rp is None else "FieldValueNotSupported"))
    return out


def _non_negative(spec: Mapping[str, Any], key: str, path: str, out: list[Cause], *,
                  positive: bool = False) -> None:
    v = spec.get(key)
    if v is None:
        return
    if not isinstance(v, int) or isinstance(v, bool) or v < (1 if positive else 0):
        out.append(invalid(f"{path}.{key}", v, "must be greater than 0" if positive
                           else "must be greater than or equal to 0"))


def _job_spec_causes(spec: Any, path: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [required(path)]
    out = _pod_template_causes(spec.get("template"), f"{path}.template", job=True)
    for key in ("backoffLimit", "parallelism"):
        _non_negative(spec, key, path, out)
    _non_negative(spec, "completions", path, out)
    _non_negative(spec, "activeDeadlineSeconds", path, out, positive=True)
    _non_negative(spec, "ttlSecondsAfterFinished", path, out)
    return out


def validate(obj: dict[str, Any], plural: str, old: dict[str, Any] | None) -> list[Cause]:
    """The batch validators' checks (called from validation.validate_builtin)."""
    spec = obj.get("spec")
    if plural == "jobs":
        out = _job_spec_causes(spec, "spec")
        if old is not None and isinstance(spec, dict):
            old_spec = old.get("spec") or {}
            if spec.get("template") != old_spec.get("template"):
                out.append(invalid("spec.template", "", "field is immutable"))
            if spec.get("selector") is not None and spec.get("selector") != old_spec.get("selector"):
                out.append(invalid("spec.selector", spec.get("selector"), "field is immutable"))
        return out
    if plural != "cronjobs":
        return []
    if not isinstance(spec, dict):
        return [required("spec")]
    out = []
    schedule = spec.get("schedule")
    if not schedule:
        out.append(required("spec.schedule"))
    else:
        why = cron_error(str(schedule))
        if why:
            out.append(invalid("spec.schedule", schedule, why))
    cp = spec.get("concurrencyPolicy")
    if cp is not None and cp not in ("Allow", "Forbid", "Replace"):
        out.append(Cause("spec.concurrencyPolicy", f'Unsupported value: "{cp}": supported values: '
                         '"Allow", "Forbid", "Replace"', "FieldValueNotSupported"))
    for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
        _non_negative(spec, key, "spec", out)
    jt = spec.get("jobTemplate")
    if not isinstance(jt, dict):
        out.append(required("spec.jobTemplate"))
    else:
        out.extend(_job_spec_causes(jt.get("spec"), "spec.jobTemplate.spec"))
        if "selector" in (jt.get("spec") or {}):
            out.append(forbidden("spec.jobTemplate.spec.selector",
                                 "`selector` will be auto-generated"))
    return out


def defaults(plural: str, obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    if plural == "cronjobs":
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        _job_defaults((spec.get("jobTemplate") or {}).setdefault("spec", {}))
    elif plural == "jobs":
        _job_defaults(spec)


def _job_defaults(spec: dict[str, Any]) -> None:
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    pspec = (spec.get("template") or {}).get("spec")
    if isinstance(pspec, dict):
        pspec.setdefault("dnsPolicy", "ClusterFirst")
        pspec.setdefault("schedulerName", "default-scheduler")
        pspec.setdefault("terminationGracePeriodSeconds", 30)
        pspec.setdefault("securityContext", {})
        for c in pspec.get("containers") or []:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("imagePullPolicy", "Always" if str(c.get("image", "")).endswith(":latest")
                         else "IfNotPresent")
            c.setdefault("resources", {})


def default_selector(obj: dict[str, Any]) -> None:
    """Once the Job's uid is known: the generated selector and the template's labels."""
    md, spec = obj["metadata"], obj.setdefault("spec", {})
    labels = {"batch.kubernetes.io/controller-uid": md["uid"], "batch.kubernetes.io/job-name": md["name"],
              "controller-uid": md["uid"], "job-name": md["name"]}
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": md["uid"]}}
    tmd = spec.setdefault("template", {}).setdefault("metadata", {})
    tmd["labels"] = {**(tmd.get("labels") or {}), **labels}


@dataclass
class RunnerRule:
    namespace: str | None
    name_regex: str
    run: PodRun

    def matches(self, ns: str, name: str) -> bool:
        return (self.namespace is None or self.namespace == ns) and re.fullmatch(self.name_regex, name) is not None


class JobController:
    """Jobs created through HTTP run one pod at a time until success, backoffLimit or deadline."""

    def __init__(self, wl: Workloads) -> None:
        self.wl = wl
        self.runners: list[RunnerRule] = []
        self.logs: dict[tuple[str, str, str], bytes] = {}  # (ns, pod, uid) -> log

    def job_created(self, ns: str, name: str, uid: str) -> None:
        """On the loop thread, under the lock."""
        self.wl._spawn(self._run(ns, name, uid))

    def _job(self, ns: str, name: str, uid: str) -> dict[str, Any] | None:
        return self.wl._get(JOBS, ns, name, uid)

    def _set_status(self, ns: str, name: str, uid: str, **status: Any) -> dict[str, Any] | None:
        with self.wl.lock:
            job = self._job(ns, name, uid)
            if job is None:
                return None
            st = job.setdefault("status", {})
            st.update(status)
            self.wl._put(JOBS, job)
            return job

    def _create_pod(self, job: dict[str, Any]) -> dict[str, Any]:
        jmd, spec = job["metadata"], job.get("spec") or {}
        tmpl = copy.deepcopy(spec.get("template") or {})
        tmd = tmpl.get("metadata") or {}
        pod_name = f"{jmd['name']}-" + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        pspec = tmpl.get("spec") or {}
        pspec.setdefault("serviceAccountName", "default")
        md: dict[str, Any] = {"name": pod_name, "namespace": jmd["namespace"], "labels": dict(tmd.get("labels") or {}),
                              "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": jmd["name"],
                                                   "uid": jmd["uid"], "controller": True,
                                                   "blockOwnerDeletion": True}]}
        if tmd.get("annotations"):
            md["annotations"] = dict(tmd["annotations"])
        pod = self.wl._create({"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": pspec,
                               "status": {"phase": "Pending", "qosClass": "Burstable"}})
        self.wl.event(job, "SuccessfulCreate", f"Created pod: {pod_name}", component="job-controller")
        self.wl._spawn(self.wl._kubelet(jmd["namespace"], pod_name, pod["metadata"]["uid"]))
        return pod

    async def _run(self, ns: str, name: str, uid: str) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        with self.wl.lock:
            job = self._job(ns, name, uid)
            if job is None:
                return
        spec = job.get("spec") or {}
        backoff = int(spec.get("backoffLimit", 6))
        deadline = spec.get("activeDeadlineSeconds")
        failed = 0
        self._set_status(ns, name, uid, startTime=_now(), active=0, ready=0, terminating=0)
        while True:
            with self.wl.lock:
                job = self._job(ns, name, uid)
                if job is None:
                    return
                pod = self._create_pod(job)
            pname, puid = pod["metadata"]["name"], pod["metadata"]["uid"]
            self._set_status(ns, name, uid, active=1)
            # wait for Ready (the kubelet's steps), or the deadline
            while True:
                with self.wl.lock:
                    cur = self.wl._get(PODS, ns, pname, puid)
                if cur is None or self._job(ns, name, uid) is None:
                    return
                if any(c.get("type") == "Ready" and c.get("status") == "True"
                       for c in (cur.get("status") or {}).get("conditions") or []):
                    break
                if deadline and time.monotonic() - started > deadline:
                    await self._finish(ns, name, uid, pname, puid, failed, deadline_exceeded=True)
                    return
                await asyncio.sleep(0.05)
            self._set_status(ns, name, uid, ready=1)
            rule = next((r for r in self.runners if r.matches(ns, pname)), None)
            if rule is None:  # a container that never ends, until deleted or past the deadline
                while self._job(ns, name, uid) is not None and self.wl._get(PODS, ns, pname, puid) is not None:
                    if deadline and time.monotonic() - started > deadline:
                        await self._finish(ns, name, uid, pname, puid, failed, deadline_exceeded=True)
                        return
                    await asyncio.sleep(0.1)
                return
            remaining = None if not deadline else max(0.0, deadline - (time.monotonic() - started))
            code, log = await loop.run_in_executor(None, rule.run, cur, remaining)
            with self.wl.lock:
                self.logs[(ns, pname, puid)] = bytes(log)
                pod_now = self.wl._get(PODS, ns, pname, puid)
                if pod_now is None:
                    return
                self._terminate(pod_now, code)
            if code == 0:
                await self._finish(ns, name, uid, pname, puid, failed, succeeded=True)
                return
            failed += 1
            if deadline and time.monotonic() - started > deadline:
                await self._finish(ns, name, uid, pname, puid, failed, deadline_exceeded=True)
                return
            if failed > backoff:
                await self._finish(ns, name, uid, pname, puid, failed)
                return
            self._set_status(ns, name, uid, failed=failed, active=0, ready=0)
            await asyncio.sleep(0.05)

    def _terminate(self, pod: dict[str, Any], code: int) -> None:
        ts = _now()
        st = pod.setdefault("status", {})
        st["phase"] = "Succeeded" if code == 0 else "Failed"
        for c in st.get("conditions") or []:
            if c.get("type") in ("Ready", "ContainersReady"):
                c.update(status="False", reason="PodCompleted", lastTransitionTime=ts)
        for cs in st.get("containerStatuses") or []:
            started = (cs.get("state") or {}).get("running", {}).get("startedAt", ts)
            cs.update(ready=False, started=False, state={"terminated": {
                "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "startedAt": started, "finishedAt": ts}})
        self.wl._put(PODS, pod)

    async def _finish(self, ns: str, name: str, uid: str, pname: str, puid: str, failed: int, *,
                      succeeded: bool = False, deadline_exceeded: bool = False) -> None:
        ts = _now()

        def cond(kind: str, reason: str = "", message: str = "") -> dict[str, Any]:
            c: dict[str, Any] = {"type": kind, "status": "True", "lastProbeTime": ts, "lastTransitionTime": ts}
            if reason:
                c.update(reason=reason, message=message)
            return c

        if deadline_exceeded:
            with self.wl.lock:
                pod = self.wl._get(PODS, ns, pname, puid)
                if pod is not None and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    self._terminate(pod, 137)
                    failed += 1
        if succeeded:
            status: dict[str, Any] = {
                "active": 0, "ready": 0, "succeeded": 1, "completionTime": ts,
                "conditions": [cond("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of "
                                    "succeeded pods"),
                               cond("Complete", "CompletionsReached", "Reached expected number of succeeded pods")]}
            if failed:
                status["failed"] = failed
        else:
            reason, message = (("DeadlineExceeded", "Job was active longer than specified deadline")
                               if deadline_exceeded else
                               ("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
            status = {"active": 0, "ready": 0, "failed": failed,
                      "conditions": [cond("FailureTarget", reason, message), cond("Failed", reason, message)]}
        job = self._set_status(ns, name, uid, **status)
        if job is not None:
            self.wl.event(job, "Completed" if succeeded else reason,
                          "Job completed" if succeeded else message,
                          type_="Normal" if succeeded else "Warning", component="job-controller")

    def log_of(self, ns: str, pod: dict[str, Any], q: Mapping[str, str]) -> bytes:
        """What GET pods/<name>/log answers (an ApiError while the container has not started)."""
        from .status import ApiError

        md, st = pod["metadata"], pod.get("status") or {}
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = q.get("container") or (containers[0] if len(containers) == 1 else None)
        if container is None:
            raise ApiError(400, f"a container name must be specified for pod {md['name']}, choose one of: "
                                f"[{' '.join(str(c) for c in containers)}]")
        if container not in containers:
            raise ApiError(400, f"container {container} is not valid for pod {md['name']}")
        cs = next((c for c in st.get("containerStatuses") or [] if c.get("name") == container), None)
        waiting = ((cs or {}).get("state") or {}).get("waiting")
        if cs is None or waiting:
            reason = (waiting or {}).get("reason", "ContainerCreating")
            raise ApiError(400, f'container "{container}" in pod "{md["name"]}" is waiting to start: {reason}')
        data = self.logs.get((md.get("namespace", ns), md["name"], md.get("uid", "")), b"")
        tail = q.get("tailLines")
        if tail is not None:
            if not tail.lstrip("-").isdigit():
                raise ApiError(400, f'invalid tailLines "{tail}"')
            n = int(tail)
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-n:]) if n > 0 else b"" if n == 0 else data
        limit = q.get("limitBytes")
        if limit is not None:
            if not limit.isdigit() or int(limit) < 1:
                raise ApiError(422, "limitBytes: Invalid value: must be greater than 0")
            data = data[: int(limit)]
        return data
