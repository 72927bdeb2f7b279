#!/usr/bin/env python3
"""Render the krew manifest from its template for a built archive, and check manifests.

The repository holds no manifest to install with, only the template krew/plugin.yaml.in;
a release renders it (scripts/release.sh runs this) for one archive:

    krew/manifest.py render dist/kubectl-runai_dr_linux_amd64.tar.gz \\
        --base-url 'https://downloads.example.org/kubectl-runai-dr/v{version}' \\
        --homepage https://... [--out dist/release]

writes OUT/plugin.yaml and OUT/krew-index/plugins/runai-dr.yaml (the same manifest, laid
out as a custom index), with spec.version from pyproject.toml, the archive's uri and
sha256. It refuses, writing nothing, when a URL given is a placeholder (example.com,
.invalid, <...>) or the rendered manifest fails a check.

    krew/manifest.py check MANIFEST... [--archive ARCHIVE]

checks what krew checks (every required field well formed, the name matching an index
file's name, the version matching pyproject.toml) and that nothing in it is a placeholder
(a template marker, an all-zero sha256, an example URL); with --archive, that the sha256
matches the archive and the archive holds what the manifest names, as files and folders
only (krew unpacks nothing else).

    krew/manifest.py install MANIFEST ARCHIVE KREW_ROOT

unpacks the archive the way `krew install --manifest M --archive A` does and links the
plugin into KREW_ROOT/bin (for smoke tests, where krew itself is not at hand).

Exit status 1 with one line per problem when a check fails.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "runai-dr"
TEMPLATE = ROOT / "krew" / "plugin.yaml.in"
ARCHIVE_NAME = "kubectl-runai_dr_linux_amd64.tar.gz"
API_VERSION = "krew.googlecontainertools.github.com/v1alpha2"
SEMVER_V = re.compile(
    r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
MARKER = re.compile(r"@([A-Z][A-Z0-9_]*)@")

# What marks a value as not real yet: template markers and other templating syntax, an
# all-zero digest, "fill me in" text in angle brackets, TODO notes, and URLs on the example
# and reserved names of RFC 2606 / RFC 6761.
PLACEHOLDERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("template marker", MARKER),
    ("template syntax", re.compile(r"\{\{|\}\}|\$\{[A-Z_]+\}")),
    ("all-zero sha256", re.compile(r"\b0{64}\b")),
    ("fill-in text", re.compile(r"<[a-z][A-Za-z0-9 _./:-]*>")),
    ("TODO", re.compile(r"\b(?:TODO|FIXME|XXX)\b")),
)
URL_HOST = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://([^/\s\"'<>:?#]*)")
EXAMPLE_HOST = re.compile(r"(?i)(?:^|\.)(?:example\.(?:com|net|org)|example|invalid|localhost)$")


def pyproject_version(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The package version: pyproject.toml is its one source of truth."""
    text = pyproject.read_text()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        m = re.search(r'(?ms)^\[project\].*?^version\s*=\s*"([^"]+)"', text)
        if not m:
            raise SystemExit(f"no [project] version in {pyproject}") from None
        return m.group(1)
    return str(tomllib.loads(text)["project"]["version"])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def placeholders(text: str) -> list[str]:
    """Each placeholder in ``text`` (comments included), as "kind: 'match'"."""
    found = []
    for kind, pattern in PLACEHOLDERS:
        for m in pattern.finditer(text):
            found.append(f"{kind}: {m.group(0)!r}")
    for m in URL_HOST.finditer(text):
        if EXAMPLE_HOST.search(m.group(1)):
            found.append(f"example URL: {m.group(0)!r}")
    return found


def archive_problems(archive: Path) -> tuple[set[str], set[str], list[str]]:
    """(files, folders, problems) of a .tar.gz as krew unpacks it: regular files and
    folders only, no name with "..", no absolute name."""
    files: set[str] = set()
    dirs: set[str] = set()
    problems: list[str] = []
    with tarfile.open(archive) as tar:
        for m in tar.getmembers():
            name = m.name.removeprefix("./").rstrip("/")
            if ".." in m.name or m.name.startswith(("/", "\\")):
                problems.append(f"{archive.name}: krew refuses the member name {m.name!r}")
            if m.isfile():
                files.add(name)
            elif m.isdir():
                dirs.add(name)
            else:
                problems.append(f"{archive.name}: {m.name!r} is neither a file nor a folder "
                                "(krew unpacks nothing else)")
    for f in list(files) + list(dirs):  # folders implied by their members
        parts = f.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
    return files, dirs, problems


def check_manifest(
    manifest: dict[str, Any],
    *,
    file_name: str | None = None,
    version: str | None = None,
    archive: Path | None = None,
    text: str | None = None,
) -> list[str]:
    """Problems with a parsed manifest; empty when it is fine.

    file_name: the manifest's file name in an index (`<name>.yaml`), checked against
    metadata.name. version: the package version without `v`. archive: the built archive
    the linux/amd64 platform must point at. text: the manifest as written, searched for
    placeholders (comments included); without it the parsed values are.
    """
    errs: list[str] = []
    if manifest.get("apiVersion") != API_VERSION:
        errs.append(f"apiVersion must be {API_VERSION}, is {manifest.get('apiVersion')!r}")
    if manifest.get("kind") != "Plugin":
        errs.append(f"kind must be Plugin, is {manifest.get('kind')!r}")
    name = (manifest.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not NAME.match(name):
        errs.append(f"metadata.name missing or not a valid plugin name: {name!r}")
    if file_name is not None and name is not None and file_name != f"{name}.yaml":
        errs.append(f"metadata.name {name!r} does not match the file name {file_name!r}")
    spec = manifest.get("spec") or {}
    v = spec.get("version")
    if not isinstance(v, str) or not SEMVER_V.match(v):
        errs.append(f"spec.version must be semver with a leading v, is {v!r}")
    elif version is not None and v != f"v{version}":
        errs.append(f"spec.version {v} does not match the package version {version}")
    for key in ("homepage", "shortDescription", "description"):
        if not isinstance(spec.get(key), str) or not spec[key].strip():
            errs.append(f"spec.{key} missing or empty")
    hp = spec.get("homepage")
    if isinstance(hp, str) and not hp.startswith("https://"):
        errs.append(f"spec.homepage must be an https URL, is {hp!r}")
    short = spec.get("shortDescription")
    if isinstance(short, str) and len(short) > 50:
        errs.append(f"spec.shortDescription longer than 50 characters ({len(short)})")
    platforms = spec.get("platforms")
    if not isinstance(platforms, list) or not platforms:
        errs.append("spec.platforms missing or empty")
        platforms = []
    amd64 = None
    for i, p in enumerate(platforms):
        where = f"spec.platforms[{i}]"
        labels = ((p.get("selector") or {}).get("matchLabels")) or {}
        if not labels and not (p.get("selector") or {}).get("matchExpressions"):
            errs.append(f"{where}.selector missing")
        if labels == {"os": "linux", "arch": "amd64"}:
            amd64 = p
        uri = p.get("uri")
        if not isinstance(uri, str) or not re.match(r"^https?://\S+\.(tar\.gz|zip)$", uri):
            errs.append(f"{where}.uri must be an http(s) URL of a .tar.gz or .zip: {uri!r}")
        sha = p.get("sha256")
        if not isinstance(sha, str) or not SHA256.match(sha):
            errs.append(f"{where}.sha256 must be 64 lowercase hex digits: {sha!r}")
        files = p.get("files")
        if not isinstance(files, list) or not files:
            errs.append(f"{where}.files missing or empty")
            files = []
        for j, f in enumerate(files):
            if not isinstance(f, dict) or not f.get("from") or not f.get("to"):
                errs.append(f"{where}.files[{j}] needs from and to")
            elif ".." in Path(str(f["from"])).parts or ".." in Path(str(f["to"])).parts:
                errs.append(f"{where}.files[{j}] must not leave the archive with ..")
        b = p.get("bin")
        if not isinstance(b, str) or not b or ".." in Path(b).parts or b.startswith("/"):
            errs.append(f"{where}.bin missing or not a relative path: {b!r}")
        if archive is not None and p is amd64:
            got = sha256_file(archive)
            if sha != got:
                errs.append(f"{where}.sha256 {sha} does not match {archive.name} ({got})")
            if isinstance(uri, str) and not uri.endswith("/" + archive.name):
                errs.append(f"{where}.uri does not name the archive {archive.name}: {uri}")
            members, folders, problems = archive_problems(archive)
            errs.extend(problems)
            for f in files:
                if isinstance(f, dict) and f.get("from"):
                    pattern = str(f["from"])
                    if not any(_glob_match(pattern, m) for m in members | folders):
                        errs.append(f"{where}.files: nothing in {archive.name} matches "
                                    f"{pattern!r}")
            if isinstance(b, str) and b not in _installed_paths(files, members, folders):
                errs.append(f"{where}.bin {b!r} is not a file the install puts in place "
                            f"from {archive.name}")
            if not any(Path(m).name == "LICENSE" for m in members):
                errs.append(f"{archive.name} holds no LICENSE")
    if amd64 is None:
        errs.append("no platform with selector os=linux, arch=amd64")
    if text is None:
        text = yaml.safe_dump(manifest)
    errs.extend(f"placeholder left: {p}" for p in placeholders(text))
    return errs


def _glob_match(pattern: str, path: str) -> bool:
    """filepath.Glob's matching, as krew uses it: `*` stays within one path element."""
    regex = "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c)
                    for c in pattern)
    return re.fullmatch(regex, path) is not None


def _installed_paths(files: list[Any], members: set[str], folders: set[str]) -> set[str]:
    """Paths of the regular files an install lays out, relative to the install folder."""
    out: set[str] = set()
    for op in files:
        if not isinstance(op, dict):
            continue
        to = str(op.get("to", "."))
        for m in sorted(members | folders):
            if not _glob_match(str(op.get("from", "")), m):
                continue
            base = os.path.normpath(os.path.join(to, Path(m).name))
            if m in members:
                out.add(base)
            for f in members:  # a folder moves with everything under it
                if f.startswith(m + "/"):
                    out.add(os.path.normpath(os.path.join(base, f[len(m) + 1:])))
    return out


def render(template: str, *, version: str, homepage: str, uri: str, sha256: str) -> str:
    """The template with its markers filled and its leading comment (which is about the
    template) replaced by one saying what was rendered. A marker it does not know is
    left, so the check that follows reports it."""
    values = {"VERSION": version, "HOMEPAGE": homepage, "URI": uri, "SHA256": sha256}
    lines = template.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    header = (f"# krew plugin manifest of kubectl runai-dr v{version}, rendered from "
              "krew/plugin.yaml.in\n# for the archive at its uri (sha256 below).\n")
    body = MARKER.sub(lambda m: values.get(m.group(1), m.group(0)), "".join(lines))
    return header + body


def release_manifests(archive: Path, *, base_url: str, homepage: str, out: Path,
                      template: Path = TEMPLATE,
                      version: str | None = None) -> tuple[list[Path], list[str]]:
    """Render and check the manifests for ``archive``; write them under ``out`` only when
    every check passes. Returns (paths written, problems)."""
    version = version or pyproject_version()
    problems = [f"--base-url: {p}" for p in placeholders(base_url)]
    problems += [f"--homepage: {p}" for p in placeholders(homepage)]
    if not base_url.startswith("https://"):
        problems.append(f"--base-url must be an https URL: {base_url!r}")
    if problems:
        return [], problems
    base = base_url.format(version=version).rstrip("/")
    text = render(template.read_text(), version=version, homepage=homepage,
                  uri=f"{base}/{archive.name}", sha256=sha256_file(archive))
    targets = [out / "plugin.yaml", out / "krew-index" / "plugins" / f"{PLUGIN_NAME}.yaml"]
    for dest in targets:
        in_index = dest.parent.name == "plugins"
        problems += [f"{dest}: {e}" for e in check_manifest(
            yaml.safe_load(text), file_name=dest.name if in_index else None,
            version=version, archive=archive, text=text)]
    if problems:
        return [], problems
    for dest in targets:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    return targets, []


def krew_install(manifest: dict[str, Any], archive: Path, krew_root: Path) -> Path:
    """Install the archive the way `krew install --manifest M --archive A` does.

    Checks the sha256, unpacks the archive (regular files and folders only), applies the
    linux/amd64 platform's file operations (`from` a glob in the archive's top folder,
    `to` a folder of the install directory; a folder moves whole) into
    KREW_ROOT/store/<name>/<version>/, and links KREW_ROOT/bin/kubectl-<name with - as _>
    to its `bin`. Returns that link.
    """
    name = manifest["metadata"]["name"]
    spec = manifest["spec"]
    platform = next(p for p in spec["platforms"]
                    if p["selector"].get("matchLabels") == {"os": "linux", "arch": "amd64"})
    if sha256_file(archive) != platform["sha256"]:
        raise SystemExit(f"{archive}: sha256 does not match the manifest")
    _, _, problems = archive_problems(archive)
    if problems:
        raise SystemExit("\n".join(problems))
    install = krew_root / "store" / name / spec["version"]
    if install.exists():
        shutil.rmtree(install)
    install.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="tar")
        for op in platform.get("files") or [{"from": "*", "to": "."}]:
            matched = sorted(glob.glob(os.path.join(tmp, op["from"])))
            if not matched:
                raise SystemExit(f"files: nothing in the archive matches {op['from']!r}")
            dest = install / op["to"]
            dest.mkdir(parents=True, exist_ok=True)
            for m in matched:
                shutil.move(m, str(dest / Path(m).name))
    target = install / platform["bin"]
    if not (target.is_file() and os.access(target, os.X_OK)):
        raise SystemExit(f"bin {platform['bin']} is not an executable file after install")
    (krew_root / "bin").mkdir(parents=True, exist_ok=True)
    link: Path = krew_root / "bin" / ("kubectl-" + str(name).replace("-", "_"))
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)
    return link


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render the manifests for a built archive")
    r.add_argument("archive", type=Path)
    r.add_argument("--base-url", required=True,
                   help="https URL of the folder the archive is published in; {version} "
                   "is replaced by the version")
    r.add_argument("--homepage", required=True, help="the plugin's https home page")
    r.add_argument("--out", type=Path, default=ROOT / "dist" / "release")
    c = sub.add_parser("check", help="check manifests")
    c.add_argument("manifests", nargs="+", type=Path)
    c.add_argument("--archive", type=Path)
    i = sub.add_parser("install", help="install an archive as krew would")
    i.add_argument("manifest", type=Path)
    i.add_argument("archive", type=Path)
    i.add_argument("krew_root", type=Path)
    args = ap.parse_args()
    version = pyproject_version()

    if args.command == "render":
        written, problems = release_manifests(args.archive, base_url=args.base_url,
                                              homepage=args.homepage, out=args.out,
                                              version=version)
        for p in problems:
            print(f"manifest: refused: {p}", file=sys.stderr)
        for w in written:
            print(f"manifest: {w}: v{version} sha256 {sha256_file(args.archive)}",
                  file=sys.stderr)
        return 1 if problems else 0

    if args.command == "check":
        failed = False
        for path in args.manifests:
            text = path.read_text()
            in_index = path.parent.name == "plugins"
            errs = check_manifest(yaml.safe_load(text),
                                  file_name=path.name if in_index else None,
                                  version=version, archive=args.archive, text=text)
            for e in errs:
                print(f"{path}: {e}", file=sys.stderr)
            failed |= bool(errs)
            if not errs:
                print(f"{path}: ok", file=sys.stderr)
        return 1 if failed else 0

    link = krew_install(yaml.safe_load(args.manifest.read_text()), args.archive,
                        args.krew_root)
    print(f"installed: {link} -> {link.resolve()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
