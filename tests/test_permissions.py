"""One permission table serves status, the README and restore's preflight."""

from __future__ import annotations

import pytest

from kubectl_runai_dr.components.registry import PERMISSIONS
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.plan import permissions as p


def _verbs(step: str, **flags: bool) -> set[tuple[str, str, str | None]]:
    return {(n.verb, n.resource, ns) for n, ns in p.step_needs(PERMISSIONS, "restore", step, Names(), **flags)}


def test_dry_run_needs_only_reads() -> None:
    for entry in p.steps(PERMISSIONS, ["restore"]):
        for need, _ in p.step_needs(PERMISSIONS, "restore", entry.step, Names(), dry_run=True):
            # exec is a "create" even when the command only reads (the database's state)
            assert need.verb in ("get", "list") or need.resource in (
                "selfsubjectaccessreviews", "pods/exec"), (entry.step, need)


def test_conditions_follow_the_flags() -> None:
    plain = _verbs("namespaces")
    assert ("create", "namespaces", None) in plain
    assert ("patch", "rolebindings", None) not in plain
    assert ("patch", "rolebindings", None) in _verbs("namespaces", update=True)
    assert ("create", "secrets", "runai-backend") not in _verbs("control-plane")
    assert ("create", "secrets", "runai-backend") in _verbs("control-plane", run_helm=True)
    assert ("list", "secrets", "runai-backend") in _verbs("control-plane", dry_run=True)


def test_table_marks_conditional_rows_and_rejects_unknown_conditions() -> None:
    table = p.markdown_table(PERMISSIONS)
    assert "| patch (--existing update) | `rolebindings.rbac.authorization.k8s.io` |" in table
    assert "| create (--run-helm) | `secrets` | runai-backend |" in table
    with pytest.raises(ValueError):
        p._n("get", "", "secrets", p.CLUSTER, "sometimes")
