"""Inserting Que 2 dialect jobs on a psycopg connection: the client's own, or the caller's
inside their transaction (que.dialects.que0.callers resolves it). Ruby Que 2.x's insert, one job or a
batch; the 0.14 dialect's inserts go through que.dialects.que0.protocol."""

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from que.core import encoding
from que.core.job import Job
from que.dialects.que2 import sql as sql2
from que.dialects.que2.validate import Checked2
from que.engine import wire as _wire


def job_of(row: dict[str, Any]) -> Job:
    """A Job from a row read with sql2.JOB_COLUMNS."""
    return Job(
        queue=row["queue"],
        priority=row["priority"],
        run_at=row["run_at"],
        job_id=row["id"],
        job_class=row["job_class"],
        args_json=row["args"],
        error_count=row["error_count"],
        last_error=row["last_error_message"],
        run_at_us=_wire.timestamp_us(row["run_at"]),
        kwargs_json=row["kwargs"],
        data_json=row["data"],
        last_error_backtrace=row["last_error_backtrace"],
        finished_at=row["finished_at"],
        expired_at=row["expired_at"],
        job_schema_version=row["job_schema_version"],
    )


def _fields(job: Checked2) -> dict[str, Any]:
    return {
        "queue": job.queue,
        "priority": job.priority,
        "run_at": job.run_at,
        "job_class": job.job_class,
        "args": job.args,
        "kwargs": job.kwargs,
        "data": job.data,
    }


def insert_one(conn: psycopg.Connection[Any], job: Checked2) -> Job:
    """One job; the table's trigger wakes a listening locker, as for Ruby's enqueue."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql2.INSERT_JOB, _fields(job))
        row = cur.fetchone()
    assert row is not None
    return job_of(row)


def insert_many(conn: psycopg.Connection[Any], jobs: Sequence[Checked2], notify: bool) -> list[Job]:
    """Every job in one statement, all or none, in the given order. Like Ruby's bulk enqueue,
    the transaction sets que.skip_notify unless `notify`, so no locker is woken per job."""
    batch = "[" + ",".join(_batch_item(job) for job in jobs) + "]"
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if not notify:
            cur.execute(sql2.SKIP_NOTIFY)
        cur.execute(sql2.INSERT_JOBS, {"jobs": batch})
        rows = cur.fetchall()
    return [job_of(row) for row in rows]


def _batch_item(job: Checked2) -> str:
    # args, kwargs and data are JSON text already: embedded as they are, not as strings.
    head = encoding.dumps(
        {
            "queue": job.queue,
            "priority": job.priority,
            "run_at": None if job.run_at is None else job.run_at.isoformat(),
            "job_class": job.job_class,
        },
        "job",
    )
    return f'{head[:-1]},"args":{job.args},"kwargs":{job.kwargs},"data":{job.data}}}'


async def insert_one_async(conn: psycopg.AsyncConnection[Any], job: Checked2) -> Job:
    """insert_one on an asyncio connection."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql2.INSERT_JOB, _fields(job))
        row = await cur.fetchone()
    assert row is not None
    return job_of(row)


async def insert_many_async(conn: psycopg.AsyncConnection[Any], jobs: Sequence[Checked2], notify: bool) -> list[Job]:
    """insert_many on an asyncio connection."""
    batch = "[" + ",".join(_batch_item(job) for job in jobs) + "]"
    async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        if not notify:
            await cur.execute(sql2.SKIP_NOTIFY)
        await cur.execute(sql2.INSERT_JOBS, {"jobs": batch})
        rows = await cur.fetchall()
    return [job_of(row) for row in rows]
