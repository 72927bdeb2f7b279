"""`status` without a server: problem rules, severities, exit codes, the document, the
permission data and the README's permission table."""

from __future__ import annotations

import importlib.util
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from kubectl_runai_dr.components.registry import NAMES, PERMISSIONS
from kubectl_runai_dr.errors import ExitCode
from kubectl_runai_dr.model import Names
from kubectl_runai_dr.plan import permissions as perm
from kubectl_runai_dr.plan import status as s
from kubectl_runai_dr.plan.database import pod_command

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=timezone.utc)


def _ts(delta: timedelta) -> str:
    return (NOW - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def healthy() -> s.StatusFacts:
    f = s.StatusFacts()
    f.cluster = s.ClusterFacts("ctx", "https://k", "v1.30.1", control_plane=True, cluster=True)
    f.releases.releases = [
        s.ReleaseFacts("runai-backend", "runai-backend", "control-plane", found=True,
                       chart="control-plane", revision=4, status="deployed",
                       deployed_revision=4),
        s.ReleaseFacts("runai-cluster", "runai", "cluster", found=True, chart="runai-cluster",
                       revision=2, status="deployed", deployed_revision=2)]
    f.database = s.DatabaseFacts(namespace="runai-backend", statefulset="pg",
                                 statefulset_found=True, pod="pg-0", container="postgresql",
                                 ready=True, version="16.2",
                                 databases=[{"name": "backend", "bytes": 10}], query="ok")
    f.volumes = s.VolumesFacts(snapshot_crds=True, claims=[
        s.ClaimFacts("database", "runai-backend", "data-pg-0", found=True, phase="Bound",
                     size="20Gi", storage_class="gp3", volume="pv-1", driver="ebs",
                     reclaim_policy="Retain", snapshot_class="vsc")])
    f.runai = s.RunaiFacts(runaiconfig=True, projects=2, project_namespaces=2, rolebindings=14,
                           templates=3, projects_without_namespace=[])
    f.backup = s.BackupFacts(found=True, namespace="runai-backend",
                             time=_ts(timedelta(hours=2)), bundle="b.tar.gz", result="complete")
    f.permissions = s.PermissionsFacts(user_can_review=True, checks=[
        s.PermissionCheck("backup", "database", "create", "pods/exec", "runai-backend", True)])
    return f


def problems(f: s.StatusFacts, max_age: float | None = s.DEFAULT_MAX_AGE) -> list[s.Problem]:
    return s.evaluate(f, max_age=max_age, now=NOW)


def only(f: s.StatusFacts, **kw: Any) -> s.Problem:
    found = problems(f, **kw)
    assert len(found) == 1, found
    return found[0]


def test_healthy_has_no_problem_and_exits_0() -> None:
    assert problems(healthy()) == []
    assert s.exit_code([]) is ExitCode.OK


def test_exit_codes_by_severity() -> None:
    info = s.Problem(s.INFO, "x", "m", "h")
    warn = s.Problem(s.WARNING, "x", "m", "h")
    crit = s.Problem(s.CRITICAL, "x", "m", "h")
    assert s.exit_code([info]) is ExitCode.OK
    assert s.exit_code([info, warn]) is ExitCode.STATUS_WARNING and ExitCode.STATUS_WARNING.value == 7
    assert s.exit_code([warn, crit, info]) is ExitCode.STATUS_CRITICAL and ExitCode.STATUS_CRITICAL.value == 8
    # distinct from the codes of failures and usage errors
    assert {7, 8}.isdisjoint({ExitCode.ERROR, ExitCode.USAGE, ExitCode.PARTIAL,
                              ExitCode.INVALID_BUNDLE, ExitCode.CLUSTER_UNREACHABLE,
                              ExitCode.FORBIDDEN})


@pytest.mark.parametrize("status", ["failed", "pending-upgrade", "pending-install",
                                    "pending-rollback", "uninstalling"])
def test_release_not_deployed_is_critical(status: str) -> None:
    f = healthy()
    rel = f.releases.releases[0]
    rel.revision, rel.status = 5, status
    p = only(f)
    assert p.severity == s.CRITICAL and p.section == "helm"
    assert "runai-backend" in p.message and status in p.message and "5" in p.message
    assert "helm history runai-backend -n runai-backend" in p.hint
    if status == "failed":
        assert "revision 4" in p.message  # what a backup saves instead


def test_release_with_no_deployed_revision_says_backup_cannot_save() -> None:
    f = healthy()
    rel = f.releases.releases[1]
    rel.status, rel.deployed_revision = "failed", None
    assert "no revision is deployed" in only(f).message


def test_missing_release_warns_only_where_its_half_is_installed() -> None:
    f = healthy()
    f.releases.releases[0].found = False
    assert only(f).severity == s.WARNING
    f.cluster.control_plane = False  # SaaS: no control plane, its release is not expected
    f.database.applicable = f.volumes.applicable = False
    assert problems(f) == []


def test_nothing_installed_is_critical() -> None:
    f = healthy()
    f.cluster.control_plane = f.cluster.cluster = False
    assert any(p.severity == s.CRITICAL and "no Run:ai installation" in p.message
               for p in problems(f))


def test_backup_age_threshold_and_missing() -> None:
    f = healthy()
    f.backup.time = _ts(timedelta(hours=30))
    p = only(f)
    assert p.severity == s.CRITICAL and "1d6h old" in p.message and "older than 1d" in p.message
    assert problems(f, max_age=36 * 3600) == []
    assert problems(f, max_age=None) == []  # --max-age 0: never too old
    f.backup = s.BackupFacts(found=False)
    p = only(f)
    assert p.severity == s.CRITICAL and "no backup recorded" in p.message
    f.backup = s.BackupFacts(found=None)  # could not read: no claim either way
    assert problems(f) == []


def test_partial_backup_is_critical_and_names_failed_components() -> None:
    f = healthy()
    f.backup.result, f.backup.failed_components = "partial", ["database"]
    p = only(f)
    assert p.severity == s.CRITICAL and "partial" in p.message and "database" in p.message


def test_a_backup_that_left_out_essentials_is_a_warning() -> None:
    f = healthy()
    f.backup.excluded_components = ["secrets", "volumes"]  # opt-in components: fine
    assert problems(f) == []
    f.backup.excluded_components = ["database", "cluster", "secrets"]
    p = only(f)
    assert p.severity == s.WARNING
    assert p.message == ("the last backup left out the database, the cluster's helm values: "
                         "b.tar.gz")
    assert set(s.ESSENTIAL_COMPONENTS) <= set(NAMES)  # the names the registry uses


def test_unreadable_backup_time() -> None:
    f = healthy()
    f.backup.time = "yesterday"
    assert only(f).severity == s.WARNING


def test_reclaim_delete_is_a_warning_with_the_patch_command() -> None:
    f = healthy()
    f.volumes.claims[0].reclaim_policy = "Delete"
    p = only(f)
    assert p.severity == s.WARNING and "Delete" in p.message
    assert p.hint.startswith("`kubectl runai-dr protect`") and "kubectl patch pv pv-1 -p" in p.hint
    assert json.loads(p.hint.split(" -p ", 1)[1].strip("'")) == {
        "spec": {"persistentVolumeReclaimPolicy": "Retain"}}


def test_snapshot_class_and_api_absent_are_info() -> None:
    f = healthy()
    f.volumes.claims[0].snapshot_class = None
    assert only(f).severity == s.INFO
    f.volumes.snapshot_crds = False
    p = only(f)
    assert p.severity == s.INFO and "snapshot.storage.k8s.io" in p.message


def test_database_rules() -> None:
    f = healthy()
    f.database.ready, f.database.not_ready = False, "is Pending, not Running"
    p = only(f)
    assert p.severity == s.CRITICAL and "Pending" in p.message and "pg-0" in p.message
    f = healthy()
    f.database.statefulset_found = False
    assert only(f).severity == s.CRITICAL
    f = healthy()
    f.database.version, f.database.query = None, s.EXEC_FORBIDDEN
    assert only(f).severity == s.INFO
    f.database.query = "unknown (psql exited with code 2: connection refused)"
    assert only(f).severity == s.WARNING
    f = healthy()
    f.database = s.DatabaseFacts(external_host="db.example.com", external_port=5433)
    p = only(f)
    assert p.severity == s.INFO and "db.example.com:5433" in p.message
    assert "--db-mode local" in p.hint


def test_projects_without_namespace_and_runaiconfig() -> None:
    f = healthy()
    f.runai.projects_without_namespace = [{"project": "a", "namespace": "runai-a"}]
    p = only(f)
    assert p.severity == s.WARNING and "a (runai-a)" in p.message
    f = healthy()
    f.runai.runaiconfig = False
    assert only(f).severity == s.WARNING


def test_denied_permissions_backup_critical_restore_and_optional_warning() -> None:
    f = healthy()
    f.permissions.checks = [
        s.PermissionCheck("backup", "database", "create", "pods/exec", "runai-backend", False),
        s.PermissionCheck("backup", "database", "list", "pods", "runai-backend", False),
        s.PermissionCheck("backup", "secrets", "list", "secrets", "runai", False,
                          optional=True),
        s.PermissionCheck("restore", "namespaces", "create", "namespaces", "(cluster)", False),
        s.PermissionCheck("restore", "cluster", "create", "secrets", "runai", None),
    ]
    found = {(p.message.split(":")[0]): p for p in problems(f)}
    assert found["backup step database"].severity == s.CRITICAL
    assert ("create pods/exec in runai-backend; list pods in runai-backend"
            in found["backup step database"].message)
    assert found["backup step secrets"].severity == s.WARNING
    assert found["restore step namespaces"].severity == s.WARNING
    assert len(found) == 3  # unknown (None) is not a denial


def test_section_errors_become_warnings_with_a_hint() -> None:
    f = healthy()
    f.runai.errors.append(s.SectionError('projects.run.ai is forbidden', forbidden=True))
    p = only(f)
    assert p.severity == s.WARNING and p.section == "run:ai" and "permission" in p.hint


def test_problems_sorted_most_severe_first() -> None:
    f = healthy()
    f.volumes.claims[0].snapshot_class = None  # info
    f.volumes.claims[0].reclaim_policy = "Delete"  # warning
    f.backup.found = False  # critical
    assert [p.severity for p in problems(f)] == [s.CRITICAL, s.WARNING, s.INFO]


def test_snapshots_that_never_became_ready_are_a_problem() -> None:
    f = healthy()
    claim = f.volumes.claims[0]
    claim.latest_snapshot = s.SnapshotFacts("snap-ok", _ts(timedelta(hours=30)), True)
    claim.unready_snapshots = [s.SnapshotFacts("snap-stuck", _ts(timedelta(hours=3)), False)]
    found = [p for p in problems(f) if "not ready" in p.message]
    assert len(found) == 1 and found[0].severity == s.WARNING
    assert "snap-stuck" in found[0].message and "the latest ready one is snap-ok" in \
        found[0].message
    assert "kubectl describe volumesnapshot" in found[0].hint
    # an older failed one, with a newer ready one after it, is history, not a problem
    claim.unready_snapshots[0] = s.SnapshotFacts("snap-old", _ts(timedelta(hours=40)), False)
    assert not [p for p in problems(f) if "not ready" in p.message]


def test_report_document() -> None:
    f = healthy()
    f.volumes.claims[0].latest_snapshot = s.SnapshotFacts("snap-1", _ts(timedelta(hours=3)),
                                                          True)
    f.releases.releases[1].status = "failed"
    found = problems(f)
    doc = s.report(f, found, now=NOW, max_age=3600.0)
    json.dumps(doc)  # plain data
    assert doc["cluster"]["installation"] == "control plane and cluster (self-hosted)"
    assert doc["cluster"]["kubernetesVersion"] == "v1.30.1"
    assert doc["backup"]["ageSeconds"] == 7200 and doc["backup"]["maxAgeSeconds"] == 3600
    assert doc["volumes"]["claims"][0]["latestSnapshot"]["ageSeconds"] == 3 * 3600
    assert [r["flagged"] for r in doc["releases"]["releases"]] == [False, True]
    assert doc["summary"]["exitCode"] == 8 and doc["summary"]["critical"] == 1
    assert doc["summary"]["healthy"] is False
    assert [p["severity"] for p in doc["problems"]] == [p.severity for p in found]


@pytest.mark.parametrize(("cp", "cl", "text"), [
    (True, True, "control plane and cluster (self-hosted)"),
    (False, True, "cluster only (SaaS control plane)"),
    (True, False, "control plane only"), (False, False, "none"), (None, True, "unknown")])
def test_installation_wording(cp: bool | None, cl: bool | None, text: str) -> None:
    assert s.ClusterFacts(control_plane=cp, cluster=cl).installation == text


def test_time_parsing_and_durations() -> None:
    assert s.parse_time("2025-01-15T09:30:00.123456789Z") == datetime(
        2025, 1, 15, 9, 30, tzinfo=timezone.utc)
    assert s.parse_time("2025-01-15T11:30:00+02:00") == datetime(2025, 1, 15, 9, 30,
                                                                 tzinfo=timezone.utc)
    assert s.parse_time("") is None and s.parse_time("garbage") is None
    assert s.human_duration(59) == "59s" and s.human_duration(3600 + 120) == "1h2m"
    assert s.human_duration(86400) == "1d" and s.human_duration(None) == "unknown"
    assert s.human_duration(-5) == "in the future"


def test_psql_command_carries_no_password() -> None:
    argv = pod_command(s.status_psql_argv())
    assert argv[:2] == ["sh", "-c"]
    assert '"$POSTGRES_POSTGRES_PASSWORD"' in argv[2]  # expanded inside the pod
    assert argv[3:] == ["runai-dr", *s.status_psql_argv()]
    assert "-w" in s.status_psql_argv()  # never prompt
    assert not any("PGPASSWORD=" in a and "$" not in a for a in argv)


# -- the permission data -----------------------------------------------------------------------
def test_permission_data_is_well_formed() -> None:
    assert perm.commands(PERMISSIONS) == ("backup", "restore", "snapshot", "protect", "status")
    seen = set()
    for step in PERMISSIONS:
        assert step.needs, step
        assert (step.command, step.step) not in seen
        seen.add((step.command, step.step))
        for need in step.needs:
            assert need.scope in perm.SCOPES and need.verb and need.resource
    from kubectl_runai_dr.components.registry import NAMES, RESTORE_STEPS

    assert set(NAMES) <= {s for c, s in seen if c == "backup"}
    assert {s.name for s in RESTORE_STEPS} == {s for c, s in seen if c == "restore"}


def test_permission_checks_resolve_namespaces() -> None:
    names = Names(control_plane_namespace="cp", cluster_namespace="cl")
    got = {(st.step, n.verb, n.resource, ns) for st, n, ns in perm.checks(PERMISSIONS, ["backup"], names)}
    assert ("database", "create", "pods/exec", "cp") in got
    assert ("runaiconfig", "get", "runaiconfigs", "cl") in got
    assert ("namespaces", "list", "rolebindings", None) in got
    need = perm.Need("create", "", "pods/exec", perm.CONTROL_PLANE)
    assert (need.plural, need.subresource, need.group_resource) == ("pods", "exec", "pods/exec")
    with pytest.raises(ValueError, match="unknown command"):
        perm.steps(PERMISSIONS, ["drill-everything"])


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("permissions_table",
                                                  ROOT / "scripts" / "readme-tables.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_holds_exactly_the_generated_table() -> None:
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- permissions:begin -->\n(.*?)<!-- permissions:end -->", readme, re.S)
    assert m, "README.md lacks the permission markers"
    assert m.group(1) == perm.markdown_table(PERMISSIONS), \
        "README permission table is stale: run scripts/readme-tables.py --write"
    assert readme.count("<!-- permissions:begin -->") == 1
    rows = [ln for ln in m.group(1).splitlines() if ln.startswith("| `")]
    assert len(rows) == sum(len(st.needs) for st in PERMISSIONS)


def test_script_replaces_only_between_markers() -> None:
    mod = _script()
    text = "a\n<!-- permissions:begin -->\nold\n<!-- permissions:end -->\nb\n"
    assert mod.replace_table(text, "T\n") == (
        "a\n<!-- permissions:begin -->\nT\n<!-- permissions:end -->\nb\n")
    with pytest.raises(ValueError, match="markers"):
        mod.replace_table("no markers", "T\n")


def test_readme_holds_the_generated_component_table() -> None:
    """The README says exactly what each registered component backs up and restores."""
    mod = _script()
    readme = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- components:begin -->\n(.*?)<!-- components:end -->", readme, re.S)
    assert m, "README.md lacks the component markers"
    assert m.group(1) == mod.components_table(), \
        "README component table is stale: run scripts/readme-tables.py --write"
    from kubectl_runai_dr.components.registry import COMPONENTS

    rows = [ln for ln in m.group(1).splitlines() if ln.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == [c.name for c in COMPONENTS]


def test_unencrypted_backup_is_a_warning_with_the_way_to_encrypt() -> None:
    f = healthy()
    f.backup.encrypted = False
    p = only(f)
    assert p.severity == s.WARNING and "not encrypted" in p.message
    assert p.hint is not None and "--encrypt-to" in p.hint and "keygen" in p.hint
    f.backup.encrypted = None  # a record written before the tool recorded it: no claim
    assert problems(f) == []
