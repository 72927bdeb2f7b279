"""Shared pytest configuration: the loopback API server's fixtures (the kubeapi package,
installed by scripts/bootstrap-tests.sh) and the environment for the pinned helm and kubectl."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.s3server import S3Server

pytest_plugins = ["kubeapi.fixtures"]

TOOLS_BIN = Path(__file__).resolve().parent.parent / ".tools" / "bin"


@pytest.fixture
def tool_env(tmp_path: Path) -> dict[str, str]:
    """The environment for the pinned helm and kubectl (.tools/bin first on PATH), with a
    private HOME and helm directories, so no test reads or writes the user's."""
    return {"PATH": f"{TOOLS_BIN}:{os.environ['PATH']}", "HOME": str(tmp_path),
            "HELM_CACHE_HOME": str(tmp_path / "hc"), "HELM_CONFIG_HOME": str(tmp_path / "hcfg"),
            "HELM_DATA_HOME": str(tmp_path / "hd")}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) on loopback, for the whole session."""
    from tests.s3server import running_s3

    with running_s3() as server:
        yield server
