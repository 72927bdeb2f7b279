"""Summaries stay short however many warnings a step has.

Repeated warnings (the same words about different objects) become one: the first in full,
how many more, what differs in the next few, and "-v lists all"; with -v every one is
shown. Checked for the restore and namespaces summaries, the components of backup and
inspect, the problems of status, and a 30-project dry run into an empty cluster.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from kubeapi import ApiServer
from kubeapi.seed import seed_runai

from kubectl_runai_dr import render
from kubectl_runai_dr.cli import restore_view, status_view
from kubectl_runai_dr.model import Result
from tests.e2e import cli

BINDINGS = ["researcher-service-rw", "runai-admission-controller-project", "runai-job-executor",
            "runai-scheduler-rw", "runai-user-psp", "runai-job-controller-project",
            "runai-project-controller-project"]


def flood(projects: int = 30) -> list[str]:
    """One warning per role binding, as a step that does not aggregate would give."""
    return [f'RoleBinding runai-proj-{p:04d}/{rb} refers to ClusterRole "{rb}", which does '
            "not exist (yet); it grants nothing until the cluster chart creates it"
            for p in range(projects) for rb in BINDINGS]


def draw(obj: Any, *, width: int | None = None) -> str:
    buf = io.StringIO()
    console = render._Console(file=buf, force_terminal=width is not None, color_system=None,
                              highlight=False, width=width)
    console.print(obj)
    return buf.getvalue()


# -- the rule --------------------------------------------------------------------------------
def test_repeated_messages_become_one_with_a_count_and_a_few_of_them() -> None:
    msgs = [*flood(), "the bundle comes from another server"]
    out = render.aggregate(msgs)
    assert len(out) == 2 and out[1] == msgs[-1]
    assert out[0].startswith(msgs[0] + " (and 209 more like it: ")
    assert out[0].endswith(", …; -v lists all)")
    # what differs in the next few: their binding and role, not the whole sentence again
    assert 'runai-proj-0000/runai-admission-controller-project ' \
        '"runai-admission-controller-project"' in out[0]
    assert out[0].count("refers to") == 1 and len(out[0]) < 600
    assert render.aggregate(msgs, verbose=1) == msgs


def test_different_messages_stay_apart() -> None:
    msgs = ["the RunaiConfig CRD is not installed", "no backup recorded",
            'claim "data-0" (database) is Pending', 'claim "data-0" (thanos) is Lost']
    assert render.aggregate(msgs) == msgs
    assert render.aggregate(["x 1 y", "x 2 y"]) == ["x 1 y (and 1 more like it: 2; -v lists all)"]


# -- restore and namespaces ------------------------------------------------------------------
def steps() -> list[Result]:
    return [Result("preflight"), Result("templates"),
            Result("namespaces", warnings=["3 namespaces are new", *flood()])]


def test_restore_summary_keeps_one_line_per_step() -> None:
    out = draw(restore_view.summary_table(steps()))
    rows = [ln for ln in out.splitlines() if ln.lstrip().startswith("namespaces ")]
    assert len(out.splitlines()) == 2 + 3 + 1  # title, header, rule, three steps
    assert len(rows) == 1 and "3 namespaces are new; RoleBinding runai-proj-0000/" in rows[0]
    assert "(and 209 more like it" in rows[0] and len(rows[0]) < 700
    # on a terminal too: a handful of lines, not hundreds
    assert len(draw(restore_view.summary_table(steps()), width=80).splitlines()) < 40
    everything = draw(restore_view.summary_table(steps(), verbose=1))
    assert all(m in everything for m in flood())


# -- backup and inspect ---------------------------------------------------------------------
def flooded_bundle(tmp_path: Path) -> Path:
    from kubectl_runai_dr.bundle.writer import BundleWriter
    from tests.test_bundle import MANIFEST

    w = BundleWriter(tmp_path / "b.tar.gz")
    w.write_json("a/b.json", {"hello": "world"})
    return w.finalize({
        **MANIFEST,
        "components": [{"name": "namespaces", "status": "ok", "objects": 240,
                        "files": ["a/b.json"], "warnings": flood()},
                       {"name": "templates", "status": "ok", "objects": 3, "files": []}],
    }, mtime=0)


def test_component_table_keeps_one_line_per_component(tmp_path: Path) -> None:
    bundle = flooded_bundle(tmp_path)
    r = cli("inspect", str(bundle))
    assert r.code == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.lstrip().startswith("namespaces ")]
    assert len(rows) == 1 and "(and 209 more like it" in rows[0] and "-v lists all" in rows[0]
    assert len(r.stdout.splitlines()) < 25
    r = cli("inspect", str(bundle), "-v")
    assert all(m in r.stdout for m in flood())
    manifest = json.loads(cli("inspect", str(bundle), "-o", "json").stdout)
    assert manifest["components"][0]["warnings"] == flood()  # the document keeps them all
    # the backup view draws the same rows
    (row,) = render.component_rows({"components": manifest["components"][:1]})
    assert row[-1].startswith(render.escape(flood()[0])) and "209 more" in row[-1]


# -- status ---------------------------------------------------------------------------------
def test_status_problems_of_one_kind_are_one(apiserver: ApiServer, tmp_path: Path) -> None:
    seed_runai(apiserver, projects=1, rolebindings_per_project=1)
    kc = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    doc = json.loads(cli("status", "--kubeconfig", str(kc), "--no-exec", "-o", "json").stdout)
    many = [{"severity": "warning", "section": "run:ai",
             "message": f'project "team-{i:03d}" has no namespace runai-team-{i:03d}',
             "hint": f"kubectl runai-dr namespaces BUNDLE --project team-{i:03d}"}
            for i in range(120)]
    doc["problems"] = [*doc["problems"], *many]
    out = draw_status(doc)
    problems = out.split("Problems")[1]
    assert 'project "team-000" has no namespace runai-team-000' in problems
    assert '"team-001" runai-team-001' in problems and "and 119 more like it" in problems
    assert len(problems.splitlines()) < 20
    everything = draw_status(doc, verbose=1)
    assert all(p["message"] in everything for p in many)


def draw_status(doc: dict[str, Any], *, verbose: int = 0) -> str:
    buf = io.StringIO()
    console = render._Console(file=buf, force_terminal=False, highlight=False)
    status_view.show_status(console, doc, verbose=verbose)
    return buf.getvalue()


# -- the report: a 30-project dry run into an empty cluster ----------------------------------
def test_a_30_project_dry_run_into_an_empty_cluster(apiserver: ApiServer, tmp_path: Path) -> None:
    """Every object that would be created is listed (240), and the rest is short: the
    summary is one line per step however many bindings miss their role."""
    seed_runai(apiserver, projects=30, rolebindings_per_project=7)
    kc = apiserver.write_kubeconfig(tmp_path / "kubeconfig")
    r = cli("backup", "--kubeconfig", str(kc), "--to", str(tmp_path / "b.tar.gz"), "--no-record",
            "--skip", "database")
    assert r.code == 0, r.stderr
    empty = ApiServer()
    empty.start()
    try:
        target = empty.write_kubeconfig(tmp_path / "empty")
        r = cli("restore", str(tmp_path / "b.tar.gz"), "--dry-run", "--yes", "--kubeconfig",
                str(target), "--values-dir", str(tmp_path / "values"))
    finally:
        empty.stop()
    assert r.code == 0, r.stderr
    lines = r.stdout.splitlines()
    creates = [ln for ln in lines if ln.lstrip().startswith("create ")]
    assert len(creates) == 30 * 8 + 3 + 1 + 2  # namespaces, bindings, templates, config, helm
    assert len(lines) - len(creates) < 80, r.stdout
    summary = r.stdout.split("\nsummary\n")[1].split("\ndry run")[0].splitlines()
    assert len(summary) <= 2 + 9, summary
