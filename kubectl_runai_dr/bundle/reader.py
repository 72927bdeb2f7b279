"""Read and verify bundles."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from kubectl_runai_dr.bundle.layout import FORMAT, FORMAT_VERSION, MANIFEST
from kubectl_runai_dr.errors import BundleError

_CHUNK = 1024 * 1024
_READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


@dataclass(frozen=True)
class Problem:
    file: str
    message: str


class Bundle:
    """A bundle on disk. ``open`` reads only the manifest (the first member)."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self._tar: tarfile.TarFile | None = None

    @classmethod
    def open(cls, path: Path) -> Bundle:
        if not path.exists():
            raise BundleError(f"bundle {path} does not exist", hint="check the path")
        if path.is_dir():
            raise BundleError(f"{path} is a directory, not a bundle file")
        try:
            with _stream(path) as tar:
                first = tar.next()
                if first is None or first.name != MANIFEST:
                    raise BundleError(
                        f"{path} is not a runai-dr bundle: its first member is "
                        f"{first.name if first else 'missing'}, not {MANIFEST}")
                fh = tar.extractfile(first)
                raw = fh.read() if fh else b""
        except BundleError:
            raise
        except _READ_ERRORS as exc:
            raise BundleError(f"{path} is not a readable bundle (gzip tar): {exc}",
                              hint="the file is truncated or not a bundle") from exc
        try:
            manifest = json.loads(raw)
        except ValueError as exc:
            raise BundleError(f"{path}: {MANIFEST} is not valid JSON ({exc})") from exc
        check_manifest(manifest, path)
        return cls(path, manifest)

    # -- content -------------------------------------------------------------------------
    @property
    def files(self) -> dict[str, dict[str, Any]]:
        files: dict[str, dict[str, Any]] = self.manifest.get("files", {})
        return files

    def has(self, relpath: str) -> bool:
        return relpath in self.files

    def _random_access(self) -> tarfile.TarFile:
        if self._tar is None:
            try:
                self._tar = tarfile.open(self.path, mode="r:gz")  # noqa: SIM115 - kept open
            except _READ_ERRORS as exc:
                raise BundleError(f"{self.path} cannot be read: {exc}",
                                  hint="run `kubectl runai-dr verify` on it") from exc
        return self._tar

    def open_member(self, relpath: str) -> IO[bytes]:
        if relpath not in self.files:
            raise BundleError(f"{self.path} has no {relpath}")
        tar = self._random_access()
        try:
            fh = tar.extractfile(relpath)
        except (KeyError, *_READ_ERRORS) as exc:
            raise BundleError(f"{self.path}: {relpath} cannot be read ({exc})",
                              hint="run `kubectl runai-dr verify` on it") from exc
        if fh is None:
            raise BundleError(f"{self.path}: {relpath} is not a regular file")
        return fh

    def read_bytes(self, relpath: str) -> bytes:
        with self.open_member(relpath) as fh:
            data = fh.read()
        expected = self.files[relpath]
        if hashlib.sha256(data).hexdigest() != expected["sha256"]:
            raise BundleError(f"{self.path}: {relpath} does not match its checksum",
                              hint="the bundle is corrupt or was modified; use another one")
        return data

    def read_json(self, relpath: str) -> Any:
        return json.loads(self.read_bytes(relpath))

    def iter_list(self, relpath: str) -> Iterator[dict[str, Any]]:
        data = self.read_json(relpath)
        yield from data.get("items", [])

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    # -- verification --------------------------------------------------------------------
    def verify(self) -> list[Problem]:
        """Read every member once, streaming; report each file that is wrong."""
        problems: list[Problem] = []
        expected = dict(self.files)
        seen: set[str] = set()
        current = MANIFEST
        try:
            with _stream(self.path) as tar:
                for i, member in enumerate(tar):
                    current = member.name
                    if i == 0:
                        continue  # the manifest, already parsed
                    if member.name in seen:
                        problems.append(Problem(member.name, "appears twice in the archive"))
                        continue
                    seen.add(member.name)
                    if member.name not in expected:
                        problems.append(Problem(member.name, "is not listed in the manifest"))
                        continue
                    fh = tar.extractfile(member)
                    sha = hashlib.sha256()
                    size = 0
                    if fh is not None:
                        while chunk := fh.read(_CHUNK):
                            sha.update(chunk)
                            size += len(chunk)
                    want = expected[member.name]
                    if size != want["size"]:
                        problems.append(Problem(
                            member.name, f"size {size} differs from manifest {want['size']}"))
                    elif sha.hexdigest() != want["sha256"]:
                        problems.append(Problem(member.name, "sha256 does not match the manifest"))
        except _READ_ERRORS as exc:
            problems.append(Problem(current, f"archive is truncated or corrupt here ({exc})"))
            return problems
        for name in sorted(set(expected) - seen):
            problems.append(Problem(name, "is listed in the manifest but missing"))
        return problems


def check_manifest(manifest: Any, path: Path) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{path} is not a runai-dr bundle (manifest format is not {FORMAT})")
    version = manifest.get("formatVersion")
    if not isinstance(version, int):
        raise BundleError(f"{path}: manifest has no formatVersion")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{path} has bundle format {version}; this tool reads up to {FORMAT_VERSION}",
            hint="upgrade kubectl runai-dr")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
        for v in files.values()
    ):
        raise BundleError(f"{path}: manifest files table is missing or malformed")
    if not isinstance(manifest.get("components"), list):
        raise BundleError(f"{path}: manifest has no components list")


@contextlib.contextmanager
def _stream(path: Path) -> Iterator[tarfile.TarFile]:
    """Read the archive front to back. Through gzip.open: a bundle's gzip stream has
    several members (stored dumps between compressed JSON), which tarfile's own stream
    mode does not read."""
    with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
        yield tar
