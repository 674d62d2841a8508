"""PostgreSQL's binary format for the few types of `que_jobs`, and rows turned into Jobs.

que reads and writes job rows in the binary format because it does not depend on the
session: a timestamptz is microseconds since 2000-01-01 UTC whatever DateStyle or
TimeZone say, so run_at (which every job statement matches on) round-trips exactly, and
'infinity' or a BC date is just a number. Text is in the connection's client encoding.
"""

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from psycopg import pq

from que.job import Job

# Type OIDs of the parameters que sends.
TEXT: Final = 25
INT2: Final = 21
INT4: Final = 23
INT8: Final = 20
TIMESTAMPTZ: Final = 1184
BOOL: Final = 16

PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
INFINITY_US: Final = 2**63 - 1
MINUS_INFINITY_US: Final = -(2**63)

_I2 = struct.Struct(">h")
_I4 = struct.Struct(">i")
_I8 = struct.Struct(">q")
_MIN_US = (datetime.min.replace(tzinfo=UTC) - PG_EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime.max.replace(tzinfo=UTC) - PG_EPOCH) // timedelta(microseconds=1)


def int2(value: int) -> bytes:
    return _I2.pack(value)


def int4(value: int) -> bytes:
    return _I4.pack(value)


def int8(value: int) -> bytes:
    return _I8.pack(value)


def read_int(data: bytes) -> int:
    """An int2, int4 or int8 in binary format (the length tells which)."""
    size = len(data)
    if size == 8:
        return int(_I8.unpack(data)[0])
    if size == 4:
        return int(_I4.unpack(data)[0])
    return int(_I2.unpack(data)[0])


def timestamp_us(value: datetime) -> int:
    """An aware datetime as PostgreSQL's timestamptz: exact microseconds since 2000 (UTC)."""
    return (value - PG_EPOCH) // timedelta(microseconds=1)


def timestamp(us: int) -> datetime:
    """A timestamptz as a UTC datetime. Beyond Python's range ('infinity', BC dates, years
    past 9999) it is datetime.max or datetime.min; the exact value stays in Job.run_at_us."""
    if us > _MAX_US:
        return datetime.max.replace(tzinfo=UTC)
    if us < _MIN_US:
        return datetime.min.replace(tzinfo=UTC)
    return PG_EPOCH + timedelta(microseconds=us)


@dataclass(frozen=True)
class Row:
    """A result row's job columns, by name. `problem` says why a row cannot be a Job."""

    job: Job
    problem: str | None = None


_REQUIRED = ("job_class", "args", "error_count")


def job_row(result: pq.abc.PGresult, row: int, codec: str) -> Row:
    """Row `row` of a binary result holding que_jobs columns (lock_job's seven, or `*`).

    The key columns (queue, priority, run_at, job_id) are the primary key and never NULL.
    A NULL in another column the schema declares NOT NULL (a hand-altered table) gives a
    placeholder Job and the `problem`, so the worker can back the row off instead of dying.
    """
    columns = {(result.fname(i) or b"").decode(): i for i in range(result.nfields)}

    def raw(name: str) -> bytes | None:
        index = columns.get(name)
        return None if index is None else result.get_value(row, index)

    def required(name: str) -> bytes:
        value = raw(name)
        if value is None:
            raise ValueError(f"que_jobs.{name} is NULL in a result row")
        return value

    queue = required("queue").decode(codec)
    run_at_us = read_int(required("run_at"))
    missing = [name for name in _REQUIRED if name in columns and raw(name) is None]
    job_class, args, error_count = raw("job_class"), raw("args"), raw("error_count")
    last_error = raw("last_error")
    job = Job(
        queue=queue,
        priority=read_int(required("priority")),
        run_at=timestamp(run_at_us),
        job_id=read_int(required("job_id")),
        job_class="" if job_class is None else job_class.decode(codec),
        args_json="[]" if args is None else args.decode(codec),
        error_count=0 if error_count is None else read_int(error_count),
        last_error=None if last_error is None else last_error.decode(codec),
        run_at_us=run_at_us,
    )
    if missing:
        problem = (
            f"que_jobs row {job.job_id} has NULL in {', '.join(missing)}, which the Que schema declares NOT NULL; "
            "repair the row (or the table) and make it due again"
        )
        return Row(job, problem)
    return Row(job)


def jobs(result: pq.abc.PGresult, codec: str) -> list[Job]:
    return [job_row(result, row, codec).job for row in range(result.ntuples)]


def text(value: str, codec: str) -> bytes:
    return value.encode(codec)


Params = Sequence[bytes | None]


def key(job: Job, codec: str) -> tuple[bytes, bytes, bytes, bytes]:
    """The full primary key every job statement matches on: queue, priority, run_at, job_id."""
    return (job.queue.encode(codec), int2(job.priority), int8(job.run_at_us), int8(job.job_id))


def optional_timestamp(value: datetime | None) -> bytes | None:
    return None if value is None else int8(timestamp_us(value))


# PostgreSQL's server encodings and the Python codecs that write them; None where Python
# has none (or where the server stores bytes as given, SQL_ASCII). A text que writes must
# be representable in the database's encoding.
_SERVER_CODECS: Final = {
    "UTF8": "utf-8",
    "SQL_ASCII": None,
    "LATIN1": "iso8859-1",
    "LATIN2": "iso8859-2",
    "LATIN3": "iso8859-3",
    "LATIN4": "iso8859-4",
    "LATIN5": "iso8859-9",
    "LATIN6": "iso8859-10",
    "LATIN7": "iso8859-13",
    "LATIN8": "iso8859-14",
    "LATIN9": "iso8859-15",
    "LATIN10": "iso8859-16",
    "ISO_8859_5": "iso8859-5",
    "ISO_8859_6": "iso8859-6",
    "ISO_8859_7": "iso8859-7",
    "ISO_8859_8": "iso8859-8",
    "KOI8R": "koi8-r",
    "KOI8U": "koi8-u",
    "WIN866": "cp866",
    "WIN874": "cp874",
    "WIN1250": "cp1250",
    "WIN1251": "cp1251",
    "WIN1252": "cp1252",
    "WIN1253": "cp1253",
    "WIN1254": "cp1254",
    "WIN1255": "cp1255",
    "WIN1256": "cp1256",
    "WIN1257": "cp1257",
    "WIN1258": "cp1258",
    "EUC_CN": "gb2312",
    "EUC_JP": "euc_jp",
    "EUC_JIS_2004": "euc_jis_2004",
    "EUC_KR": "euc_kr",
}


def server_codec(encoding: bytes | None) -> str | None:
    """The Python codec for a database encoding name (`server_encoding`), if there is one."""
    return _SERVER_CODECS.get((encoding or b"UTF8").decode("ascii", "replace").upper())


def check_representable(fields: dict[str, str], codec: str | None, encoding: str) -> None:
    """Refuse text the database cannot hold, naming the field, before anything is written."""
    if codec is None or codec == "utf-8":
        return
    for name, value in fields.items():
        try:
            value.encode(codec)
        except UnicodeEncodeError as failure:
            bad = value[failure.start : failure.end]
            raise ValueError(
                f"{name} {value[:60]!r} holds {bad!r}, which this database's encoding {encoding} cannot store"
            ) from None
