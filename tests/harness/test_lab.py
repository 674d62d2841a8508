"""The harness's view of a database: only that database, even on a shared server."""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from harness import lab

OTHER = "que_interop_test_lab_other"


@pytest.fixture
def other_database(database_url: str) -> Iterator[str]:
    """A second database on the same server, as a second suite (make mutate) or another
    application would have."""
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {OTHER} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {OTHER}")
        try:
            yield database_url.rsplit("/", 1)[0] + "/" + OTHER
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {OTHER} WITH (FORCE)")


def test_locks_held_in_another_database_are_not_this_databases(
    conn: psycopg.Connection[Any], other_database: str
) -> None:
    with psycopg.connect(other_database, autocommit=True) as elsewhere:
        elsewhere.execute("SELECT pg_advisory_lock(7)")
        with psycopg.connect(conn.info.dsn, autocommit=True) as here:
            here.execute("SELECT pg_advisory_lock(8)")
            assert [lock.key for lock in lab.advisory_locks(conn)] == [8]
