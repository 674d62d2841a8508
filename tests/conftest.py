"""Fixtures: one real PostgreSQL per test session, a fresh que_jobs table per test."""

import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, settings

import que
from harness import lab
from harness.postgres import database
from que.engine import loaders as _loaders

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "dev", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
settings.load_profile("ci")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with database() as db:
        yield db.url


def reset_schema(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        # Locks left by a failed test would leak into the next one.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        lab.drop_que(conn)
        que.migrate(conn)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    reset_schema(database_url)
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def client(conn: psycopg.Connection[Any], database_url: str) -> Iterator[que.Client]:
    with que.Client(database_url) as c:
        yield c


def rows(conn: psycopg.Connection[Any], where: str = "true") -> list[dict[str, Any]]:
    """que_jobs as stored; run_at 'infinity' (a job set aside) reads as datetime.max."""
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        _loaders.register(cur)
        cur.execute(f"SELECT *, args::text AS args_text FROM que_jobs WHERE {where} ORDER BY job_id", binary=True)
        return cur.fetchall()


def fresh_database(url: str, name: str) -> str:
    """An empty database `name` on the server of `url` (dropped first if it exists)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return re.sub(r"/[^/?]*(\?|$)", rf"/{name}\1", url, count=1)


@pytest.fixture(params=[3, 7], ids=["que0", "que2"])
def table_url(request: pytest.FixtureRequest, database_url: str) -> Iterator[str]:
    """A database of its own with que_jobs at version 3 (Que 0.x) and then 7 (Que 2.x): each
    test that takes it runs on both tables."""
    made = fresh_database(database_url, f"{request.node.module.__name__.rsplit('.', 1)[-1]}_v{request.param}")
    with que.Client(made) as client:
        client.migrate(request.param)
    yield made


@pytest.fixture
def v7_url(database_url: str) -> Iterator[str]:
    """A database of its own with que_jobs at version 7 (Ruby Que 2.x's), empty."""
    url = fresh_database(database_url, "locker_faults")
    with que.Client(url) as client:
        client.migrate(7)
    yield url
