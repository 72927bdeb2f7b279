"""Run a restore: preflight, then the planned steps in the documented order.

Every object gets a result (created / unchanged / updated / drift / failed / skipped, or
create / update in a dry run); results are collected, not thrown, so one failure does not
hide the rest. Every step is idempotent: after a failure the same command finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.bundle.reader import Bundle
from kubectl_runai_dr.components import registry
from kubectl_runai_dr.components.base import NullProgress, Progress
from kubectl_runai_dr.components.restore_base import Existing, RestoreContext, RestoreSettings
from kubectl_runai_dr.errors import Aborted, BundleError, DrError, NotPermitted
from kubectl_runai_dr.interrupts import terminate_as_interrupt
from kubectl_runai_dr.kube import resources as r
from kubectl_runai_dr.kube.api import KubeApi
from kubectl_runai_dr.kube.errors import Forbidden
from kubectl_runai_dr.kube.resources import Resource
from kubectl_runai_dr.model import Names, Outcome, Result, Status
from kubectl_runai_dr.ops.waits import Waiter, probe_for
from kubectl_runai_dr.plan import permissions
from kubectl_runai_dr.plan.database import DbOptions
from kubectl_runai_dr.plan.readiness import Probe, State
from kubectl_runai_dr.plan.restore import (
    PREFLIGHT,
    PlannedStep,
    plan_restore,
    providers_in_run,
    resume_hint,
)

clock = time.monotonic

@dataclass
class RestoreOptions:
    bundle: str | Path  # a path or s3:// URL
    settings: RestoreSettings = field(default_factory=RestoreSettings)
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    assume_yes: bool = False
    verify: bool = True
    db_options: DbOptions | None = None  # --db-*: where the database step restores into


@dataclass
class Preflight:
    """What the user confirms: where the restore goes, from what, and what was found."""

    context: str
    server: str
    kubernetes_version: str
    source: dict[str, Any]
    created_at: str
    plan: list[PlannedStep]
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # any problem stops the restore
    denied: list[str] = field(default_factory=list)  # permissions missing: also stops it
    notes: list[str] = field(default_factory=list)  # facts worth saying, not a concern
    detected: list[str] = field(default_factory=list)  # what the target was found to hold
    same_cluster: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"context": self.context, "server": self.server,
                "kubernetesVersion": self.kubernetes_version, "source": self.source,
                "bundleCreatedAt": self.created_at, "sameCluster": self.same_cluster,
                "plan": [{"step": p.name, "run": p.run, "reason": p.step.reason,
                          **({"whyNot": p.why_not} if p.why_not else {})} for p in self.plan],
                "warnings": self.warnings, "problems": [*self.problems, *self.denied],
                "notes": self.notes, "detected": self.detected}


@dataclass
class RestoreOutcome:
    preflight: Preflight
    steps: list[Result]
    dry_run: bool
    seconds: float = 0.0  # wall time from opening the bundle to the last step
    bundle: str = "BUNDLE"  # as the user named it, for the resume command
    interrupted: bool = False  # Ctrl-C or SIGTERM stopped it: what ran is reported

    @property
    def failed_steps(self) -> list[str]:
        return [s.name for s in self.steps if s.failed]

    @property
    def unfinished_steps(self) -> list[str]:
        """After an interrupt: the interrupted step and those that did not run."""
        return [s.name for s in self.steps if s.failed or s.details.get("interrupted")]

    @property
    def failed(self) -> bool:
        return bool(self.failed_steps) or self.interrupted

    @property
    def hint(self) -> str:
        if self.interrupted:
            return resume_hint(self.unfinished_steps, self.bundle, interrupted=True)
        return resume_hint(self.failed_steps, self.bundle)

    def totals(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            for k, v in s.counts().items():
                out[k.value] = out.get(k.value, 0) + v
        return out

    def to_json(self) -> dict[str, Any]:
        return {"dryRun": self.dry_run, "preflight": self.preflight.to_json(),
                "steps": [s.to_json() for s in self.steps], "totals": self.totals(),
                "recoveryTimeSeconds": round(self.seconds, 3),
                "failed": self.failed, "interrupted": self.interrupted,
                **({"hint": self.hint} if self.failed else {})}


Confirm = Callable[[Preflight], bool]


# -- preflight --------------------------------------------------------------------------------
def _cluster_uid(values: Any) -> str:
    if isinstance(values, dict):
        cluster = values.get("cluster")
        if isinstance(cluster, dict) and cluster.get("uid"):
            return str(cluster["uid"])
    return ""


def same_cluster_reasons(source_server: str, target_server: str, source_uid: str,
                         target_uid: str) -> list[str]:
    """Why the target looks like the cluster the bundle came from (pure)."""
    out = []
    if source_server and source_server.rstrip("/") == target_server.rstrip("/"):
        out.append(f"same API server URL ({target_server})")
    if source_uid and source_uid == target_uid:
        out.append(f"same Run:ai cluster uid ({target_uid})")
    return out


def runai_objects(kube: KubeApi, names: Names) -> list[str]:
    """The Run:ai objects the target holds: the two releases, their namespaces, the
    RunaiConfig. Empty on a new (or wiped) cluster."""
    from kubectl_runai_dr.components import helm

    found = []
    for release, ns in ((names.control_plane_release, names.control_plane_namespace),
                        (names.cluster_release, names.cluster_namespace)):
        if helm.release_state(kube, release, ns) is not None:
            found.append(f"release {release}")
    for ns in (names.control_plane_namespace, names.cluster_namespace):
        if kube.get_or_none(r.NAMESPACES, ns) is not None:
            found.append(f"namespace {ns}")
    res = kube.served(r.RUNAICONFIGS)
    if res is not None and kube.get_or_none(res, names.runaiconfig_name,
                                            names.cluster_namespace) is not None:
        found.append(f"RunaiConfig {names.cluster_namespace}/{names.runaiconfig_name}")
    return found


def preflight(kube: KubeApi, bundle: Bundle, plan: list[PlannedStep], settings: RestoreSettings,
              *, verify: bool = True) -> Preflight:
    m = bundle.manifest
    if verify:
        problems = bundle.verify()
        if problems:
            listed = "; ".join(f"{p.file}: {p.message}" for p in problems[:5])
            raise BundleError(f"{bundle.path} failed verification: {listed}",
                              hint="the bundle is corrupt or was modified; use another one "
                                   "(`kubectl runai-dr verify` lists every problem)")
    version = kube.server_version()
    source = dict(m.get("source") or {})
    pf = Preflight(context=kube.context, server=kube.server,
                   kubernetes_version=str(version.get("gitVersion", "")), source=source,
                   created_at=str(m.get("createdAt", "")), plan=plan)
    if m.get("status") == "partial":
        pf.warnings.append("the bundle is PARTIAL (failed at backup: "
                           + ", ".join(m.get("failedComponents") or []) + ")")
    names = settings.names
    running = {p.name for p in plan if p.run}
    # the source cluster? Only when Run:ai objects are there: a wiped cluster that kept
    # its URL is an empty target, not the source.
    source_uid = target_uid = ""
    found: list[str] = []
    try:
        rel = layout.helm_values(names.cluster_release)
        if bundle.has(rel):
            source_uid = _cluster_uid(yaml.safe_load(bundle.read_bytes(rel)))
        found = runai_objects(kube, names)
        from kubectl_runai_dr.components import helm

        live = helm.release_state(kube, names.cluster_release, names.cluster_namespace)
        if live is not None:
            target_uid = _cluster_uid(live.config)
    except DrError:
        pass
    reasons = same_cluster_reasons(str(source.get("server", "")), kube.server, source_uid,
                                   target_uid)
    pf.detected = [*reasons, "Run:ai objects: " + (", ".join(found) if found else
                                                   "none (an empty cluster)")]
    if reasons and found:
        pf.same_cluster = True
        pf.warnings.append("the target is the cluster this bundle came from ("
                           + "; ".join(reasons) + "; it holds " + ", ".join(found)
                           + "): existing objects are compared, drift is reported, and only "
                           "--existing update changes them; the RunaiConfig is the exception: "
                           "its saved spec is always merged in (see the plan)")
    # CRDs the steps need
    if "runaiconfig" in running and kube.served(r.RUNAICONFIGS) is None:
        if "cluster" in running and settings.run_helm:
            pf.notes.append("the RunaiConfig CRD is not installed yet: the cluster step "
                            "installs it, and the runaiconfig step waits until it is served")
        elif settings.dry_run and "cluster" in running:
            pf.warnings.append("the RunaiConfig CRD is not installed and the cluster step only "
                               "prints its helm commands: the real run needs --run-helm (or "
                               "those commands run first)")
        elif settings.dry_run:
            pf.warnings.append("the RunaiConfig CRD (runaiconfigs.run.ai) is not installed: "
                               "the runaiconfig step would fail")
        else:
            pf.problems.append("the RunaiConfig CRD (runaiconfigs.run.ai) is not installed: "
                               "re-install the cluster first (step cluster, with --run-helm), "
                               "or --skip runaiconfig")
    # permissions
    for step in plan:
        if not step.run or step.name == PREFLIGHT:
            continue
        for need, ns in permissions.step_needs(
                registry.PERMISSIONS, "restore", step.name, names, dry_run=settings.dry_run,
                update=settings.existing is Existing.update, run_helm=settings.run_helm):
            res = Resource(need.group, "v1", need.plural, "", ns is not None)
            try:
                allowed, _ = kube.can_i(need.verb, res, ns, subresource=need.subresource)
            except Forbidden:
                allowed = True  # cannot ask: the request itself will say
            if not allowed:
                where = f' in namespace "{ns}"' if ns else " (all namespaces)"
                pf.denied.append(f"step {step.name}: you may not {need.verb} "
                                   f"{need.group_resource}{where}")
    return pf


# -- running -----------------------------------------------------------------------------------
def run_step(planned: PlannedStep, ctx: RestoreContext, step: Result | None = None) -> Result:
    """Run one step into ``step``; its failure is recorded, never raised (an interrupt
    is: ``step`` then holds what was done)."""
    step = step if step is not None else Result(planned.name)
    ctx.progress.start(planned.step.title)
    restore = registry.BY_NAME[planned.name].restore
    assert restore is not None  # the plan holds restorable components only
    try:
        restore(ctx, step)
    except DrError as exc:
        step.fail(exc.message, exc.hint or "")
    except Exception as exc:  # a bug in one step must not cost the others
        step.fail(f"unexpected error: {exc!r}", "run again with -v and report it")
    finally:
        ctx.progress.finish()
    if step.status is Status.OK and step.failed:  # objects failed: the step says which
        bad = [o for o in step.objects if o.outcome is Outcome.FAILED]
        step.fail(f"{len(bad)} of {len(step.objects)} objects failed; first: {bad[0].label}: "
                  f"{bad[0].message}")
    return step


def _provided(result: Result | None) -> bool:
    """Did the provider step bring something this run (created or updated)?"""
    return result is not None and any(
        o.outcome in (Outcome.CREATED, Outcome.UPDATED, Outcome.UNCHANGED)
        for o in result.objects)


def _prepare(planned: PlannedStep, ctx: RestoreContext, done: dict[str, Result],
             plan: list[PlannedStep], waiter: Waiter,
             waited: dict[str, float]) -> Result | None:
    """Before a step: wait for what earlier steps bring it (or, in a dry run, note what
    they would bring). A Result when the step cannot run; None to run it."""
    providers = providers_in_run(plan)
    for need in planned.step.needs:
        provider = providers.get(need.key)
        probe = probe_for(need, ctx.kube, ctx.settings.names, ctx.db)
        if ctx.settings.dry_run:
            if provider and not _safe_probe(probe).ready:
                ctx.after[need.key] = provider
            continue
        result = done.get(provider) if provider else None
        if provider and result is not None and result.failed:
            return Result(planned.name, status=Status.FAILED,
                              reason=f"not attempted: it needs {need.title}, and step "
                                     f"{provider} did not finish",
                              hint=f"fix step {provider} first")
        expect = _provided(result)
        later = [p.name for p in plan if p.run and p.name != PREFLIGHT]
        rest = later[later.index(planned.name):]
        ctx.progress.start(f"{planned.name}: waiting for {need.title}")
        try:
            seconds = waiter.wait(need.title, probe, expect=expect, settle=need.settle,
                                  missing=need.missing, hint=(
                f"see why (`kubectl describe` the object named above), fix it or raise "
                f"--wait-timeout, then resume: `kubectl runai-dr restore BUNDLE --only "
                f"{','.join(rest)}` with the same flags"))
        except DrError as exc:
            return Result(planned.name, status=Status.FAILED, reason=exc.message,
                              hint=exc.hint or "")
        finally:
            ctx.progress.finish()
        waited[planned.name] = waited.get(planned.name, 0.0) + seconds
    return None


def _safe_probe(probe: Callable[[], Probe]) -> Probe:
    try:
        return probe()
    except DrError as exc:
        return Probe(State.PENDING, exc.message)


def run_restore(kube: KubeApi, opts: RestoreOptions, *, confirm: Confirm | None = None,
                progress: Progress | None = None) -> RestoreOutcome:
    """Preflight, confirmation (unless --yes or a dry run), then every planned step."""
    with terminate_as_interrupt():
        return _run_restore(kube, opts, confirm=confirm, progress=progress)


def _run_restore(kube: KubeApi, opts: RestoreOptions, *, confirm: Confirm | None,
                 progress: Progress | None) -> RestoreOutcome:
    progress = progress or NullProgress()
    settings = opts.settings
    started = clock()
    bundle = Bundle.open(opts.bundle)
    try:
        content = registry.bundle_content(set(bundle.files), settings.names)
        try:
            plan = plan_restore(registry.RESTORE_STEPS, content,
                                only=registry.canonical(opts.only),
                                skip=registry.canonical(opts.skip))
        except ValueError as exc:
            from kubectl_runai_dr.errors import UsageError

            raise UsageError(str(exc)) from None
        pf = preflight(kube, bundle, plan, settings, verify=opts.verify)
        pf_seconds = clock() - started
        if pf.problems or pf.denied:
            # missing permissions alone: the exit code of a refused request (6)
            error = NotPermitted if pf.denied and not pf.problems else DrError
            raise error("preflight found problems, nothing was written: "
                        + "; ".join([*pf.problems, *pf.denied]),
                        hint="fix them (permissions, CRDs) or leave those steps out with "
                             "--skip STEP, and run again")
        if not settings.dry_run and not opts.assume_yes and (
                confirm is None or not confirm(pf)):
            raise Aborted("restore not confirmed; nothing was written",
                          hint="pass --yes to restore without asking (scripts)")
        started = clock() - pf_seconds  # the time spent answering is not recovery time
        ctx = RestoreContext(kube=kube, bundle=bundle, settings=settings, progress=progress,
                             db=opts.db_options or DbOptions(),
                             confirmed=not settings.dry_run)
        waited: dict[str, float] = {}
        waiter = Waiter(settings.wait_timeout, progress)
        steps: list[Result] = [Result(PREFLIGHT, seconds=pf_seconds)]
        done: dict[str, Result] = {}
        outcome = RestoreOutcome(pf, steps, settings.dry_run, bundle=str(opts.bundle))
        for i, planned in enumerate(plan):
            if planned.name == PREFLIGHT:
                continue
            if not planned.run:
                steps.append(Result(planned.name, status=Status.SKIPPED,
                                    reason=planned.why_not))
                continue
            t0 = clock()
            current = Result(planned.name)
            try:
                step = _prepare(planned, ctx, done, plan, waiter, waited)
                if step is None:
                    step = run_step(planned, ctx, current)
                    step.after = ", ".join(sorted({ctx.after[n.key] for n in planned.step.needs
                                                   if n.key in ctx.after}))
                    if planned.step.changes_api and not settings.dry_run:
                        kube.refresh_discovery()
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: stop, and say what was done
                current.fail(f"interrupted after {len(current.objects)} object(s)")
                current.seconds = clock() - t0
                steps.append(current)
                for rest in plan[i + 1:]:
                    if rest.run:
                        steps.append(Result(rest.name, status=Status.SKIPPED,
                                            reason="not run: interrupted",
                                            details={"interrupted": True}))
                outcome.interrupted = True
                break
            step.seconds = clock() - t0
            step.waited = waited.get(planned.name, 0.0)
            done[planned.name] = step
            steps.append(step)
        outcome.seconds = clock() - started
        return outcome
    finally:
        bundle.close()
