"""What the `schedule` verbs print."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from kubectl_runai_dr import render
from kubectl_runai_dr.render import Col

if TYPE_CHECKING:
    from kubectl_runai_dr.cli.options import Common
    from kubectl_runai_dr.ops.schedule import Change, InstallResult, RunResult, ScheduleStatus
    from kubectl_runai_dr.plan.schedule import JobRun


def _changes_table(changes: list[Change]) -> Any:
    e = render.escape
    rows = [[e(c.kind), e(c.namespace or "-"), e(c.name), render.styled(c.action),
             e(", ".join(c.changed))] for c in changes]
    return render.table(None, ["KIND", Col("NAMESPACE", drop=1), "NAME", "ACTION",
                               Col("CHANGED", text=True)], rows)


def show_install(common: Common, result: InstallResult) -> None:
    out, err = render.consoles(common.no_color)
    for note in result.notes:
        render.note(err, note)
    if not common.table:
        if result.dry_run:  # the manifests themselves, for GitOps
            if common.output.value == "yaml":
                from kubectl_runai_dr.plan.schedule import to_yaml

                sys.stdout.write(to_yaml(result.manifests))
                sys.stdout.flush()
            else:
                render.emit({"apiVersion": "v1", "kind": "List", "items": result.manifests},
                            "json")
            return
        render.emit({"namespace": result.namespace,
                     "changes": [c.to_json() for c in result.changes]}, common.output.value)
        return
    out.print(_changes_table(result.changes))
    for c in result.changes:
        if c.diff and common.verbose:
            out.print(render.escape(c.diff))
    verb = "would be" if result.dry_run else "were"
    changed = sum(c.action not in ("unchanged",) for c in result.changes)
    render.say(out, f"{changed} object(s) {verb} created or updated; "
               f"{len(result.changes) - changed} unchanged"
               + ("" if result.dry_run else
                  f". `kubectl runai-dr schedule status --schedule-namespace "
                  f"{render.escape(result.namespace)}` shows the runs"))


def show_changes(common: Common, changes: list[Change]) -> None:
    if not common.table:
        render.emit([c.to_json() for c in changes], common.output.value)
        return
    out, _ = render.consoles(common.no_color)
    if not changes:
        out.print("nothing to remove")
        return
    out.print(_changes_table(changes))


def _run_json(run: JobRun) -> dict[str, Any]:
    return {"name": run.name, "manual": run.manual, "started": run.started,
            "finished": run.finished, "result": run.result,
            "durationSeconds": run.duration_seconds, "message": run.message}


def _duration(seconds: float | None) -> str:
    from kubectl_runai_dr.plan.status import human_duration

    return human_duration(seconds) if seconds is not None else "-"


def show_status(common: Common, st: ScheduleStatus) -> None:
    doc = {"namespace": st.namespace, "installed": st.installed, "schedule": st.schedule,
           "suspended": st.suspended, "image": st.image, "location": st.location,
           "lastScheduleTime": st.last_schedule, "lastSuccessfulTime": st.last_successful,
           "nextRun": st.next_run, "runs": [_run_json(r) for r in st.runs],
           "lastBackupRecord": st.record, "errors": st.errors}
    if not common.table:
        render.emit(doc, common.output.value)
        return
    out, err = render.consoles(common.no_color)
    e = render.escape
    out.print(render.key_values([
        ("schedule", e(st.schedule) + (" [yellow](suspended)[/]" if st.suspended else "")),
        ("next run", e(st.next_run or "-")),
        ("location", e(st.location)),
        ("image", e(st.image)),
        ("last scheduled", e(st.last_schedule or "never")),
        ("last success", e(st.last_successful or "never")),
        ("last backup record", e(f"{st.record.get('time', '')} {st.record.get('result', '')} "
                                 f"{st.record.get('bundle', '')}") if st.record else "none"),
    ]))
    if st.runs:
        rows = [[e(r.name), "manual" if r.manual else "scheduled", render.styled(r.result),
                 e(r.started or "-"), _duration(r.duration_seconds), e(r.message)]
                for r in st.runs]
        out.print(render.table("runs", ["JOB", Col("TRIGGER", drop=1), "RESULT", "STARTED",
                                        "DURATION", Col("MESSAGE", text=True)], rows))
    for msg in st.errors:
        render.warn(err, msg)


def show_run(common: Common, result: RunResult) -> None:
    doc: dict[str, Any] = {"namespace": result.namespace, "job": result.job,
                           "pod": result.pod, "logTail": result.log_tail}
    if result.run is not None:
        doc["run"] = _run_json(result.run)
    if not common.table:
        render.emit(doc, common.output.value)
        return
    out, _ = render.consoles(common.no_color)
    e = render.escape
    if not result.followed:
        render.say(out, f"started Job {e(result.namespace)}/{e(result.job)}")
        return
    if result.log_tail:
        out.print(f"[bold]log of pod {e(result.pod)} (tail)[/]")
        out.print(e(result.log_tail), highlight=False)
    run = result.run
    if run is not None:
        render.say(out, f"Job {e(result.job)}: {render.styled(run.result)} after "
                   f"{_duration(run.duration_seconds)}" + (f" ({e(run.message)})"
                                                          if run.message else ""))
