"""Que 1.x/2.x rows (sql.JOB_COLUMNS, in PostgreSQL's binary format) turned into Jobs."""

from psycopg import pq

from que.core.job import Job
from que.engine import wire

# The columns of sql.job_columns(), in order.
COLUMNS = (
    "id",
    "queue",
    "priority",
    "run_at",
    "job_class",
    "args",
    "kwargs",
    "data",
    "error_count",
    "last_error_message",
    "last_error_backtrace",
    "finished_at",
    "expired_at",
    "job_schema_version",
)


def _text(raw: bytes | None, codec: str) -> str | None:
    return None if raw is None else raw.decode(codec)


def _int(raw: bytes | None) -> int | None:
    return None if raw is None else wire.read_int(raw)


def job(result: pq.abc.PGresult, row: int, codec: str, first: int = 0) -> Job | None:
    """Row `row` of a binary result whose columns from `first` on are sql.job_columns();
    None for a row of NULLs (a statement that locked nothing)."""
    value = result.get_value
    raw_id = value(row, first)
    if raw_id is None:
        return None
    run_at_us = wire.read_int(value(row, first + 3) or b"")
    finished = _int(value(row, first + 11))
    expired = _int(value(row, first + 12))
    return Job(
        queue=_text(value(row, first + 1), codec) or "",
        priority=wire.read_int(value(row, first + 2) or b""),
        run_at=wire.timestamp(run_at_us),
        job_id=wire.read_int(raw_id),
        job_class=_text(value(row, first + 4), codec) or "",
        args_json=_text(value(row, first + 5), codec) or "[]",
        error_count=wire.read_int(value(row, first + 8) or b""),
        last_error=_text(value(row, first + 9), codec),
        run_at_us=run_at_us,
        kwargs_json=_text(value(row, first + 6), codec) or "{}",
        data_json=_text(value(row, first + 7), codec) or "{}",
        last_error_backtrace=_text(value(row, first + 10), codec),
        finished_at=None if finished is None else wire.timestamp(finished),
        expired_at=None if expired is None else wire.timestamp(expired),
        job_schema_version=_int(value(row, first + 13)),
    )


def jobs(result: pq.abc.PGresult, codec: str) -> list[Job]:
    found = (job(result, row, codec) for row in range(result.ntuples))
    return [made for made in found if made is not None]
