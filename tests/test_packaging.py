"""Packaging: the krew manifest (its template, what it says, the release step that renders
it, the refusal of placeholders), the archive krew installs, reproducible builds, the
split between running the tool and running the tests, the version's one source, and the
completion helper kubectl runs.

Tests marked slow build the plugin (twice) or set up a fresh virtualenv; they run in CI.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from kubectl_runai_dr.plan.permissions import StepPermissions

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
TEMPLATE = ROOT / "krew" / "plugin.yaml.in"
ARCHIVE_NAME = "kubectl-runai_dr_linux_amd64.tar.gz"
BASE_URL = "https://downloads.runai-dr.test/kubectl-runai-dr/v{version}"
HOMEPAGE = "https://runai-dr.test/"


def load_manifest_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("krew_manifest", ROOT / "krew" / "manifest.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


km = load_manifest_tool()
VERSION = str(km.pyproject_version())


def make_archive(path: Path, files: dict[str, bytes], *, links: dict[str, str] | None = None
                 ) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644 if name.endswith("LICENSE") else 0o755
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


# The release layout: LICENSE, and the one-folder build with the completion helper.
ARCHIVE_FILES = {
    "LICENSE": b"Apache License\n",
    "kubectl-runai_dr/kubectl-runai_dr": b"#!/bin/sh\necho plugin\n",
    "kubectl-runai_dr/kubectl_complete-runai_dr": b"#!/bin/sh\necho :4\n",
    "kubectl-runai_dr/_internal/base_library.zip": b"PK",
}


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    (tmp_path / "build").mkdir()
    return make_archive(tmp_path / "build" / ARCHIVE_NAME, ARCHIVE_FILES)


def rendered(archive: Path) -> tuple[str, dict[str, Any]]:
    text = km.render(TEMPLATE.read_text(), version=VERSION, homepage=HOMEPAGE,
                     uri=BASE_URL.format(version=VERSION) + "/" + ARCHIVE_NAME,
                     sha256=km.sha256_file(archive))
    return text, yaml.safe_load(text)


def tracked_files() -> list[Path]:
    r = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if r.returncode == 0:
        return [ROOT / p for p in r.stdout.decode().split("\0") if p]
    skip = {".git", ".venv", ".tools", "build", "dist", "node_modules"}
    return [p for p in ROOT.rglob("*") if p.is_file() and not skip & set(p.parts)]


# -- nothing published carries a placeholder ---------------------------------------------------
def test_no_installable_manifest_is_committed() -> None:
    """The repository holds the template only: every krew manifest in it (a YAML file of
    kind Plugin) would be something a user could install from, so none may exist unless it
    is complete; the template itself is not a .yaml file."""
    manifests = []
    for path in tracked_files():
        if path.suffix not in (".yaml", ".yml") or not path.is_file():
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        if any(isinstance(d, dict) and d.get("kind") == "Plugin" for d in docs):
            manifests.append(path)
    for path in manifests:
        text = path.read_text()
        assert km.check_manifest(yaml.safe_load(text), version=VERSION, text=text) == [], path
    assert TEMPLATE.suffix == ".in"


def test_the_template_is_recognised_as_unfinished() -> None:
    text = TEMPLATE.read_text()
    errs = km.check_manifest(yaml.safe_load(text), version=VERSION, text=text)
    assert {"@VERSION@", "@HOMEPAGE@", "@URI@", "@SHA256@"} <= set(re.findall(r"@[A-Z0-9_]+@", text))
    assert any("placeholder" in e for e in errs), errs


@pytest.mark.parametrize(("text", "kind"), [
    ('sha256: "' + "0" * 64 + '"', "all-zero sha256"),
    ("uri: https://example.com/kubectl-runai-dr/v1/a.tar.gz", "example URL"),
    ("homepage: https://downloads.example.org/x", "example URL"),
    ("uri: https://dl.invalid/a.tar.gz", "example URL"),
    ("uri: http://localhost:8080/a.tar.gz", "example URL"),
    ("index: <git URL of the index repository>", "fill-in text"),
    ("version: v@VERSION@", "template marker"),
    ("uri: {{ .TagName }}", "template syntax"),
    ("note: TODO fill in", "TODO"),
])
def test_placeholders_are_found(text: str, kind: str) -> None:
    assert any(p.startswith(kind) for p in km.placeholders(text)), km.placeholders(text)


def test_plain_text_is_not_a_placeholder() -> None:
    text = ("for example, `kubectl runai-dr <TAB>` completes; https://runai.acme.io/x; "
            '"${KREW_ROOT:-$HOME/.krew}/bin/"; sha256 ' + "ab" * 32)
    assert km.placeholders(text) == []


def test_docs_install_only_from_a_rendered_manifest() -> None:
    """Users are told to install with the manifest a release renders, never a committed one."""
    for doc in (ROOT / "README.md", ROOT / "docs" / "packaging.md"):
        text = doc.read_text()
        for m in re.finditer(r"--manifest[= ](\S+)", text):
            assert m.group(1).startswith(("dist/release/", "plugin.yaml")), (doc, m.group(0))
        assert "krew/plugins/runai-dr.yaml" not in text, doc


# -- rendering for an archive (the release step) -----------------------------------------------
def test_render_fills_version_homepage_uri_sha(archive: Path) -> None:
    text, m = rendered(archive)
    spec = m["spec"]
    assert spec["version"] == f"v{VERSION}"
    assert spec["homepage"] == HOMEPAGE
    (platform,) = spec["platforms"]
    assert platform["uri"] == f"https://downloads.runai-dr.test/kubectl-runai-dr/v{VERSION}/{ARCHIVE_NAME}"
    assert platform["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert f"store/runai-dr/v{VERSION}/kubectl-runai_dr/kubectl_complete-runai_dr" in spec["caveats"]
    assert km.placeholders(text) == []
    assert km.check_manifest(m, file_name="runai-dr.yaml", version=VERSION, archive=archive,
                             text=text) == []
    # The template's own header comment (about the template) is not carried over.
    assert "not a manifest to install with" not in text


def test_manifest_fields(archive: Path) -> None:
    _, m = rendered(archive)
    assert m["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert m["kind"] == "Plugin"
    assert m["metadata"]["name"] == "runai-dr"
    spec = m["spec"]
    for key in ("homepage", "shortDescription", "description", "caveats"):
        assert spec[key].strip(), key
    (platform,) = spec["platforms"]
    assert platform["selector"]["matchLabels"] == {"os": "linux", "arch": "amd64"}
    assert platform["bin"] == "kubectl-runai_dr/kubectl-runai_dr"
    assert {f["from"] for f in platform["files"]} == {"kubectl-runai_dr", "LICENSE"}


def test_release_manifests_writes_both_layouts(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    written, problems = km.release_manifests(archive, base_url=BASE_URL, homepage=HOMEPAGE,
                                             out=out)
    assert problems == []
    assert sorted(p.relative_to(out).as_posix() for p in written) == [
        "krew-index/plugins/runai-dr.yaml", "plugin.yaml"]
    assert (out / "plugin.yaml").read_text() == \
        (out / "krew-index" / "plugins" / "runai-dr.yaml").read_text()


@pytest.mark.parametrize(("base_url", "homepage", "expect"), [
    ("https://example.com/kubectl-runai-dr/v{version}", HOMEPAGE, "--base-url: example URL"),
    (BASE_URL, "https://example.com/kubectl-runai-dr", "--homepage: example URL"),
    ("https://<where the archive is published>/v{version}", HOMEPAGE, "--base-url: fill-in"),
    ("http://downloads.runai-dr.test/v{version}", HOMEPAGE, "https URL"),
    (BASE_URL, "http://runai-dr.test/", "spec.homepage must be an https URL"),
])
def test_release_manifests_refuse_placeholders(archive: Path, tmp_path: Path, base_url: str,
                                               homepage: str, expect: str) -> None:
    out = tmp_path / "release"
    written, problems = km.release_manifests(archive, base_url=base_url, homepage=homepage,
                                             out=out)
    assert written == []
    assert any(expect in p for p in problems), problems
    assert not out.exists()


def test_release_manifests_refuse_a_marker_left_in_the_template(archive: Path,
                                                                 tmp_path: Path) -> None:
    template = tmp_path / "plugin.yaml.in"
    template.write_text(TEMPLATE.read_text().replace(
        "shortDescription: Back up and restore self-hosted Run:ai",
        "shortDescription: Back up Run:ai @EDITION@"))
    written, problems = km.release_manifests(archive, base_url=BASE_URL, homepage=HOMEPAGE,
                                             out=tmp_path / "release", template=template)
    assert written == []
    assert any("template marker: '@EDITION@'" in p for p in problems), problems


def test_release_script_refuses_and_writes_nothing(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "release.sh"), "--archive", str(archive), "--out",
         str(out), "--base-url", "https://example.com/dl/v{version}", "--homepage", HOMEPAGE],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)
    assert r.returncode != 0
    assert "refused" in r.stderr and "example URL" in r.stderr, r.stderr
    assert not out.exists()


def test_release_script_lays_out_what_to_publish(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "release"
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "release.sh"), "--archive", str(archive), "--out",
         str(out), "--base-url", BASE_URL, "--homepage", HOMEPAGE],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)
    assert r.returncode == 0, r.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(["SHA256SUMS", ARCHIVE_NAME, "krew-index/plugins/runai-dr.yaml",
                            "plugin.yaml"])
    assert (out / "SHA256SUMS").read_text() == f"{km.sha256_file(archive)}  {ARCHIVE_NAME}\n"


def test_release_script_refuses_a_dirty_build(archive: Path, tmp_path: Path) -> None:
    (archive.parent / "build-info.txt").write_text("version=0.1.0\ncommit=abc123-dirty\n")
    r = subprocess.run(
        ["bash", str(ROOT / "scripts" / "release.sh"), "--archive", str(archive), "--out",
         str(tmp_path / "release"), "--base-url", BASE_URL, "--homepage", HOMEPAGE],
        capture_output=True, text=True, cwd=ROOT, check=False, timeout=300)
    assert r.returncode != 0 and "uncommitted" in r.stderr, r.stderr


# -- what the manifest says matches the code ---------------------------------------------------
def description_table(description: str) -> dict[str, str]:
    """The component table: `name   text` rows, continuation lines joined."""
    block = description.split("restore does with it:\n", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, str] = {}
    last = ""
    for line in block.splitlines():
        m = re.match(r"^  (\S+)\s{2,}(.*)$", line)
        if m:
            last = m.group(1)
            rows[last] = m.group(2)
        elif line.startswith("   ") and last:
            rows[last] += " " + line.strip()
        else:
            break
    return rows


def test_description_lists_every_component_and_what_restore_does(archive: Path) -> None:
    from kubectl_runai_dr.components import registry

    _, m = rendered(archive)
    rows = description_table(m["spec"]["description"])
    assert list(rows) == [c.name for c in registry.COMPONENTS]
    for c in registry.COMPONENTS:
        text = " ".join(rows[c.name].split())
        if c.restore is None:
            assert "recorded, not restored" in text, (c.name, text)
        else:
            assert "restore" in text, (c.name, text)
        if c.opt_in:
            assert f"only with {c.opt_in}" in text, (c.name, text)


def test_description_lists_every_command(archive: Path) -> None:
    from kubectl_runai_dr.cli.app import app

    _, m = rendered(archive)
    listed = re.findall(r"^  kubectl runai-dr ([a-z-]+)", m["spec"]["description"], flags=re.M)
    commands = [c.name or (c.callback.__name__ if c.callback else "").replace("_", "-")
                for c in app.registered_commands]
    groups = [g.name for g in app.registered_groups if g.name is not None]
    assert len(groups) == len(app.registered_groups)  # every group is named
    assert sorted(listed) == sorted([*commands, *groups])


def permission_table() -> tuple[StepPermissions, ...]:
    from kubectl_runai_dr.components.registry import PERMISSIONS

    return PERMISSIONS


def test_caveats_name_every_write_permission(archive: Path) -> None:
    """Every permission that is not a read, of every command, is named in the caveats,
    under the command that needs it."""
    _, m = rendered(archive)
    caveats = m["spec"]["caveats"]
    paragraphs = {p.split()[0].rstrip(":"): " ".join(p.split())
                  for p in caveats.split("\n* ")[1:]}
    missing = []
    for step in permission_table():
        for need in step.needs:
            if need.verb in ("get", "list", "watch"):
                continue
            text = paragraphs.get(step.command, "")
            if need.resource not in text:
                missing.append(f"{step.command}: {need.verb} {need.resource}")
    assert missing == [], missing


# -- the checker catches what krew would reject ------------------------------------------------
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
    (lambda m: m["spec"]["platforms"][0].update(sha256="0" * 64), "all-zero sha256"),
    (lambda m: m["spec"]["platforms"][0].update(uri="ftp://x/y.tar.gz"), "uri"),
    (lambda m: m["spec"]["platforms"][0].pop("bin"), "bin"),
    (lambda m: m["spec"]["platforms"][0].update(files=[]), "files"),
    (lambda m: m["spec"]["platforms"][0].pop("selector"), "selector"),
    (lambda m: m["spec"].update(platforms=[]), "platforms"),
])
def test_checker_rejects(archive: Path, change: Any, expect: str) -> None:
    _, m = rendered(archive)
    change(m)
    errs = km.check_manifest(m, file_name="runai-dr.yaml", version=VERSION)
    assert any(expect in e for e in errs), errs


def test_check_against_the_wrong_archive(archive: Path, tmp_path: Path) -> None:
    text, m = rendered(archive)
    assert km.check_manifest(m, version=VERSION, archive=archive, text=text) == []
    (tmp_path / "other").mkdir()
    other = make_archive(tmp_path / "other" / ARCHIVE_NAME,
                         {k: v for k, v in ARCHIVE_FILES.items() if k != "LICENSE"})
    errs = km.check_manifest(m, version=VERSION, archive=other, text=text)
    assert any("sha256" in e for e in errs)
    assert any("LICENSE" in e for e in errs)
    flat = make_archive(tmp_path / "other" / "flat.tar.gz",
                        {"kubectl-runai_dr": b"x", "LICENSE": b"x"})
    errs = km.check_manifest(m, version=VERSION, archive=flat, text=text)
    assert any("bin 'kubectl-runai_dr/kubectl-runai_dr' is not a file" in e for e in errs), errs


def test_check_rejects_links_and_dot_dot_in_the_archive(tmp_path: Path) -> None:
    """krew unpacks regular files and folders only, and refuses any name with '..'."""
    bad = make_archive(tmp_path / ARCHIVE_NAME, {**ARCHIVE_FILES, "kubectl-runai_dr/a..b": b""},
                       links={"kubectl-runai_dr/_internal/libx.so": "libx.so.1"})
    _, _, problems = km.archive_problems(bad)
    assert any("neither a file nor a folder" in p for p in problems), problems
    assert any("refuses the member name 'kubectl-runai_dr/a..b'" in p for p in problems), problems


# -- installing as krew would ------------------------------------------------------------------
def test_install_as_krew_would(archive: Path, tmp_path: Path) -> None:
    _, m = rendered(archive)
    krew_root = tmp_path / "krew"
    link = km.krew_install(m, archive, krew_root)
    store = krew_root / "store" / "runai-dr" / f"v{VERSION}"
    assert link == krew_root / "bin" / "kubectl-runai_dr"
    assert link.resolve() == store / "kubectl-runai_dr" / "kubectl-runai_dr"
    assert (store / "LICENSE").is_file()
    assert (store / "kubectl-runai_dr" / "_internal" / "base_library.zip").is_file()
    assert subprocess.run([str(link)], capture_output=True, text=True).stdout == "plugin\n"
    # The caveats' completion link points at the helper that was installed.
    caveat = m["spec"]["caveats"]
    target = re.search(r'store/runai-dr/\S+/kubectl_complete-runai_dr', caveat)
    assert target and (krew_root / target.group(0)).is_file()


# -- the build: reproducible, the layout krew needs --------------------------------------------
def build(checkout: Path, tmp: Path, label: str, umask: str = "022", **env: str) -> Path:
    dist, work = tmp / f"dist-{label}", tmp / f"work-{label}"
    r = subprocess.run(["bash", "-c", f"umask {umask} && exec bash scripts/build.sh"],
                       cwd=checkout, text=True, capture_output=True, check=False, timeout=1800,
                       env={**os.environ, "DIST_DIR": str(dist), "BUILD_DIR": str(work), **env})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    shutil.rmtree(work, ignore_errors=True)
    return dist


# What a build reads from the checkout.
BUILD_INPUTS = ("kubectl_runai_dr", "pyproject.toml", "README.md", "LICENSE",
                "kubectl_complete-runai_dr", "scripts/build.sh", "scripts/bootstrap.sh")


@pytest.mark.slow
def test_build_is_reproducible(tmp_path: Path) -> None:
    """Two builds of the same sources give the same archive, byte for byte: one in this
    checkout, one in a copy of it elsewhere with its own fresh virtualenv, with another
    umask, locale and time zone. The archive's members are sorted, owned by 0:0, dated
    SOURCE_DATE_EPOCH, and files or folders only; the plugin in it runs; and the manifest
    renders and checks against it."""
    copy = tmp_path / "elsewhere" / "checkout"
    for name in BUILD_INPUTS:
        src, dest = ROOT / name, copy / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest)
    # The same commit stamp and time for both (the copy is no git checkout).
    epoch = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True,
                           text=True, check=False).stdout.strip() or "1700000000"
    same = {"BUILD_COMMIT": "reproducible", "SOURCE_DATE_EPOCH": epoch}
    a = build(ROOT, tmp_path, "a", **same)
    b = build(copy, tmp_path, "b", umask="077", LANG="C.UTF-8", TZ="America/New_York", **same)
    sha_a = km.sha256_file(a / ARCHIVE_NAME)
    sha_b = km.sha256_file(b / ARCHIVE_NAME)
    print(f"build a: {sha_a}\nbuild b: {sha_b}")
    assert sha_a == sha_b
    info = dict(line.split("=", 1) for line in (a / "build-info.txt").read_text().splitlines())
    assert info["sha256"] == sha_a and info["mode"] == "onedir"
    assert info["source_date_epoch"] == epoch
    with tarfile.open(a / ARCHIVE_NAME) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[0] == "LICENSE" and "kubectl-runai_dr/kubectl-runai_dr" in names
    assert names == sorted(names, key=lambda n: n.split("/"))
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert {m.mtime for m in members} == {int(epoch)}
    assert all(m.isfile() or m.isdir() for m in members)
    assert all(m.mode & 0o022 == 0 for m in members)
    _, _, problems = km.archive_problems(a / ARCHIVE_NAME)
    assert problems == []
    written, problems = km.release_manifests(a / ARCHIVE_NAME, base_url=BASE_URL,
                                             homepage=HOMEPAGE, out=tmp_path / "release")
    assert problems == [] and written
    # The one-folder build runs, and finds its _internal/ through krew's symlink.
    link = km.krew_install(yaml.safe_load(written[0].read_text()), a / ARCHIVE_NAME,
                           tmp_path / "krew")
    out = subprocess.run([str(link), "version"], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}).stdout
    assert VERSION in out and info["commit"] in out


# -- running the tool needs only the tool --------------------------------------------------------
TEST_ONLY = ("pytest", "mypy", "ruff", "psutil", "pyinstaller", "types-pyyaml")


def test_bootstrap_installs_only_the_package() -> None:
    text = (ROOT / "scripts" / "bootstrap.sh").read_text()
    code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert 'pip install -q -e .\n' in code + "\n"
    for word in ("[test]", "fetch-binaries", "postgresql", "helm", "[build]"):
        assert word not in code, word
    tests = (ROOT / "scripts" / "bootstrap-tests.sh").read_text()
    assert "bash scripts/bootstrap.sh" in tests and '".[test]"' in tests
    assert "bash scripts/bootstrap-tests.sh" in (ROOT / "scripts" / "test.sh").read_text()
    assert "scripts/test.sh" in (ROOT / ".ci" / "run").read_text()



def test_the_loopback_api_server_is_a_package_of_its_own_never_shipped() -> None:
    """kubeapi (testing/) has its own pyproject.toml and is installed, editable, for the tests
    and benchmarks only; the tool's wheel takes kubectl_runai_dr alone, the binary's build copies
    it alone and excludes kubeapi; nothing reaches kubeapi or tests/ through sys.path."""
    import tomllib

    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert tool["tool"]["setuptools"]["packages"]["find"]["include"] == ["kubectl_runai_dr*"]
    server = tomllib.loads((ROOT / "testing" / "pyproject.toml").read_text())
    assert server["tool"]["setuptools"]["packages"]["find"]["include"] == ["kubeapi*"]
    assert (ROOT / "testing" / "kubeapi" / "__init__.py").is_file()
    assert '-e ./testing' in (ROOT / "scripts" / "bootstrap-tests.sh").read_text()
    build = (ROOT / "scripts" / "build.sh").read_text()
    assert 'cp -r kubectl_runai_dr "$work/src/"' in build and " kubeapi; do" in build
    for path in [*(ROOT / "bench").glob("*.py"), *(ROOT / "scripts").iterdir()]:
        text = path.read_text()
        assert "sys.path.insert" not in text and "from tests" not in text, path
        assert 'PYTHONPATH="$here"' not in text, path

@pytest.mark.slow
def test_bootstrap_sets_up_a_venv_with_the_package_only(tmp_path: Path) -> None:
    """The README's first command on a copy of the checkout: a virtualenv with the package
    and its runtime dependencies, none of the test or build tools, no helm/kubectl
    download, and a plugin that runs."""
    copy = tmp_path / "checkout"
    copy.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "kubectl_runai_dr", copy / "kubectl_runai_dr",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", copy / "scripts" / "bootstrap.sh")
    r = subprocess.run(["bash", "scripts/bootstrap.sh"], cwd=copy, capture_output=True,
                       text=True, check=False, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    listing = subprocess.run([str(copy / ".venv" / "bin" / "python"), "-m", "pip", "list",
                              "--format=freeze"], capture_output=True, text=True, check=True)
    installed = {ln.split("==")[0].lower() for ln in listing.stdout.splitlines()}
    assert "kubectl-runai-dr" in installed and "kubernetes" in installed
    assert installed.isdisjoint(TEST_ONLY), installed & set(TEST_ONLY)
    assert not (copy / ".tools").exists()
    out = subprocess.run([str(copy / ".venv" / "bin" / "kubectl-runai_dr"), "--help"],
                         capture_output=True, text=True, check=True)
    assert "backup" in out.stdout


# -- metadata -------------------------------------------------------------------------------------
def test_version_has_one_source() -> None:
    from kubectl_runai_dr import __version__
    from kubectl_runai_dr._version import BUILD_COMMIT

    assert __version__ == VERSION
    # scripts/build.sh stamps this exact line in its build copy, never in the source tree.
    assert BUILD_COMMIT == ""
    src = (ROOT / "kubectl_runai_dr" / "_version.py").read_text()
    assert '\nBUILD_COMMIT = ""\n' in src


def test_license_is_apache_2_as_an_spdx_expression() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    # An SPDX expression, not the deprecated {text = ...} table setuptools warns about.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^license = "Apache-2.0"$', pyproject, flags=re.M)
    assert re.search(r'^license-files = \["LICENSE"\]$', pyproject, flags=re.M)


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
    assert {"--kubeconfig", "--context", "--help"} <= values
    assert lines[-1] == ":4"
    # A word being typed, with a quote in it, reaches the plugin intact.
    assert complete(plugin_path, "it's") == [":0"]
    # A fully typed command completes to itself rather than to file names.
    assert complete(plugin_path, "backup")[0].startswith("backup\t")


def test_completion_helper_leaves_paths_to_the_shell(plugin_path: Path) -> None:
    # nothing of the plugin's own (bundles, directories: tests/test_completion.py) matches
    assert complete(plugin_path, "inspect", str(plugin_path / "x")) == [":0"]
    assert complete(plugin_path, "inspect", "some/fi") == [":0"]
    assert complete(plugin_path, "backup", "--to", "") == [":0"]


@pytest.mark.skipif(not KUBECTL.exists(), reason="run scripts/bootstrap-tests.sh for kubectl")
def test_kubectl_runs_the_helper(plugin_path: Path) -> None:
    lines = complete(plugin_path, "ver", via_kubectl=True)
    assert [ln.split("\t")[0] for ln in lines[:-1]] == ["verify", "version"]
    assert lines[-1] == ":4"


# -- start-up: --help, version and completion import only what they use ----------------------
# pydantic is not listed: typer itself imports it to convert parameter values. rich is what
# typer renders help with, but not its Markdown and traceback parts (cli/lean_help.py). The S3
# client (minio), the primitives of age (cryptography) and the exec stream's XOR (Crypto) load
# only when a location, a key or a pod exec asks for them.
HEAVY = ("kubernetes", "urllib3", "websocket", "minio", "cryptography", "Crypto", "yaml",
         "requests", "oauthlib", "importlib.metadata", "rich.markdown", "rich.traceback", "rich.pretty", "rich.syntax",
         "pygments", "markdown_it", "attr", "kubectl_runai_dr.components",
         "kubectl_runai_dr.ops", "kubectl_runai_dr.bundle.reader")
COMPLETE_ENV = {"_KUBECTL_RUNAI_DR_COMPLETE": "complete_fish",
                "_TYPER_COMPLETE_FISH_ACTION": "get-args",
                "_TYPER_COMPLETE_ARGS": "kubectl-runai_dr backup --"}


# (arguments, environment, also heavy here, allowed here)
@pytest.mark.parametrize(("args", "env", "also", "allow"), [
    (["--help"], {}, (), ()),
    # plain text: no rich at all; the version is the package metadata's
    (["version"], {}, ("rich",), ("importlib.metadata",)),
    # a verb's help: typer reads the defaults through pydantic, which reads its plugins'
    # entry points (importlib.metadata)
    (["backup", "--help"], {}, (), ("importlib.metadata",)),
    (["restore", "--help"], {}, (), ("importlib.metadata",)),
    # completion shows each option's help, with its rich markup taken out without rich;
    # the words given so far stay text (no pydantic)
    ([], COMPLETE_ENV, ("rich", "pydantic", "typer._adapters"), ()),
])
def test_fast_paths_do_not_import_heavy_modules(args: list[str], env: dict[str, str],
                                                also: tuple[str, ...],
                                                allow: tuple[str, ...]) -> None:
    heavy = tuple(h for h in (*HEAVY, *also) if h not in allow)
    code = (
        "import sys\n"
        f"sys.argv = ['kubectl-runai_dr', *{args!r}]\n"
        "from kubectl_runai_dr.__main__ import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY=' + ','.join(sorted(m for m in sys.modules "
        f"if any(m == h or m.startswith(h + '.') for h in {heavy!r}))))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, timeout=60,
                       check=False)
    found = [ln for ln in r.stdout.splitlines() if ln.startswith("HEAVY=")]
    assert found, r.stdout + r.stderr
    assert found[-1] == "HEAVY=", f"{args}: imports {found[-1][6:]}"


def test_help_stand_ins_become_the_real_rich_classes() -> None:
    """The stand-ins for typer.rich_utils' Markdown and Traceback work when used, and leave
    the real modules importable."""
    code = (
        "import sys\n"
        "from kubectl_runai_dr.cli import command  # installs the finder\n"
        "from typer import rich_utils\n"
        "assert 'rich.markdown' not in sys.modules and 'rich.traceback' not in sys.modules\n"
        "md = rich_utils.Markdown('# title')\n"
        "import rich.markdown, rich.traceback\n"
        "assert type(md) is rich.markdown.Markdown and isinstance(md, rich_utils.Markdown)\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n"
        "    tb = rich_utils.Traceback.from_exception(type(e), e, e.__traceback__)\n"
        "assert isinstance(tb, rich.traceback.Traceback)\n"
        "print('OK')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60, check=False)
    assert r.stdout.strip() == "OK", r.stdout + r.stderr


def test_a_bare_version_prints_what_the_verb_prints() -> None:
    """`version` alone takes a shortcut past the command line (__main__); its line is the
    verb's (`version -o table` goes the long way)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    short, long = (subprocess.run([sys.executable, "-m", "kubectl_runai_dr", *args],
                                  capture_output=True, text=True, cwd=ROOT, env=env,
                                  timeout=60, check=True).stdout
                   for args in (["version"], ["version", "-o", "table"]))
    assert short == long and short.startswith(f"kubectl-runai_dr {VERSION} (commit ")


def test_completion_help_loses_rich_markup_without_rich() -> None:
    from kubectl_runai_dr.cli.lean_help import plain_help

    assert plain_help("a [bold]b[/] \\[c] [dim]d[/dim] e") == "a b [c] d e"
    assert plain_help("no markup: 10m, x=[1,2]") == "no markup: 10m, x=[1,2]"
