"""A locker's books: which jobs its session holds, where each one is, and what its next round
trip must do. No dialect, no I/O: the locker of either I/O style keeps these books, and its
dialect turns a plan into statements (que.dialects, `round_trip`).

A locker pool has one session, the locker's, that locks jobs and holds their advisory locks
while the pool's workers run them, as Ruby Que 1.x/2.x's Locker does (and que's Que 0.x
locker, with Que 0.14's statements). A job is, in order:

    ready (locked, checked, waiting for a worker)
      -> running (a worker took it)
      -> finished (its outcome known)
      -> gone: a round trip writes the outcome (the next one, or, with a fixed buffer, the
         one in flight: `express`), and only once it committed releases the lock.

Every round trip follows one shape, whatever the dialect:

    plan()   -> a Round: the outcomes to write, the jobs to release untouched, the places to
                fill (by priority threshold), the announced jobs to lock, the ready jobs to
                check again, and what the claim must skip
    the dialect's round trip, one pipelined exchange with the server
    settle() -> the books take in what happened

The job buffer keeps Ruby Que 2's rules (lib/que/job_buffer.rb): ready jobs are sorted by
(priority, run_at, id); when jobs come in, the buffer hands them to the waiting workers, the
least demanding worker first and each only the buffer's first job while its priority is at
most the worker's (push: priority_queues.reverse_each, _shift_job), so a worker may wait
while a job it could run sits behind one it cannot; a worker that asks takes a job handed
to it, else the first one if allowed (shift); the buffer holds at most `depth` jobs beyond
the ones handed out, and a job that does not fit is released (the least important first).
Its `depth` is `buffer`, or for a dialect that lets it grow (Que 0.x), up to `growth` times
that while workers finish jobs faster than round trips run.

What the books promise:
- a job this pool is running is never locked again by it, not even after its session was
  lost (the claim skips it, and the next session takes its lock again first);
- an outcome is written only while its job's lock is held: after a lost session, only once
  the lock is taken again (else another worker has the job, and its run writes the outcome);
- a ready job is handed to a worker only if a check that it is still there (and unchanged)
  ran at most `fresh_for` seconds before the worker asked for a job: one deleted or
  rescheduled while it waited in the buffer is released, not run;
- with a fixed buffer (Que 1.x/2.x), at most two jobs per worker are at risk of running
  again if the session is lost (`at_risk`: running, or their outcomes not known written).
"""

import bisect
from collections.abc import Iterable, Sequence

from que.core.outcome import Outcome
from que.engine.rounds import Announced, Finished, Held, Round, Settled, threshold


class Books:
    """The books of one locker: `priorities` has one entry per worker (None: any job)."""

    def __init__(
        self, priorities: Sequence[int | None], buffer: int, *, growth: int = 1, fresh_for: float = 0.05
    ) -> None:
        if not priorities:
            raise ValueError("a locker needs at least one worker")
        self.priorities = list(priorities)
        self.buffer = buffer
        self.growth = growth
        self.fresh_for = fresh_for
        self.depth = buffer
        self.ready: list[Held] = []
        self.idle: dict[int | None, int] = {}
        for priority in self.priorities:
            self.idle[priority] = self.idle.get(priority, 0) + 1
        self.running: dict[int, Held] = {}
        # Jobs the buffer handed to a waiting worker of that priority (Ruby's PriorityQueue
        # items): out of `ready`, not yet taken.
        self.handed: dict[int | None, list[Held]] = {priority: [] for priority in self.idle}
        self.finished: list[Finished] = []
        # Outcomes the round trip in flight carries (its plan's, and the ones sent on it
        # since, `express`), not known to be written yet.
        self.in_flight = 0
        self.expressed: list[Finished] = []
        self.abandoned: list[Held] = []
        self.orphans: list[Finished] = []
        # The ids whose locks the current session holds.
        self.owned: set[int] = set()
        self.announced: list[Announced] = []
        # A worker found a job it may take, but not checked recently enough.
        self.stale_wanted = False
        self.rounds = 0

    # -- the workers' side ----------------------------------------------------------------

    def take(self, priority: int | None, asked: float) -> Held | None:
        """The first ready job a worker of `priority` may run, if it was checked at most
        `fresh_for` seconds before `asked` (when the worker started asking); that worker is
        busy then. None when there is none, or it needs a check first (`stale_wanted`)."""
        handed = self.handed[priority]
        limit = threshold(priority)
        if not handed and (not self.ready or self.ready[0].job.priority > limit):
            return None
        # A lost session makes run again the jobs running and those whose outcomes are not
        # written yet. With a fixed buffer (Que 1.x/2.x) a worker takes no job that would
        # put more than two jobs per worker at risk (Ruby's worker destroys its job before
        # it takes another: one running, one being written). A buffer that grows (Que 0.x)
        # grows from workers that run ahead.
        if self.growth == 1 and self.at_risk() >= 2 * len(self.priorities):
            return None
        held = handed[0] if handed else self.ready[0]
        if held.checked < asked - self.fresh_for:
            self.stale_wanted = True
            return None
        (handed if handed else self.ready).pop(0)
        self.idle[priority] -= 1
        self.running[held.job_id] = held
        return held

    def done(self, held: Held, priority: int | None, outcome: Outcome) -> None:
        """A worker's outcome for the job it ran; its place is free again."""
        self.idle[priority] += 1
        self.running.pop(held.job_id, None)
        finished = Finished(held, outcome)
        if held.job_id in self.owned:
            self.finished.append(finished)
        else:
            self.orphans.append(finished)

    def interrupted(self, held: Held, priority: int | None) -> None:
        """A handler raised KeyboardInterrupt or SystemExit: leave the row, release the job."""
        self.idle[priority] += 1
        self.running.pop(held.job_id, None)
        if held.job_id in self.owned:
            self.abandoned.append(held)

    def busy_workers(self) -> int:
        return len(self.running)

    def at_risk(self) -> int:
        """The jobs a lost session would make run again: running, or their outcomes not
        known to be written."""
        return len(self.running) + len(self.finished) + len(self.orphans) + self.in_flight

    def express(self) -> list[Finished]:
        """The outcomes that came in since the round trip in flight was planned, to be sent
        on it now (their jobs are this session's: orphans wait for their relock). They stay
        at risk until that round trip is settled."""
        sent, self.finished = self.finished, []
        self.expressed += sent
        self.in_flight += len(sent)
        return sent

    # -- notifications ----------------------------------------------------------------------

    def announce(self, jobs: Iterable[Announced]) -> None:
        self.announced.extend(jobs)

    def _accept(self, announced: list[Announced]) -> list[int]:
        """Ruby's JobBuffer#accept?: the announced jobs (sorted) that fit in the buffer's free
        space, or that would push out a less important ready job."""
        announced = sorted(announced, key=Announced.sort_key)
        space = self.depth - len(self.ready)
        if space >= len(announced):
            return [a.job_id for a in announced]
        lose = len(self.ready) - 1
        accepted = announced[: max(space, 0)]
        for candidate in announced[max(space, 0) :]:
            if lose >= 0 and candidate.sort_key() < self.ready[lose].sort_key():
                accepted.append(candidate)
                lose -= 1
            else:
                break
        return [a.job_id for a in accepted]

    # -- the locker's side -----------------------------------------------------------------

    def _hand_out(self) -> dict[int | None, int]:
        """Ruby's JobBuffer#push handing jobs to waiting workers: by worker priority, the
        least demanding first, each waiting worker gets the buffer's first job while that
        job's priority is at most the worker's. A worker is waiting when it is idle and no
        job was handed to it yet. Returns how many ready jobs (from the first) each
        priority's waiting workers would get."""
        given: dict[int | None, int] = {}
        head = 0
        for priority in sorted(self.idle, key=threshold, reverse=True):
            waiting = self.idle[priority] - len(self.handed[priority])
            given[priority] = 0
            while waiting > 0 and head < len(self.ready) and self.ready[head].job.priority <= threshold(priority):
                given[priority] += 1
                head += 1
                waiting -= 1
        return given

    def _waiting(self) -> tuple[dict[int, int], list[Held]]:
        """The waiting workers' places by threshold once the buffer handed them what it would
        (_hand_out), and the ready jobs left: the ones the buffer holds."""
        given = self._hand_out()
        places: dict[int, int] = {}
        for priority, count in self.idle.items():
            waiting = count - len(self.handed[priority]) - given[priority]
            if waiting > 0:
                places[threshold(priority)] = places.get(threshold(priority), 0) + waiting
        return places, self.ready[sum(given.values()) :]

    def wanted(self, stopping: bool) -> dict[int, int]:
        """Ruby's JobBuffer#available_priorities: the idle places by threshold, with the
        buffer's free space added to the most permissive threshold."""
        if stopping:
            return {}
        wanted, waiting = self._waiting()
        top = max(threshold(p) for p in self.priorities)
        # As Ruby's, a threshold is asked for only with a count above zero. (A buffer that
        # shrank below what it holds, Que 0.x's, has no space rather than less than none.)
        count = wanted.get(top, 0) + max(0, self.depth - len(waiting))
        if count > 0:
            wanted[top] = count
        return wanted

    def plan(self, now: float, stopping: bool, due: bool) -> Round:
        """Take out of the books what the next round trip does. Outcomes are written as soon
        as they are known; places are filled when a poll is `due`, or when the round trip
        runs anyway (the claim then costs no extra round trip). At a stop, the ready jobs no
        worker started go back untouched."""
        planned = Round(started=now)
        planned.finished, self.finished = self.finished, []
        self.expressed = []
        if self.growth > 1:
            self.depth = min(self.growth * self.buffer, max(self.buffer, 2 * len(planned.finished)))
        planned.abandoned, self.abandoned = self.abandoned, []
        # An orphan whose lock this session took again meanwhile (a relock of a running job
        # that ended before the relock was booked) is written as a plain outcome.
        for orphan in self.orphans:
            if orphan.held.job_id in self.owned:
                planned.finished.append(orphan)
            else:
                planned.orphans.append(orphan)
        self.orphans = []
        planned.relock = [held for held in self.running.values() if held.job_id not in self.owned]
        if stopping:
            planned.abandoned += self.waiting_jobs()
            self.clear_waiting()
            self.announced = []
        stale = [held for held in self.waiting_jobs() if held.checked < now - self.fresh_for]
        if stale and (self.stale_wanted or planned.finished or due):
            planned.recheck = stale
            self.stale_wanted = False
        # The jobs this session holds: never claimed again (an advisory lock is re-entrant
        # within a session, so a poll or a notification naming one would take it twice).
        holding = (
            self.owned
            | set(self.running)
            | {o.held.job_id for o in planned.orphans}
            | {h.job_id for h in planned.relock}
        )
        if self.announced:
            planned.announced = self._accept([a for a in self.announced if a.job_id not in holding])
            self.announced = []
        if due or planned.finished or planned.orphans or planned.recheck:
            planned.wanted = self.wanted(stopping)
            # The announced jobs take places first; the claim fills the rest.
            for _ in planned.announced:
                if not planned.wanted:
                    break
                top = max(planned.wanted)
                planned.wanted[top] -= 1
                if planned.wanted[top] == 0:
                    del planned.wanted[top]
        planned.skip = holding | set(planned.announced)
        self.in_flight = len(planned.finished) + len(planned.orphans)
        return planned

    def settle(self, planned: Round, settled: Settled, stopping: bool) -> bool:
        """Book a round trip's results; whether the places wanted were all filled (else the
        queue looked drained, and the next poll can wait)."""
        self.rounds += 1
        self.in_flight, self.expressed = 0, []
        for finished in settled.written:
            self.owned.discard(finished.held.job_id)
        for held in planned.abandoned:
            self.owned.discard(held.job_id)
        self.owned.update(settled.relocked)
        # Rechecked jobs that are gone (or changed) were released by the round trip.
        for held in planned.recheck:
            if held.job_id in settled.still_there:
                held.checked = planned.started
            else:
                for waiting in (self.ready, *self.handed.values()):
                    if held in waiting:
                        waiting.remove(held)
                        self.owned.discard(held.job_id)
        for held in settled.locked:
            self.owned.add(held.job_id)
        if stopping:
            self.abandoned += settled.locked
        else:
            self._push(settled.locked)
        return len(settled.locked) >= planned.want

    def _push(self, jobs: Sequence[Held]) -> None:
        """Ruby's JobBuffer#push: add, keep sorted, and give back (release) what the buffer
        cannot hold beyond the jobs idle workers will take, least important first."""
        for held in jobs:
            bisect.insort(self.ready, held, key=Held.sort_key)
        given = self._hand_out()
        for priority in sorted(self.idle, key=threshold, reverse=True):
            self.handed[priority] += self.ready[: given[priority]]
            del self.ready[: given[priority]]
        if self.growth > 1:
            # A buffer that grows and shrinks with the load (Que 0.x) keeps what it claimed:
            # a job released here could be passed over by the claim of the same round trip,
            # which skips it, and run after a less important one.
            return
        for held in reversed(self.ready[self.depth :]):
            self.ready.remove(held)
            self.abandoned.append(held)

    def unsent(self, planned: Round) -> None:
        """A round trip failed: its outcomes may or may not be written. They become orphans,
        written once their locks can be taken again (a write that did commit matches no row
        the second time). Its abandoned jobs are released with the session."""
        self.orphans += planned.finished + planned.orphans + self.expressed
        self.in_flight, self.expressed = 0, []

    def session_lost(self) -> None:
        """The locker's session died, and every lock with it: ready and announced jobs are no
        longer this pool's (another worker may take them); running jobs are relocked by the
        next session, and finished ones become orphans."""
        self.clear_waiting()
        self.abandoned = []
        self.announced = []
        self.orphans += self.finished
        self.finished = []
        self.owned = set()

    def give_up(self) -> list[int]:
        """Forget every outcome not written and every job still running (a stop while the
        server cannot be reached); their ids."""
        lost = [f.held.job_id for f in (*self.finished, *self.orphans)] + list(self.running)
        self.finished, self.orphans, self.abandoned = [], [], []
        self.clear_waiting()
        self.running.clear()
        return lost

    def settled(self, stopping: bool) -> bool:
        """Stopping, with nothing running and nothing left to write or release."""
        return stopping and not (self.running or self.finished or self.abandoned or self.orphans)

    def pending(self) -> bool:
        """Whether the next round trip has work that must not wait for a poll: outcomes to
        write, jobs to release (ones a push left beyond the buffer, say), announced jobs."""
        return bool(self.finished or self.abandoned or self.orphans or self.announced)

    def busy(self) -> bool:
        return bool(self.waiting_jobs() or self.running or self.finished or self.abandoned or self.orphans)

    def waiting_jobs(self) -> list[Held]:
        """The jobs held and not started: the buffer's and those handed to a worker."""
        handed = [held for jobs in self.handed.values() for held in jobs]
        return sorted([*handed, *self.ready], key=Held.sort_key)

    def clear_waiting(self) -> None:
        """Forget the jobs held and not started (their locks are released or gone)."""
        self.ready = []
        for handed in self.handed.values():
            handed.clear()
