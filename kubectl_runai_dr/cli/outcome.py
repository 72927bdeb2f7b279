"""The exit code of a finished operation: one mapping for every verb (README, Exit codes).

An operation that stops raises one of the tool's errors, and ``errors.py`` gives its code
(1 failed, 2 usage, 4 invalid bundle, 5 unreachable or credentials, 6 forbidden, 130
interrupted or declined). An operation that runs to its end returns its result, and this
function alone decides what that result exits with:

- 0: every part succeeded (warnings and notes do not count);
- 3 (partial): it ran to its end but some part failed: a backup component (the bundle is
  written, marked partial), a restore step or object, a database whose tables or row
  counts differ after a restore or a drill, a volume `protect` could not patch, a
  snapshot `snapshot prune` could not delete;
- 4: `verify` found the bundle corrupt, truncated or tampered with;
- 7 / 8: `status` found warnings / a critical problem;
- 130: a restore was interrupted (it reports what it did, and how to resume).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubectl_runai_dr.errors import ExitCode

P, OK = ExitCode.PARTIAL, ExitCode.OK

# Result type (module.class) -> its exit code. Keyed by name, so that mapping a result
# imports nothing; a result without a rule is a bug, reported as one.
_RULES: dict[str, Callable[[Any], ExitCode]] = {
    "kubectl_runai_dr.ops.backup.BackupOutcome": lambda r: P if r.partial else OK,
    "kubectl_runai_dr.ops.restore.RestoreOutcome": lambda r: (
        ExitCode.ABORTED if r.interrupted else P if r.failed else OK),
    "kubectl_runai_dr.model.Result": lambda r: P if r.failed else OK,  # one step: namespaces
    "kubectl_runai_dr.components.database.DatabaseRestoreResult": lambda r: OK if r.ok else P,
    "kubectl_runai_dr.components.volumes.ProtectOutcome": lambda r: P if r.errors else OK,
    "kubectl_runai_dr.components.volumes.PruneOutcome": lambda r: P if r.errors else OK,
    "kubectl_runai_dr.ops.volumes.SnapshotOutcome": lambda r: OK,
    "kubectl_runai_dr.cli.verify.VerifyResult": lambda r: (
        ExitCode.INVALID_BUNDLE if r.problems else OK if r.drill is None
        else exit_code(r.drill)),
    "kubectl_runai_dr.cli.status.StatusReport": lambda r: _status(r.problems),
    "kubectl_runai_dr.ops.schedule.InstallResult": lambda r: OK,
    "kubectl_runai_dr.ops.schedule.RunResult": lambda r: (
        P if r.run is not None and r.run.result == "failed" else OK),
    # as diff(1): 0 the same, 1 differences, 2 or more trouble
    "kubectl_runai_dr.ops.diff.DiffOutcome": lambda r: ExitCode(r.exit_code()),
}


def exit_code(result: object) -> ExitCode:
    """The documented exit code of a finished operation's result (None: nothing to judge)."""
    if result is None:
        return ExitCode.OK
    kind = f"{type(result).__module__}.{type(result).__qualname__}"
    if kind not in _RULES:
        raise TypeError(f"no exit code is defined for a {kind}")
    return _RULES[kind](result)


def _status(problems: Any) -> ExitCode:
    from kubectl_runai_dr.plan.status import exit_code as status_code

    return status_code(problems)
