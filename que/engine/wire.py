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

from que.core.job import Job
from que.core.validate import Checked

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
    run_at_us = _I8.unpack(run_at)[0]
    job = Job(
        queue=queue.decode(codec),
        priority=_I2.unpack(priority)[0],
        run_at=timestamp(run_at_us),
        job_id=_I8.unpack(job_id)[0],
        job_class="" if job_class is None else job_class.decode(codec),
        args_json="[]" if args is None else args.decode(codec),
        error_count=0 if error_count is None else _I4.unpack(error_count)[0],
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
    ids = [_I8.unpack(value(row, 0) or b"")[0] for row in range(result.ntuples)]
    run_ats = [_I8.unpack(value(row, 1) or b"")[0] for row in range(result.ntuples)]
    return new_jobs(sent, ids, run_ats)


def reserved(result: pq.abc.PGresult) -> tuple[list[int], int]:
    """RESERVE_JOB_IDS' binary result: the job_ids in ascending order, and now()."""
    value = result.get_value
    ids = sorted(_I8.unpack(value(row, 0) or b"")[0] for row in range(result.ntuples))
    return ids, _I8.unpack(value(0, 1) or b"")[0]


def new_jobs(sent: Sequence[Checked], job_ids: Sequence[int], run_ats_us: Sequence[int]) -> list[Job]:
    """Jobs as stored: what was sent, with their job_ids and stored run_at (microseconds)."""
    made = []
    stamps: dict[int, datetime] = {}  # jobs enqueued without run_at share one now()
    for job, job_id, run_at_us in zip(sent, job_ids, run_ats_us, strict=True):
        stamp = stamps.get(run_at_us)
        if stamp is None:
            stamp = stamps[run_at_us] = timestamp(run_at_us)
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


# The parameters of one statement, in binary format (None for NULL).
Params = Sequence[bytes | None]

_ARRAY_HEADER = struct.Struct(">iiIii")
_LENGTH = struct.Struct(">i")


_NULL = _LENGTH.pack(-1)


def array(oid: int, elements: Sequence[bytes | None]) -> bytes:
    """A one-dimensional array of binary values (None for NULL), in PostgreSQL's binary format."""
    has_null = None in elements
    out = [_ARRAY_HEADER.pack(1, int(has_null), oid, len(elements), 1)]
    for element in elements:
        if element is None:
            out.append(_NULL)
        else:
            out.append(_LENGTH.pack(len(element)))
            out.append(element)
    return b"".join(out)


def key_arrays(keys: Sequence[Key]) -> tuple[bytes, bytes, bytes, bytes]:
    """The keys of several jobs as four arrays (queue, priority, run_at, job_id)."""
    return (
        array(TEXT, [k[0] for k in keys]),
        array(INT2, [k[1] for k in keys]),
        array(TIMESTAMPTZ, [k[2] for k in keys]),
        array(INT8, [k[3] for k in keys]),
    )


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
