"""The Que 1.x dialect (schema versions 4 and 5) against a real PostgreSQL: the table Ruby
Que 1.4.1 builds, enqueue as its `enqueue(*args, **kwargs)` stores a job, and both pools
working it. The conformance cells (`--dialect 1`) hold the same against the real Ruby Que
1.4.1; these hold que to it where no Ruby is installed."""

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import que
from harness.lab import wait_until
from que.aio import AsyncClient, AsyncWorkerPool
from que.errors import UnsupportedByDialect
from tests.conftest import fresh_database


@pytest.fixture(params=[5, 4])
def v1(database_url: str, request: pytest.FixtureRequest) -> Iterator[que.Client]:
    url = fresh_database(database_url, "que1_tests")
    with que.Client(url) as client:
        client.migrate(request.param)
        yield client


def stored(client: que.Client) -> list[tuple[Any, ...]]:
    with psycopg.connect(client.conninfo) as conn:
        version = "job_schema_version" if client.db_version() >= 5 else "NULL"
        return conn.execute(f"SELECT id, queue, args::text, data::text, {version} FROM que_jobs ORDER BY id").fetchall()


def test_the_table_speaks_dialect_1(v1: que.Client) -> None:
    assert str(v1.dialect()) == "1"
    with psycopg.connect(v1.conninfo) as conn:
        columns = {
            row[0]
            for row in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'que_jobs'")
        }
    assert "kwargs" not in columns and "data" in columns
    assert ("job_schema_version" in columns) == (v1.db_version() == 5)


def test_keyword_arguments_are_appended_to_args_as_ruby_que_1_stores_them(v1: que.Client) -> None:
    job = v1.enqueue("Mail", 1, "two", kwargs={"to": "ann", "cc": [None]}, tags=["t"])
    v1.enqueue("Plain", 3)
    v1.enqueue_many([que.NewJob("Many", (4,), kwargs={"k": True}), que.NewJob("Many", ())])
    version = 1 if v1.db_version() == 5 else None
    assert stored(v1) == [
        (job.job_id, "default", '[1, "two", {"cc": [null], "to": "ann"}]', '{"tags": ["t"]}', version),
        (job.job_id + 1, "default", "[3]", "{}", version),
        (job.job_id + 2, "default", '[4, {"k": true}]', "{}", version),
        (job.job_id + 3, "default", "[]", "{}", version),
    ]


def test_a_rejected_job_inserts_nothing(v1: que.Client) -> None:
    with pytest.raises(ValueError, match="priority"):
        v1.enqueue_many([que.NewJob("Ok", (1,), kwargs={"a": 1}), que.NewJob("Bad", (), priority=40_000)])
    assert stored(v1) == []


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_both_pools_work_the_jobs_and_pass_the_keywords_positionally(v1: que.Client, kind: str) -> None:
    """The handler gets the appended object as its last positional argument (Python, like
    Ruby 3, does not turn it into keywords); a row of Que 2's job_schema_version on a v5
    table is another dialect's job and is left alone."""
    received: list[tuple[Any, ...]] = []
    v1.enqueue("Mail", 1, kwargs={"to": "ann"})
    v1.enqueue("Mail", 2)
    foreign = None
    if v1.db_version() == 5:
        with psycopg.connect(v1.conninfo, autocommit=True) as conn:
            row = conn.execute(
                "INSERT INTO que_jobs (job_class, args, job_schema_version) VALUES ('Mail', '[9]', 2) RETURNING id"
            ).fetchone()
            assert row is not None
            foreign = row[0]

    def mail(*args: Any) -> None:
        received.append(args)

    def left() -> list[int]:
        with psycopg.connect(v1.conninfo) as conn:
            return [r[0] for r in conn.execute("SELECT id FROM que_jobs ORDER BY id")]

    expected_left = [foreign] if foreign else []
    if kind == "threads":
        pool = que.WorkerPool(v1, {"Mail": mail}, count=2, wake_interval=0.05).start()
        try:
            wait_until(lambda: left() == expected_left and len(received) == 2, 20, "the drain")
        finally:
            assert pool.shutdown(20)
    else:

        async def main() -> None:
            async with AsyncClient(v1.conninfo) as client:
                pool = await AsyncWorkerPool(client, {"Mail": mail}, count=2, wake_interval=0.05).start()
                try:
                    await asyncio.to_thread(wait_until, lambda: left() == expected_left and len(received) == 2, 20)
                finally:
                    assert await pool.shutdown(20)

        asyncio.run(main())
    assert sorted(received, key=json.dumps) == [(1, {"to": "ann"}), (2,)]
    assert left() == expected_left


def test_the_que_0x_apis_refuse_with_the_dialect_named(v1: que.Client) -> None:
    with pytest.raises(UnsupportedByDialect, match="dialect 1"):
        v1.lock_job()
    with pytest.raises(UnsupportedByDialect, match="dialect 1"):
        que.Worker(v1, {}).work_one()


def test_migrate_3_to_5_rewrites_the_live_rows_and_back(database_url: str) -> None:
    url = fresh_database(database_url, "que1_tests")
    with que.Client(url) as client:
        client.migrate(3)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO que_jobs (queue, job_class, args, last_error) VALUES "
                "('', 'J', '[1]', NULL), ('mail', 'J', '{\"to\":\"ann\"}', E'Boom\\n/a.rb:1')"
            )
            client.migrate(5)
            up = conn.execute(
                "SELECT queue, args::text, last_error_message, last_error_backtrace, job_schema_version "
                "FROM que_jobs ORDER BY id"
            ).fetchall()
            assert up == [("default", "[1]", None, None, 1), ("mail", '[{"to": "ann"}]', "Boom", "/a.rb:1", 1)]
            client.migrate(3)
            down = conn.execute("SELECT queue, args::text, last_error FROM que_jobs ORDER BY job_id").fetchall()
            assert down == [("", "[1]", None), ("mail", '[{"to": "ann"}]', "Boom\n/a.rb:1")]


def test_a_thread_pool_on_a_que_1_table_stops_cleanly_while_a_job_runs(v1: que.Client) -> None:
    """Shutdown waits for the running job and writes its outcome before the locker ends."""
    started = threading.Event()
    gate = threading.Event()

    def slow() -> None:
        started.set()
        gate.wait(20)

    v1.enqueue("Slow")
    pool = que.WorkerPool(v1, {"Slow": slow}, count=1, wake_interval=0.05).start()
    assert started.wait(20)
    threading.Timer(0.2, gate.set).start()
    assert pool.shutdown(20)
    assert stored(v1) == []
