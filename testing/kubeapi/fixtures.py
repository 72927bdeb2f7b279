"""pytest fixtures (a plugin: `pytest_plugins = ["kubeapi.fixtures"]`): a started loopback API
server with the fixture CRDs, its kubeconfig, a seeded Run:ai installation, and a throwaway
PostgreSQL server with a fresh database per test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .pgserver import PgServer
from .seed import crd_docs
from .server import ApiServer


@pytest.fixture
def apiserver() -> Iterator[ApiServer]:
    srv = ApiServer()
    srv.install_crds(crd_docs())
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

    apiserver.seed_info = seed_runai(apiserver)
    return apiserver


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL 15 server shared by the whole test session."""
    try:
        server = PgServer()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)
    with server:
        yield server


@pytest.fixture
def pg_database(pg_server: PgServer) -> Iterator[str]:
    """The name of a new, empty database on `pg_server`, dropped after the test."""
    name = pg_server.create_database()
    try:
        yield name
    finally:
        with contextlib.suppress(RuntimeError):
            pg_server.drop_database(name)
