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
from dataclasses import dataclass
from typing import Final

import psycopg
from psycopg import pq

from que import _wire, sql
from que._session import OK, Call, PQGen, Session, error, execute, pipeline, statement
from que._wire import BOOL, INT2, INT8, TEXT, TIMESTAMPTZ, Params
from que.errors import TransactionPoolingError
from que.job import Job
from que.retry import retry_delay

log = logging.getLogger("que")

_DATA_EXCEPTION: Final = "22"  # the row's own data makes the statement fail (e.g. integer overflow)

_KEY = (("queue", TEXT), ("priority", INT2), ("run_at", TIMESTAMPTZ), ("job_id", INT8))
LOCK_JOB: Final = statement("que_lock_job", sql.LOCK_JOB, [("queue", TEXT)])
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
BACKEND_PID: Final = statement("", sql.BACKEND_PID, [])
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


def check_direct(session: Session) -> PQGen[None]:
    """Refuse a connection that goes through a pooler, where session locks cannot work.

    The backend pid a server announces at connect and `pg_backend_pid()` are the same on a
    direct connection; a pooler (pgbouncer and the like) announces its own. Behind a
    transaction pooler each transaction may run in another server session, so a job lock
    taken by one statement is not held by the next and jobs run twice.
    """
    if session.direct:
        return
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

    `after` is a worked job to delete first: its delete, its unlock and this lock_job travel
    in one round trip (delete | SYNC | unlock, lock_job | SYNC). A row that cannot be read
    (a NULL the schema forbids) is backed off and logged, and the walk goes on.
    """
    queue_param = session.text(queue)
    lock_call: Call = (LOCK_JOB, (queue_param,))
    if after is None:
        segments: list[list[Call]] = [[lock_call]]
    else:
        segments = [[(DESTROY_JOB, after.key)], [(UNLOCK_JOB, (after.key[3],)), lock_call]]
    while True:
        results = yield from pipeline(session, segments)
        failed = [r for r in results if r.status not in OK]
        found = results[-1]
        if failed:
            if found.status == pq.ExecStatus.TUPLES_OK and found.ntuples == 1:
                yield from _unlock(session, found.get_value(0, 3))  # keep no lock past an error
            raise error(session, failed[0], "lock_job")
        if found.ntuples == 0:
            return None
        row = _wire.job_row(found, 0, session.codec)
        locked = Locked(row.job, _wire.key(row.job, session.codec))
        checked = yield from execute(session, (CHECK_JOB, locked.key))
        if checked.ntuples == 1 and row.problem is None:
            return locked
        if row.problem is not None:
            log.warning("unreadable_job %s", row.problem, extra={"event": "unreadable_job", "job_id": row.job.job_id})
            yield from finish(session, Finish.failure(locked, row.problem))
            segments = [[lock_call]]
        else:
            # Lost a race: another worker finished the job after lock_job's snapshot.
            log.debug("job_race_condition job_id=%s", row.job.job_id, extra={"event": "job_race_condition"})
            segments = [[(UNLOCK_JOB, (locked.key[3],)), lock_call]]


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
