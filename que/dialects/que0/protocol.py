"""The one engine of the Que 0.x protocol: its statements (que.dialects.que0.statements) in its
order, on one session.

Everything that locks, checks, finishes or releases a job goes through this module (the
inserts on a connection que owns are in que.dialects.que0.inserts, on the same session I/O).
Its functions are generators that never
block: they talk to libpq (psycopg.pq) and `yield` what they wait for (READ or WRITE on the
socket). que.drivers.waiting drives them with select() for threads and with the event loop for
asyncio, so the sync and the async API run the same protocol code, as psycopg itself does.

The order is the protocol's: lock_job -> check_job -> (the handler) -> destroy_job or
set_error -> pg_advisory_unlock, all on one session. Only the round trips are fewer:

    destroy_job(prev) | SYNC | release(prev) + lock_job, check_job | SYNC     one round trip

The SYNC after the delete commits it before the unlock runs: no other worker can lock a
job whose delete is not yet committed (unlocking in the same transaction as the delete
lets the job run twice). The release unlocks a job only once its key is gone, so a job
whose delete failed stays locked until that failure is recorded (Ruby rescues a failed
destroy like a failed handler); a failure is recorded (and, if need be, rescheduled
without counting) while the lock is still held, and only then unlocked.

Parameters and results are in PostgreSQL's binary format (que.engine.wire), so nothing depends
on the session's DateStyle or TimeZone; que.engine.session does the I/O.
"""

import logging
from collections.abc import Iterable, Sequence
from typing import Final

import psycopg
from psycopg import pq

from que.core.errors import last_error_text, short_message
from que.dialects.que0 import rows as job_rows
from que.dialects.que0 import sql
from que.dialects.que0 import statements as st
from que.dialects.que0.finishes import Finish, Locked, finish_call
from que.dialects.que0.listening import listen, notified

# The one-at-a-time worker's wake-up, beside its statements (que.dialects.que0.listening),
# and how its jobs end (que.dialects.que0.finishes): the shells reach both through the
# dialect's one_at_a_time, which is this module.
__all__ = ["Finish", "Locked", "listen", "notified"]
from que.engine import wire as _wire
from que.engine.rounds import Held
from que.engine.session import OK, Call, PQGen, Session, collect, error, execute, pipeline, send
from que.engine.wire import INT8

log = logging.getLogger("que")

_DATA_EXCEPTION: Final = "22"  # the row's own data makes the statement fail (e.g. integer overflow)

# A claim that walked past this many jobs other sessions hold switches the session to
# CLAIM_JOBS_AVOIDING, which skips them without trying their locks; it switches back when
# pg_locks shows fewer than half as many held elsewhere (reading pg_locks has a cost too).
AVOID_AFTER: Final = 16


# -- the protocol -----------------------------------------------------------------------


def _keys(jobs: Sequence[Locked]) -> tuple[bytes, bytes, bytes, bytes]:
    return job_rows.key_arrays([locked.key for locked in jobs])


def claim(
    session: Session,
    queue: str,
    count: int,
    done: Sequence[Finish] = (),
    sent: Sequence[Finish] = (),
    skip: Iterable[int] = (),
    untouched: Sequence[Locked] = (),
    recheck: Sequence[Held] = (),
    still_there: set[int] | None = None,
    checked_at: float = 0.0,
) -> PQGen[list[Locked]]:
    """Finish the jobs `done`, then claim up to `count` due jobs of `queue`, in one round trip:

        finish(done[0]) | SYNC | ... | unlock(untouched) | SYNC | release(done, sent) + claim, check
        [+ check held] | SYNC

    Each finish commits on its own, before the claim statement releases the lock of every
    finished job whose key is gone (a job whose finish failed keeps its lock until its
    failure is recorded, Ruby's rescue of a failed destroy). `sent` are finishes sent
    earlier with send_finish(); the results not read yet are read first. The claim skips the jobs in
    `skip` (held by this session for other reasons) as well as the finished ones. The check
    is the next statement, with a new snapshot: a claimed job another worker finished
    after the claim's snapshot is released and not returned, and when every claimed job
    was lost so, the claim runs again. Rows that cannot be read are backed off and logged.
    The `untouched` jobs (held, never run) are released as they are. The held jobs of
    `recheck` are checked by their whole key in the same snapshot as the new ones: the ids
    of those still there go into `still_there`, the others are released (deleted or
    rescheduled while they waited). Returns the jobs held, in the walk's order, marked
    `checked_at`.
    """
    finishing = [*sent, *done]
    outcomes = yield from _sent_outcomes(session, sent)
    releasing = [finish.locked for finish in finishing]
    skipped = sorted({*skip, *(locked.job.job_id for locked in releasing)})
    segments: list[list[Call]] = [[finish_call(session, finish)] for finish in done]
    unlocking = [_wire.int8(locked.job.job_id) for locked in untouched]
    if unlocking:
        segments.append([(st.UNLOCK_JOBS, (_wire.array(INT8, unlocking),))])
    while True:
        params = (
            *_keys(releasing),
            session.text(queue),
            _wire.int4(count),
            _wire.array(INT8, [_wire.int8(job_id) for job_id in skipped]),
        )
        last: list[Call] = [
            (st.CLAIM_JOBS_AVOIDING if session.avoiding else st.CLAIM_JOBS, params),
            (st.CHECK_CLAIMED, ()),
        ]
        if recheck:
            last.append((st.CHECK_HELD, _keys(recheck)))
        segments.append(last)
        results = yield from pipeline(session, segments)
        if recheck:
            rechecked = results.pop()
            if rechecked.status != pq.ExecStatus.TUPLES_OK:
                raise error(session, rechecked, "check_held")
            if still_there is not None:
                values = (rechecked.get_value(row, 0) or b"" for row in range(rechecked.ntuples))
                still_there.update(_wire.read_int(value) for value in values)
            recheck = ()
        outcomes += results[: len(segments) - 1 - bool(unlocking)]
        if unlocking and results[-3].status not in OK:
            raise error(session, results[-3], "unlock")
        found, checked = results[-2], results[-1]
        if found.status != pq.ExecStatus.TUPLES_OK:
            yield from _settle(session, finishing, outcomes)
            raise error(session, found, "claim_jobs")
        rows = [
            job_rows.job_row(found, row, session.codec, _CLAIMED)
            for row in range(found.ntuples)
            if found.get_value(row, _CLAIMED["job_id"]) is not None  # no job claimed: one row of NULLs
        ]
        _choose_walk(session, found, len(rows), len(skipped))
        yield from _settle(session, finishing, outcomes, claimed=[row.key[3] for row in rows])
        if checked.status != pq.ExecStatus.TUPLES_OK and rows:
            yield from execute(session, (st.UNLOCK_JOBS, (_wire.array(INT8, [row.key[3] for row in rows]),)))
            raise error(session, checked, "check_job")
        present = {checked.get_value(row, 0) for row in range(checked.ntuples)}
        held, gone = [], []
        for row in rows:
            locked = Locked(row.job, row.key, checked_at)
            if row.key[3] not in present:
                log.debug("job_race_condition job_id=%s", row.job.job_id, extra={"event": "job_race_condition"})
                gone.append(row.key[3])
            elif row.problem is not None:
                log.warning(
                    "unreadable_job %s", row.problem, extra={"event": "unreadable_job", "job_id": row.job.job_id}
                )
                yield from finish(session, Finish.failure(locked, row.problem))
            else:
                held.append(locked)
        if gone:
            yield from execute(session, (st.UNLOCK_JOBS, (_wire.array(INT8, gone),)))
        if held or not gone:
            return held
        # Every job claimed was lost to a race (finished by another worker after the claim's
        # snapshot): claim again, as que-go does; a finished job is not in the next snapshot.
        finishing, outcomes, releasing, segments, unlocking = [], [], [], [], []


def _choose_walk(session: Session, found: pq.abc.PGresult, claimed: int, skipped: int) -> None:
    """Pick the claim statement for the session's next claim (see AVOID_AFTER)."""
    if session.avoiding:
        avoided = _wire.read_int(found.get_value(0, _CLAIMED["avoided"]) or b"\0" * 8)
        session.avoiding = avoided - skipped - claimed >= AVOID_AFTER // 2
    elif claimed:
        walked = _wire.read_int(found.get_value(claimed - 1, _CLAIMED["n"]) or b"\0" * 4)
        session.avoiding = walked - claimed >= AVOID_AFTER


def _sent_outcomes(session: Session, sent: Sequence[Finish]) -> PQGen[list[pq.abc.PGresult | None]]:
    """The results of finishes sent earlier, None for those send_finish() already read."""
    unread = yield from collect(session)
    return [None] * (len(sent) - len(unread)) + list(unread)


def _settle(
    session: Session,
    finishing: Sequence[Finish],
    outcomes: Sequence[pq.abc.PGresult | None],
    claimed: Sequence[bytes] = (),
) -> PQGen[list[Finish]]:
    """Deal with finishes that failed (their jobs are still locked, their rows unchanged):
    a failed delete becomes the job's failure, recorded with the backoff as Ruby's rescue
    records it; a failed set_error whose row's own data is the cause is recorded without
    counting; then the job is released. Any other failure is raised, after releasing the
    `claimed` jobs, so that no lock outlives it. Returns the finishes that failed (their jobs
    are released now). An outcome of None was read and settled before."""
    failed = []
    for finish_, outcome in zip(finishing, outcomes, strict=True):
        if outcome is None or outcome.status in OK:
            continue
        failed.append(finish_)
        failure = error(session, outcome, "destroy_job" if finish_.message is None else "set_error")
        try:
            if not session.usable():
                raise failure
            locked = finish_.locked
            if finish_.message is None:
                log.warning(
                    "destroy_failed job_id=%s error=%s",
                    locked.job.job_id,
                    short_message(failure),
                    extra={"event": "destroy_failed", "job_id": locked.job.job_id},
                )
                yield from record(session, Finish.failure(locked, last_error_text(failure), finish_.max_retries))
            elif not (failure.sqlstate or "").startswith(_DATA_EXCEPTION):
                raise failure
            else:
                yield from _record_uncounted(session, finish_)
            yield from _unlock(session, locked.key[3])
        except BaseException:
            if claimed and session.usable():
                yield from execute(session, (st.UNLOCK_JOBS, (_wire.array(INT8, list(claimed)),)))
            raise
    return failed


def alive(session: Session) -> bool:
    """Whether the session still stands, judged from what already arrived on its socket
    (no round trip): a server ending it sends its goodbye and closes. A batched worker
    asks before each job, so that one lost session does not run on through its batch,
    whose locks died with it."""
    pg = session.pgconn
    try:
        pg.consume_input()
    except psycopg.OperationalError:
        return False
    return bool(pg.status == pq.ConnStatus.OK)


def send_finish(session: Session, finish: Finish, sent: Sequence[Finish] = ()) -> PQGen[list[Finish]]:
    """Send a job's finish (its own transaction) without waiting for its result; the next
    claim() or release() (given it in `sent`) releases the job.

    The results of the finishes `sent` earlier that are still unread are read first, so at
    most one finish is ever unconfirmed: by the time a handler ran, the previous job's
    result is back, so the read costs no wait, and a session lost meanwhile is noticed
    before the next handler starts. Returns the earlier finishes that failed: their
    failure is recorded and their jobs released already (drop them from `sent`)."""
    outcomes = yield from _sent_outcomes(session, sent)
    failed = yield from _settle(session, sent, outcomes)
    yield from send(session, [[finish_call(session, finish)]])
    return failed


def recheck(
    session: Session, waiting: Sequence[Locked], sent: Sequence[Finish] = ()
) -> PQGen[tuple[set[int], list[Finish]]]:
    """Which of the jobs waiting in a batch are still there, unchanged (by their whole key),
    in a new snapshot, before they run: one deleted or rescheduled while it waited behind
    the jobs before it is released, not run (Ruby's worker checks each job as it takes
    it). The results of the finishes `sent` earlier are read first, as send_finish() reads
    them. Returns (the ids still there, the earlier finishes that failed: drop them from
    `sent`)."""
    outcomes = yield from _sent_outcomes(session, sent)
    failed = yield from _settle(session, sent, outcomes)
    result = yield from execute(session, (st.CHECK_HELD, _keys(waiting)))
    if result.status != pq.ExecStatus.TUPLES_OK:
        raise error(session, result, "check_held")
    return {_wire.read_int(result.get_value(row, 0) or b"") for row in range(result.ntuples)}, failed


def release(session: Session, sent: Sequence[Finish] = (), untouched: Sequence[Locked] = ()) -> PQGen[None]:
    """Read the results of the finishes `sent` earlier and release their jobs, and release
    the `untouched` ones (held but not run, e.g. at shutdown), leaving their rows as they are."""
    outcomes = yield from _sent_outcomes(session, sent)
    calls: list[Call] = []
    if sent:
        calls.append((st.RELEASE_JOBS, _keys([finish.locked for finish in sent])))
    if untouched:
        calls.append((st.UNLOCK_JOBS, (_wire.array(INT8, [locked.key[3] for locked in untouched]),)))
    if calls:
        results = yield from pipeline(session, [calls])
        failed = [r for r in results if r.status not in OK]
        if failed:
            raise error(session, failed[0], "release")
    yield from _settle(session, sent, outcomes)


def retake(session: Session, lost: Sequence[Finish]) -> PQGen[list[Finish]]:
    """Lock again the jobs of outcomes whose locks died with an earlier session; the
    outcomes whose lock this session now holds (finish them as usual). The others are held
    by other workers now, which will run them: their outcome is not written."""
    if not lost:
        return []
    ids = [_wire.int8(finish.locked.job.job_id) for finish in lost]
    result = yield from execute(session, (st.RETAKE_JOBS, (_wire.array(INT8, ids),)))
    taken = {_wire.read_int(result.get_value(row, 0) or b"") for row in range(result.ntuples)}
    return [finish for finish in lost if finish.locked.job.job_id in taken]


# Where the claim's columns are in its result: lock_job's, the step of the walk, and how
# many locks pg_locks showed (CLAIM_JOBS_AVOIDING; 0 for CLAIM_JOBS).
_CLAIMED: Final = {name: index for index, name in enumerate((*sql.LOCKED_COLUMNS, "n", "avoided"))}


def lock(session: Session, queue: str) -> PQGen[Locked | None]:
    """Lock the next due job of `queue` and check it is still there; None when none is due."""
    held = yield from claim(session, queue, 1)
    return held[0] if held else None


def _unlock(session: Session, job_id: bytes | None) -> PQGen[bool]:
    result = yield from execute(session, (st.UNLOCK_JOB, (job_id,)))
    value = result.get_value(0, 0)
    return value == b"\x01"


def unlock(session: Session, locked: Locked) -> PQGen[bool]:
    """Release a job's lock without touching its row; False if this session did not hold it."""
    return (yield from _unlock(session, locked.key[3]))


def delete(session: Session, locked: Locked) -> PQGen[None]:
    yield from execute(session, (st.DESTROY_JOB, locked.key))


def record(session: Session, finish: Finish) -> PQGen[None]:
    """set_error (or set aside) while the lock is held. When the row's own data makes it
    fail (SQLSTATE class 22: error_count at the integer maximum, or a run_at past
    PostgreSQL's last timestamp), the job is parked without counting (sql.PARKED_RUN_AT),
    so it neither spins nor blocks the jobs behind it."""
    assert finish.message is not None
    [result] = yield from pipeline(session, [[finish_call(session, finish)]])
    if result.status in OK:
        return
    failure = error(session, result, "set_error")
    if not (failure.sqlstate or "").startswith(_DATA_EXCEPTION):
        raise failure
    yield from _record_uncounted(session, finish)


def _record_uncounted(session: Session, finish: Finish) -> PQGen[None]:
    assert finish.message is not None
    locked, message = finish.locked, session.message(finish.message)
    dead = b"\x01" if finish.dead else b"\x00"
    yield from execute(session, (st.SET_ERROR_UNCOUNTED, (dead, message, *locked.key)))


def finish(session: Session, finish: Finish) -> PQGen[None]:
    """Finish a job and release it: `finish | SYNC | release | SYNC`, so the delete or error
    commits before the unlock, which runs only once the job's key is gone. A failed delete
    is recorded as the job's failure, then the job released (see claim)."""
    results = yield from pipeline(
        session, [[finish_call(session, finish)], [(st.RELEASE_JOBS, _keys([finish.locked]))]]
    )
    released = results[1]
    if released.status not in OK and results[0].status in OK:
        raise error(session, released, "release")
    yield from _settle(session, [finish], results[:1])
