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
