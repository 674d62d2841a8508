"""Que 0.x's inserts on a connection que owns: insert_job for one job (Ruby Que's own
statement, so a Ruby or Go reader finds the same row) and the batch insert of
enqueue_many, both prepared and in binary format on que.engine.session's I/O, driven like
que.dialects.que0.protocol's generators by que.drivers.waiting."""

from collections.abc import Sequence
from typing import Final

from que.core.job import Job
from que.dialects.que0 import rows, sql
from que.dialects.que0.validate import Checked
from que.engine import wire as _wire
from que.engine.session import PQGen, Session, Statement, execute, statement
from que.engine.wire import INT2, TEXT, TIMESTAMPTZ, Params

_INSERT = [("queue", TEXT), ("priority", INT2), ("run_at", TIMESTAMPTZ), ("job_class", TEXT), ("args", TEXT)]
INSERT_JOB: Final = statement("que_insert_job", sql.INSERT_JOB, _INSERT)
INSERT_JOB_NOTIFY: Final = statement("que_interop_insert_job_notify", sql.INSERT_JOB_NOTIFY, _INSERT)
_INSERT_MANY = [("queues", 1009), ("priorities", 1005), ("run_ats", 1185), ("job_classes", 1009), ("args", 1009)]
INSERT_JOBS: Final = statement("que_interop_insert_jobs", sql.INSERT_JOBS, _INSERT_MANY)
INSERT_JOBS_NOTIFY: Final = statement("que_interop_insert_jobs_notify", sql.INSERT_JOBS_NOTIFY, _INSERT_MANY)


def catalog() -> list[Statement]:
    """The inserts as they are now (a mutant replaces one), prepared with the protocol's."""
    return [INSERT_JOB, INSERT_JOB_NOTIFY, INSERT_JOBS, INSERT_JOBS_NOTIFY]


def insert_many(session: Session, jobs: Sequence[Checked], notify: bool) -> PQGen[list[Job]]:
    """The batch insert, its five arrays in binary format (text in UTF-8, which que's own
    sessions use as client encoding)."""
    values = (
        _wire.array(TEXT, [job.queue.encode() for job in jobs]),
        _wire.array(INT2, [_wire.int2(job.priority) for job in jobs]),
        _wire.array(
            TIMESTAMPTZ, [None if j.run_at is None else _wire.int8(_wire.timestamp_us(j.run_at)) for j in jobs]
        ),
        _wire.array(TEXT, [job.job_class.encode() for job in jobs]),
        _wire.array(TEXT, [job.args.encode() for job in jobs]),
    )
    result = yield from execute(session, (INSERT_JOBS_NOTIFY if notify else INSERT_JOBS, values))
    return rows.inserted(result, jobs)


def insert(session: Session, params: Params, notify: bool) -> PQGen[Job]:
    """insert_job; `values` are its five parameters in binary format (see values())."""
    result = yield from execute(session, (INSERT_JOB_NOTIFY if notify else INSERT_JOB, params))
    return rows.job_row(result, 0, session.codec).job


def values(job: Checked) -> Params:
    """insert_job's five parameters for a checked job, in binary format."""
    return (
        job.queue.encode(),
        _wire.int2(job.priority),
        None if job.run_at is None else _wire.int8(_wire.timestamp_us(job.run_at)),
        job.job_class.encode(),
        job.args.encode(),
    )
