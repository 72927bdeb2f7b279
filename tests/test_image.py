"""The tool's OCI image (scripts/image.sh): a valid OCI archive (skopeo inspect), run as a non-root
user, its entrypoint the tool; unpacked with umoci, the tool runs `version` and `--help` inside
the image's root (chroot, as the non-root user, with an empty environment: nothing of the build
machine but what the image holds). Slow: it builds the plugin first when dist/ lacks it."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_runai_dr._version import __version__
from kubectl_runai_dr.plan import schedule as plan
from tests.e2e import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    if not (shutil.which("umoci") and shutil.which("skopeo")):
        pytest.fail("umoci and skopeo are missing: scripts/bootstrap-tests.sh installs them")
    dist = ROOT / "dist"
    p = subprocess.run(["bash", "scripts/image.sh"], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "DIST_DIR": str(dist)}, timeout=1800)
    assert p.returncode == 0, p.stderr[-4000:]
    archive = dist / f"kubectl-runai_dr-{__version__.split('+')[0]}.oci-archive"
    yield archive, (dist / "image-ref.txt").read_text().strip()


def skopeo(*args: str) -> dict[str, object]:
    p = subprocess.run(["skopeo", "inspect", *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    out: dict[str, object] = json.loads(p.stdout)
    return out


def test_archive_is_an_oci_image_run_as_non_root(image: tuple[Path, str]) -> None:
    archive, ref = image
    info = skopeo(f"oci-archive:{archive}")
    assert ref.startswith(f"{plan.IMAGE_REPOSITORY}:") and ref.endswith(f"@{info['Digest']}")
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    config = skopeo("--config", f"oci-archive:{archive}")["config"]
    assert isinstance(config, dict)
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == [plan.ENTRYPOINT]
    assert config["Cmd"] == ["--help"]


def test_entrypoint_runs_in_the_image_root(image: tuple[Path, str], tmp_path: Path) -> None:
    archive, _ = image
    if os.geteuid() != 0:
        pytest.skip("unpacking with owners and chroot need root")
    layout = tmp_path / "layout"
    p = subprocess.run(["skopeo", "copy", "--quiet", f"oci-archive:{archive}", f"oci:{layout}:t"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    bundle = tmp_path / "bundle"
    p = subprocess.run(["umoci", "unpack", "--image", f"{layout}:t", str(bundle)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    rootfs = bundle / "rootfs"
    # what the base holds: the tool, glibc, CA certificates, the user, /tmp; no shell, no Python
    assert (rootfs / "etc/ssl/certs/ca-certificates.crt").stat().st_size > 1000
    assert "nonroot:x:65532:65532" in (rootfs / "etc/passwd").read_text()
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777
    assert not (rootfs / "bin/sh").exists() and not (rootfs / "usr/bin/python3").exists()
    assert list(rootfs.glob("lib/x86_64-linux-gnu/libc.so.6")) or list(rootfs.glob("usr/lib/x86_64-linux-gnu/libc.so.6"))
    runtime = json.loads((bundle / "config.json").read_text())
    assert runtime["process"]["user"]["uid"] == 65532
    assert runtime["process"]["args"] == [plan.ENTRYPOINT, "--help"]
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    for args in (["version"], ["--help"]):
        p = subprocess.run([chroot, "--userspec=65532:65532", str(rootfs), plan.ENTRYPOINT, *args],
                           capture_output=True, text=True, timeout=120, env={"HOME": "/home/nonroot"})
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        assert ("schedule" in p.stdout) if args == ["--help"] else (__version__.split("+")[0] in p.stdout)
