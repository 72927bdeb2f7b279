"""pytest fixtures: a started loopback API server with the fixture CRDs, its kubeconfig, a seeded Run:ai."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import ApiServer

CRD_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "crds"


def fixture_crd_paths() -> list[Path]:
    return sorted(CRD_DIR.glob("*.yaml"))


_CRD_DOCS: list[dict] | None = None


def fixture_crds() -> list[dict]:
    """The fixture CRDs, parsed once per process (deep copies: callers may change them)."""
    global _CRD_DOCS
    if _CRD_DOCS is None:
        import yaml

        _CRD_DOCS = [d for p in fixture_crd_paths() for d in yaml.safe_load_all(p.read_text()) if d]
    return copy.deepcopy(_CRD_DOCS)


@pytest.fixture
def apiserver() -> Iterator[ApiServer]:
    srv = ApiServer()
    srv.install_crds(fixture_crds())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def kubeconfig(apiserver: ApiServer, tmp_path: Path) -> Path:
    """A kubeconfig for the admin user (nothing is set in os.environ)."""
    return apiserver.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def runai_server(apiserver: ApiServer) -> ApiServer:
    from .seed import seed_runai

    apiserver.seed_info = seed_runai(apiserver)  # type: ignore[attr-defined]
    return apiserver


TOOLS_BIN = Path(__file__).resolve().parent.parent.parent / ".tools" / "bin"


@pytest.fixture
def tool_env(tmp_path: Path) -> dict[str, str]:
    """The environment for the pinned helm and kubectl (.tools/bin first on PATH), with a
    private HOME and helm directories, so no test reads or writes the user's."""
    import os

    return {"PATH": f"{TOOLS_BIN}:{os.environ['PATH']}", "HOME": str(tmp_path),
            "HELM_CACHE_HOME": str(tmp_path / "hc"), "HELM_CONFIG_HOME": str(tmp_path / "hcfg"),
            "HELM_DATA_HOME": str(tmp_path / "hd")}
