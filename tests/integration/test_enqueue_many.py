"""enqueue_many on both of its paths: one INSERT for small batches, COPY from COPY_FROM
jobs on. Either way the rows stored are the Jobs returned, in order, all or none."""

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest

import que
from que.aio import AsyncClient
from que.dialects import QUE_0
from tests.conftest import rows

SIZES = [3, QUE_0.copy_from + 3]
AT = datetime(2031, 3, 4, 5, 6, 7, 891011, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))


def batch(size: int) -> list[que.NewJob]:
    """Every kind of field: defaults, queues, priorities, explicit run_at, awkward text."""
    jobs = []
    for n in range(size):
        if n % 3 == 0:
            jobs.append(que.NewJob("Plain", [n]))
        elif n % 3 == 1:
            jobs.append(que.NewJob("Mail", ["tab\there", "é✓", {"n": n, "z": None}], queue="mail", priority=-n % 50))
        else:
            jobs.append(que.NewJob("Later", ["line\nbreak", '"quoted" \\ back'], priority=7, run_at=AT))
    return jobs


def check_stored(conn: psycopg.Connection[Any], made: list[que.Job], sent: list[que.NewJob]) -> None:
    stored = rows(conn)
    assert len(stored) == len(sent) == len(made)
    assert [job.job_id for job in made] == [row["job_id"] for row in stored], "job_ids not in the order given"
    for job, row, new in zip(made, stored, sent, strict=True):
        assert (job.queue, job.priority, job.run_at, job.job_class, job.args_json) == (
            row["queue"],
            row["priority"],
            row["run_at"],
            row["job_class"],
            row["args_text"],
        )
        assert job.args == list(new.args) or job.args == new.args
        assert row["error_count"] == 0 and row["last_error"] is None
        if new.run_at is not None:
            assert row["run_at"] == new.run_at
    defaults = {row["run_at"] for row, new in zip(stored, sent, strict=True) if new.run_at is None}
    assert len(defaults) == 1, "jobs without run_at got different now() values"


@pytest.mark.parametrize("size", SIZES)
def test_the_rows_stored_are_the_jobs_returned(client: que.Client, conn: psycopg.Connection[Any], size: int) -> None:
    before = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    sent = batch(size)
    made = client.enqueue_many(sent)
    check_stored(conn, made, sent)
    assert before <= made[0].run_at <= datetime.now(UTC) + timedelta(seconds=1)


@pytest.mark.parametrize("size", SIZES)
def test_on_the_callers_connection_it_rolls_back_with_them(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str, size: int
) -> None:
    with psycopg.connect(database_url) as caller:
        client.enqueue_many(batch(size), conn=caller)
        assert caller.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        caller.rollback()
    assert rows(conn) == []
    with psycopg.connect(database_url) as caller:
        sent = batch(size)
        made = client.enqueue_many(sent, conn=caller)
        caller.commit()
    check_stored(conn, made, sent)


@pytest.mark.parametrize("size", SIZES)
def test_a_failing_batch_writes_nothing(client: que.Client, conn: psycopg.Connection[Any], size: int) -> None:
    """A row the table refuses (here a check constraint) fails the whole batch."""
    conn.execute("ALTER TABLE que_jobs ADD CONSTRAINT no_bad CHECK (job_class <> 'Bad')")
    try:
        jobs = batch(size)
        jobs[-1] = que.NewJob("Bad")
        with pytest.raises(psycopg.errors.CheckViolation):
            client.enqueue_many(jobs)
        assert rows(conn) == []
        client.enqueue("Plain")  # the pooled connection is usable again
        assert len(rows(conn)) == 1
    finally:
        conn.execute("ALTER TABLE que_jobs DROP CONSTRAINT no_bad")


@pytest.mark.parametrize("size", SIZES)
def test_notify_names_each_queue_once_after_commit(database_url: str, conn: psycopg.Connection[Any], size: int) -> None:
    with que.Client(database_url, notify=True) as notifying, psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN que_interop_jobs")
        notifying.enqueue_many(batch(size))
        heard = sorted(note.payload for note in listener.notifies(timeout=5, stop_after=2))
    assert heard == ["", "mail"]


@pytest.mark.parametrize("size", SIZES)
def test_async_client_matches(database_url: str, conn: psycopg.Connection[Any], size: int) -> None:
    sent = batch(size)

    async def main() -> list[que.Job]:
        async with AsyncClient(database_url) as aclient:
            return await aclient.enqueue_many(sent)

    check_stored(conn, asyncio.run(main()), sent)


@pytest.mark.parametrize("size", SIZES)
def test_async_on_the_callers_connection(database_url: str, conn: psycopg.Connection[Any], size: int) -> None:
    sent = batch(size)

    async def main() -> list[que.Job]:
        async with AsyncClient(database_url) as aclient, await psycopg.AsyncConnection.connect(database_url) as caller:
            made = await aclient.enqueue_many(sent, conn=caller)
            await caller.commit()
            return made

    check_stored(conn, asyncio.run(main()), sent)
