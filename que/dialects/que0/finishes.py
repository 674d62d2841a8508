"""How a Que 0.x job ends, before any I/O: Ruby's rule for a failure (error_count + 1,
count**4 + 3 seconds, que-interop's opt-in retry limit), the Finish a worker or a locker
hands to the round trips of que.dialects.que0.protocol, and the statement that writes it
(destroy_job, set_error, or the retry limit's)."""

from dataclasses import dataclass

from que.core.job import Job
from que.core.outcome import Outcome
from que.core.retry import retry_delay
from que.dialects.que0 import statements as st
from que.engine import wire as _wire
from que.engine.rounds import Finished, Held
from que.engine.session import Call, Session

# A job this session holds, with its full key (queue, priority, run_at, job_id) as the server
# wrote it: the engine's Held.
Locked = Held


def failure(job: Job, message: str, max_retries: int | None = None) -> Outcome:
    """Ruby's rule: the count after this failure is error_count + 1, the delay count**4 + 3
    seconds; past `max_retries` retries (que-interop's opt-in limit) the job is set aside."""
    count = job.error_count + 1
    dead = max_retries is not None and count > max_retries
    return Outcome(Outcome.DEAD if dead else Outcome.RETRY, message, delay=retry_delay(count))


@dataclass(frozen=True)
class Finish:
    """How a locked job ends: deleted (no message), or failed with `message`: retried after
    `delay` seconds, or set aside for good (`dead`) when its retries ran out. `max_retries`
    is the limit that applies if a delete fails and becomes the job's failure."""

    locked: Locked
    message: str | None = None
    delay: int = 0
    dead: bool = False
    max_retries: int | None = None

    @classmethod
    def of(cls, finished: Finished, max_retries: int | None = None) -> "Finish":
        """The finish of a locker's outcome (que.engine.books)."""
        outcome = finished.outcome
        if outcome.kind == Outcome.DESTROY:
            return cls(finished.held, max_retries=max_retries)
        if outcome.kind not in (Outcome.RETRY, Outcome.DEAD) or outcome.message is None:
            raise ValueError(f"a Que 0.x job cannot end as {outcome.kind!r}: its table has no column for it")
        dead = outcome.kind == Outcome.DEAD
        return cls(finished.held, outcome.message, int(outcome.delay), dead, max_retries)

    @classmethod
    def failure(cls, locked: Locked, message: str, max_retries: int | None = None) -> "Finish":
        """The finish of a job that failed with `message` (see failure())."""
        return cls.of(Finished(locked, failure(locked.job, message, max_retries)), max_retries)


def finish_call(session: Session, finish: Finish) -> Call:
    """The statement that finishes a job: destroy_job, set_error, or the retry limit's."""
    locked = finish.locked
    if finish.message is None:
        return (st.DESTROY_JOB, locked.key)
    message = session.message(finish.message)
    if finish.dead:
        return (st.SET_ERROR_DEAD, (message, *locked.key))
    return (st.SET_ERROR, (_wire.int8(finish.delay), message, *locked.key))
