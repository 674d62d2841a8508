"""Deliberately broken ports, for testing the conformance suite itself.

`python -m testees.python.threads --break RULE` is the Python testee with one Que rule
broken; the suite must fail the cells that check that rule, name it, and leave every other
implementation's cells green. Each break patches que's engine the way a port author could
get it wrong.
"""

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import que.core.errors
import que.core.validate
import que.dialects.que0.finishes
import que.dialects.que0.inserts
import que.dialects.que0.protocol
import que.dialects.que0.statements
import que.dialects.que0.validate
import que.engine.wire

protocol: Any = que.dialects.que0.protocol  # the round trips
statements: Any = que.dialects.que0.statements  # the prepared statements they read
inserts: Any = que.dialects.que0.inserts
finishes: Any = que.dialects.que0.finishes  # how a job ends: the backoff, the Finish


def _rewritten(statement: Any, old: str, new: str) -> Any:
    text = statement.text.decode()
    if old not in text:
        raise SystemExit(f"cannot break {statement.name!r}: {old!r} is not in it")
    return dataclasses.replace(statement, name=statement.name + b"_broken", text=text.replace(old, new).encode())


# Every statement that walks que_jobs to lock jobs: the engine's claim.
WALKS = ("CLAIM_JOBS",)
# Every statement that releases job locks, and how each names the job_id it unlocks.
UNLOCKS = {
    "UNLOCK_JOB": "pg_advisory_unlock($1::bigint)",
    "CLAIM_JOBS": "pg_advisory_unlock(k.job_id)",
    "RELEASE_JOBS": "pg_advisory_unlock(k.job_id)",
    "UNLOCK_JOBS": "pg_advisory_unlock(id)",
}


def _rewrite_unlocks(change: Callable[[str], str]) -> None:
    for name, call in UNLOCKS.items():
        setattr(statements, name, _rewritten(getattr(statements, name), call, change(call)))


def _rewrite_walks(old: str, new: str) -> None:
    for name in WALKS:
        setattr(statements, name, _rewritten(getattr(statements, name), old, new))


def _backoff() -> None:
    finishes.retry_delay = lambda count: count**3 + 3


def _ordering() -> None:
    _rewrite_walks("ORDER BY priority, run_at, job_id", "ORDER BY priority DESC, run_at, job_id")


def _lock_key() -> None:
    _rewrite_walks("pg_try_advisory_lock((j).job_id)", "pg_try_advisory_lock((j).job_id + 1)")
    _rewrite_unlocks(lambda call: call.replace(")", " + 1)"))


def _never_unlock() -> None:
    _rewrite_unlocks(lambda call: call.removeprefix("pg_advisory_unlock(").removesuffix(")") + " IS NOT NULL")


# Set by the testee at `start`: the database, for the unlock-elsewhere break.
DATABASE_URL: list[str] = []


def _finishing_apart(finish: Callable[..., Any]) -> None:
    """Install `finish` as the engine's way to finish a job, and make claim() finish the
    jobs it is given with it first (the engine's own claim releases them inside itself)."""

    def claim(session: Any, queue: str, count: int, done: Any = (), sent: Any = (), **rest: Any) -> Any:
        yield from protocol.collect(session)
        for finished in (*sent, *done):
            yield from finish(session, finished)
        return (yield from original_claim(session, queue, count, **rest))

    def send_finish(session: Any, finished: Any) -> Any:
        yield from finish(session, finished)

    original_claim = protocol.claim
    protocol.finish = finish
    protocol.claim = claim
    protocol.send_finish = send_finish


def _unlock_elsewhere() -> None:
    """Unlocks on a connection of its own: the lock stays with the job's session."""
    import psycopg

    other: list[Any] = []

    def unlock(session: Any, job_id: bytes | None) -> Any:
        if not other:
            other.append(psycopg.connect(DATABASE_URL[0], autocommit=True))
        row = other[0].execute("SELECT pg_advisory_unlock(%s)", [que.engine.wire.read_int(job_id or b"")]).fetchone()
        return bool(row and row[0])
        yield  # a generator, like the engine's

    def finish(session: Any, done: Any) -> Any:
        if done.message is None:
            yield from protocol.delete(session, done.locked)
        else:
            yield from protocol.record(session, done)
        yield from unlock(session, done.locked.key[3])

    protocol._unlock = unlock
    statements.RELEASE_JOBS = _rewritten(statements.RELEASE_JOBS, "pg_advisory_unlock(k.job_id)", "k.job_id")
    _finishing_apart(finish)


def _unlock_before_finish() -> None:
    """Releases the job's lock first, then deletes or records the error (the trap)."""

    def finish(session: Any, done: Any) -> Any:
        yield from protocol._unlock(session, done.locked.key[3])
        if done.message is None:
            yield from protocol.delete(session, done.locked)
        else:
            yield from protocol.record(session, done)

    _finishing_apart(finish)


def _client_clock() -> None:
    """Computes due-ness, the default run_at and retry times from its own clock."""
    mine = f"'{datetime.now(UTC).isoformat()}'::timestamptz"
    _rewrite_walks("now()", mine)
    statements.SET_ERROR = _rewritten(statements.SET_ERROR, "now()", mine)
    inserts.INSERT_JOB = _rewritten(inserts.INSERT_JOB, "now()", mine)


def _local_wall_time() -> None:
    """Sends run_at's wall-clock reading as if it were UTC, dropping its offset."""

    def wall_time(value: object) -> datetime | None:
        if not isinstance(value, datetime):
            return None
        return value.replace(tzinfo=UTC)

    que.dialects.que0.validate.run_at = wall_time  # where the 0.x job check reads it


def _job_id_key() -> None:
    """Finishes jobs by job_id alone, not by their whole key."""

    def loose(first: int) -> tuple[str, str]:
        q, p, r, j = (f"${n}" for n in range(first, first + 4))
        whole = f"WHERE queue    = {q}::text\nAND   priority = {p}::smallint\nAND   run_at   = {r}::timestamptz\n"
        whole += f"AND   job_id   = {j}::bigint"
        return whole, f"WHERE job_id = {j}::bigint AND {q}::text || {p}::smallint || {r}::timestamptz IS NOT NULL"

    statements.DESTROY_JOB = _rewritten(statements.DESTROY_JOB, *loose(1))
    statements.SET_ERROR = _rewritten(statements.SET_ERROR, *loose(3))


def _last_error() -> None:
    """Never cuts the message (Ruby cuts '<Class>: <message>' to 500 characters)."""
    que.core.errors.MESSAGE_LIMIT = 1_000_000  # type: ignore[misc]


def _delete_first() -> None:
    """Deletes each job as it claims it, before the handler runs: at most once, not at
    least once (a worker that dies mid-job loses the job)."""
    original_claim = protocol.claim

    def claim(session: Any, *args: Any, **kwargs: Any) -> Any:
        claimed = yield from original_claim(session, *args, **kwargs)
        for locked in claimed:
            yield from protocol.delete(session, locked)
        return claimed

    protocol.claim = claim


def _rewrite_args_on_error() -> None:
    """Writes the arguments back when it records a failure, re-encoded by PostgreSQL's jsonb
    (keys sorted, spaces added, numbers normalised), as a port that round-trips the whole
    row through its own model would."""
    statements.SET_ERROR = _rewritten(
        statements.SET_ERROR, "SET error_count", "SET args = args::jsonb::json, error_count"
    )


def _retry_from_run_at() -> None:
    """Computes the retry time from the job's stored run_at instead of now()."""
    statements.SET_ERROR = _rewritten(statements.SET_ERROR, "run_at      = now() +", "run_at      = run_at +")


# The file whose absence makes the hang-once break hang (it creates it first).
HANG_ONCE_FILE = "QUE_BROKEN_HANG_ONCE"


def _hang_once() -> None:
    """Hangs once (one per file named by $QUE_BROKEN_HANG_ONCE) in the first job it holds
    that has failed before, as a port stuck on a lock or a network call would: the harness
    must kill it at the deadline and give the next cell a fresh one. The smoke test's
    jobs have never failed when they are worked, so the hang lands in a cell."""
    import os
    import time

    marker = os.environ[HANG_ONCE_FILE]
    original_claim = protocol.claim

    def claim(session: Any, *args: Any, **kwargs: Any) -> Any:
        held = yield from original_claim(session, *args, **kwargs)
        if any(locked.job.error_count > 0 for locked in held) and not os.path.exists(marker):
            open(marker, "w").close()
            time.sleep(3600)
        return held

    protocol.claim = claim


BREAKS: dict[str, Callable[[], None]] = {
    "backoff": _backoff,
    "ordering": _ordering,
    "lock-key": _lock_key,
    "never-unlock": _never_unlock,
    "unlock-elsewhere": _unlock_elsewhere,
    "unlock-before-finish": _unlock_before_finish,
    "client-clock": _client_clock,
    "local-wall-time": _local_wall_time,
    "job-id-key": _job_id_key,
    "last-error": _last_error,
    "delete-first": _delete_first,
    "rewrite-args-on-error": _rewrite_args_on_error,
    "retry-from-run-at": _retry_from_run_at,
    "hang-once": _hang_once,
    # applied by the testee itself (testees.python.threads)
    "arguments": lambda: None,
    "pool-size": lambda: None,
}


def apply(rule: str) -> None:
    if rule not in BREAKS:
        raise SystemExit(f"--break must be one of {', '.join(BREAKS)}, got {rule!r}")
    BREAKS[rule]()
