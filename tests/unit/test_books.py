"""The locker's books (que.engine.books), without a database: what each round trip is planned
to do, and how its results are booked. The books are the same for every dialect and both
I/O styles; the dialects' round trips are tested against a real PostgreSQL elsewhere."""

from datetime import UTC, datetime

import pytest

from que.core.job import Job
from que.core.outcome import Outcome
from que.engine import wire
from que.engine.books import Books
from que.engine.rounds import ANY_PRIORITY, Announced, Finished, Held, Settled

NOW = 1000.0


def job(job_id: int, priority: int = 100, run_at_us: int = 0) -> Job:
    return Job(
        queue="",
        priority=priority,
        run_at=datetime(2026, 1, 1, tzinfo=UTC),
        job_id=job_id,
        job_class="J",
        args_json="[]",
        error_count=0,
        run_at_us=run_at_us,
    )


def held(job_id: int, priority: int = 100, checked: float = NOW) -> Held:
    return Held(job(job_id, priority, job_id), (wire.int8(job_id),), checked)


def locked(books: Books, *jobs: Held, started: float = NOW) -> bool:
    """Book a round trip that locked `jobs` (and wrote nothing else)."""
    planned = books.plan(started, stopping=False, due=True)
    return books.settle(planned, Settled(locked=list(jobs)), stopping=False)


def test_a_first_plan_fills_every_idle_place_and_the_buffer() -> None:
    books = Books([None, None], buffer=3)
    planned = books.plan(NOW, stopping=False, due=True)
    assert planned.wanted == {ANY_PRIORITY: 5}
    assert planned.skip == set()


def test_nothing_is_planned_when_no_poll_is_due_and_nothing_finished() -> None:
    books = Books([None], buffer=2)
    assert books.plan(NOW, stopping=False, due=False).idle()


def test_a_worker_takes_the_most_important_job_first() -> None:
    books = Books([None], buffer=8)
    locked(books, held(3, priority=50), held(1, priority=100), held(2, priority=10))
    taken = books.take(None, NOW)
    assert taken is not None and taken.job_id == 2


def test_a_worker_with_a_priority_takes_only_the_first_job_and_only_if_allowed() -> None:
    """Ruby's JobBuffer#shift looks at the first job only: a priority-10 worker takes nothing
    while a priority-50 job heads the buffer."""
    books = Books([10, None], buffer=8)
    locked(books, held(1, priority=50), held(2, priority=60))
    assert books.take(10, NOW) is None
    taken = books.take(None, NOW)
    assert taken is not None and taken.job_id == 1


def test_the_buffer_holds_at_most_its_size_beyond_what_idle_workers_take() -> None:
    """Ruby's JobBuffer#push: the least important jobs beyond the buffer are given back."""
    books = Books([10], buffer=2)
    jobs = [held(i, priority=100) for i in range(1, 6)]
    locked(books, *jobs)
    assert [h.job_id for h in books.ready] == [1, 2]
    assert [h.job_id for h in books.abandoned] == [5, 4, 3]


def test_places_a_worker_cannot_fill_are_not_wanted_again() -> None:
    """A priority-10 worker with priority-100 jobs waiting: no more than the buffer is held
    (it was unbounded before: issue 29, fault 2)."""
    books = Books([10], buffer=2)
    locked(books, held(1), held(2))
    assert books.wanted(stopping=False) == {10: 1}


def test_wanted_keeps_each_threshold_apart() -> None:
    books = Books([10, 30, None, None], buffer=8)
    assert books.wanted(stopping=False) == {10: 1, 30: 1, ANY_PRIORITY: 10}
    locked(books, held(1, priority=5))
    # The poll gave the priority-5 job the priority-10 place, but the buffer hands it to the
    # least demanding waiting worker (Ruby's push: priority_queues.reverse_each), so the
    # workers of priority 10 and 30 still wait, and one of any priority less.
    assert books.wanted(stopping=False) == {10: 1, 30: 1, ANY_PRIORITY: 9}


def test_the_buffer_hands_jobs_to_waiting_workers_least_demanding_first_from_its_head() -> None:
    """Ruby's JobBuffer#push over workers of priority 10, 30, 50 and any: the any worker gets
    the first job (5), the 50 the next (20); the 30 and the 10 find a 40 at the head and
    wait, and the buffer keeps eight of the rest, releasing the two least important."""
    books = Books([10, 30, 50, None], buffer=8)
    jobs = [held(1, priority=5), held(2, priority=20), held(3, priority=40)]
    jobs += [held(i, priority=60) for i in range(4, 13)]
    locked(books, *jobs)
    assert [h.job_id for h in books.abandoned] == [12, 11]
    assert [h.job_id for h in books.ready] == list(range(3, 11))
    assert books.take(10, NOW) is None
    assert books.take(30, NOW) is None
    assert [books.take(50, NOW), books.take(None, NOW)] == [jobs[1], jobs[0]]
    assert books.wanted(stopping=False) == {10: 1, 30: 1}
    # The any worker frees itself: it takes the buffer's head, the 40, itself (shift_job).
    books.done(jobs[0], None, Outcome(Outcome.DESTROY))
    assert books.take(None, NOW) is jobs[2]
    assert books.take(30, NOW) is None


def test_jobs_handed_to_workers_go_back_untouched_at_a_stop() -> None:
    books = Books([10, None], buffer=8)
    locked(books, held(1, priority=5), held(2, priority=50))
    planned = books.plan(NOW, stopping=True, due=False)
    assert sorted(h.job_id for h in planned.abandoned) == [1, 2]
    assert books.take(None, NOW) is None and books.take(10, NOW) is None


def test_a_finished_job_is_written_and_released_by_the_next_round_trip() -> None:
    books = Books([None], buffer=0)
    locked(books, held(1))
    taken = books.take(None, NOW)
    assert taken is not None
    books.done(taken, None, Outcome(Outcome.DESTROY))
    planned = books.plan(NOW + 1, stopping=False, due=False)
    assert [f.held.job_id for f in planned.finished] == [1]
    assert planned.wanted == {ANY_PRIORITY: 1}  # the claim rides along
    books.settle(planned, Settled(written=planned.finished), stopping=False)
    assert books.owned == set() and not books.busy()


def test_a_job_this_pool_runs_is_never_claimed_again_even_after_a_lost_session() -> None:
    books = Books([None, None], buffer=0)
    locked(books, held(1))
    taken = books.take(None, NOW)
    assert taken is not None
    books.session_lost()
    planned = books.plan(NOW + 1, stopping=False, due=True)
    assert 1 in planned.skip
    assert [h.job_id for h in planned.relock] == [1]
    # Taken again by the new session: its outcome is then written as usual.
    books.settle(planned, Settled(relocked={1}), stopping=False)
    books.done(taken, None, Outcome(Outcome.DESTROY))
    assert [f.held.job_id for f in books.plan(NOW + 2, False, False).finished] == [1]


def test_an_outcome_whose_lock_died_is_an_orphan_written_only_if_retaken() -> None:
    books = Books([None], buffer=0)
    locked(books, held(1))
    taken = books.take(None, NOW)
    assert taken is not None
    books.session_lost()
    books.done(taken, None, Outcome(Outcome.DESTROY))
    planned = books.plan(NOW + 1, stopping=False, due=False)
    assert planned.finished == [] and [o.held.job_id for o in planned.orphans] == [1]


def test_a_job_checked_too_long_before_a_worker_asked_is_checked_again_first() -> None:
    books = Books([None], buffer=4, fresh_for=0.05)
    locked(books, held(1), held(2), started=NOW)
    asked = NOW + 10
    assert books.take(None, asked) is None
    assert books.stale_wanted
    planned = books.plan(asked, stopping=False, due=False)
    assert [h.job_id for h in planned.recheck] == [1, 2]
    # Job 1 was deleted meanwhile: released by the check, never handed out.
    books.settle(planned, Settled(still_there={2}), stopping=False)
    taken = books.take(None, asked)
    assert taken is not None and taken.job_id == 2
    assert 1 not in books.owned


def test_a_stop_gives_back_the_ready_jobs_and_claims_nothing() -> None:
    books = Books([None], buffer=4)
    locked(books, held(1), held(2))
    planned = books.plan(NOW, stopping=True, due=True)
    assert [h.job_id for h in planned.abandoned] == [1, 2]
    assert planned.wanted == {}
    books.settle(planned, Settled(), stopping=True)
    assert books.settled(stopping=True)


def test_announced_jobs_are_accepted_as_rubys_job_buffer_accepts_them() -> None:
    """JobBuffer#accept?: what fits in the free space, then only what would push out a less
    important ready job."""
    books = Books([10], buffer=2)
    locked(books, held(1, priority=100))
    # Ready: job 1 (priority 100, run_at 1). Free space: 1. Job 8 fits; job 6 sorts before
    # job 1, so it would push it out: accepted; job 9 sorts after it: refused.
    books.announce([Announced(100, 9, 9), Announced(50, 0, 8), Announced(100, 0, 6)])
    planned = books.plan(NOW, stopping=False, due=False)
    assert planned.announced == [8, 6]


def test_a_0x_buffer_grows_while_jobs_end_faster_than_round_trips() -> None:
    books = Books([None], buffer=2, growth=4)
    for index in range(1, 7):
        books.finished.append(Finished(held(index), Outcome(Outcome.DESTROY)))
    books.owned.update(range(1, 7))
    planned = books.plan(NOW, stopping=False, due=False)
    assert books.depth == 8
    assert planned.wanted == {ANY_PRIORITY: 9}


def test_books_need_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        Books([], buffer=1)


def test_a_job_that_ends_while_its_lock_is_taken_again_is_written_not_forgotten() -> None:
    """A lost session; the next round trip takes the running job's lock again, and the job
    ends before that round trip is booked: its outcome is an orphan of a job the session
    owns again, and is written by the next round trip (it was dropped before, leaving the
    row and its lock behind)."""
    books = Books([None], buffer=0)
    locked(books, held(1))
    taken = books.take(None, NOW)
    assert taken is not None
    books.session_lost()
    relocking = books.plan(NOW + 1, stopping=False, due=False)
    assert [h.job_id for h in relocking.relock] == [1]
    books.done(taken, None, Outcome(Outcome.DESTROY))  # ends while the relock is in flight
    books.settle(relocking, Settled(relocked={1}), stopping=False)
    planned = books.plan(NOW + 2, stopping=False, due=False)
    assert [f.held.job_id for f in planned.finished] == [1]


def test_orphans_and_relocked_jobs_are_skipped_by_the_claim_beside_them() -> None:
    books = Books([None, None], buffer=0)
    locked(books, held(1), held(2))
    first, second = books.take(None, NOW), books.take(None, NOW)
    assert first is not None and second is not None
    books.session_lost()
    books.done(first, None, Outcome(Outcome.DESTROY))
    planned = books.plan(NOW + 1, stopping=False, due=True)
    assert {1, 2} <= planned.skip, "a job taken again first must not be claimed (and locked twice) beside it"


def test_a_notification_naming_a_job_this_session_holds_claims_nothing() -> None:
    """An advisory lock is re-entrant within a session: a job named again while it runs or
    waits in the buffer must not be locked (and started) a second time."""
    books = Books([None, None], buffer=2)
    locked(books, held(1), held(2))
    running = books.take(None, NOW)
    assert running is not None and running.job_id == 1
    books.announce([Announced(100, 1, 1), Announced(100, 2, 2), Announced(100, 3, 3)])
    planned = books.plan(NOW, stopping=False, due=False)
    assert planned.announced == [3]
    assert planned.skip == {1, 2, 3}


def test_a_fixed_buffer_puts_at_most_two_jobs_per_worker_at_risk() -> None:
    """Que 1.x/2.x: running jobs, outcomes not sent and outcomes in flight together stay
    within two per worker, as Ruby's worker (which destroys its job before it takes
    another) has at most the job running and the one being destroyed."""
    books = Books([None], buffer=8)
    locked(books, *(held(i) for i in range(1, 6)))
    first = books.take(None, NOW)
    assert first is not None
    books.done(first, None, Outcome(Outcome.DESTROY))
    second = books.take(None, NOW)  # one outcome unsent, one job running: two at risk
    assert second is not None
    books.done(second, None, Outcome(Outcome.DESTROY))
    assert books.take(None, NOW) is None
    planned = books.plan(NOW, stopping=False, due=False)
    assert [f.held.job_id for f in planned.finished] == [first.job_id, second.job_id]
    assert books.take(None, NOW) is None, "outcomes in flight are still at risk"
    books.settle(planned, Settled(written=planned.finished), stopping=False)
    assert books.take(None, NOW) is not None


def test_outcomes_sent_on_the_round_trip_in_flight_stay_at_risk_until_it_is_settled() -> None:
    books = Books([None, None], buffer=8)
    locked(books, *(held(i) for i in range(1, 9)))
    a, b = books.take(None, NOW), books.take(None, NOW)
    assert a is not None and b is not None
    books.done(a, None, Outcome(Outcome.DESTROY))
    planned = books.plan(NOW, stopping=False, due=False)
    books.done(b, None, Outcome(Outcome.DESTROY))
    sent = books.express()
    assert [f.held.job_id for f in sent] == [b.job_id] and not books.finished
    assert books.express() == []
    assert books.at_risk() == 2
    c, d = books.take(None, NOW), books.take(None, NOW)
    assert c is not None and d is not None and books.take(None, NOW) is None
    books.settle(planned, Settled(written=[*planned.finished, *sent]), stopping=False)
    assert books.at_risk() == 2 and {a.job_id, b.job_id}.isdisjoint(books.owned)


def test_outcomes_sent_on_a_round_trip_that_failed_become_orphans() -> None:
    books = Books([None], buffer=8)
    locked(books, *(held(i) for i in range(1, 4)))
    a = books.take(None, NOW)
    assert a is not None
    books.done(a, None, Outcome(Outcome.DESTROY))
    planned = books.plan(NOW, stopping=False, due=False)
    b = books.take(None, NOW)
    assert b is not None
    books.done(b, None, Outcome(Outcome.DESTROY))
    assert books.express()
    books.unsent(planned)
    assert sorted(o.held.job_id for o in books.orphans) == [a.job_id, b.job_id]
    assert books.at_risk() == 2
