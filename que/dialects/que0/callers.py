"""Enqueueing on a connection the caller owns, inside the caller's transaction.

`conn=` takes a psycopg connection or transaction, a Django database connection
(`django.db.connection`, on the psycopg 3 backend) or a SQLAlchemy Session or Connection
(the psycopg dialect); the async API takes psycopg's async connection or transaction, or
SQLAlchemy's AsyncSession or AsyncConnection. Each is resolved to the psycopg connection
underneath, so users never dig out the DBAPI connection themselves.

The caller's connection is theirs: que goes through their driver (a psycopg cursor), so
their transaction is joined exactly as their own statements join it. On a connection not
in autocommit, psycopg begins the transaction with que's insert as with any statement (a
Django atomic block or a SQLAlchemy session has usually begun it already), and the caller
commits or rolls back; que never commits, begins or ends a transaction itself, and never
prepares statements there (psycopg manages that connection's prepared statements). Results
are read in binary through que.engine.wire, whatever the session's DateStyle, TimeZone or client
encoding.
"""

from collections.abc import Callable, Iterator
from typing import Any, Final

import psycopg
from psycopg import pq

from que.core.job import Job
from que.core.validate import Checked
from que.dialects.que0 import sql
from que.engine import wire as _wire

# A psycopg connection or transaction, or a Django or SQLAlchemy object (see above).
Caller = Any
# A statement, its parameters, and how to turn its binary result into the inserted Jobs.
Statement = tuple[str, dict[str, Any], Callable[[pq.abc.PGresult], list[Job]]]


def _framework(conn: Any) -> Any:
    """The DBAPI connection under a Django or SQLAlchemy object, or None."""
    module = type(conn).__module__
    if module.startswith("django."):
        conn.ensure_connection()  # Django connects lazily
        return conn.connection
    if module.startswith("sqlalchemy"):
        # A Session's connection() joins (or begins) the session's transaction.
        sa_connection = conn.connection() if callable(conn.connection) else conn
        return sa_connection.connection.driver_connection
    return None


def connection_of(conn: object) -> psycopg.Connection[Any]:
    if isinstance(conn, psycopg.Transaction):
        return conn.connection
    if isinstance(conn, psycopg.Connection):
        return conn
    raw = _framework(conn)
    if isinstance(raw, psycopg.Connection):
        return raw
    raise TypeError(
        "conn must be a psycopg Connection or Transaction, a Django database connection or a SQLAlchemy "
        f"Session or Connection on psycopg 3, got {conn!r}"
    )


async def async_connection_of(conn: object) -> psycopg.AsyncConnection[Any]:
    if isinstance(conn, psycopg.AsyncTransaction):
        return conn.connection
    if isinstance(conn, psycopg.AsyncConnection):
        return conn
    if type(conn).__module__.startswith("sqlalchemy"):
        sa_connection: Any = await conn.connection() if callable(getattr(conn, "connection", None)) else conn  # type: ignore[attr-defined]
        raw = (await sa_connection.get_raw_connection()).driver_connection
        if isinstance(raw, psycopg.AsyncConnection):
            return raw
    raise TypeError(
        "conn must be a psycopg AsyncConnection or AsyncTransaction, or a SQLAlchemy AsyncSession or "
        f"AsyncConnection on psycopg 3, got {conn!r}"
    )


def _codec(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], jobs: list[Checked]) -> str:
    """The connection's codec, after checking every text can be written in it."""
    codec = conn.info.encoding
    encoding = conn.info.parameter_status("client_encoding") or codec
    if codec != "utf-8":  # UTF-8 holds every str que accepts
        for job in jobs:
            _wire.check_representable(job.texts(), codec, encoding)
    return codec


def insert_one(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], job: Checked, notify: bool) -> Statement:
    codec = _codec(conn, [job])
    return sql.INSERT_JOB_NOTIFY if notify else sql.INSERT_JOB, job.params(), lambda result: _wire.jobs(result, codec)


def insert_many(
    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any], jobs: list[Checked], notify: bool
) -> Statement:
    """One statement for the whole batch (and its notifications): it commits with the
    caller's transaction, or on its own on an autocommit connection."""
    params = {
        "queues": [j.queue for j in jobs],
        "priorities": [j.priority for j in jobs],
        "run_ats": [j.run_at for j in jobs],
        "job_classes": [j.job_class for j in jobs],
        "args": [j.args for j in jobs],
    }
    _codec(conn, jobs)
    return sql.INSERT_JOBS_NOTIFY if notify else sql.INSERT_JOBS, params, lambda result: _wire.inserted(result, jobs)


# Batches of at least this many jobs are written with COPY (sql.COPY_JOBS): several
# times faster on the server than one INSERT, for two more round trips.
COPY_FROM: Final = 1000

# COPY's binary columns: que_jobs' types, with args sent as text, which is json's binary form.
_COPY_TYPES: Final = ["text", "int2", "timestamptz", "int8", "text", "text"]


def _copy_rows(jobs: list[Checked], made: list[Job]) -> Iterator[tuple[Any, ...]]:
    for job, stored in zip(jobs, made, strict=True):
        yield stored.queue, stored.priority, job.run_at or stored.run_at, stored.job_id, stored.job_class, job.args


def _reserved_jobs(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any], jobs: list[Checked]) -> list[Job]:
    assert cur.pgresult is not None
    ids, now_us = _wire.reserved(cur.pgresult)
    run_ats = [now_us if job.run_at is None else _wire.timestamp_us(job.run_at) for job in jobs]
    return _wire.new_jobs(jobs, ids, run_ats)


def copy_many(conn: psycopg.Connection[Any], jobs: list[Checked], notify: bool) -> list[Job]:
    """A big batch: job_ids drawn, rows written with COPY, queues notified. COPY is one
    statement, so a failure writes nothing; on a connection in a transaction all three
    commit or roll back with it."""
    _codec(conn, jobs)
    with psycopg.Cursor(conn) as cur:
        cur.execute(sql.RESERVE_JOB_IDS, {"count": len(jobs)}, binary=True, prepare=False)
        made = _reserved_jobs(cur, jobs)
        with cur.copy(sql.COPY_JOBS) as copy:
            copy.set_types(_COPY_TYPES)
            for row in _copy_rows(jobs, made):
                copy.write_row(row)
        if notify:
            cur.execute(sql.NOTIFY_QUEUES, {"queues": sorted({job.queue for job in jobs})}, prepare=False)
    return made


async def copy_many_async(conn: psycopg.AsyncConnection[Any], jobs: list[Checked], notify: bool) -> list[Job]:
    """copy_many on an async connection."""
    _codec(conn, jobs)
    async with psycopg.AsyncCursor(conn) as cur:
        await cur.execute(sql.RESERVE_JOB_IDS, {"count": len(jobs)}, binary=True, prepare=False)
        made = _reserved_jobs(cur, jobs)
        async with cur.copy(sql.COPY_JOBS) as copy:
            copy.set_types(_COPY_TYPES)
            for row in _copy_rows(jobs, made):
                await copy.write_row(row)
        if notify:
            await cur.execute(sql.NOTIFY_QUEUES, {"queues": sorted({job.queue for job in jobs})}, prepare=False)
    return made


def in_pipeline(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether the caller runs the connection in psycopg's pipeline mode (`conn.pipeline()`),
    where COPY cannot run: big batches are then inserted with INSERT instead."""
    return conn.pgconn.pipeline_status != pq.PipelineStatus.OFF


def _result(cur: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> pq.abc.PGresult:
    if cur.pgresult is None:
        raise psycopg.InterfaceError("the INSERT ... RETURNING of que's enqueue gave no result")
    return cur.pgresult


def run(conn: psycopg.Connection[Any], statement: Statement) -> list[Job]:
    query, params, read = statement
    # A plain server-side-binding cursor, whatever cursor_factory the caller configured
    # (Django's is a client-side-binding one).
    with psycopg.Cursor(conn) as cur:
        cur.execute(query, params, binary=True, prepare=False)
        # In the caller's pipeline the result waits until asked for; scroll(0) asks for it
        # (and moves nothing), so the jobs written are returned, never an error after a write.
        cur.scroll(0)
        return read(_result(cur))


async def run_async(conn: psycopg.AsyncConnection[Any], statement: Statement) -> list[Job]:
    query, params, read = statement
    async with psycopg.AsyncCursor(conn) as cur:
        await cur.execute(query, params, binary=True, prepare=False)
        await cur.scroll(0)
        return read(_result(cur))
