"""Area 2.x poll, the job buffer: how many jobs a Que 2 locker holds and which, read from
Ruby Que 2.4.1's JobBuffer (lib/que/job_buffer.rb). A locker holds the jobs its workers run
and up to its buffer (Que's default: 8) more, refilled as jobs end (available_priorities:
the waiting workers' places, the buffer's space added to the least demanding one). A job a
notification names enters a full buffer only if it is more important than the buffer's
least important job, which it pushes out, one for one (accept?, push): the cells look at
the locks once they settle, when every worker is busy on a long job."""

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal, within
from conformance.fleet import Fleet, require
from conformance.que2.witness import (
    QUEUE,
    announce,
    job_available,
    jobs,
    locked_ids,
    quiet_insert,
    registered,
    sleep_job,
    working,
)
from conformance.support import SLEEP, executions
from harness.results import TABLE


def _ended(db: psycopg.Connection[Any]) -> set[int]:
    """The ids of the jobs that ran to their end (the witness table's rows)."""
    return {row["job_id"] for row in executions(db)}


@pytest.mark.covers("que2.job_buffer.available", "que2.poll_jobs.room")
def test_the_buffer_is_refilled_as_each_job_ends(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """One worker and twelve jobs of 1.2 s: the locker holds 1 + 8 jobs from its first poll,
    and again while each of the second and third jobs runs, once it has refilled the one
    place the job before left (a place of one is filled like any other). An ended job's
    lock, held until its destroy is written, is not counted: it would stand in for the
    place not yet refilled."""
    require(fleet.info(impl), "work_pool")
    for job_id in range(1, 13):
        sleep_job(db, job_id, 10, 1200)
    seen: dict[int, int] = {}  # jobs ended -> most locks of jobs not ended held meanwhile
    request = {"queue": QUEUE, "workers": 1, "deadline_ms": 4500, "wake_interval_ms": 50}
    with working(fleet.get(impl), **request) as box:

        def third_started() -> bool:
            locked = locked_ids(db)  # before the ends: a job ending between the reads is left out
            ended = _ended(db)
            seen[len(ended)] = max(seen.get(len(ended), 0), len(locked - ended))
            return len(ended) >= 3

        within(15, third_started)
    check("error" not in box, "que2-buffer", impl=impl, detail=f"work failed: {box.get('error')}")
    most = {ended: seen.get(ended) for ended in (0, 1, 2)}
    check_equal(most, {0: 9, 1: 9, 2: 9}, "que2-buffer", impl=impl, detail="most locks held while job n + 1 ran")


@pytest.mark.covers("que2.job_buffer.available", "que2.job_buffer.take", "que2.poll_jobs.slot")
def test_workers_of_two_priorities_share_the_first_poll(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Workers of priority 10 and of any priority; jobs of priority 5 and 10 and twelve of
    50, each of 2.5 s. The first poll takes the 5 and the 10 (one place of each threshold)
    and eight of the 50s for the buffer: ten locks, which stay while the workers are busy.
    The priority-10 worker runs the first job it may take, so the 5 and the 10 run at once."""
    require(fleet.info(impl), "work_pool")
    sleep_job(db, 1, 5, 2500)
    sleep_job(db, 2, 10, 2500)
    for job_id in range(3, 15):
        sleep_job(db, job_id, 50, 2500)
    expected = {1, 2, *range(3, 11)}
    most = 0
    request = {"queue": QUEUE, "workers": 2, "priorities": [10, None], "deadline_ms": 2000, "wake_interval_ms": 50}
    with working(fleet.get(impl), **request) as box:

        def settled() -> bool:
            nonlocal most
            locked = locked_ids(db)
            most = max(most, len(locked))
            return locked == expected

        reached = within(10, settled)
    check("error" not in box, "que2-buffer", impl=impl, detail=f"work failed: {box.get('error')}")
    check(
        reached, "que2-buffer", impl=impl, detail="the locks once both workers were busy", seen=sorted(locked_ids(db))
    )
    check(most <= 10, "que2-buffer", impl=impl, detail="most locks held at once", seen=most)
    ran = {row[0]: row[1] for row in db.execute(f"SELECT job_id, at FROM {TABLE}")}
    check(1 in ran and 2 in ran, "que2-thresholds", impl=impl, detail="jobs run", seen=sorted(ran))
    apart = abs((ran[1] - ran[2]).total_seconds())
    check(apart < 1.5, "que2-thresholds", impl=impl, detail="the 5 and the 10 ended apart by (s)", seen=apart)


@contextlib.contextmanager
def _full_buffer(db: psycopg.Connection[Any], impl: str, fleet: Fleet) -> Iterator[int]:
    """A job of priority 1 that runs 8 s (id 1), seven of priority 50 (ids 2-8) and one of
    60 (id 9) behind it: the one worker runs the first, the buffer holds the other eight
    once the first poll is in. Yields the locker's backend pid."""
    sleep_job(db, 1, 1, 8000)
    for job_id in range(2, 9):
        sleep_job(db, job_id, 50, 100)
    sleep_job(db, 9, 60, 100)
    db.execute("SELECT setval(pg_get_serial_sequence('que_jobs', 'id'), 100)")  # the named jobs: 101 on
    request = {"queue": QUEUE, "workers": 1, "deadline_ms": 6000, "wake_interval_ms": 50}
    with working(fleet.get(impl), **request) as box:
        pid = registered(db, impl)
        full = within(10, lambda: locked_ids(db) == FIRST_POLL)
        check(full, "que2-buffer", impl=impl, detail="the first poll's locks", seen=sorted(locked_ids(db)))
        yield pid
    check("error" not in box, "que2-buffer", impl=impl, detail=f"work failed: {box.get('error')}")


FIRST_POLL = set(range(1, 10))


def _name(db: psycopg.Connection[Any], pid: int, priorities: list[int]) -> list[int]:
    """Jobs of these priorities written without their NOTIFY, then named to the locker by
    job_available messages sent in one transaction (so it reads them together)."""
    named = [quiet_insert(db, SLEEP, "[100]", priority=priority) for priority in priorities]
    rows = {row["id"]: row for row in jobs(db, f"id IN ({', '.join(map(str, named))})")}
    with db.transaction():
        for job_id in named:
            announce(db, pid, job_available(rows[job_id]))
    return named


@pytest.mark.covers("que2.job_buffer.available")
def test_a_notified_job_enters_a_full_buffer_only_past_its_least_important_job(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """A full buffer (eight jobs of priority 50 and 60). Two jobs of priority 55 are named in
    one transaction's notifications: the first pushes out the 60 (released), the second is
    not more important than the 50 it would push out, and stays unlocked. Then a job of
    priority 70 is named alone: it is not more important than any, and stays unlocked."""
    require(fleet.info(impl), "work_pool")
    with _full_buffer(db, impl, fleet) as pid:
        near = _name(db, pid, [55, 55])
        pushed = (FIRST_POLL - {9}) | {near[0]}
        entered = within(10, lambda: locked_ids(db) == pushed)
        check(entered, "que2-buffer", impl=impl, detail=f"the locks after naming {near}", seen=sorted(locked_ids(db)))
        [late] = _name(db, pid, [70])
        # A job of priority 40 named after it is more important than the buffer's last: once
        # it is locked, the message naming the 70 was read too.
        [witness] = _name(db, pid, [40])
        decided = within(10, lambda: witness in locked_ids(db))
        check(decided, "que2-buffer", impl=impl, detail="a job of priority 40 named after the 70 was not locked")
        check(late not in locked_ids(db), "que2-buffer", impl=impl, detail="a job of priority 70 entered a full buffer")


@pytest.mark.covers("que2.job_buffer.available")
def test_named_jobs_push_out_the_whole_buffer_and_no_more(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """A full buffer of eight; nine jobs of priority 40 are named in one transaction. Each of
    the first eight is more important than the job it would push out, down to the buffer's
    first; the ninth has none left to push out. The buffer then holds the first eight named."""
    require(fleet.info(impl), "work_pool")
    with _full_buffer(db, impl, fleet) as pid:
        named = _name(db, pid, [40] * 9)
        expected = {1, *named[:8]}
        pushed = within(10, lambda: locked_ids(db) == expected)
        check(pushed, "que2-buffer", impl=impl, detail=f"the locks after naming {named}", seen=sorted(locked_ids(db)))


@pytest.mark.covers("que2.job_buffer.available", "que2.poll_jobs.slot")
def test_a_poll_asks_for_each_waiting_worker_though_the_buffer_is_full(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """Workers of priority 10 and of any priority. The second runs a job of 6 s, and the
    buffer is full of eight jobs of priority 50 the first may not take. Two jobs of priority
    5 (2 s, then 100 ms) are written in one transaction without their NOTIFY. The next poll
    asks for the one waiting place of threshold 10 though the buffer has no space, and for
    no more (available_priorities: the waiting workers, one as well as more), so it locks
    the first alone; the second is polled for once the first ends. Both run while the long
    job still runs."""
    require(fleet.info(impl), "work_pool")
    sleep_job(db, 1, 50, 6000)
    for job_id in range(2, 10):
        sleep_job(db, job_id, 50, 100)
    db.execute("SELECT setval(pg_get_serial_sequence('que_jobs', 'id'), 100)")
    early: list[set[int]] = []  # the locks seen with the second job's while the first ran
    request = {"queue": QUEUE, "workers": 2, "priorities": [10, None], "deadline_ms": 4000, "wake_interval_ms": 50}
    with working(fleet.get(impl), **request) as box:
        full = within(10, lambda: locked_ids(db) == set(range(1, 10)))
        check(full, "que2-buffer", impl=impl, detail="the first poll's locks", seen=sorted(locked_ids(db)))
        with db.transaction():
            first = quiet_insert(db, SLEEP, "[2000]", priority=5, queue=QUEUE)
            second = quiet_insert(db, SLEEP, "[100]", priority=5, queue=QUEUE)

        def both_ended() -> bool:
            locked = locked_ids(db)  # read before the ends: a lock taken after the first ended
            done = _ended(db)
            if second in locked and first not in done:
                early.append(locked)
            return {first, second} <= done

        ran = within(5, both_ended)
        still = 1 not in _ended(db)
    check("error" not in box, "que2-buffer", impl=impl, detail=f"work failed: {box.get('error')}")
    check(ran, "que2-thresholds", impl=impl, detail="the jobs of priority 5 did not both run", seen=sorted(_ended(db)))
    check(still, "que2-thresholds", impl=impl, detail="the jobs of priority 5 ran only once the job of 6 s ended")
    check_equal(early, [], "que2-buffer", impl=impl, detail="locks with the second job's while the first ran")


@pytest.mark.covers("que2.job_buffer.take")
def test_a_worker_runs_no_further_ahead_of_its_jobs_destroy_than_one_job(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """Ruby's worker destroys its job before it takes another, so a lost session can make
    at most the job running and the one being destroyed run again. One worker drains jobs
    of 5 ms; then a lock on que_jobs holds every destroy back (reads go on): at most two more
    jobs end meanwhile, not the ones its buffer holds."""
    require(fleet.info(impl), "work_pool")
    for job_id in range(1, 401):
        sleep_job(db, job_id, 10, 5)
    request = {"queue": QUEUE, "workers": 1, "deadline_ms": 15_000, "wake_interval_ms": 50}
    ended = f"SELECT count(*) FROM {TABLE}"
    count = lambda: int((db.execute(ended).fetchone() or [0])[0])  # noqa: E731
    with working(fleet.get(impl), **request) as box, psycopg.connect(db.info.dsn) as holder:
        check(within(20, lambda: count() >= 30), "que2-buffer", impl=impl, detail="30 jobs ended")
        holder.execute("LOCK TABLE que_jobs IN SHARE MODE")
        before = count()
        # Three seconds: the buffer's jobs of 5 ms would all end, were they run.
        ahead = within(3, lambda: count() - before > 2)
        ran = count() - before
        holder.rollback()
    check("error" not in box, "que2-buffer", impl=impl, detail=f"work failed: {box.get('error')}")
    check(not ahead, "que2-buffer", impl=impl, detail="jobs that ended while their destroys were held back", seen=ran)
