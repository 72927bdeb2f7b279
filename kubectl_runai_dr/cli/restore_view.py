"""What `restore` and `namespaces` print: the plan, per-object results, the summary; the
confirmation asked before a restore."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubectl_runai_dr.plan.readiness import format_seconds

if TYPE_CHECKING:
    from rich.console import Console

    from kubectl_runai_dr.cli.options import Common
    from kubectl_runai_dr.model import Result
    from kubectl_runai_dr.ops.restore import Preflight, RestoreOutcome

OUTCOME_STYLE = {"created": "green", "updated": "green", "unchanged": "dim", "drift": "yellow",
                 "failed": "bold red", "skipped": "dim", "create": "cyan", "update": "yellow"}
COLUMNS = ("created", "updated", "unchanged", "drift", "failed", "skipped", "create", "update")


def _styled(outcome: str) -> str:
    from kubectl_runai_dr import render

    style = OUTCOME_STYLE.get(outcome)
    return f"[{style}]{render.escape(outcome)}[/]" if style else render.escape(outcome)


def show_preflight(out: Console, pf: Preflight) -> None:
    from kubectl_runai_dr import render

    src = pf.source
    out.print(render.key_values([
        ("target context", render.escape(pf.context)),
        ("target server", render.escape(pf.server)),
        ("kubernetes", render.escape(pf.kubernetes_version)),
        ("bundle from", render.escape(f"{src.get('context', '?')} ({src.get('server', '?')}), "
                                      f"{pf.created_at}")),
        ("run:ai version", render.escape(str(src.get("runaiVersion") or "unknown"))),
        *(("target holds", render.escape(d)) for d in pf.detected),
    ]))
    rows = [[render.escape(p.name), "[green]yes[/]" if p.run else "[dim]no[/]",
             render.escape(p.step.reason if p.run else p.why_not)] for p in pf.plan]
    out.print()
    out.print(render.table("plan", ["STEP", "RUN", render.Col("WHY", text=True)], rows))


def _preflight_findings(err: Console, pf: Preflight, *, verbose: int = 0) -> None:
    from kubectl_runai_dr import render

    for w in render.aggregate(pf.warnings, verbose=verbose):
        render.warn(err, w)
    for n in render.aggregate(pf.notes, verbose=verbose):
        render.note(err, n)


def confirm(common: Common, pf: Preflight) -> bool:
    """Show where the restore goes and what it will do, and ask (on a terminal only)."""
    import sys

    import typer

    from kubectl_runai_dr import render
    from kubectl_runai_dr.errors import UsageError

    err = render.consoles(common.no_color)[1]
    show_preflight(err, pf)
    _preflight_findings(err, pf, verbose=common.verbose)
    if not sys.stdin.isatty():
        raise UsageError("restore needs a confirmation and the input is not a terminal",
                         hint="check the target above and pass --yes")
    return typer.confirm(f'Restore into context "{pf.context}" ({pf.server})?',
                         default=False, err=True)


QUIET = ("unchanged", "created")  # counted in the summary; listed with -v


def show_objects(out: Console, steps: list[Result], *, verbose: int) -> None:
    """Every object that would be written (dry run), was updated, drifted, failed or was
    skipped; created and unchanged ones are counted, and listed with -v."""
    from kubectl_runai_dr import render

    for s in steps:
        shown = [o for o in s.objects if verbose or o.outcome.value not in QUIET]
        if not shown and not s.notes and not s.objects:
            continue
        out.print(f"\n[bold]{render.escape(s.name)}[/]")
        for note in s.notes:  # commands: never wrapped, so they can be copied
            out.print(f"  {render.escape(note)}", soft_wrap=True)
        lines = []
        for o in shown:
            line = f"  {_styled(o.outcome.value)} {render.escape(o.label)}"
            if o.message:
                line += f"  [dim]{render.escape(o.message)}[/]"
            lines.append(line)
            for d in o.diff.splitlines():
                style = "green" if d.startswith("+") else "red" if d.startswith("-") else "dim"
                lines.append(f"      [{style}]{render.escape(d)}[/]")
        if lines:
            out.print("\n".join(lines), soft_wrap=True)
        counts = s.counts()
        hidden = [f"{n} {q}" for q in QUIET
                  if (n := sum(1 for o in s.objects if o.outcome.value == q)) and not verbose]
        if hidden and counts:
            out.print(f"  [dim]{', '.join(hidden)} (-v lists them)[/]")


def summary_table(steps: list[Result], *, verbose: int = 0) -> Any:
    """One row per step; a step's repeated warnings are aggregated (-v: all of them)."""
    from kubectl_runai_dr import render

    all_counts = [s.counts() for s in steps]
    # only the outcomes that happened, so the notes keep room to be read
    outcomes = [o for o in _outcomes() if any(c.get(o, 0) for c in all_counts)]
    rows = []
    for s, counts in zip(steps, all_counts, strict=True):
        cells = [str(counts.get(o, 0)) if counts.get(o, 0) else "-" for o in outcomes]
        note = s.why_not if not s.ran else s.error
        if s.error and s.hint:
            note += f" (hint: {s.hint})"
        if s.warnings:
            note = "; ".join(filter(None, [note, *render.aggregate(s.warnings,
                                                                    verbose=verbose)]))
        status = ("[dim]not run[/]" if not s.ran else "[bold red]failed[/]" if s.failed
                  else f"[cyan]after {render.escape(s.after)}[/]" if s.after
                  else "[green]ok[/]")
        took = ""
        if (s.ran and s.name != "preflight") or s.seconds:
            took = format_seconds(s.seconds) + (f" (waited {format_seconds(s.waited)})"
                                                if s.waited >= 0.05 else "")
        rows.append([render.escape(s.name), status, *cells, took, render.escape(note)])
    # on a narrow terminal the time goes first (the waits first of all): the recovery time
    # line under the table has them too
    time = render.Col("TIME", drop=1, short=lambda cell: cell.split(" (")[0])
    return render.table("summary", ["STEP", "STATUS", *(o.value.upper() for o in outcomes),
                                    time, render.Col("NOTE", text=True)], rows)


def _outcomes() -> list[Any]:
    from kubectl_runai_dr.model import Outcome

    return [Outcome(c) for c in COLUMNS]


def recovery_time(outcome: RestoreOutcome) -> str:
    """``recovery time 4m12s: control-plane 1m03s (waited 58s), database 2m10s, …``"""
    parts = [f"{s.name} {format_seconds(s.seconds)}" for s in outcome.steps
             if s.ran and s.seconds >= 0.05]
    return f"recovery time {format_seconds(outcome.seconds)}" + (
        f": {', '.join(parts)}" if parts else "")


def show_outcome(out: Console, outcome: RestoreOutcome, *, verbose: int) -> None:
    from kubectl_runai_dr import render

    show_objects(out, outcome.steps, verbose=verbose)
    out.print()
    out.print(summary_table(outcome.steps, verbose=verbose))
    if not outcome.dry_run:
        render.say(out, f"[bold]{render.escape(recovery_time(outcome))}[/]")


def show(common: Common, outcome: RestoreOutcome, *, preflight: bool) -> None:
    """The restore's report; ``preflight``: also the target and plan (not shown yet, as
    they are when asking for confirmation)."""
    from kubectl_runai_dr import render

    out, err = render.consoles(common.no_color)
    if common.table:
        if preflight:
            show_preflight(out, outcome.preflight)
            _preflight_findings(err, outcome.preflight, verbose=common.verbose)
        show_outcome(out, outcome, verbose=common.verbose)
        if outcome.dry_run:
            out.print("\n[bold]dry run[/]: nothing was written")
    else:
        render.emit(outcome.to_json(), common.output.value)
    if outcome.interrupted:
        render.warn(err, "restore interrupted; not finished: "
                    + ", ".join(outcome.unfinished_steps))
    elif outcome.failed:
        render.warn(err, "restore finished with failures in: " + ", ".join(outcome.failed_steps))
    if outcome.failed:
        render.hint(err, outcome.hint)


def show_namespaces(common: Common, step: Result, *, dry_run: bool) -> None:
    """The report of `namespaces`: its one step, as restore reports it."""
    from kubectl_runai_dr import render

    out, err = render.consoles(common.no_color)
    for w in render.aggregate(step.warnings, verbose=common.verbose):
        render.warn(err, w)
    if common.table:
        show_objects(out, [step], verbose=common.verbose)
        out.print()
        out.print(summary_table([step], verbose=common.verbose))
        if dry_run:
            out.print("\n[bold]dry run[/]: nothing was written")
    else:
        render.emit(step.to_json(), common.output.value)
    if step.failed:
        render.hint(err, "fix the cause and run the same command again (finished objects are "
                    "reported unchanged)")
