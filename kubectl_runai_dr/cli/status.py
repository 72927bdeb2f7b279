"""`kubectl runai-dr status`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from kubectl_runai_dr.cli import options as o

if TYPE_CHECKING:
    from kubectl_runai_dr.plan.status import Problem

CHECKS = "Checks"


@dataclass
class StatusReport:
    """The document `-o json|yaml` prints, and the problems found (the exit code)."""

    document: dict[str, Any]
    problems: list[Problem]


@o.verb()
def status(
    max_age: Annotated[str, typer.Option(
        "--max-age", metavar="DURATION", help='Flag the last backup when older than this '
        '("24h", "36h", "90m"; "0": never).', rich_help_panel=CHECKS)] = "24h",
    no_exec: Annotated[bool, typer.Option(
        "--no-exec", help="Do not exec psql in the database pod (no PostgreSQL version or "
        "sizes).", rich_help_panel=CHECKS)] = False,
    *,
    common: o.Common,
) -> StatusReport:
    """Show what is installed, what is protected and what is missing; writes nothing.

    Sections: cluster, helm releases, database, volumes, Run:ai objects, last backup,
    permissions of the current user for every step of backup and restore (-v: all of them,
    not only those not granted); problems last, each with what to do.

    Exit codes: 0 healthy (notes only), 7 warnings, 8 a critical problem, 5 cluster
    unreachable or credentials rejected.
    """
    from datetime import datetime, timezone

    from kubectl_runai_dr.cli import status_view as view
    from kubectl_runai_dr.ops.status import collect_status
    from kubectl_runai_dr.plan import status as plan

    threshold = o.parse_duration(max_age, flag="--max-age")
    facts = collect_status(common.connect(), common.names, exec_database=not no_exec)
    now = datetime.now(timezone.utc)
    problems = plan.evaluate(facts, max_age=threshold, now=now)
    report = StatusReport(plan.report(facts, problems, now=now, max_age=threshold), problems)
    view.show(common, report.document)
    return report
