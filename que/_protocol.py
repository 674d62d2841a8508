"""The one engine of the Que 0.x protocol: its statements, in its order, on one session.

Everything that locks, checks, finishes or releases a job, and every single insert on a
connection que owns, goes through this module. Its functions are generators that never
block: they talk to libpq (psycopg.pq) and `yield` what they wait for (READ or WRITE on the
socket). que._waiting drives them with select() for threads and with the event loop for
asyncio, so the sync and the async API run the same protocol code, as psycopg itself does.

The order is the protocol's: lock_job -> check_job -> (the handler) -> destroy_job or
set_error -> pg_advisory_unlock, all on one session. Only the round trips are fewer:

    destroy_job(prev) | SYNC | unlock(prev), lock_job | SYNC     one round trip
    check_job                                                    a second

The SYNC after the delete commits it before the unlock runs: no other worker can lock a
job whose delete is not yet committed (unlocking in the same transaction as the delete
lets the job run twice). A failure is recorded (and, if need be, rescheduled without
counting) while the lock is still held, and only then unlocked.

Parameters and results are in PostgreSQL's binary format (que._wire), so nothing depends
on the session's DateStyle or TimeZone; que._session does the I/O.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import psycopg
from psycopg import pq

from que import _wire, sql
from que._session import OK, Call, PQGen, Session, error, execute, pipeline, statement
from que._validate import Checked
from que._wire import BOOL, INT2, INT8, TEXT, TIMESTAMPTZ, Params
from que.errors import TransactionPoolingError
from que.job import Job
from que.retry import retry_delay

log = logging.getLogger("que")

_DATA_EXCEPTION: Final = "22"  # the row's own data makes the statement fail (e.g. integer overflow)

_KEY = (("queue", TEXT), ("priority", INT2), ("run_at", TIMESTAMPTZ), ("job_id", INT8))
LOCK_JOB: Final = statement("que_lock_job", sql.LOCK_JOB, [("queue", TEXT)])
LOCK_JOB_NOTING: Final = statement("que_interop_lock_job", sql.LOCK_JOB_NOTING, [("unlock", INT8), ("queue", TEXT)])
CHECK_NOTED_JOB: Final = statement("que_interop_check_job", sql.CHECK_NOTED_JOB, [])
CHECK_JOB: Final = statement("que_check_job", sql.CHECK_JOB, _KEY)
DESTROY_JOB: Final = statement("que_destroy_job", sql.DESTROY_JOB, _KEY)
SET_ERROR: Final = statement("que_set_error", sql.SET_ERROR, [("delay", INT8), ("message", TEXT), *_KEY])
SET_ERROR_DEAD: Final = statement("que_interop_set_error_dead", sql.SET_ERROR_DEAD, [("message", TEXT), *_KEY])
SET_ERROR_UNCOUNTED: Final = statement(
    "que_interop_set_error_uncounted",
    sql.SET_ERROR_UNCOUNTED,
    [("dead", BOOL), ("delay", INT8), ("message", TEXT), *_KEY],
)
UNLOCK_JOB: Final = statement("que_unlock_job", sql.UNLOCK_JOB, [("job_id", INT8)])
_INSERT = [("queue", TEXT), ("priority", INT2), ("run_at", TIMESTAMPTZ), ("job_class", TEXT), ("args", TEXT)]
INSERT_JOB: Final = statement("que_insert_job", sql.INSERT_JOB, _INSERT)
INSERT_JOB_NOTIFY: Final = statement("que_interop_insert_job_notify", sql.INSERT_JOB_NOTIFY, _INSERT)
_INSERT_MANY = [("queues", 1009), ("priorities", 1005), ("run_ats", 1185), ("job_classes", 1009), ("args", 1009)]
INSERT_JOBS: Final = statement("que_interop_insert_jobs", sql.INSERT_JOBS, _INSERT_MANY)
INSERT_JOBS_NOTIFY: Final = statement("que_interop_insert_jobs_notify", sql.INSERT_JOBS_NOTIFY, _INSERT_MANY)
_ARRAYS = [("queues", 1009), ("priorities", 1005), ("run_ats", 1185), ("job_ids", 1016)]
LOCK_JOBS: Final = statement("que_interop_lock_jobs", sql.LOCK_JOBS, [("unlock", 1016), ("queue", TEXT), ("count", 23)])
CHECK_JOBS: Final = statement("que_interop_check_jobs", sql.CHECK_JOBS, _ARRAYS)
DESTROY_JOBS: Final = statement("que_interop_destroy_jobs", sql.DESTROY_JOBS, _ARRAYS)
UNLOCK_JOBS: Final = statement("que_interop_unlock_jobs", sql.UNLOCK_JOBS, [("job_ids", 1016)])
BACKEND_PID: Final = statement("", sql.BACKEND_PID, [])
SESSION_SETUP: Final = statement("", sql.SESSION_SETUP, [])
LISTEN: Final = statement("", sql.LISTEN, [])


# -- the protocol -----------------------------------------------------------------------


@dataclass(frozen=True)
class Locked:
    """A job this session holds, with its full key as the server wrote it."""

    job: Job
    key: tuple[bytes, bytes, bytes, bytes]


@dataclass(frozen=True)
class Finish:
    """How a locked job ends: deleted (no message), or failed with `message`: retried after
    `delay` seconds, or set aside for good (`dead`) when its retries ran out."""

    locked: Locked
    message: str | None = None
    delay: int = 0
    dead: bool = False

    @classmethod
    def failure(cls, locked: Locked, message: str, max_retries: int | None = None) -> "Finish":
        """Ruby's rule: the count after this failure is error_count + 1, the delay
        count**4 + 3 seconds; past `max_retries` retries the job is set aside instead."""
        count = locked.job.error_count + 1
        dead = max_retries is not None and count > max_retries
        return cls(locked, message, retry_delay(count), dead)


def set_up(session: Session) -> PQGen[None]:
    """Set up a que-owned session once (ISO dates), and refuse a connection that goes
    through a pooler, where session locks cannot work.

    The backend pid a server announces at connect and `pg_backend_pid()` are the same on a
    direct connection; a pooler (pgbouncer and the like) announces its own. Behind a
    transaction pooler each transaction may run in another server session, so a job lock
    taken by one statement is not held by the next and jobs run twice.
    """
    if session.direct:
        return
    yield from execute(session, (SESSION_SETUP, ()))
    result = yield from execute(session, (BACKEND_PID, ()))
    value = result.get_value(0, 0)
    server_pid = _wire.read_int(value) if value is not None else -1
    if server_pid != session.pgconn.backend_pid:
        raise TransactionPoolingError(
            f"this connection goes through a connection pooler (it announced backend pid "
            f"{session.pgconn.backend_pid}, but statements run in backend {server_pid}): Que's job "
            "locks are session-level advisory locks, which a transaction-pooling proxy cannot "
            "keep. Connect workers (and lock_job) directly to PostgreSQL; enqueueing through "
            "the pooler is fine."
        )
    session.direct = True


def listen(session: Session) -> PQGen[None]:
    yield from execute(session, (LISTEN, ()))


def notified(session: Session, queue: str) -> bool:
    """Read what arrived on the socket; True if a notification names `queue`."""
    session.pgconn.consume_input()
    found = False
    while (note := session.pgconn.notifies()) is not None:
        found = found or note.extra.decode(session.codec, "replace") == queue
    return found


def lock(session: Session, queue: str, after: Locked | None = None) -> PQGen[Locked | None]:
    """Lock the next due job of `queue` and check it is still there; None when none is due.

    One round trip: `delete(after) | SYNC | unlock(after) + lock_job, check_job | SYNC`.
    `after` is a worked job: its delete commits before its unlock, which runs in the
    statement that locks the next job. The check is the next statement, with a new snapshot
    taken after the lock. A row that cannot be read (a NULL the schema forbids) is backed off and
    logged, and the walk goes on; a job lost to a race is released and the walk goes on.
    """
    queue_param = session.text(queue)
    unlock = None if after is None else after.key[3]
    segments: list[list[Call]] = [[(LOCK_JOB_NOTING, (unlock, queue_param)), (CHECK_NOTED_JOB, ())]]
    if after is not None:
        segments.insert(0, [(DESTROY_JOB, after.key)])
    while True:
        results = yield from pipeline(session, segments)
        found, checked = results[-2], results[-1]
        failed = [r for r in results if r.status not in OK]
        if failed:
            if found.status == pq.ExecStatus.TUPLES_OK and found.ntuples == 1:
                yield from _unlock(session, found.get_value(0, 3))  # keep no lock past an error
            raise error(session, failed[0], "lock_job")
        if found.ntuples == 0:
            return None
        row = _wire.job_row(found, 0, session.codec, _LOCKED)
        locked = Locked(row.job, row.key)
        still_there = checked.ntuples == 1 and checked.get_value(0, 0) == locked.key[3]
        if still_there and row.problem is None:
            return locked
        if row.problem is not None and still_there:
            log.warning("unreadable_job %s", row.problem, extra={"event": "unreadable_job", "job_id": row.job.job_id})
            yield from finish(session, Finish.failure(locked, row.problem))
            unlock = None
        else:
            # Lost a race: another worker finished the job after lock_job's snapshot.
            log.debug("job_race_condition job_id=%s", row.job.job_id, extra={"event": "job_race_condition"})
            unlock = locked.key[3]
        segments = [[(LOCK_JOB_NOTING, (unlock, queue_param)), (CHECK_NOTED_JOB, ())]]


def lock_batch(session: Session, queue: str, count: int, done: Sequence[Locked] = ()) -> PQGen[list[Locked]]:
    """The batched claim: delete the worked jobs `done` and release them, then lock up to
    `count` due jobs of `queue` in the walk's order and check them in a new snapshot.

    Round trip 1: `delete(done) | SYNC | unlock(done) + lock_jobs(count) | SYNC` (the deletes
    commit before the unlocks); round trip 2: check_jobs. Jobs lost to a race are released;
    unreadable rows are backed off and logged. Returns the jobs held, in order.
    """
    unlock = _wire.array(INT8, [locked.key[3] for locked in done])
    segments: list[list[Call]] = [[(LOCK_JOBS, (unlock, session.text(queue), _wire.int4(count)))]]
    if done:
        segments.insert(0, [(DESTROY_JOBS, _wire.key_arrays([locked.key for locked in done]))])
    results = yield from pipeline(session, segments)
    found = results[-1]
    failed = [r for r in results if r.status not in OK]
    if failed:
        if found.status == pq.ExecStatus.TUPLES_OK and found.ntuples:
            ids = [found.get_value(row, 3) or b"" for row in range(found.ntuples)]
            yield from execute(session, (UNLOCK_JOBS, (_wire.array(INT8, ids),)))  # keep no lock past an error
        raise error(session, failed[0], "lock_jobs")
    rows = [_wire.job_row(found, row, session.codec, _LOCKED) for row in range(found.ntuples)]
    if not rows:
        return []
    checked = yield from execute(session, (CHECK_JOBS, _wire.key_arrays([row.key for row in rows])))
    present = {checked.get_value(row, 0) for row in range(checked.ntuples)}
    held, gone = [], []
    for row in rows:
        locked = Locked(row.job, row.key)
        if row.key[3] not in present:
            log.debug("job_race_condition job_id=%s", row.job.job_id, extra={"event": "job_race_condition"})
            gone.append(row.key[3])
        elif row.problem is not None:
            log.warning("unreadable_job %s", row.problem, extra={"event": "unreadable_job", "job_id": row.job.job_id})
            yield from finish(session, Finish.failure(locked, row.problem))
        else:
            held.append(locked)
    if gone:
        yield from execute(session, (UNLOCK_JOBS, (_wire.array(INT8, gone),)))
    return held


def release_batch(session: Session, done: Sequence[Locked], untouched: Sequence[Locked] = ()) -> PQGen[None]:
    """Delete the worked jobs `done`, then release them and the `untouched` ones (held but
    not run, e.g. at shutdown): `delete(done) | SYNC | unlock(all) | SYNC`."""
    ids = [locked.key[3] for locked in (*done, *untouched)]
    if not ids:
        return
    segments: list[list[Call]] = [[(UNLOCK_JOBS, (_wire.array(INT8, ids),))]]
    if done:
        segments.insert(0, [(DESTROY_JOBS, _wire.key_arrays([locked.key for locked in done]))])
    results = yield from pipeline(session, segments)
    failed = [r for r in results if r.status not in OK]
    if failed:
        raise error(session, failed[0], "destroy_jobs")


# Where lock_job's columns are in its result (LOCK_JOB_NOTING adds `noted` at the end).
_LOCKED: Final = {name: index for index, name in enumerate(sql.LOCKED_COLUMNS)}


def _unlock(session: Session, job_id: bytes | None) -> PQGen[bool]:
    result = yield from execute(session, (UNLOCK_JOB, (job_id,)))
    value = result.get_value(0, 0)
    return value == b"\x01"


def unlock(session: Session, locked: Locked) -> PQGen[bool]:
    """Release a job's lock without touching its row; False if this session did not hold it."""
    return (yield from _unlock(session, locked.key[3]))


def delete(session: Session, locked: Locked) -> PQGen[None]:
    yield from execute(session, (DESTROY_JOB, locked.key))


def record(session: Session, finish: Finish) -> PQGen[None]:
    """set_error (or set aside) while the lock is held. When the row's own data makes it
    fail (SQLSTATE class 22, e.g. error_count at the integer maximum), the job is
    rescheduled without counting, so it neither spins nor blocks the jobs behind it."""
    assert finish.message is not None
    locked, message = finish.locked, session.message(finish.message)
    if finish.dead:
        call: Call = (SET_ERROR_DEAD, (message, *locked.key))
    else:
        call = (SET_ERROR, (_wire.int8(finish.delay), message, *locked.key))
    [result] = yield from pipeline(session, [[call]])
    if result.status in OK:
        return
    failure = error(session, result, "set_error")
    if not (failure.sqlstate or "").startswith(_DATA_EXCEPTION):
        raise failure
    dead = b"\x01" if finish.dead else b"\x00"
    yield from execute(session, (SET_ERROR_UNCOUNTED, (dead, _wire.int8(finish.delay), message, *locked.key)))


def finish(session: Session, finish: Finish) -> PQGen[None]:
    """Finish a job and release it; the delete or error commits before the unlock, and the
    unlock runs even when the finish statement fails (then that error is raised)."""
    locked = finish.locked
    if finish.message is None:
        results = yield from pipeline(session, [[(DESTROY_JOB, locked.key)], [(UNLOCK_JOB, (locked.key[3],))]])
        failed = [r for r in results if r.status not in OK]
        if failed:
            raise error(session, failed[0], "destroy_job")
        return
    failure: psycopg.Error | None = None
    try:
        yield from record(session, finish)
    except psycopg.Error as caught:
        if not session.usable():
            raise
        failure = caught
    yield from _unlock(session, locked.key[3])
    if failure is not None:
        raise failure


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
    return _wire.inserted(result, jobs)


def insert(session: Session, values: Params, notify: bool) -> PQGen[Job]:
    """insert_job; `values` are the five parameters in binary format (see que._wire)."""
    result = yield from execute(session, (INSERT_JOB_NOTIFY if notify else INSERT_JOB, values))
    return _wire.job_row(result, 0, session.codec).job


def insert_values(queue: str, priority: int, run_at_us: int | None, job_class: str, args: str) -> Params:
    return (
        queue.encode(),
        _wire.int2(priority),
        None if run_at_us is None else _wire.int8(run_at_us),
        job_class.encode(),
        args.encode(),
    )
