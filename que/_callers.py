"""Enqueueing on a connection the caller owns, inside the caller's transaction.

The caller's connection is theirs: que goes through their driver (psycopg's cursor), so
their transaction is joined exactly as their own statements join it. On a connection not
in autocommit, psycopg begins the transaction with que's insert as with any statement,
and the caller commits or rolls back; que never commits, begins or ends a transaction
itself, and never prepares statements there (psycopg manages that connection's prepared
statements). Results are read in binary through que._wire, whatever the session's
DateStyle, TimeZone or client encoding.
"""

from typing import Any

import psycopg

from que import _wire, sql
from que._validate import Checked
from que.job import Job

Caller = psycopg.Connection[Any] | psycopg.Transaction


def connection_of(conn: object) -> psycopg.Connection[Any]:
    if isinstance(conn, psycopg.Transaction):
        return conn.connection
    if isinstance(conn, psycopg.Connection):
        return conn
    raise TypeError(f"conn must be a psycopg Connection or Transaction, got {conn!r}")


def _check(conn: psycopg.Connection[Any], jobs: list[Checked]) -> str:
    codec = conn.info.encoding
    encoding = conn.info.parameter_status("client_encoding") or codec
    for job in jobs:
        _wire.check_representable(job.texts(), codec, encoding)
    return codec


def insert(conn: psycopg.Connection[Any], job: Checked, notify: bool) -> Job:
    codec = _check(conn, [job])
    with conn.cursor() as cur:
        cur.execute(sql.INSERT_JOB_NOTIFY if notify else sql.INSERT_JOB, job.params(), binary=True, prepare=False)
        assert cur.pgresult is not None
        return _wire.job_row(cur.pgresult, 0, codec).job


def insert_many(conn: psycopg.Connection[Any], jobs: list[Checked], notify: bool) -> list[Job]:
    """One statement for the whole batch (and its notifications): it commits with the
    caller's transaction, or on its own on an autocommit connection."""
    codec = _check(conn, jobs)
    params = {
        "queues": [j.queue for j in jobs],
        "priorities": [j.priority for j in jobs],
        "run_ats": [j.run_at for j in jobs],
        "job_classes": [j.job_class for j in jobs],
        "args": [j.args for j in jobs],
    }
    with conn.cursor() as cur:
        cur.execute(sql.INSERT_JOBS_NOTIFY if notify else sql.INSERT_JOBS, params, binary=True, prepare=False)
        assert cur.pgresult is not None
        return _wire.jobs(cur.pgresult, codec)
