"""Packaging checks that need no build: the krew manifests, the version's one source,
the completion helper kubectl runs, and the manifest tooling in krew/update-manifest.py."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"


def load_update_manifest() -> ModuleType:
    spec = importlib.util.spec_from_file_location("update_manifest",
                                                  ROOT / "krew" / "update-manifest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


um = load_update_manifest()


def pyproject_version() -> str:
    return str(um.pyproject_version())


def manifest(path: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / path).read_text())
    return data


def make_archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name != "LICENSE" else 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


ARCHIVE_FILES = {
    "kubectl-runai_dr": b"#!/bin/sh\necho plugin\n",
    "kubectl_complete-runai_dr": b"#!/bin/sh\necho :4\n",
    "LICENSE": b"Apache License\n",
}


# -- the committed manifests ------------------------------------------------------------------
@pytest.mark.parametrize("path", ["plugin.yaml", "krew/plugins/runai-dr.yaml"])
def test_manifest_passes_krew_checks(path: str) -> None:
    file_name = Path(path).name if "plugins/" in path else None
    assert um.check_manifest(manifest(path), file_name=file_name,
                             version=pyproject_version()) == []


def test_manifest_fields() -> None:
    m = manifest("plugin.yaml")
    assert m["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert m["kind"] == "Plugin"
    assert m["metadata"]["name"] == "runai-dr"
    spec = m["spec"]
    assert spec["version"] == f"v{pyproject_version()}"
    for key in ("homepage", "shortDescription", "description", "caveats"):
        assert spec[key].strip(), key
    assert "pods/exec" in spec["caveats"]  # the permissions it needs
    (platform,) = spec["platforms"]
    assert platform["selector"]["matchLabels"] == {"os": "linux", "arch": "amd64"}
    assert platform["uri"].endswith(f"/v{pyproject_version()}/kubectl-runai_dr_linux_amd64.tar.gz")
    assert platform["bin"] == "kubectl-runai_dr"
    froms = {f["from"] for f in platform["files"]}
    assert froms == {"kubectl-runai_dr", "kubectl_complete-runai_dr", "LICENSE"}
    assert f"store/runai-dr/v{pyproject_version()}/" in spec["caveats"]


def test_index_manifest_is_the_published_manifest() -> None:
    assert manifest("krew/plugins/runai-dr.yaml") == manifest("plugin.yaml")


def test_version_has_one_source() -> None:
    from kubectl_runai_dr import __version__
    from kubectl_runai_dr._version import BUILD_COMMIT

    assert __version__ == pyproject_version()
    # scripts/build.sh stamps this exact line in its build copy, never in the source tree.
    assert BUILD_COMMIT == ""
    src = (ROOT / "kubectl_runai_dr" / "_version.py").read_text()
    assert '\nBUILD_COMMIT = ""\n' in src


def test_license_is_apache_2() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


# -- the checker catches what krew would reject ----------------------------------------------
def broken(change: Any) -> list[str]:
    m = manifest("plugin.yaml")
    change(m)
    return list(um.check_manifest(m, file_name="runai-dr.yaml", version=pyproject_version()))


@pytest.mark.parametrize(("change", "expect"), [
    (lambda m: m.update(apiVersion="krew.googlecontainertools.github.com/v1alpha1"), "apiVersion"),
    (lambda m: m.update(kind="Plugins"), "kind"),
    (lambda m: m["metadata"].update(name="other"), "does not match the file name"),
    (lambda m: m["spec"].update(version="0.1.0"), "semver with a leading v"),
    (lambda m: m["spec"].update(version="v9.9.9"), "does not match the package version"),
    (lambda m: m["spec"].pop("homepage"), "spec.homepage"),
    (lambda m: m["spec"].pop("shortDescription"), "spec.shortDescription"),
    (lambda m: m["spec"].update(shortDescription="x" * 51), "longer than 50"),
    (lambda m: m["spec"]["platforms"][0].update(sha256="abc"), "sha256"),
    (lambda m: m["spec"]["platforms"][0].update(uri="ftp://x/y.tar.gz"), "uri"),
    (lambda m: m["spec"]["platforms"][0].pop("bin"), "bin"),
    (lambda m: m["spec"]["platforms"][0].update(files=[]), "files"),
    (lambda m: m["spec"]["platforms"][0].pop("selector"), "selector"),
    (lambda m: m["spec"].update(platforms=[]), "platforms"),
])
def test_checker_rejects(change: Any, expect: str) -> None:
    errs = broken(change)
    assert any(expect in e for e in errs), errs


# -- filling from an archive, and installing it as krew would ---------------------------------
def test_fill_sets_version_uri_sha_and_keeps_comments(tmp_path: Path) -> None:
    text = (ROOT / "plugin.yaml").read_text()
    new = um.fill(text, version="1.2.3", uri="https://example.org/v1.2.3/a.tar.gz",
                  sha256="ab" * 32)
    m = yaml.safe_load(new)
    assert m["spec"]["version"] == "v1.2.3"
    assert m["spec"]["platforms"][0]["uri"] == "https://example.org/v1.2.3/a.tar.gz"
    assert m["spec"]["platforms"][0]["sha256"] == "ab" * 32
    assert "store/runai-dr/v1.2.3/" in m["spec"]["caveats"]
    assert [ln for ln in new.splitlines() if ln.startswith("#")] == \
        [ln for ln in text.splitlines() if ln.startswith("#")]


def test_update_manifest_from_archive_then_check_and_install(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "kubectl-runai_dr_linux_amd64.tar.gz", ARCHIVE_FILES)
    out = tmp_path / "out"
    script = str(ROOT / "krew" / "update-manifest.py")
    subprocess.run([sys.executable, script, str(archive), "--out-dir", str(out),
                    "--base-url", "https://example.org/dl/v{version}"], check=True)
    filled = yaml.safe_load((out / "plugins" / "runai-dr.yaml").read_text())
    platform = filled["spec"]["platforms"][0]
    assert platform["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert platform["uri"] == (f"https://example.org/dl/v{pyproject_version()}/"
                               "kubectl-runai_dr_linux_amd64.tar.gz")
    assert (out / "plugin.yaml").read_text() == (out / "plugins" / "runai-dr.yaml").read_text()
    krew_root = tmp_path / "krew"
    subprocess.run([sys.executable, script, "--check", str(out / "plugins" / "runai-dr.yaml"),
                    "--archive", str(archive), "--install-to", str(krew_root)], check=True)
    link = krew_root / "bin" / "kubectl-runai_dr"
    assert link.is_symlink()
    assert link.resolve() == (krew_root / "store" / "runai-dr" / f"v{pyproject_version()}" /
                              "kubectl-runai_dr")
    assert subprocess.run([str(link)], capture_output=True, text=True).stdout == "plugin\n"
    # The committed manifests are untouched by --out-dir.
    assert manifest("plugin.yaml")["spec"]["platforms"][0]["sha256"] != platform["sha256"]


def test_check_fails_on_wrong_archive(tmp_path: Path) -> None:
    good = make_archive(tmp_path / "kubectl-runai_dr_linux_amd64.tar.gz", ARCHIVE_FILES)
    m = yaml.safe_load(um.fill((ROOT / "plugin.yaml").read_text(), version=pyproject_version(),
                               uri="https://x/kubectl-runai_dr_linux_amd64.tar.gz",
                               sha256=um.sha256_file(good)))
    assert um.check_manifest(m, version=pyproject_version(), archive=good) == []
    (tmp_path / "other").mkdir()
    no_license = make_archive(tmp_path / "other" / "kubectl-runai_dr_linux_amd64.tar.gz",
                              {k: v for k, v in ARCHIVE_FILES.items() if k != "LICENSE"})
    errs = um.check_manifest(m, version=pyproject_version(), archive=no_license)
    assert any("sha256" in e for e in errs)
    assert any("LICENSE" in e for e in errs)


# -- the completion helper kubectl runs -------------------------------------------------------
@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A folder with kubectl-runai_dr (the package, run by this Python) and the helper."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    plugin = bindir / "kubectl-runai_dr"
    # Not a shell wrapper: sh drops environment variables whose names are not identifiers,
    # and click's request variable for the prog name "kubectl runai-dr" has a space.
    plugin.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                      "from kubectl_runai_dr.__main__ import main\nmain()\n")
    plugin.chmod(0o755)
    (bindir / "kubectl_complete-runai_dr").symlink_to(ROOT / "kubectl_complete-runai_dr")
    return bindir


def complete(bindir: Path, *words: str, via_kubectl: bool = False) -> list[str]:
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    if via_kubectl:
        cmd = [str(KUBECTL), "__complete", "runai-dr", *words]
    else:
        cmd = [str(bindir / "kubectl_complete-runai_dr"), *words]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=True)
    return r.stdout.splitlines()


def test_completion_helper_lists_subcommands(plugin_path: Path) -> None:
    lines = complete(plugin_path, "")
    assert lines[-1] == ":4"
    values = [ln.split("\t")[0] for ln in lines[:-1]]
    assert {"backup", "inspect", "verify", "version"} <= set(values)
    assert all("\t" in ln for ln in lines[:-1])  # value<TAB>description, one per line


def test_completion_helper_flags_and_values(plugin_path: Path) -> None:
    lines = complete(plugin_path, "backup", "--")
    values = {ln.split("\t")[0] for ln in lines[:-1]}
    assert {"--output", "--kubeconfig", "--context", "--help"} <= values
    assert lines[-1] == ":4"
    # A word being typed, with a quote in it, reaches the plugin intact.
    assert complete(plugin_path, "it's") == [":0"]
    # A fully typed command completes to itself rather than to file names.
    assert complete(plugin_path, "backup")[0].startswith("backup\t")


def test_completion_helper_leaves_paths_to_the_shell(plugin_path: Path) -> None:
    assert complete(plugin_path, "inspect", "") == [":0"]
    assert complete(plugin_path, "inspect", "some/fi") == [":0"]


@pytest.mark.skipif(not KUBECTL.exists(), reason="run scripts/bootstrap.sh for kubectl")
def test_kubectl_runs_the_helper(plugin_path: Path) -> None:
    lines = complete(plugin_path, "ver", via_kubectl=True)
    assert [ln.split("\t")[0] for ln in lines[:-1]] == ["verify", "version"]
    assert lines[-1] == ":4"


# -- start-up: the kubernetes client stays out of --help, version and completion --------------
# pydantic is not listed: typer itself imports it to convert parameter values.
HEAVY = ("kubernetes", "urllib3", "websocket")


@pytest.mark.parametrize(("args", "env"), [
    (["--help"], {}),
    (["version"], {}),
    (["backup", "--help"], {}),
    ([], {"_KUBECTL_RUNAI_DR_COMPLETE": "complete_fish", "_TYPER_COMPLETE_FISH_ACTION": "get-args",
          "_TYPER_COMPLETE_ARGS": "kubectl-runai_dr backup --"}),
])
def test_fast_paths_do_not_import_heavy_modules(args: list[str], env: dict[str, str]) -> None:
    code = (
        "import sys\n"
        f"sys.argv = ['kubectl-runai_dr', *{args!r}]\n"
        "from kubectl_runai_dr.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, timeout=60,
                       check=False)
    heavy = [ln for ln in r.stdout.splitlines() if ln.startswith("HEAVY=")]
    assert heavy, r.stdout + r.stderr
    assert heavy[-1] == "HEAVY=", f"{args}: imports {heavy[-1][6:]}"
