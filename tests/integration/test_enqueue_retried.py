"""An enqueue whose pooled session the server ends while the insert runs (a restart, or a
pg_terminate_backend that lands just after the connection was checked out) is tried again on
another connection, in both dialects and through both APIs. The server's 57P01 says the
statement's transaction never committed, so the second try cannot make a duplicate."""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import que
from que import aio
from tests.conftest import fresh_database, reset_schema

# The first insert into que_jobs ends its own session: the sequence counts tries outside
# any transaction, so the failed try is still counted when its transaction is gone.
END_FIRST_INSERT = """
DROP SEQUENCE IF EXISTS test_inserts;
CREATE SEQUENCE test_inserts;
CREATE OR REPLACE FUNCTION test_end_first_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('test_inserts') = 1 THEN
    PERFORM pg_terminate_backend(pg_backend_pid());
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER test_end_first_insert BEFORE INSERT ON que_jobs
  FOR EACH ROW EXECUTE FUNCTION test_end_first_insert();
"""


@pytest.fixture(params=["0.14", "2"])
def url(request: pytest.FixtureRequest, database_url: str) -> Iterator[str]:
    if request.param == "0.14":
        reset_schema(database_url)
        yield database_url
        return
    que2 = fresh_database(database_url, "que2_session_ended")
    with que.Client(que2) as client:
        client.migrate(7)
    yield que2


def ending_first_insert(url: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(END_FIRST_INSERT)
    return conn


def stored(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(rows in que_jobs, inserts tried)."""
    row = conn.execute("SELECT (SELECT count(*) FROM que_jobs), (SELECT last_value FROM test_inserts)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_enqueue_tries_again_when_the_server_ends_its_session(url: str) -> None:
    with que.Client(url) as client:
        client.dialect()  # read before the trigger, so the insert is the first statement to fail
        with ending_first_insert(url) as conn:
            job = client.enqueue("Once", 1)
            assert job.args == [1]
            assert stored(conn) == (1, 2)


def test_async_enqueue_tries_again_when_the_server_ends_its_session(url: str) -> None:
    async def main() -> que.Job:
        async with aio.AsyncClient(url) as client:
            await client.dialect()
            with ending_first_insert(url):
                return await client.enqueue("Once", 1)

    job = aio.run(main())
    assert job.args == [1]
    with psycopg.connect(url, autocommit=True) as conn:
        assert stored(conn) == (1, 2)
