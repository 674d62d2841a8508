"""A locker's books: which jobs its session holds, and where each one is.

A locker pool (que.WorkerPool, que.aio.AsyncWorkerPool) has one session, the locker's,
that claims jobs and holds their advisory locks while the pool's workers run them. Ruby and
Go workers see the same locks as ever: one `pg_try_advisory_lock(job_id)` per job, taken in
Que's order. Both pools keep these books the same way; only their waiting differs.

A job is, in order: ready (claimed, waiting for a worker), running, finished (its outcome
known), then gone: the locker's next round trip commits its delete or error and, after
that, releases its lock (que.dialects.que0.protocol.claim). Jobs claimed by an earlier session of the
locker, which died with their locks, are orphans: their outcome is written only if their
lock can be taken again (que.dialects.que0.protocol.retake), since another worker may run them by then.
"""

from collections import deque
from dataclasses import dataclass, field

from que.dialects.que0 import protocol as _protocol
from que.dialects.que0.protocol import Finish, Locked
from que.engine.session import PQGen, Session


@dataclass
class Round:
    """What one round trip of the locker does: write the outcomes `finished` (and those of
    the `orphans` whose locks it can take again), release the `abandoned` jobs untouched,
    and claim up to `want` jobs, skipping the ones in `skip`."""

    finished: list[Finish]
    abandoned: list[Locked]
    orphans: list[Finish]
    want: int
    skip: set[int]

    def idle(self) -> bool:
        return not (self.finished or self.abandoned or self.orphans or self.want)


def round_trip(session: Session, queue: str, planned: Round) -> PQGen[tuple[list[Locked], list[Finish]]]:
    """Run a Round on the locker's session: the jobs claimed, and the outcomes written."""
    finished = list(planned.finished)
    if planned.orphans:
        finished += yield from _protocol.retake(session, planned.orphans)
    if not (finished or planned.abandoned or planned.want):
        return [], finished
    claimed = yield from _protocol.claim(
        session, queue, planned.want, done=finished, skip=planned.skip, untouched=planned.abandoned
    )
    return claimed, finished


# How far the buffer may grow, as a multiple of the one asked for.
GROWTH = 4


@dataclass
class Ledger:
    """`buffer` is the floor of the jobs claimed beyond one per idle worker. While workers
    finish jobs faster than the locker's round trips, the buffer grows up to GROWTH times
    that: twice the jobs the workers finished since the last round trip. A claim's cost is
    mostly fixed (one statement, one walk), so short jobs then cost fewer claims each, while
    long jobs keep only `buffer` of them locked and idle, away from other workers."""

    workers: int
    buffer: int
    # The buffer the next claim uses, between `buffer` and GROWTH * `buffer`.
    depth: int = -1
    ready: deque[Locked] = field(default_factory=deque)
    running: dict[int, Locked] = field(default_factory=dict)
    finished: list[Finish] = field(default_factory=list)
    # Jobs to release untouched (a handler interrupted, or ready jobs at shutdown).
    abandoned: list[Locked] = field(default_factory=list)
    # Outcomes of jobs whose lock died with an earlier session of the locker.
    orphans: list[Finish] = field(default_factory=list)
    # Ids of the jobs claimed by the current session and not yet released.
    owned: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.depth < 0:
            self.depth = self.buffer

    def want(self, stopping: bool) -> int:
        """How many jobs the next claim may take: one per idle worker, plus the buffer.
        Finished jobs do not count: the same round trip releases them."""
        if stopping:
            return 0
        return max(0, self.workers + self.depth - len(self.ready) - len(self.running))

    def take(self) -> Locked | None:
        """The next ready job for a worker, now running."""
        if not self.ready:
            return None
        locked = self.ready.popleft()
        self.running[locked.job.job_id] = locked
        return locked

    def done(self, finish: Finish) -> None:
        """A worker's outcome for its running job."""
        job_id = finish.locked.job.job_id
        self.running.pop(job_id, None)
        if job_id in self.owned:
            self.finished.append(finish)
        else:
            self.orphans.append(finish)

    def interrupted(self, locked: Locked) -> None:
        """A handler raised KeyboardInterrupt or SystemExit: leave the row, release the job."""
        job_id = locked.job.job_id
        self.running.pop(job_id, None)
        if job_id in self.owned:
            self.abandoned.append(locked)

    def plan(self, stopping: bool, due: bool) -> Round:
        """Take out of the books what the next round trip does. Outcomes are written as
        soon as they are known; jobs are claimed when a poll is `due`, or when outcomes
        are written anyway (the claim costs no extra round trip then). At shutdown, the
        ready jobs no worker started are released untouched. An orphan whose job this
        session claimed again is dropped: the new claim runs it."""
        finished, self.finished = self.finished, []
        self.depth = min(GROWTH * self.buffer, max(self.buffer, 2 * len(finished)))
        abandoned, self.abandoned = self.abandoned, []
        orphans = [o for o in self.orphans if o.locked.job.job_id not in self.owned]
        self.orphans = []
        if stopping:
            abandoned += self.ready
            self.ready.clear()
        want = self.want(stopping) if (due or finished or orphans) else 0
        return Round(finished, abandoned, orphans, want, set(self.owned))

    def settle(self, planned: Round, claimed: list[Locked], written: list[Finish], stopping: bool) -> bool:
        """Book a Round's results; whether the queue looked drained (fewer jobs than wanted)."""
        for job_id in [f.locked.job.job_id for f in written] + [locked.job.job_id for locked in planned.abandoned]:
            self.owned.discard(job_id)
        self.owned.update(locked.job.job_id for locked in claimed)
        if stopping:  # stopped meanwhile: the new jobs go back at once
            self.abandoned += claimed
        else:
            self.ready.extend(claimed)
        return bool(planned.want) and len(claimed) < planned.want

    def unsent(self, planned: Round) -> None:
        """A Round's round trip failed: its outcomes may not be written. They become orphans,
        written once their locks can be taken again (a write that did commit matches no row
        the second time)."""
        self.orphans += planned.finished + planned.orphans

    def session_lost(self) -> None:
        """The locker's session died, and every lock with it: ready jobs are no longer
        this pool's (another worker may take them); running and finished ones become orphans."""
        self.ready.clear()
        self.abandoned.clear()
        self.orphans += self.finished
        self.finished = []
        self.owned.clear()

    def skip(self) -> set[int]:
        """The jobs the claim must skip: every one the session holds (its locks are re-entrant)."""
        return set(self.owned)

    def busy(self) -> bool:
        """Whether anything is still to run or to be written."""
        return bool(self.ready or self.running or self.finished or self.abandoned or self.orphans)
