"""What `snapshot`, `snapshot list`, `snapshot prune` and `protect` print."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubectl_runai_dr import render
from kubectl_runai_dr.render import Col

if TYPE_CHECKING:
    from kubectl_runai_dr.cli.options import Common
    from kubectl_runai_dr.components.volumes import ProtectOutcome, PruneOutcome
    from kubectl_runai_dr.ops.volumes import SnapshotOutcome
    from kubectl_runai_dr.plan.volumes import Listed


def show_snapshot(common: Common, outcome: SnapshotOutcome) -> None:
    out, err = render.consoles(common.no_color)
    run = outcome.run
    for w in render.aggregate(run.warnings, verbose=common.verbose):
        render.warn(err, w)
    if not common.table:
        render.emit(outcome.to_json(), common.output.value)
        return
    if not run.records:
        out.print(render.escape(run.reason))
        return
    e = render.escape
    rows = [[e(r["namespace"]), e(r["volumeSnapshotName"]), e(r["claim"]["name"]),
             e(str(r["restoreSize"])), e(r["deletionPolicy"]), e(r["snapshotHandle"])]
            for r in run.records]
    # the snapshot's name holds its claim; the handle and policy are in the bundle
    out.print(render.table(None, [Col("NAMESPACE", drop=1), "SNAPSHOT", Col("CLAIM", drop=4),
                                  Col("SIZE", drop=2), Col("DELETION POLICY", drop=3),
                                  Col("HANDLE", drop=5)], rows))
    if run.checkpoint:
        out.print()
        render.say(out, f"database CHECKPOINT: {e(run.checkpoint)}")
    if outcome.bundle is not None:
        render.say(out, f"bundle {e(str(outcome.bundle))} (snapshot records only)")


def show_list(common: Common, items: list[Listed]) -> None:
    if not common.table:
        render.emit([s.to_json() for s in items], common.output.value)
        return
    out, _ = render.consoles(common.no_color)
    if not items:
        out.print("no snapshots made by kubectl runai-dr")
        return
    e = render.escape
    rows = [[e(s.namespace), e(s.name), e(s.claim), e(s.backup_id),
             render.styled("failed") if s.error else ("yes" if s.ready else "no"),
             e(s.restore_size or "-"), render.human_age(s.created), e(s.error)]
            for s in items]
    # the name holds the claim and the backup id: those columns go first on a narrow terminal
    out.print(render.table(None, [Col("NAMESPACE", drop=1), "NAME", Col("CLAIM", drop=4),
                                  Col("BACKUP", drop=3), "READY", Col("SIZE", drop=2), "AGE",
                                  Col("ERROR", text=True)], rows))


def show_prune(common: Common, result: PruneOutcome) -> None:
    out, err = render.consoles(common.no_color)
    if not common.table:
        render.emit(result.to_json(), common.output.value)
    else:
        verb = "would delete" if result.dry_run else "deleted"
        done = result.decision.delete if result.dry_run else result.deleted
        e = render.escape
        for s in done:
            render.say(out, f"{verb} {e(s.namespace)}/{e(s.name)} (claim {e(s.claim)}, "
                       f"{render.human_age(s.created)} old)")
        out.print(f"{len(done)} {verb}, {len(result.decision.keep)} kept")
    for problem in result.errors:
        render.warn(err, problem)


def show_protect(common: Common, result: ProtectOutcome) -> None:
    out, err = render.consoles(common.no_color)
    if not common.table:
        render.emit(result.to_json(), common.output.value)
    else:
        rows = []
        for v in result.volumes:
            if not v.needed:
                action = "[dim]already protected[/]" if v.policy == "Retain" else "-"
            elif result.dry_run:
                action = "[cyan]would set Retain[/]"
            elif v.volume in result.patched:
                action = "[green]set to Retain[/]"
            else:
                action = render.styled("failed")
            rows.append([render.escape(v.volume), render.escape(v.claim),
                         render.escape(v.policy), action])
        if rows:
            out.print(render.table(None, ["VOLUME", "CLAIM", Col("RECLAIM POLICY", drop=1),
                                          "ACTION"], rows))
        else:
            ns = common.names.control_plane_namespace
            out.print(f'no bound claims in namespace "{render.escape(ns)}"')
    for problem in result.errors:
        render.warn(err, problem)
