"""Que 0.x rows in PostgreSQL's binary format turned into Jobs, and the keys (queue, priority,
run_at, job_id) every job statement matches on, kept exactly as the server sent them."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import pq

from que.core.job import Job
from que.dialects.que0.validate import Checked
from que.engine import wire as _wire

Key = tuple[bytes, bytes, bytes, bytes]


@dataclass(frozen=True)
class Row:
    """A result row's job, its key in binary format, and why it cannot be a Job, if so."""

    job: Job
    key: Key
    problem: str | None = None


_REQUIRED = ("job_class", "args", "error_count")

# Where each que_jobs column is in a result: name -> index.
Layout = dict[str, int]


def layout(result: pq.abc.PGresult) -> Layout:
    return {(result.fname(i) or b"").decode(): i for i in range(result.nfields)}


def job_row(result: pq.abc.PGresult, row: int, codec: str, columns: Layout | None = None) -> Row:
    """Row `row` of a binary result holding que_jobs columns (lock_job's seven, or `*`).

    The key columns (queue, priority, run_at, job_id) are the primary key and never NULL;
    `Row.key` keeps them as the server sent them, ready to be sent back. A NULL in another
    column the schema declares NOT NULL (a hand-altered table) gives a placeholder Job and
    the `problem`, so the worker can back the row off instead of dying.
    """
    if columns is None:
        columns = layout(result)
    value = result.get_value
    queue = value(row, columns["queue"]) or b""
    priority = value(row, columns["priority"]) or b""
    run_at = value(row, columns["run_at"]) or b""
    job_id = value(row, columns["job_id"]) or b""
    job_class = value(row, columns["job_class"])
    args = value(row, columns["args"])
    error_count = value(row, columns["error_count"])
    last = columns.get("last_error")
    last_error = None if last is None else value(row, last)
    run_at_us = _wire.I8.unpack(run_at)[0]
    job = Job(
        queue=queue.decode(codec),
        priority=_wire.I2.unpack(priority)[0],
        run_at=_wire.timestamp(run_at_us),
        job_id=_wire.I8.unpack(job_id)[0],
        job_class="" if job_class is None else job_class.decode(codec),
        args_json="[]" if args is None else args.decode(codec),
        error_count=0 if error_count is None else _wire.I4.unpack(error_count)[0],
        last_error=None if last_error is None else last_error.decode(codec),
        run_at_us=run_at_us,
    )
    key = (queue, priority, run_at, job_id)
    if job_class is None or args is None or error_count is None:
        missing = [name for name, raw in zip(_REQUIRED, (job_class, args, error_count), strict=True) if raw is None]
        problem = (
            f"que_jobs row {job.job_id} has NULL in {', '.join(missing)}, which the Que schema declares NOT NULL; "
            "repair the row (or the table) and make it due again"
        )
        return Row(job, key, problem)
    return Row(job, key)


def inserted(result: pq.abc.PGresult, sent: Sequence[Checked]) -> list[Job]:
    """The Jobs of a batch insert: what was sent, with the job_id and run_at the server
    gave each (INSERT_JOBS returns just those two, in the order the jobs were sent)."""
    if result.ntuples != len(sent):
        raise AssertionError(f"inserted {len(sent)} jobs but the server returned {result.ntuples} rows")
    value = result.get_value
    ids = [_wire.I8.unpack(value(row, 0) or b"")[0] for row in range(result.ntuples)]
    run_ats = [_wire.I8.unpack(value(row, 1) or b"")[0] for row in range(result.ntuples)]
    return new_jobs(sent, ids, run_ats)


def reserved(result: pq.abc.PGresult) -> tuple[list[int], int]:
    """RESERVE_JOB_IDS' binary result: the job_ids in ascending order, and now()."""
    value = result.get_value
    ids = sorted(_wire.I8.unpack(value(row, 0) or b"")[0] for row in range(result.ntuples))
    return ids, _wire.I8.unpack(value(0, 1) or b"")[0]


def new_jobs(sent: Sequence[Checked], job_ids: Sequence[int], run_ats_us: Sequence[int]) -> list[Job]:
    """Jobs as stored: what was sent, with their job_ids and stored run_at (microseconds)."""
    made = []
    stamps: dict[int, datetime] = {}  # jobs enqueued without run_at share one now()
    for job, job_id, run_at_us in zip(sent, job_ids, run_ats_us, strict=True):
        stamp = stamps.get(run_at_us)
        if stamp is None:
            stamp = stamps[run_at_us] = _wire.timestamp(run_at_us)
        made.append(
            Job(
                queue=job.queue,
                priority=job.priority,
                run_at=stamp,
                job_id=job_id,
                job_class=job.job_class,
                args_json=job.args,
                error_count=0,
                run_at_us=run_at_us,
            )
        )
    return made


def jobs(result: pq.abc.PGresult, codec: str) -> list[Job]:
    columns = layout(result)
    return [job_row(result, row, codec, columns).job for row in range(result.ntuples)]


def key_arrays(keys: Sequence[tuple[bytes | None, ...]]) -> tuple[bytes, bytes, bytes, bytes]:
    """The keys of several jobs as four arrays (queue, priority, run_at, job_id)."""
    return (
        _wire.array(_wire.TEXT, [k[0] for k in keys]),
        _wire.array(_wire.INT2, [k[1] for k in keys]),
        _wire.array(_wire.TIMESTAMPTZ, [k[2] for k in keys]),
        _wire.array(_wire.INT8, [k[3] for k in keys]),
    )
