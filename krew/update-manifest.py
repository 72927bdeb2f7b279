#!/usr/bin/env python3
"""Fill the krew manifests from a built archive, and check manifests against krew's rules.

Fill (the release step): sets spec.version from pyproject.toml, and the platform's uri
and sha256 from the archive, in plugin.yaml and in the custom index's
krew/plugins/runai-dr.yaml, editing only those values so comments and layout stay:

    krew/update-manifest.py dist/kubectl-runai_dr_linux_amd64.tar.gz \
        [--base-url https://downloads.example.org/kubectl-runai-dr/v{version}] \
        [--out-dir DIR]   # write the filled manifests there instead of in place

Check: every field krew requires is present and well formed, the plugin name matches
the file name (for an index file), the version matches pyproject.toml, and with
--archive the sha256 matches it and the archive holds every file the manifest names:

    krew/update-manifest.py --check krew/plugins/runai-dr.yaml [--archive ARCHIVE]

Install (for smoke tests, where krew itself is not at hand): with --check M --archive A
--install-to KREW_ROOT, unpack A as `krew install` would and link the plugin into
KREW_ROOT/bin.

Exit status 1 with one line per problem when a check fails.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import tarfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "runai-dr"
MANIFESTS = (ROOT / "plugin.yaml", ROOT / "krew" / "plugins" / f"{PLUGIN_NAME}.yaml")
API_VERSION = "krew.googlecontainertools.github.com/v1alpha2"
SEMVER_V = re.compile(
    r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
SHA256 = re.compile(r"^[0-9a-f]{64}$")
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


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


def archive_members(archive: Path) -> set[str]:
    with tarfile.open(archive) as tar:
        return {m.name.removeprefix("./") for m in tar.getmembers() if not m.isdir()}


def check_manifest(
    manifest: dict[str, Any],
    *,
    file_name: str | None = None,
    version: str | None = None,
    archive: Path | None = None,
) -> list[str]:
    """Problems with a parsed manifest; empty when it is fine.

    file_name: the manifest's file name in an index (`<name>.yaml`), checked against
    metadata.name. version: the package version without `v`. archive: the built archive
    the linux/amd64 platform must point at.
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
            members = archive_members(archive)
            for f in files:
                if isinstance(f, dict) and f.get("from") and f["from"] not in members:
                    errs.append(f"{where}.files: {f['from']!r} is not in {archive.name}")
            if isinstance(b, str) and b not in members:
                errs.append(f"{where}.bin {b!r} is not in {archive.name}")
            if "LICENSE" not in members:
                errs.append(f"{archive.name} holds no LICENSE")
    if amd64 is None:
        errs.append("no platform with selector os=linux, arch=amd64")
    return errs


def krew_install(manifest: dict[str, Any], archive: Path, krew_root: Path) -> Path:
    """Install the archive the way `krew install --manifest M --archive A` does.

    Checks the sha256, unpacks the archive, applies the linux/amd64 platform's file
    operations (`from` a glob in the archive, `to` a folder of the install directory)
    into KREW_ROOT/store/<name>/<version>/, and links KREW_ROOT/bin/kubectl-<name with
    - as _> to its `bin`. Returns that link.
    """
    import fnmatch
    import os
    import shutil
    import tempfile

    name = manifest["metadata"]["name"]
    spec = manifest["spec"]
    platform = next(p for p in spec["platforms"]
                    if p["selector"].get("matchLabels") == {"os": "linux", "arch": "amd64"})
    if sha256_file(archive) != platform["sha256"]:
        raise SystemExit(f"{archive}: sha256 does not match the manifest")
    install = krew_root / "store" / name / spec["version"]
    if install.exists():
        shutil.rmtree(install)
    install.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="tar")
        members = sorted(str(p.relative_to(tmp)) for p in Path(tmp).rglob("*"))
        for op in platform["files"]:
            matched = [m for m in members if fnmatch.fnmatch(m, op["from"])]
            if not matched:
                raise SystemExit(f"files: nothing in the archive matches {op['from']!r}")
            dest = install / op["to"]
            dest.mkdir(parents=True, exist_ok=True)
            for m in matched:
                shutil.move(str(Path(tmp) / m), str(dest / Path(m).name))
    target = install / platform["bin"]
    if not os.access(target, os.X_OK):
        raise SystemExit(f"bin {platform['bin']} is not an executable file after install")
    (krew_root / "bin").mkdir(parents=True, exist_ok=True)
    link = krew_root / "bin" / ("kubectl-" + name.replace("-", "_"))
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(target)
    return link


def fill(text: str, *, version: str, uri: str, sha256: str) -> str:
    """Set spec.version, the linux/amd64 uri and sha256, and versioned paths in caveats.

    Line edits rather than a YAML round trip, so comments and layout are kept; the
    manifest has one platform, which the result's check confirms.
    """
    tag = f"v{version}"

    def sub(pattern: str, repl: str, s: str) -> str:
        out, n = re.subn(pattern, repl, s, flags=re.M)
        if n != 1:
            raise SystemExit(f"expected exactly one match for {pattern!r}, found {n}")
        return out

    text = sub(r"^(  version:) .*$", rf"\g<1> {tag}", text)
    text = sub(r"^(\s+uri:) .*$", rf"\g<1> {uri}", text)
    text = sub(r"^(\s+sha256:) .*$", rf'\g<1> "{sha256}"', text)
    return re.sub(rf"(store/{PLUGIN_NAME}/)v[^/\s]+/", rf"\g<1>{tag}/", text)


def current_base_url(manifest_text: str, archive_name: str) -> str:
    m = re.search(r"^\s+uri: (\S+)$", manifest_text, flags=re.M)
    if not m:
        raise SystemExit("no uri in manifest")
    return m.group(1).rsplit("/", 1)[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("archive", nargs="?", type=Path, help="built archive to fill from")
    ap.add_argument("--base-url", help="where the archive is published; {version} is "
                    "replaced by the version; default: the manifest's current uri with "
                    "the old version replaced")
    ap.add_argument("--out-dir", type=Path, help="write filled manifests here "
                    "(plugin.yaml, plugins/runai-dr.yaml) instead of in place")
    ap.add_argument("--check", type=Path, action="append", default=[], metavar="MANIFEST",
                    help="check a manifest (repeatable); with --archive, against it")
    ap.add_argument("--archive", dest="check_archive", type=Path)
    ap.add_argument("--install-to", type=Path, metavar="KREW_ROOT",
                    help="with --check M --archive A: install A as krew would, into "
                    "KREW_ROOT/store, linked from KREW_ROOT/bin")
    args = ap.parse_args()
    version = pyproject_version()

    if args.check:
        failed = False
        for path in args.check:
            data = yaml.safe_load(path.read_text())
            in_index = path.parent.name == "plugins"
            errs = check_manifest(data, file_name=path.name if in_index else None,
                                  version=version, archive=args.check_archive)
            for e in errs:
                print(f"{path}: {e}", file=sys.stderr)
            failed |= bool(errs)
            if not errs:
                print(f"{path}: ok", file=sys.stderr)
        if args.install_to and not failed:
            if args.check_archive is None:
                ap.error("--install-to needs --archive")
            link = krew_install(yaml.safe_load(args.check[0].read_text()),
                                args.check_archive, args.install_to)
            print(f"installed: {link} -> {link.resolve()}", file=sys.stderr)
        return 1 if failed else 0

    if args.archive is None:
        ap.error("give an archive to fill from, or --check MANIFEST")
    archive: Path = args.archive
    sha = sha256_file(archive)
    status = 0
    for src in MANIFESTS:
        text = src.read_text()
        if args.base_url:
            base = args.base_url.format(version=version).rstrip("/")
        else:
            base = re.sub(r"/v\d+\.\d+\.\d+[^/]*(?=/|$)", f"/v{version}",
                          current_base_url(text, archive.name))
        new = fill(text, version=version, uri=f"{base}/{archive.name}", sha256=sha)
        if args.out_dir:
            dest = args.out_dir / src.relative_to(src.parent.parent if src.parent.name ==
                                                  "plugins" else src.parent)
        else:
            dest = src
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(new)
        errs = check_manifest(yaml.safe_load(new),
                              file_name=dest.name if dest.parent.name == "plugins" else None,
                              version=version, archive=archive)
        for e in errs:
            print(f"{dest}: {e}", file=sys.stderr)
            status = 1
        print(f"{dest}: v{version} sha256 {sha}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
