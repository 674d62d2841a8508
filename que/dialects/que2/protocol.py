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

    outcome(a) + outcome(b) + ... | SYNC | unlock(untouched) | SYNC |
    release(a, b...) + lock(announced) + poll(places) + verify(new) + check_job(waiting) | SYNC

and, for each batch of outcomes workers report while it waits, on the same pipeline:

    outcome(c) + ... | SYNC | release(c...) | SYNC

The outcomes of a batch commit together (one commit, not one per job); if one fails, none
is written, and each is written again in a transaction of its own, as Ruby's workers write
them, so a failing one never takes the others down with it.

A handler's outcome is written while its lock is held, and the job released only once its
row changed (release), so an outcome that failed keeps the lock until its failure is
recorded. What other lockers and workers see is what Ruby's locker and workers would do.
"""

import json
import os
import re
import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from psycopg import pq

from que.core.job import Job
from que.dialects.que2 import finishes, rows, sql
from que.dialects.que2.statements import Statements
from que.engine import wire
from que.engine.rounds import ANY_PRIORITY, Announced, Finished, Held, Round, Settled
from que.engine.session import OK, Call, PQGen, Session, error, execute, pipeline, statement
from que.engine.setup import set_up

# Que 2.x's defaults: maximum_retry_count, and the jobs buffered beyond the idle workers.
MAX_RETRIES: Final = 15
BUFFER: Final = 8
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
    segments: list[list[Call]] = [finishes.together(st, session, finished)] if finished else []
    position = len(segments[0]) if finished else 0
    unlocking = [held.job_id for held in planned.abandoned]
    if unlocking:
        segments.append([(st["unlock_jobs"], (wire.int8_array(unlocking),))])
    last: list[Call] = []
    if finished:
        last.append(finishes.release_call(st, finished))
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
        return [finishes.together(st, session, batch), [finishes.release_call(st, batch)]]

    results = yield from pipeline(session, segments, grow if express is not None else None)
    together = [(list(finished), results[:position])]
    if unlocking:
        unlocked = results[position]
        position += 1
        if unlocked.status not in OK:
            raise error(session, unlocked, "unlock_jobs")
        finishes.assert_unlocked(unlocking, unlocked)
    tail = results[position : position + len(last)]
    grown = results[position + len(last) :]
    if finished:
        tail.pop(0)  # release_jobs: a count
    # The batches sent while waiting: their outcomes, then their release (a count).
    for batch in batches:
        size = len(finishes.together(st, session, batch))
        chunk, released, grown = grown[:size], grown[size], grown[size + 1 :]
        if released.status not in OK:
            raise error(session, released, "release_jobs")
        together.append((batch, chunk))
        finished += batch
    # A transaction of outcomes that failed wrote none of them: each is written alone.
    outcomes: list[pq.abc.PGresult | None] = []
    for batch, chunk in together:
        if all(r.status in OK for r in chunk):
            outcomes += [None] * len(batch)
        else:
            outcomes += yield from finishes.one_by_one(session, st, batch)
    locked: list[Job] = []
    for result in tail[: bool(planned.announced) + bool(planned.wanted)]:
        if result.status not in OK:
            yield from finishes.settle(session, st, finished, outcomes, max_retries)
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
    yield from finishes.settle(session, st, finished, outcomes, max_retries)
    settled.written = finished
    gone = [job.job_id for job in locked if job.job_id not in present]
    if gone:
        result = yield from execute(session, (st["unlock_jobs"], (wire.int8_array(gone),)))
        finishes.assert_unlocked(gone, result)
    settled.locked = [Held(job, _key(job), planned.started) for job in locked if job.job_id in present]
    settled.locked.sort(key=Held.sort_key)
    return settled


def threshold_of(priority: int | None) -> int:
    return ANY_PRIORITY if priority is None else priority
