"""How a Que 1.x/2.x job ends, on the locker's session: the outcome Ruby Que 2 decides for a
handler's return or failure, the statements that write it (Ruby's, in Ruby's order), a
round trip's outcomes written in one transaction, each alone if that one fails, their
release once their rows changed, and what becomes of an outcome the server refused."""

import logging
from collections.abc import Sequence
from typing import Final

from psycopg import pq

from que.core.errors import error_parts, short_message, storable
from que.core.job import Job
from que.core.outcome import Outcome
from que.core.retry import retry_delay
from que.dialects.que2.statements import Statements
from que.engine import wire
from que.engine.rounds import Finished, Held
from que.engine.session import OK, Call, PQGen, Session, error, execute, pipeline

log = logging.getLogger("que")

_DATA_EXCEPTION: Final = "22"  # the row's own data makes the statement fail (e.g. integer overflow)


def outcome(job: Job, failure: BaseException | None, max_retries: int, asked: str | None = None) -> Outcome:
    """How a job ends as Ruby Que 2.x ends it. Returned: destroyed, or finished or expired if
    its handler asked so. Raised: past `max_retries` expired (error_count + 1, the error
    columns left as they are), else retried after count**4 + 3 seconds with the message and
    backtrace; when the handler had asked to finish or expire, that happens first and the
    error's handling follows (Ruby's finish/expire run at once, then its rescue)."""
    if failure is None:
        return Outcome(asked or Outcome.DESTROY)
    count = job.error_count + 1
    handling = Outcome.EXPIRE if count > max_retries else Outcome.RETRY
    message, backtrace = error_parts(failure, blank_is_none=False)
    return Outcome(
        asked or handling,
        storable(message),
        storable("\n".join(backtrace)),
        float(retry_delay(count)),
        after=handling if asked else None,
    )


def outcome_calls(st: Statements, session: Session, finished: Finished) -> list[Call]:
    """Ruby's statements for an outcome, in Ruby's order; they always go in one transaction
    (all or nothing), with other outcomes' (together) or alone (one_by_one)."""
    held, ended = finished.held, finished.outcome
    job_id = (held.key[0],)
    calls: list[Call] = []
    for kind in (ended.kind, ended.after):
        if kind is None:
            continue
        if kind == Outcome.RETRY:
            params = (
                wire.float8(ended.delay),
                session.message(ended.message or ""),
                session.message(ended.backtrace or ""),
            )
            calls.append((st["set_error"], (*params, *job_id)))
        elif kind in (Outcome.DESTROY, Outcome.FINISH, Outcome.EXPIRE):
            calls.append((st[f"{kind}_job"], job_id))
        else:
            raise ValueError(f"a Que 2 job cannot end as {kind!r}")
    return calls


def together(st: Statements, session: Session, finished: Sequence[Finished]) -> list[Call]:
    """The outcomes' statements as one segment: one transaction, committed together (one
    commit rather than one per job; Ruby's workers commit each on its own, which no other
    session can tell apart). If any fails, none is written, and one_by_one follows."""
    return [call for done in finished for call in outcome_calls(st, session, done)]


def one_by_one(session: Session, st: Statements, batch: Sequence[Finished]) -> PQGen[list[pq.abc.PGresult | None]]:
    """Outcomes whose transaction failed, so that none was written (and none released):
    each written in a transaction of its own, as Ruby writes them, then the ones written
    released; for each, its failure or None. A failed one keeps its lock for settle."""
    segments = [outcome_calls(st, session, done) for done in batch]
    results = yield from pipeline(session, [*segments, [release_call(st, batch)]])
    failures: list[pq.abc.PGresult | None] = []
    position = 0
    for segment in segments:
        chunk = results[position : position + len(segment)]
        position += len(segment)
        failures.append(next((r for r in chunk if r.status not in OK), None))
    if results[position].status not in OK:
        raise error(session, results[position], "release_jobs")
    return failures


def release_call(st: Statements, finished: Sequence[Finished]) -> Call:
    """release_jobs for these outcomes: each job released once its row changed."""
    ids = wire.int8_array([f.held.job_id for f in finished])
    counts = wire.array(wire.INT4, [f.held.key[1] for f in finished])
    return (st["release_jobs"], (ids, counts))


def assert_unlocked(ids: Sequence[int], result: pq.abc.PGresult) -> None:
    """Every unlock must report the lock was held, as Ruby asserts."""
    values = [result.get_value(row, 0) == b"\x01" for row in range(result.ntuples)]
    if not all(values) or len(values) != len(ids):
        raise AssertionError(f"tried to unlock jobs this locker had not locked: {list(ids)} gave {values}")


def settle(
    session: Session,
    st: Statements,
    finished: Sequence[Finished],
    outcomes: Sequence[pq.abc.PGresult | None],
    max_retries: int,
) -> PQGen[None]:
    """Outcomes that failed (their rows unchanged, their jobs still locked): a failed destroy,
    finish or expire becomes the job's failure, recorded as Ruby's rescue records it; a
    failed set_error whose row's own data is the cause is recorded without counting; then
    the job is released. Any other failure is raised (the session then closes, ending the
    locks)."""
    for done, failed in zip(finished, outcomes, strict=True):
        if failed is None:
            continue
        failure = error(session, failed, f"{done.outcome.kind}_job")
        if not session.usable():
            raise failure
        held = done.held
        log.warning(
            "outcome_failed job_id=%s error=%s",
            held.job_id,
            short_message(failure),
            extra={"event": "outcome_failed", "job_id": held.job_id},
        )
        if done.outcome.kind != Outcome.RETRY and done.outcome.after != Outcome.RETRY:
            instead = Finished(held, outcome(held.job, failure, max_retries))
            results = yield from pipeline(session, [outcome_calls(st, session, instead)])
            result = next((r for r in results if r.status not in OK), results[-1])
            if result.status in OK:
                yield from _unlock(session, st, held)
                continue
            failure = error(session, result, "set_error")
        if not (failure.sqlstate or "").startswith(_DATA_EXCEPTION):
            raise failure
        message, backtrace = error_parts(failure, blank_is_none=False)
        params = (session.message(message), session.message("\n".join(backtrace)), held.key[0])
        yield from execute(session, (st["set_error_uncounted"], params))
        yield from _unlock(session, st, held)


def _unlock(session: Session, st: Statements, held: Held) -> PQGen[None]:
    result = yield from execute(session, (st["unlock_jobs"], (wire.int8_array([held.job_id]),)))
    assert_unlocked([held.job_id], result)
