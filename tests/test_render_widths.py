"""Tables and messages at several terminal widths and in a pipe.

In a terminal (COLUMNS=60/80/150) names, keys, timestamps and file names are never split:
free text folds between words, low-value columns are left out or shortened first. In a
pipe nothing is wrapped and no line ends in spaces (cron mail, CI logs). Checked for
restore (plan and summary), backup, inspect, status and snapshot list, each run the way
a user runs them, against the loopback API server.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubeapi import ApiServer
from kubeapi.seed import SeedInfo, seed_runai
from typer.testing import CliRunner

from kubectl_runai_dr.cli.app import app
from kubectl_runai_dr.components import volumes as comp
from kubectl_runai_dr.kube.client import ConnectOptions, connect
from kubectl_runai_dr.model import Names
from tests.csi_controller import CsiController
from tests.e2e import manifest_of

# A terminal of this many columns (rich's TTY_COMPATIBLE: a terminal without a tty), or a
# pipe: None (COLUMNS unset) and "pipe-60" (COLUMNS=60 set, as CI runners do).
WIDTHS = ["60", "80", "150", "pipe", "pipe-60"]


@dataclass
class Out:
    code: int
    stdout: str
    stderr: str


def run(width: str, *args: str) -> Out:
    env: dict[str, str | None] = {"NO_COLOR": "1", "COLUMNS": None, "TTY_COMPATIBLE": None,
                                  "FORCE_COLOR": None, "TERM": "xterm"}
    if width.startswith("pipe"):
        env["TTY_COMPATIBLE"] = "0"
        if "-" in width:
            env["COLUMNS"] = width.split("-")[1]
    else:
        env.update(TTY_COMPATIBLE="1", COLUMNS=width)
    r = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return Out(r.exit_code, plain(r.stdout), plain(r.stderr))


def plain(text: str) -> str:
    """Without the terminal's styles (NO_COLOR leaves bold)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def terminal(width: str) -> int | None:
    return None if width.startswith("pipe") else int(width)


def broken(text: str, *identifiers: str) -> list[str]:
    """The identifiers that do not appear whole on one line of ``text``."""
    lines = text.splitlines()
    return [i for i in identifiers if not any(i in ln for ln in lines)]


def check_layout(out: str, width: str, *identifiers: str) -> None:
    assert broken(out, *identifiers) == [], out
    if terminal(width) is None:
        trailing = [ln for ln in out.splitlines() if ln != ln.rstrip()]
        assert trailing == [], trailing


def table_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if "│" in ln or "┃" in ln or "━" in ln]


# -- one installation, backed up, with snapshots of its volumes --------------------------------
@dataclass
class Site:
    srv: ApiServer
    kc: Path
    info: SeedInfo
    bundle: Path
    snapshots: list[str]
    empty_kc: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from kubeapi.seed import crd_docs

    tmp = tmp_path_factory.mktemp("widths")
    srv = ApiServer()
    srv.install_crds(crd_docs())
    srv.start()
    empty = ApiServer()
    empty.start()
    try:
        info = seed_runai(srv, projects=3, rolebindings_per_project=7)
        kc = srv.write_kubeconfig(tmp / "kubeconfig")
        kube = connect(ConnectOptions(kubeconfig=str(kc)))
        with CsiController(srv).running():
            snap = comp.take_snapshots(kube, Names(), comp.SnapshotOptions(
                timeout=10, poll=0.02, checkpoint=False))
        names = [r["volumeSnapshotName"] for r in snap.records]
        assert names
        (tmp / "bundles").mkdir()
        r = run("pipe", "backup", "--kubeconfig", str(kc), "--to", str(tmp / "bundles") + "/",
                "--no-record", "--skip", "database")
        assert r.code == 0, r.stderr
        (bundle,) = (tmp / "bundles").glob("*.tar.gz")
        yield Site(srv, kc, info, bundle, names, empty.write_kubeconfig(tmp / "empty"))
    finally:
        empty.stop()
        srv.stop()


@pytest.mark.parametrize("width", WIDTHS)
def test_backup_summary(site: Site, width: str, tmp_path: Path) -> None:
    r = run(width, "backup", "--kubeconfig", str(site.kc), "--to", str(tmp_path) + "/",
            "--no-record", "--skip", "database")
    assert r.code == 0, r.stderr
    (bundle,) = tmp_path.glob("*.tar.gz")
    check_layout(r.stdout, width, str(bundle), "control-plane", "runaiconfig", "namespaces",
                 "scheduling", "complete")
    _fits(r.stdout, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_inspect(site: Site, width: str) -> None:
    r = run(width, "inspect", str(site.bundle))
    assert r.code == 0, r.stderr
    created = manifest_of(site.bundle)["createdAt"]
    server = manifest_of(site.bundle)["source"]["server"]
    check_layout(r.stdout, width, str(site.bundle), created, server, "loopback",
                 "control-plane", "namespaces")
    _fits(r.stdout, width)
    if terminal(width) is None:
        check_layout(r.stdout, width, "(not verified: `kubectl runai-dr verify` reads every "
                     "file)", "only with --include-secrets")


@pytest.mark.parametrize("width", WIDTHS)
def test_restore_plan_and_summary(site: Site, width: str, tmp_path: Path) -> None:
    """A dry run into an empty cluster: the plan, every object, the summary with its
    notes (RunaiConfig keys, missing roles)."""
    values = tmp_path / "values"
    r = run(width, "restore", str(site.bundle), "--dry-run", "--yes", "--kubeconfig",
            str(site.empty_kc), "--values-dir", str(values))
    assert r.code == 0, r.stderr
    created = manifest_of(site.bundle)["createdAt"]
    ns = site.info.project_namespaces
    check_layout(r.stdout, width, created, "control-plane", "runaiconfig", "namespaces",
                 "after cluster", str(values / "runai-backend-values.yaml"),
                 str(values / "runai-cluster-values.yaml"), "runai-backend", "runai-cluster",
                 *ns, f"{ns[0]}/researcher-service-rw", "global.nodeAffinity.restrictScheduling",
                 "runai-admission-controller-project")
    assert "plan" in r.stdout and "summary" in r.stdout
    check_layout(r.stderr, width, "RunaiConfig", "--run-helm")
    _fits(r.stdout, width)
    if terminal(width) is None:  # one line per step of the summary, its note included
        row = [ln for ln in r.stdout.splitlines() if ln.lstrip().startswith("runaiconfig ")
               and "after cluster" in ln]
        assert len(row) == 1 and "global.image.registry" in row[0] and \
            "keep them in its values" in row[0], r.stdout
        assert len(r.stderr.splitlines()) == 1, r.stderr  # the one warning, unwrapped


@pytest.mark.parametrize("width", WIDTHS)
def test_status(site: Site, width: str) -> None:
    doc = json.loads(run("pipe", "status", "--kubeconfig", str(site.kc), "--no-exec",
                         "-o", "json").stdout)
    releases = doc["releases"]["releases"]
    deployed = [r["lastDeployed"][:19].replace("T", " ") for r in releases]
    latest = [c["latestSnapshot"]["name"] for c in doc["volumes"]["claims"]
              if c.get("latestSnapshot")]
    assert len(releases) == 2 and all(deployed) and len(latest) == 3
    r = run(width, "status", "--kubeconfig", str(site.kc), "--no-exec")
    assert r.code in (0, 7, 8), r.stderr
    check_layout(r.stdout, width, *(x["name"] for x in releases),
                 *(x["namespace"] for x in releases), "data-runai-backend-postgresql-0",
                 *latest, "runai-dr-last-backup")
    if terminal(width) != 60:  # at 60 the release table leaves out its times, at 80 its
        check_layout(r.stdout, width, *deployed)  # charts: low-value columns go first
    if terminal(width) not in (60, 80):
        check_layout(r.stdout, width, *(x["chart"] for x in releases))
    _fits(r.stdout, width)


@pytest.mark.parametrize("width", WIDTHS)
def test_snapshot_list(site: Site, width: str) -> None:
    r = run(width, "snapshot", "list", "--kubeconfig", str(site.kc))
    assert r.code == 0, r.stderr
    check_layout(r.stdout, width, *site.snapshots, "runai-backend",
                 "data-runai-backend-postgresql-0")
    _fits(r.stdout, width)
    assert len([ln for ln in r.stdout.splitlines() if "runai-dr-" in ln]) == \
        len(site.snapshots)  # one line per snapshot


def test_errors_to_a_pipe_are_one_line_without_trailing_spaces(tmp_path: Path) -> None:
    missing = tmp_path / ("a-directory-with-a-rather-long-name-" * 3) / "bundle.tar.gz"
    for width in ("pipe", "pipe-60"):
        r = run(width, "inspect", str(missing))
        assert r.code != 0
        lines = r.stderr.splitlines()
        assert [ln for ln in lines if ln != ln.rstrip()] == []
        assert any(ln.startswith("error:") and str(missing) in ln for ln in lines), r.stderr


def test_errors_in_a_terminal_fold_with_a_hanging_indent(tmp_path: Path) -> None:
    missing = tmp_path / ("a-directory-with-a-rather-long-name-" * 3) / "bundle.tar.gz"
    r = run("60", "inspect", str(missing))
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error:") and len(lines) > 1, r.stderr
    assert broken(r.stderr, str(missing)) == []
    hint = next(i for i, ln in enumerate(lines) if ln.startswith("hint:"))
    assert all(ln.startswith(" " * len("error: ")) for ln in lines[1:hint]), r.stderr
    assert all(ln.startswith(" " * len("hint: ")) for ln in lines[hint + 1:]), r.stderr


# -- helpers -----------------------------------------------------------------------------------
def _fits(out: str, width: str) -> None:
    """In a terminal the tables fit (their identifiers are short enough to fit at 80)."""
    cols = terminal(width)
    if cols is not None and cols >= 80:
        wide = [ln for ln in table_lines(out) if len(ln) > cols]
        assert wide == [], "\n".join(wide)


def test_a_real_terminal(site: Site) -> None:
    """The same on a real terminal (a pseudo-terminal 60 columns wide, no COLUMNS)."""
    import fcntl
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from tests.e2e import ROOT

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 60, 0, 0))
    env = {k: v for k, v in os.environ.items()
           if k not in ("COLUMNS", "LINES", "TTY_COMPATIBLE", "FORCE_COLOR")}
    p = subprocess.Popen([sys.executable, "-m", "kubectl_runai_dr", "inspect", str(site.bundle)],
                         stdin=follower, stdout=follower, stderr=follower, cwd=ROOT,
                         env={**env, "NO_COLOR": "1", "TERM": "xterm", "PYTHONPATH": str(ROOT)})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the program ended
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert p.wait(timeout=60) == 0
    out = plain(b"".join(chunks).decode().replace("\r\n", "\n"))
    assert "Components" in out
    created = manifest_of(site.bundle)["createdAt"]
    check_layout(out, "60", str(site.bundle), created, "control-plane", "namespaces")
    # the table fits the terminal: the sizes were left out, the notes folded
    assert all(len(ln) <= 60 for ln in table_lines(out)), out
    assert "SIZE" not in out and "only with" in out
