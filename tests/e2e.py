"""Helpers to run the CLI the way a user does, for end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from kubectl_runai_dr.cli.app import app

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def cli(*args: str, env: dict[str, str] | None = None) -> Run:
    """In-process run through typer's runner (fast); stdout and stderr kept apart."""
    runner = CliRunner()
    result = runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200",
                                                 **(env or {})}, catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def subprocess_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                   timeout: float = 120) -> Run:
    """A real process, as kubectl would start the plugin."""
    full_env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT)
    p = subprocess.run([sys.executable, "-m", "kubectl_runai_dr", *args], capture_output=True,
                       text=True, env=full_env, cwd=cwd, timeout=timeout)
    return Run(p.returncode, p.stdout, p.stderr)


def manifest_of(bundle: Path) -> dict[str, Any]:
    with tarfile.open(bundle) as tar:
        fh = tar.extractfile("manifest.json")
        assert fh is not None
        data: dict[str, Any] = json.load(fh)
        return data


def member(bundle: Path, name: str) -> bytes:
    with tarfile.open(bundle) as tar:
        fh = tar.extractfile(name)
        assert fh is not None
        return fh.read()


def components(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in manifest["components"]}
