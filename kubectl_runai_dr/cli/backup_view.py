"""What `backup` prints: the per-component table and the bundle, or one json/yaml document."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubectl_runai_dr import render

if TYPE_CHECKING:
    from kubectl_runai_dr.cli.options import Common
    from kubectl_runai_dr.ops.backup import BackupOutcome


def starting(common: Common, *, include_secrets: bool) -> None:
    if include_secrets:
        render.warn(render.consoles(common.no_color)[1],
                    "--include-secrets: the bundle will hold Secret values (TLS keys, "
                    "credentials); keep it as safe as the cluster's own secrets")


def show(common: Common, outcome: BackupOutcome, *, keep: int | None) -> None:
    out, err = render.consoles(common.no_color)
    for w in render.aggregate(outcome.warnings, verbose=common.verbose):
        render.warn(err, w)
    for name in outcome.deleted:
        render.say(err, f"deleted old bundle {render.escape(name)} (--keep {keep})")
    m = outcome.manifest
    if not common.table:
        render.emit({"bundle": str(outcome.path), "manifest": m, "deleted": outcome.deleted},
                    common.output.value)
    else:
        out.print(render.table(None, render.COMPONENT_COLUMNS,
                               render.component_rows(m, verbose=common.verbose)))
        out.print()
        sealed = ", encrypted" if outcome.encrypted else ""
        render.say(out, f"bundle {render.escape(str(outcome.path))} "
                   f"({render.human_size(outcome.size)}{sealed}), {render.styled(m['status'])}")
    if outcome.partial:
        render.warn(err, f"backup is PARTIAL: {', '.join(m['failedComponents'])} failed (see "
                    "NOTE); the bundle is marked partial. Fix the cause and run the backup "
                    "again.")


def confirm_quiesce(common: Common) -> None:
    """--quiesce stops workloads (Thanos receive stops taking metrics while it is copied):
    ask on a terminal, else require --yes."""
    import sys

    import typer

    from kubectl_runai_dr.errors import Aborted, UsageError

    if not sys.stdin.isatty():
        raise UsageError("--quiesce scales the StatefulSets of the copied claims to zero while "
                         "they are copied, and needs a confirmation; the input is not a "
                         "terminal", hint="pass --yes")
    if not typer.confirm("--quiesce: scale the StatefulSet of each copied claim to zero while "
                         "it is copied (then back)?", default=False, err=True):
        raise Aborted("not confirmed: nothing was done")
