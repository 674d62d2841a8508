"""The Que 1.x/2.x protocol on que's engine: its statements prepared on the locker's session,
in binary, and one pipelined round trip per turn of the locker, as for Que 0.x.

Ruby Que 2.x's protocol: one connection per process (the locker's) registers in
que_lockers, LISTENs on que_listener_<its backend pid>, and takes jobs: the ones a
notification names, and the ones its poll finds (sql.POLL_JOBS: Que 2's order and priority
thresholds). It holds their advisory locks while the workers run them. Ruby's workers check
the row (check_job), run the handler with the job's args and kwargs, and destroy the job or
record its error (or expire it past the retry limit) on a pooled connection, which commits
before the locker unlocks the job; unlocks go in batches, each reporting that the lock was
held. Rows of another job_schema_version are never polled.

que's locker sends the same statements from the locker's own session, so a running handler
holds no connection and an outcome commits before its unlock in the same round trip:

    outcome(a) | SYNC | outcome(b) | SYNC | ... | unlock(untouched) | SYNC |
    release(a, b...) + lock(announced) + poll(places) + verify(new) + check_job(waiting) | SYNC

and, for each batch of outcomes workers report while it waits, on the same pipeline:

    outcome(c) | SYNC | ... | release(c...) | SYNC

A handler's outcome is written while its lock is held, and the job released only once its
row changed (release), so an outcome that failed keeps the lock until its failure is
recorded. What other lockers and workers see is what Ruby's locker and workers would do.
"""

import json
import logging
import os
import re
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from psycopg import pq

from que.core.errors import error_parts, short_message, storable
from que.core.job import Job
from que.core.outcome import Outcome
from que.core.retry import retry_delay
from que.dialects.que2 import rows, sql
from que.dialects.que2.statements import Statements
from que.engine import wire
from que.engine.rounds import ANY_PRIORITY, Announced, Finished, Held, Round, Settled
from que.engine.session import OK, Call, PQGen, Session, error, execute, pipeline, statement
from que.engine.setup import set_up

log = logging.getLogger("que")

# Que 2.x's defaults: maximum_retry_count, and the jobs buffered beyond the idle workers.
MAX_RETRIES: Final = 15
BUFFER: Final = 8
_DATA_EXCEPTION: Final = "22"  # the row's own data makes the statement fail (e.g. integer overflow)
_BIGINT: Final = range(-(2**63), 2**63)
_SMALLINT: Final = range(-(2**15), 2**15)
# Ruby's Que::Listener::MESSAGE_FORMATS[:job_available] (and the message_type every message has).
_ANNOUNCED: Final = {"message_type": str, "queue": str, "priority": int, "id": int, "run_at": str}
# Ruby's TIME_REGEX for run_at (lib/que/utils/constantization.rb: Que::TIME_REGEX).
_TIME: Final = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z")


def announced(payload: str) -> Announced | None:
    """The job a well-formed job_available message announces, else None. Ruby's listener
    drops a message that is not JSON (or nests too deep for its parser), not an object of
    exactly these keys and types, or whose run_at is not its time format; an id or a
    priority past its column's range cannot name a job, and is dropped too."""
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict) or set(message) != set(_ANNOUNCED):
        return None
    if any(type(message[key]) is not kind for key, kind in _ANNOUNCED.items()):
        return None
    if message["message_type"] != "job_available" or not _TIME.match(message["run_at"]):
        return None
    if message["id"] not in _BIGINT or message["priority"] not in _SMALLINT:
        return None
    try:
        run_at = datetime.strptime(message["run_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None
    return Announced(message["priority"], wire.timestamp_us(run_at), message["id"])


def register_params(
    priorities: Sequence[int | None], listening: bool, queue: str, job_schema_version: int | None
) -> dict[str, Any]:
    """register_locker's row: the workers and their priorities, this process, the queue."""
    return {
        "worker_count": len(priorities),
        "worker_priorities": list(priorities),
        "process_id": os.getpid(),
        "hostname": socket.gethostname(),
        "listening": listening,
        "queues": [queue],
        "job_schema_version": job_schema_version,
    }


def poll_params(queue: str, wanted: Mapping[int, int], held: Sequence[int]) -> dict[str, Any]:
    """sql.POLL_JOBS's parameters for the places `wanted` (threshold -> count)."""
    thresholds = sorted(wanted)
    return {
        "queue": queue,
        "held": list(held),
        "ceiling": max(thresholds),
        "thresholds": thresholds,
        "counts": [wanted[t] for t in thresholds],
    }


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


# -- the locker ----------------------------------------------------------------------------------


def start_locker(
    session: Session, st: Statements, priorities: Sequence[int | None], listen: bool, queue: str
) -> PQGen[None]:
    """Ruby's startup: clean_lockers, register_locker, then LISTEN on its own channel."""
    yield from set_up(session)
    params = register_params(priorities, listen, queue, st.job_schema_version)
    values: list[bytes | None] = [
        wire.int4(params["worker_count"]),
        wire.int4_array(params["worker_priorities"]),
        wire.int4(params["process_id"]),
        wire.text(params["hostname"]),
        wire.boolean(params["listening"]),
        wire.text_array(params["queues"]),
    ]
    if params["job_schema_version"] is not None:  # Que 1.x's que_lockers has no such column
        values.append(wire.int4(params["job_schema_version"]))
    channel = sql.LISTEN_CHANNEL.format(pid=session.pgconn.backend_pid)
    calls: list[Call] = [(st["clean_lockers"], ()), (st["register_locker"], tuple(values))]
    if listen:
        calls.append((statement("", f'LISTEN "{channel}"', []), ()))
    results = yield from pipeline(session, [calls])
    for result in results:
        if result.status not in OK:
            raise error(session, result, "register_locker")


def stop_locker(session: Session, st: Statements) -> PQGen[None]:
    """Ruby's last statement as its locker stops: its own row (and dead lockers') removed."""
    yield from execute(session, (st["clean_lockers"], ()))


def notified(session: Session) -> list[Announced]:
    """Read what arrived on the socket: the jobs of the well-formed job_available messages."""
    session.pgconn.consume_input()
    found = []
    while (note := session.pgconn.notifies()) is not None:
        job = announced(note.extra.decode(session.codec, "replace"))
        if job is not None:
            found.append(job)
    return found


def _key(job: Job) -> tuple[bytes | None, ...]:
    return (wire.int8(job.job_id), wire.int4(job.error_count))


def _outcome_calls(st: Statements, session: Session, finished: Finished) -> list[Call]:
    """Ruby's statements for an outcome, in Ruby's order: one segment of the pipeline, so one
    transaction (all or nothing)."""
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


def round_trip(session: Session, st: Statements, queue: str, planned: Round, max_retries: int) -> PQGen[Settled]:
    """A locker's round trip (see the module): its results for que.engine.books. With the
    plan's `express`, the outcomes workers report while it waits for the server are sent on
    it at once (que.engine.session.pipeline's `more`), each batch as its outcomes and then
    their release, and written with the rest."""
    express = planned.express
    settled = Settled()
    finished = list(planned.finished)
    retaking = [h.job_id for h in planned.relock] + [o.held.job_id for o in planned.orphans]
    if retaking:
        result = yield from execute(session, (st["retake_jobs"], (wire.int8_array(retaking),)))
        taken = {wire.read_int(result.get_value(row, 0) or b"") for row in range(result.ntuples)}
        settled.relocked = {job_id for job_id in retaking if job_id in taken}
        finished += [o for o in planned.orphans if o.held.job_id in taken]
    segments: list[list[Call]] = [_outcome_calls(st, session, f) for f in finished]
    sizes = [len(segment) for segment in segments]
    unlocking = [held.job_id for held in planned.abandoned]
    if unlocking:
        segments.append([(st["unlock_jobs"], (wire.int8_array(unlocking),))])
    last: list[Call] = []
    if finished:
        last.append(_release_call(st, finished))
    if planned.announced:
        # The poll skips the announced jobs (locked just before it); their own lock does not.
        held = wire.int8_array(sorted(planned.skip - set(planned.announced)))
        last.append((st["lock_notified"], (wire.int8_array(planned.announced), held)))
    if planned.wanted:
        params = poll_params(queue, planned.wanted, sorted(planned.skip))
        values = (
            wire.text(params["queue"]),
            wire.int8_array(params["held"]),
            wire.int4(params["ceiling"]),
            wire.int4_array(params["thresholds"]),
            wire.int4_array(params["counts"]),
        )
        last.append((st["poll_jobs"], values))
    if planned.announced or planned.wanted:
        last.append((st["verify_jobs"], ()))
    if planned.recheck:
        last.append((st["check_job"], (wire.int8_array([h.job_id for h in planned.recheck]),)))
    if last:
        segments.append(last)
    if not segments:
        return settled
    batches: list[list[Finished]] = []

    def grow() -> list[list[Call]]:
        assert express is not None
        batch = express()
        if not batch:
            return []
        batches.append(batch)
        return [*(_outcome_calls(st, session, f) for f in batch), [_release_call(st, batch)]]

    results = yield from pipeline(session, segments, grow if express is not None else None)
    position = 0
    outcomes = []
    for size in sizes:
        chunk = results[position : position + size]
        position += size
        failed = next((r for r in chunk if r.status not in OK), None)
        outcomes.append(failed)
    if unlocking:
        unlocked = results[position]
        position += 1
        if unlocked.status not in OK:
            raise error(session, unlocked, "unlock_jobs")
        _assert_unlocked(unlocking, unlocked)
    tail = results[position : position + len(last)]
    grown = results[position + len(last) :]
    if finished:
        tail.pop(0)  # release_jobs: a count
    # The batches sent while waiting: their outcomes, then their release (a count).
    for batch in batches:
        for done in batch:
            size = len(_outcome_calls(st, session, done))
            chunk, grown = grown[:size], grown[size:]
            finished.append(done)
            outcomes.append(next((r for r in chunk if r.status not in OK), None))
        released, grown = grown[0], grown[1:]
        if released.status not in OK:
            raise error(session, released, "release_jobs")
    locked: list[Job] = []
    for result in tail[: bool(planned.announced) + bool(planned.wanted)]:
        if result.status not in OK:
            yield from _settle(session, st, finished, outcomes, max_retries)
            raise error(session, result, "lock_jobs")
        locked += rows.jobs(result, session.codec)
    tail = tail[bool(planned.announced) + bool(planned.wanted) :]
    present: set[int] = set()
    if planned.announced or planned.wanted:
        verified = tail.pop(0)
        if verified.status != pq.ExecStatus.TUPLES_OK:
            raise error(session, verified, "verify_jobs")
        present = {wire.read_int(verified.get_value(row, 0) or b"") for row in range(verified.ntuples)}
    if planned.recheck:
        checked = tail.pop(0)
        if checked.status != pq.ExecStatus.TUPLES_OK:
            raise error(session, checked, "check_job")
        settled.still_there = {wire.read_int(checked.get_value(row, 0) or b"") for row in range(checked.ntuples)}
    yield from _settle(session, st, finished, outcomes, max_retries)
    settled.written = finished
    gone = [job.job_id for job in locked if job.job_id not in present]
    if gone:
        result = yield from execute(session, (st["unlock_jobs"], (wire.int8_array(gone),)))
        _assert_unlocked(gone, result)
    settled.locked = [Held(job, _key(job), planned.started) for job in locked if job.job_id in present]
    settled.locked.sort(key=Held.sort_key)
    return settled


def _release_call(st: Statements, finished: Sequence[Finished]) -> Call:
    """release_jobs for these outcomes: each job released once its row changed."""
    ids = wire.int8_array([f.held.job_id for f in finished])
    counts = wire.array(wire.INT4, [f.held.key[1] for f in finished])
    return (st["release_jobs"], (ids, counts))


def _assert_unlocked(ids: Sequence[int], result: pq.abc.PGresult) -> None:
    """Every unlock must report the lock was held, as Ruby asserts."""
    values = [result.get_value(row, 0) == b"\x01" for row in range(result.ntuples)]
    if not all(values) or len(values) != len(ids):
        raise AssertionError(f"tried to unlock jobs this locker had not locked: {list(ids)} gave {values}")


def _settle(
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
            results = yield from pipeline(session, [_outcome_calls(st, session, instead)])
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
    _assert_unlocked([held.job_id], result)


def threshold_of(priority: int | None) -> int:
    return ANY_PRIORITY if priority is None else priority
