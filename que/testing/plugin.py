"""The pytest plugin of que.testing (entry point `pytest11`: pytest loads it by itself).

Options: --que-database-url (or QUE_TEST_DATABASE_URL; else a throwaway PostgreSQL for the
session) and --que-schema-version (3: Que 0.x, the default; 5: Que 1.x; 7: Que 2.x).
Fixtures: que_database_url (session), que_client (a que.Client on a migrated, emptied
que_jobs) and que_drain (que.testing.drain bound to that client)."""

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from que.shells.client import Client
from que.testing import drain
from que.testing.server import TemporaryServer


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("que", "que job queue test helpers (que.testing)")
    group.addoption(
        "--que-database-url",
        default=os.environ.get("QUE_TEST_DATABASE_URL"),
        help="PostgreSQL for que_client (default: QUE_TEST_DATABASE_URL, else a throwaway server)",
    )
    group.addoption(
        "--que-schema-version",
        type=int,
        default=3,
        help="the que_jobs version que_client migrates to: 3 (Que 0.x, default), 5 (Que 1.x), 7 (Que 2.x)",
    )


@pytest.fixture(scope="session")
def que_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    given: str | None = request.config.getoption("--que-database-url")
    if given:
        yield given
        return
    server = TemporaryServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def que_client(que_database_url: str, request: pytest.FixtureRequest) -> Iterator[Client]:
    with Client(que_database_url) as client:
        client.migrate(request.config.getoption("--que-schema-version"))
        client.clear()
        yield client


@pytest.fixture
def que_drain(que_client: Client) -> Callable[..., int]:
    def bound(handlers: Any, queue: str | None = None, timeout: float = 30.0) -> int:
        return drain(que_client, handlers, queue, timeout)

    return bound
