"""Enqueue joins the caller's transaction, survives what other code does to a connection,
and reads back what it wrote whatever the session's settings and the database's encoding."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import que
from tests.conftest import rows


def other_sees(database_url: str) -> int:
    with psycopg.connect(database_url) as other:
        row = other.execute("SELECT count(*) FROM que_jobs").fetchone()
        return int(row[0]) if row else -1


@pytest.mark.parametrize("method", ["enqueue", "enqueue_many"])
def test_enqueue_on_an_idle_non_autocommit_connection_rolls_back_with_the_caller(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str, method: str
) -> None:
    """Nothing has run yet in the caller's transaction: que must neither commit nor end it."""
    with psycopg.connect(database_url) as caller:
        assert caller.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if method == "enqueue":
            client.enqueue("A", 1, conn=caller)
        else:
            client.enqueue_many([("A", [1]), ("B", [2])], conn=caller)
        assert caller.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS, (
            f"{method}(conn=) ended the caller's transaction"
        )
        assert other_sees(database_url) == 0, f"{method}(conn=) committed the caller's transaction"
        caller.rollback()
    assert rows(conn) == []


@pytest.mark.parametrize("method", ["enqueue", "enqueue_many"])
def test_enqueue_on_a_non_autocommit_connection_commits_with_the_caller(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str, method: str
) -> None:
    with psycopg.connect(database_url) as caller:
        if method == "enqueue":
            client.enqueue("A", 1, conn=caller)
        else:
            client.enqueue_many([("A", [1])], conn=caller)
        assert other_sees(database_url) == 0
        caller.commit()
    assert [r["job_class"] for r in rows(conn)] == ["A"]


def test_enqueue_many_in_an_autocommit_callers_transaction_block(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    with (
        psycopg.connect(database_url, autocommit=True) as caller,
        pytest.raises(RuntimeError, match="abort"),
        caller.transaction(),
    ):
        client.enqueue_many([("A", [1])], conn=caller)
        raise RuntimeError("abort")
    assert rows(conn) == []


def test_ddl_and_rollback_on_pool_connections_do_not_break_enqueue(client: que.Client) -> None:
    """psycopg answers DROP/ALTER/ROLLBACK with DEALLOCATE ALL where it prepared statements
    itself; que's own prepared statements must survive that, or be prepared again."""
    client.migrate()
    client.enqueue("A")
    locked = client.lock_job()
    assert locked is not None
    with locked:
        locked.delete()
    client.migrate(0)
    client.migrate()
    for n in range(12):
        assert client.enqueue("A", n).args == [n]
    locked = client.lock_job()
    assert locked is not None
    with locked:
        locked.delete()


@pytest.mark.parametrize("datestyle", ["SQL, DMY", "German", "Postgres, MDY"])
@pytest.mark.parametrize("time_zone", ["UTC", "Asia/Kathmandu", "America/St_Johns"])
def test_enqueue_on_a_callers_session_with_other_settings(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str, datestyle: str, time_zone: str
) -> None:
    """The job is inserted once and returned as stored, whatever DateStyle and TimeZone say."""
    at = datetime(2031, 3, 4, 5, 6, 7, 890123, tzinfo=timezone(timedelta(hours=5, minutes=45)))
    with psycopg.connect(database_url, autocommit=True) as caller:
        caller.execute(f"SET DateStyle = '{datestyle}'")
        caller.execute(f"SET TimeZone = '{time_zone}'")
        job = client.enqueue("A", 1, run_at=at, conn=caller)
        [many] = client.enqueue_many([que.NewJob("B", [2], run_at=at)], conn=caller)
        now = client.enqueue("C", conn=caller)
    assert job.run_at == at and many.run_at == at
    stored = rows(conn)
    assert [r["run_at"] for r in stored[:2]] == [at, at]
    assert abs(stored[2]["run_at"] - now.run_at) == timedelta(0)
    assert len(stored) == 3


@pytest.mark.parametrize(
    "offset",
    [timedelta(hours=5, minutes=30, seconds=15), timedelta(hours=-3, minutes=-30, seconds=-1, microseconds=-7)],
    ids=["seconds", "microseconds"],
)
def test_run_at_offsets_with_seconds_are_stored_exactly_on_every_path(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str, offset: timedelta
) -> None:
    at = datetime(2031, 1, 1, 0, 0, 0, 1, tzinfo=timezone(offset))
    own = client.enqueue("A", run_at=at)
    with psycopg.connect(database_url, autocommit=True) as caller:
        theirs = client.enqueue("A", run_at=at, conn=caller)
    assert own.run_at == theirs.run_at == at
    assert [r["run_at"] for r in rows(conn)] == [at, at]


# -- a LATIN1 database ----------------------------------------------------------------------


@pytest.fixture
def latin1_url(database_url: str) -> Iterator[str]:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS que_latin1 WITH (FORCE)")
        admin.execute("CREATE DATABASE que_latin1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'")
    url = database_url.rsplit("/", 1)[0] + "/que_latin1"
    with psycopg.connect(url, autocommit=True) as conn:
        que.migrate(conn)
    yield url
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS que_latin1 WITH (FORCE)")


def stored_latin1(url: str) -> list[tuple[bytes, bytes]]:
    """job_class and args as the server holds them, in LATIN1 bytes."""
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT convert_to(job_class, 'LATIN1'), convert_to(args::text, 'LATIN1') FROM que_jobs ORDER BY job_id"
        ).fetchall()
    return [(bytes(a), bytes(b)) for a, b in found]


def test_a_latin1_database_stores_what_was_enqueued(latin1_url: str) -> None:
    with que.Client(latin1_url) as client:
        job = client.enqueue("Café", "naïve", queue="élan")
        assert (job.job_class, job.args, job.queue) == ("Café", ["naïve"], "élan")
        with psycopg.connect(latin1_url) as caller:
            theirs = client.enqueue("Café", "naïve", conn=caller)
            caller.commit()
        assert (theirs.job_class, theirs.args) == ("Café", ["naïve"])
        [many] = client.enqueue_many([("Café", ["naïve"])])
        assert many.job_class == "Café"
    assert stored_latin1(latin1_url) == [(b"Caf\xe9", b'["na\xefve"]')] * 3


def test_a_latin1_database_refuses_what_it_cannot_hold_before_writing(latin1_url: str) -> None:
    with que.Client(latin1_url) as client:
        with pytest.raises((ValueError, psycopg.DataError), match="LATIN1"):
            client.enqueue("Arrow", "→")
        with psycopg.connect(latin1_url) as caller:
            with pytest.raises((ValueError, psycopg.DataError), match="LATIN1"):
                client.enqueue("Arrow", "→", conn=caller)
            caller.rollback()
    assert stored_latin1(latin1_url) == []


def test_a_worker_reads_non_ascii_rows_of_a_latin1_database(latin1_url: str) -> None:
    with psycopg.connect(latin1_url, autocommit=True) as conn:
        conn.execute("INSERT INTO que_jobs (job_class, args, queue) VALUES ('Café', '[\"naïve\"]', 'élan')")
    seen: list[Any] = []
    with que.Client(latin1_url) as client:
        worker = que.Worker(client, {"Café": lambda word: seen.append(word)}, queue="élan")
        assert worker.work_one() is True
    assert seen == ["naïve"]
    assert stored_latin1(latin1_url) == []


def test_a_job_enqueued_now_is_due_now(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    job = client.enqueue("A")
    assert abs(job.run_at - datetime.now(UTC)) < timedelta(seconds=30)


@pytest.mark.parametrize("method", ["enqueue", "enqueue_many", "enqueue_many_copy_size"])
@pytest.mark.parametrize("autocommit", [True, False], ids=["autocommit", "transaction"])
def test_enqueue_inside_a_callers_pipeline_returns_the_jobs(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str, method: str, autocommit: bool
) -> None:
    """psycopg's pipeline mode holds results back until a sync: enqueue still returns the
    job it wrote, once, so a caller never retries an insert that happened."""
    with psycopg.connect(database_url, autocommit=autocommit) as caller:
        with caller.pipeline():
            if method == "enqueue":
                made = [client.enqueue("A", 1, conn=caller)]
            elif method == "enqueue_many":
                made = client.enqueue_many([("A", [1]), ("B", [2])], conn=caller)
            else:  # a batch big enough for COPY, which pipeline mode cannot run
                made = client.enqueue_many([("A", [n]) for n in range(1200)], conn=caller)
        if not autocommit:
            caller.commit()
    stored = rows(conn)
    assert [job.job_id for job in made] == [r["job_id"] for r in stored]
    assert [job.job_class for job in made] == [r["job_class"] for r in stored]


@pytest.mark.parametrize("method", ["enqueue", "enqueue_many"])
def test_async_enqueue_inside_a_callers_pipeline_returns_the_jobs(
    conn: psycopg.Connection[Any], database_url: str, method: str
) -> None:
    import asyncio

    from que.aio import AsyncClient

    async def main() -> list[que.Job]:
        async with (
            AsyncClient(database_url) as aclient,
            await psycopg.AsyncConnection.connect(database_url, autocommit=True) as caller,
            caller.pipeline(),
        ):
            if method == "enqueue":
                return [await aclient.enqueue("A", 1, conn=caller)]
            return await aclient.enqueue_many([("A", [1]), ("B", [2])], conn=caller)

    made = asyncio.run(main())
    assert [job.job_id for job in made] == [r["job_id"] for r in rows(conn)]
