"""Shell completion through the real entry point: kubectl's plugin completion helper
(``kubectl_complete-runai_dr``) asking the plugin with the environment-variable protocol.

Component and step names (from the registry's order), contexts from the kubeconfig kubectl
would read, bundle files; a comma list completes its last item. Completion imports neither
the kubernetes client nor the components.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubectl_runai_dr.cli import complete
from tests.e2e import ROOT

KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
ALL = ["volumes", "secrets", "control-plane", "database", "cluster", "runaiconfig",
       "templates", "namespaces", "scheduling"]
RESTORABLE = ALL[:-1]  # scheduling objects are records, never restored; preflight always runs


@pytest.fixture(scope="module")
def bindir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kubectl-runai_dr (the package, run by this Python) and the helper, on PATH."""
    path = tmp_path_factory.mktemp("bin")
    plugin = path / "kubectl-runai_dr"
    plugin.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                      "from kubectl_runai_dr.__main__ import main\nmain()\n")
    plugin.chmod(0o755)
    (path / "kubectl_complete-runai_dr").symlink_to(ROOT / "kubectl_complete-runai_dr")
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """An empty home: no ~/.kube/config unless a test writes one."""
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def complete_words(bindir: Path, home: Path, *words: str, cwd: Path | None = None,
                   env: dict[str, str] | None = None, via_kubectl: bool = False
                   ) -> tuple[list[tuple[str, str]], str]:
    """(candidates as (value, description), directive) for the words after the plugin's
    name, the last one being completed."""
    base = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    full = {**base, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            **(env or {})}
    cmd = ([str(KUBECTL), "__complete", "runai-dr", *words] if via_kubectl
           else [str(bindir / "kubectl_complete-runai_dr"), *words])
    r = subprocess.run(cmd, capture_output=True, text=True, env=full, cwd=cwd or home,
                       timeout=60, check=True)
    lines = r.stdout.splitlines()
    assert lines and lines[-1].startswith(":"), r.stdout
    cands = [(ln.split("\t")[0], ln.split("\t")[1] if "\t" in ln else "") for ln in lines[:-1]
             if not ln.startswith("Completion ended")]
    return cands, lines[-1]


def values(cands: list[tuple[str, str]]) -> list[str]:
    return [v for v, _ in cands]


# -- the names -------------------------------------------------------------------------------
def test_the_names_are_the_registrys() -> None:
    from kubectl_runai_dr.components import registry

    expected = tuple((c.name, c.title, c.restore is not None) for c in registry.COMPONENTS)
    assert expected == complete.COMPONENTS, (
        "kubectl_runai_dr/cli/complete.py COMPONENTS differs from components/registry.py; "
        f"it should read:\nCOMPONENTS = {expected!r}")
    assert complete.RESTORABLE == registry.RESTORABLE
    assert list(registry.NAMES) == ALL and list(registry.RESTORABLE) == RESTORABLE


def test_backup_skip_offers_every_component(bindir: Path, home: Path) -> None:
    cands, directive = complete_words(bindir, home, "backup", "--skip", "")
    assert values(cands) == ALL and directive == ":4"
    assert ("control-plane", "control plane (helm)") in cands  # with what each one is
    assert values(complete_words(bindir, home, "backup", "--skip", "sec")[0]) == ["secrets"]


def test_a_comma_list_completes_its_last_item(bindir: Path, home: Path) -> None:
    assert values(complete_words(bindir, home, "backup", "--skip", "secrets,d")[0]) == \
        ["secrets,database"]
    after = values(complete_words(bindir, home, "backup", "--skip", "secrets,")[0])
    assert after == [f"secrets,{n}" for n in ALL if n != "secrets"]
    # a name given before (repeated flag, or the other list) is not offered again
    again = values(complete_words(bindir, home, "backup", "--skip", "volumes", "--skip", "")[0])
    assert "volumes" not in again and len(again) == len(ALL) - 1


def test_backup_components(bindir: Path, home: Path) -> None:
    assert values(complete_words(bindir, home, "backup", "data")[0]) == ["database"]
    rest = values(complete_words(bindir, home, "backup", "database", "")[0])
    assert rest == [n for n in ALL if n != "database"]
    assert values(complete_words(bindir, home, "backup", "runaiconfig,t")[0]) == \
        ["runaiconfig,templates"]


def test_restore_steps_are_the_restorable_ones(bindir: Path, home: Path) -> None:
    for flag in ("--only", "--skip"):
        cands, directive = complete_words(bindir, home, "restore", flag, "", cwd=home)
        assert values(cands) == RESTORABLE and directive == ":4"
    assert values(complete_words(bindir, home, "restore", "--skip", "cl")[0]) == ["cluster"]
    assert values(complete_words(bindir, home, "restore", "--only", "database,c")[0]) == \
        ["database,control-plane", "database,cluster"]
    assert values(complete_words(bindir, home, "restore-database", "--skip", "te")[0]) == \
        ["templates"]


# -- kubeconfig contexts ---------------------------------------------------------------------
def kubeconfig(path: Path, current: str, *names: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": current,
        "clusters": [{"name": f"c-{n}", "cluster": {"server": f"https://{n}:6443"}}
                     for n in names],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": n, "context": {"cluster": f"c-{n}", "user": "u"}}
                     for n in names]}))
    return path


def test_context_from_the_kubeconfig(bindir: Path, home: Path, tmp_path: Path) -> None:
    (home / ".kube").mkdir()
    kubeconfig(home / ".kube" / "config", "prod", "prod", "staging")
    cands, _ = complete_words(bindir, home, "status", "--context", "")
    assert cands == [("prod", "cluster c-prod (current)"), ("staging", "cluster c-staging")]
    # --kubeconfig given before it: that file alone, as kubectl reads it
    other = kubeconfig(tmp_path / "other", "dr", "dr", "dr-west")
    cands, _ = complete_words(bindir, home, "backup", "--kubeconfig", str(other),
                              "--context", "dr-")
    assert values(cands) == ["dr-west"]
    # KUBECONFIG: every file of it, merged
    env = {"KUBECONFIG": f"{other}{os.pathsep}{home / '.kube' / 'config'}"}
    cands, _ = complete_words(bindir, home, "restore", "b.tar.gz", "--context", "", env=env)
    assert values(cands) == ["dr", "dr-west", "prod", "staging"]
    # a missing or broken kubeconfig offers nothing (and no error)
    cands, directive = complete_words(bindir, home, "status", "--kubeconfig",
                                      str(tmp_path / "none"), "--context", "")
    assert cands == [] and directive == ":0"


# -- bundles ---------------------------------------------------------------------------------
@pytest.fixture
def bundles_dir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    (d / "backups" / "old").mkdir(parents=True)
    for name in ("runai-dr-prod-20261101T000000Z.tar.gz", "notes.txt", ".hidden.tar.gz",
                 "backups/runai-dr-prod-20261102T000000Z.tar.gz"):
        (d / name).write_bytes(b"x")
    return d


@pytest.mark.parametrize("verb", [["inspect"], ["verify"], ["namespaces"],
                                  ["helm", "values"], ["restore", "database"]])
def test_bundle_arguments_offer_bundles_and_directories(bindir: Path, home: Path,
                                                        bundles_dir: Path,
                                                        verb: list[str]) -> None:
    cands, directive = complete_words(bindir, home, *verb, "", cwd=bundles_dir)
    assert values(cands) == ["backups/", "runai-dr-prod-20261101T000000Z.tar.gz"]
    assert directive == ":6"  # a directory offered: no space after it
    cands, directive = complete_words(bindir, home, *verb, "backups/", cwd=bundles_dir)
    assert values(cands) == ["backups/old/", "backups/runai-dr-prod-20261102T000000Z.tar.gz"]
    cands, directive = complete_words(bindir, home, *verb, str(bundles_dir / "runai"))
    assert values(cands) == [str(bundles_dir / "runai-dr-prod-20261101T000000Z.tar.gz")]
    assert directive == ":4"


def test_restore_offers_database_then_bundles(bindir: Path, home: Path,
                                              bundles_dir: Path) -> None:
    cands, _ = complete_words(bindir, home, "restore", "", cwd=bundles_dir)
    assert values(cands) == ["database", "backups/", "runai-dr-prod-20261101T000000Z.tar.gz"]
    cands, _ = complete_words(bindir, home, "restore", "d", cwd=bundles_dir)
    assert values(cands) == ["database"]
    cands, directive = complete_words(bindir, home, "inspect", "nothing-", cwd=bundles_dir)
    assert cands == [] and directive == ":0"  # nothing of ours: the shell's file names


@pytest.mark.skipif(not KUBECTL.exists(), reason="run scripts/bootstrap-tests.sh for kubectl")
def test_through_kubectl(bindir: Path, home: Path) -> None:
    cands, directive = complete_words(bindir, home, "backup", "--skip", "database,se",
                                      via_kubectl=True)
    assert values(cands) == ["database,secrets"] and directive == ":4"


# -- start-up --------------------------------------------------------------------------------
# (typer itself draws the descriptions with rich)
HEAVY = ("kubernetes", "urllib3", "websocket", "kubectl_runai_dr.components")


@pytest.mark.parametrize("line", [
    "kubectl-runai_dr backup --skip ", "kubectl-runai_dr restore --only data",
    "kubectl-runai_dr backup dat", "kubectl-runai_dr status --context ",
    "kubectl-runai_dr inspect ", "kubectl-runai_dr restore database "])
def test_completion_imports_nothing_heavy(line: str, tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.argv = ['kubectl-runai_dr']\n"
        "from kubectl_runai_dr.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY=' + ','.join(sorted(m for m in sys.modules "
        f"if any(m == h or m.startswith(h + '.') for h in {HEAVY!r}))))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path),
           "_KUBECTL_RUNAI_DR_COMPLETE": "complete_fish",
           "_TYPER_COMPLETE_FISH_ACTION": "get-args", "_TYPER_COMPLETE_ARGS": line}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=60, check=False)
    heavy = [ln for ln in r.stdout.splitlines() if ln.startswith("HEAVY=")]
    assert heavy, r.stdout + r.stderr
    assert heavy[-1] == "HEAVY=", f"{line!r} imports {heavy[-1][6:]}"
