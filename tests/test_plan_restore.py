"""The restore plan (order as data, --only/--skip) and the object diff, both pure."""

from __future__ import annotations

from typing import Any

import pytest

from kubectl_runai_dr.bundle import layout
from kubectl_runai_dr.components.registry import RESTORABLE as SELECTABLE
from kubectl_runai_dr.components.registry import RESTORE_STEPS, bundle_content
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.plan.diff import Action, changed_paths, decide, project, update_patch
from kubectl_runai_dr.plan.restore import check_selection, plan_restore, resume_hint

ALL = {s.name: True for s in RESTORE_STEPS}


def test_order_is_the_documented_recovery_order_with_reasons() -> None:
    assert [s.name for s in RESTORE_STEPS] == [
        "preflight", "volumes", "secrets", "control-plane", "database", "cluster",
        "runaiconfig", "templates", "namespaces"]
    assert all(len(s.reason) > 20 for s in RESTORE_STEPS)
    assert len({s.name for s in RESTORE_STEPS}) == len(RESTORE_STEPS)


def test_everything_runs_when_the_bundle_has_everything() -> None:
    plan = plan_restore(RESTORE_STEPS, ALL)
    assert all(p.run for p in plan)


def test_only_and_skip() -> None:
    plan = {p.name: p for p in plan_restore(RESTORE_STEPS, ALL, only=["namespaces", "templates"])}
    assert [n for n, p in plan.items() if p.run] == ["preflight", "templates", "namespaces"]
    assert plan["database"].why_not == "not chosen (--only)"
    plan = {p.name: p for p in plan_restore(RESTORE_STEPS, ALL, skip=["database"])}
    assert not plan["database"].run and plan["database"].why_not == "skipped (--skip)"
    assert plan["volumes"].run and plan["namespaces"].run


def test_steps_without_data_do_not_run_and_asking_for_one_is_a_mistake() -> None:
    content = {**ALL, "volumes": False, "database": False}
    plan = {p.name: p for p in plan_restore(RESTORE_STEPS, content)}
    assert not plan["database"].run and "no data" in plan["database"].why_not
    assert plan["cluster"].run
    with pytest.raises(ValueError, match=r"the bundle holds no data for: database \(it holds: "
                       r"secrets, control-plane, cluster"):
        plan_restore(RESTORE_STEPS, content, only=["database", "cluster"])


@pytest.mark.parametrize("only,skip,message", [
    (["bogus"], [], "unknown step"), ([], ["preflight"], "preflight always runs"),
    (["cluster"], ["cluster"], "both chosen and skipped")])
def test_bad_selection(only: list[str], skip: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_selection(RESTORE_STEPS, only, skip)


def test_bundle_content_from_file_table() -> None:
    names = Names()
    files = {layout.helm_values("runai-cluster"), layout.RUNAICONFIG_SPEC,
             layout.objects("", "namespaces"), "database/backend.dump"}
    content = bundle_content(files, names)
    assert content == {"preflight": True, "volumes": False, "secrets": False,
                       "control-plane": False,
                       "database": True, "cluster": True, "runaiconfig": True,
                       "templates": False, "namespaces": True}
    assert bundle_content({layout.SNAPSHOTS}, names)["volumes"]
    assert bundle_content({layout.SECRETS}, names)["secrets"]


def test_resume_hint_names_the_first_failed_step() -> None:
    assert resume_hint([]) == ""
    hint = resume_hint(["templates", "namespaces"])
    assert "run the same command again" in hint and "--only templates" in hint


# -- diff -------------------------------------------------------------------------------
NS = {"apiVersion": "v1", "kind": "Namespace",
      "metadata": {"name": "runai-a", "labels": {"runai/queue": "a"}}}


def live(**labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "runai-a", "uid": "u", "resourceVersion": "9",
                         "creationTimestamp": "2025-01-01T00:00:00Z",
                         "labels": {"kubernetes.io/metadata.name": "runai-a", **labels}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def test_decide_create_unchanged_update() -> None:
    assert decide(NS, None).action is Action.CREATE
    # server-set fields, defaults and extra labels are not drift
    assert decide(NS, live(**{"runai/queue": "a"})).action is Action.UNCHANGED
    d = decide(NS, live(**{"runai/queue": "b"}))
    assert d.action is Action.UPDATE
    assert d.changed == ["metadata.labels.runai/queue"]
    assert "-    runai/queue: b" in d.diff and "+    runai/queue: a" in d.diff
    assert d.diff.startswith("--- live/Namespace/runai-a")
    missing = decide(NS, live())
    assert missing.changed == ["metadata.labels.runai/queue"]


def test_lists_compare_whole() -> None:
    want = {"kind": "RoleBinding", "metadata": {"name": "x", "namespace": "n"},
            "subjects": [{"kind": "User", "name": "a"}]}
    have = {"kind": "RoleBinding", "metadata": {"name": "x", "namespace": "n"},
            "subjects": [{"kind": "User", "name": "a"}, {"kind": "User", "name": "b"}]}
    assert decide(want, have).changed == ["subjects"]


def test_project_and_changed_paths() -> None:
    assert project({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": 0}}) == {"b": {"c": 2}}
    assert changed_paths({"a": {"b": 1}}, {"a": {"b": 2}}) == ["a.b"]
    assert changed_paths({"a": 1}, {"a": 1, "z": 2}) == []


def test_update_patch_merges_metadata_and_sets_the_rest() -> None:
    rb = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
          "metadata": {"name": "x", "namespace": "n", "labels": {"a": "b"}},
          "roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": []}
    assert update_patch(rb) == {"metadata": {"labels": {"a": "b"}},
                                "roleRef": {"kind": "ClusterRole", "name": "r"},
                                "subjects": []}


def test_secret_diffs_show_keys_never_values() -> None:
    from kubectl_runai_dr.plan.diff import decide

    want = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": "tls", "namespace": "runai"},
            "data": {"tls.key": "c2VjcmV0LWtleQ==", "tls.crt": "Y2VydA=="}}
    have = {**want, "data": {"tls.key": "b3RoZXIta2V5", "tls.crt": "Y2VydA=="}}
    d = decide(want, have)
    assert d.changed == ["data.tls.key"]
    assert "c2VjcmV0LWtleQ==" not in d.diff and "b3RoZXIta2V5" not in d.diff
    assert "tls.key: <redacted sha256:" in d.diff
    # equal values redact equally: the unchanged key is not in the diff's changed lines
    assert not [ln for ln in d.diff.splitlines() if ln.startswith(("+", "-"))
                and "tls.crt" in ln]


def test_restore_help_names_every_step() -> None:
    from tests.e2e import cli

    out = cli("restore", "--help").stdout
    flat = " ".join(out.replace("│", " ").split())
    for step in SELECTABLE:
        assert step in flat, step
