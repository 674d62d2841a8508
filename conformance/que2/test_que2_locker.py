"""Area 2.x locker: registration in que_lockers, the NOTIFY that wakes it, the lock held
while a job runs, priority thresholds and the job schema version filter."""

from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal, within
from conformance.fleet import Fleet, require
from conformance.que2.witness import (
    OTHER_VERSION,
    QUEUE,
    VERSION,
    announce,
    insert,
    job_available,
    jobs,
    lockers,
    quiet_insert,
    registered,
    run_at_text,
    working,
)
from conformance.support import ECHO, EXPIRE, FINISH, SLEEP, advisory_locks, executions, server_now
from harness.results import TABLE


@pytest.mark.covers(
    "que2.register_locker.row",
    "que2.listener.format",
    "que2.poll_jobs.lock",
    "que2.lock_jobs.lock",
    "que2.unlock_jobs.key",
    "que2.destroy_job.delete",
)
def test_registers_is_notified_and_holds_the_lock_while_the_job_runs(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    require(fleet.info(impl), "work_pool")
    testee = fleet.get(impl)
    # A poll every 30 s: within the cell, only the trigger's NOTIFY brings the job in.
    request = {"queue": QUEUE, "workers": 2, "deadline_ms": 20_000, "min_duration_ms": 5000, "wake_interval_ms": 30_000}
    with working(testee, **request) as box:
        check(within(15, lambda: lockers(db)), "que2-locker-registration", impl=impl, detail="no locker registered")
        [row] = lockers(db)
        seen = (
            row["worker_count"],
            row["worker_priorities"],
            row["queues"],
            row["listening"],
            row["job_schema_version"],
        )
        check_equal(seen, (2, [None, None], [QUEUE], True, VERSION), "que2-locker-registration", impl=impl)
        pid = row["pid"]
        db.execute(f'LISTEN "que_listener_{pid}"')
        job_id = insert(db, SLEEP, "[3000]")  # long enough to be seen locked on a loaded machine
        [notice] = list(db.notifies(timeout=5, stop_after=1))
        [job] = jobs(db)
        run_at = run_at_text(job)
        expected = (
            f'{{"message_type":"job_available","queue":"{QUEUE}","priority":100,"id":{job_id},"run_at":"{run_at}"}}'
        )
        check_equal(notice.payload, expected, "que2-notify", impl=impl)
        seen: list[tuple[int, int]] = []

        def held() -> bool:
            seen[:] = [(lock.pid, lock.key) for lock in advisory_locks(db)]
            return seen == [(pid, job_id)]

        detail = f"job {job_id} locked by the locker's session {pid}"
        check(within(10, held), "que2-lock", impl=impl, detail=detail, seen=seen)
        check(within(10, lambda: jobs(db) == []), "que2-destroy", impl=impl, detail="the job was not destroyed")
        db.execute("UNLISTEN *")
    check("error" not in box, "que2-locker-registration", impl=impl, detail=f"work failed: {box.get('error')}")
    check_equal(lockers(db), [], "que2-locker-registration", impl=impl, detail="the row is gone after the stop")
    check_equal(advisory_locks(db), [], "que2-lock", impl=impl, detail="locks after the stop")


@pytest.mark.covers("que2.poll_jobs.ceiling", "que2.poll_jobs.version", "que2.job_buffer.take")
def test_priority_thresholds_and_the_job_schema_version(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """A locker whose one worker has priority 10 finds a job of priority 50 and a row of
    another job_schema_version at priority 5 when it starts: it locks neither (the poll walks
    nothing above its highest threshold, and no row of another version). Then a job of
    priority 5 comes: it runs; the other two stay."""
    require(fleet.info(impl), "work_pool")
    low = insert(db, ECHO, '["low"]', priority=50)
    old = insert(db, ECHO, '["other version"]', priority=5, job_schema_version=OTHER_VERSION)
    locked: set[int] = set()

    def sample() -> set[int]:
        locked.update(lock.key for lock in advisory_locks(db))
        return locked

    # The priority-50 job keeps the queue from draining: the locker runs until its deadline.
    request = {"queue": QUEUE, "workers": 1, "priorities": [10], "deadline_ms": 6000, "wake_interval_ms": 50}
    with working(fleet.get(impl), min_duration_ms=1000, **request) as box:
        check(within(15, lambda: (sample() and False) or lockers(db)), "que2-locker-registration", impl=impl)
        high = insert(db, ECHO, '["high"]', priority=5)
        within(15, lambda: (sample() and False) or executions(db))
        sample()
    check("error" not in box, "que2-thresholds", impl=impl, detail=f"work failed: {box.get('error')}")
    left = [r["id"] for r in jobs(db)]
    # The version first: a row of another version taken also breaks the thresholds' checks.
    check(old in left and old not in locked, "que2-version-filter", impl=impl, detail="another version's row was taken")
    check(low in left, "que2-thresholds", impl=impl, detail="a worker of priority 10 took a priority-50 job")
    check(low not in locked, "que2-thresholds", impl=impl, detail="a locker of priority 10 locked a priority-50 job")
    check_equal([r["job_id"] for r in executions(db)], [high], "que2-thresholds", impl=impl, detail="jobs worked")


@pytest.mark.covers("que2.finish_job.columns", "que2.expire_job.columns", "que2.destroy_job.delete", "que2.retry.limit")
def test_a_job_may_finish_or_expire_itself_instead_of_being_destroyed(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """Que 2's job methods: a job that calls `finish` keeps its row with finished_at, one
    that calls `expire` keeps it with expired_at and error_count + 1; each runs once."""
    require(fleet.info(impl), "work_pool")
    finished = insert(db, FINISH)
    expired = insert(db, EXPIRE)
    fleet.get(impl).request("work", queue=QUEUE, workers=1, deadline_ms=10_000, wake_interval_ms=50)
    check_equal(
        sorted(r["job_id"] for r in executions(db)), [finished, expired], "que2-destroy", impl=impl, detail="runs"
    )
    rows = {row["id"]: row for row in jobs(db)}
    seen = {
        job_id: (row["finished_at"] is not None, row["expired_at"] is not None, row["error_count"])
        for job_id, row in rows.items()
    }
    expected = {finished: (True, False, 0), expired: (False, True, 1)}
    check_equal(seen, expected, "que2-destroy", impl=impl, detail="(finished, expired, error_count) of the kept rows")


@pytest.mark.covers("que2.listener.format")
def test_a_notification_of_another_shape_is_ignored(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Que 2's listener reads a job_available message only with exactly its keys and types.
    A locker of one worker that polls every 30 s starts on one long job, which its first
    poll locks; once that lock is seen, the poll is over, and a job written without its
    NOTIFY (witness.quiet_insert) can come only by a message. Four malformed messages name
    it (an extra key, the id as a string, another message_type) or none (an id past bigint):
    it stays unlocked. A
    well-formed one follows: the locker locks it, and it runs after the long job."""
    require(fleet.info(impl), "work_pool")
    first = insert(db, SLEEP, "[3000]")
    request = {"queue": QUEUE, "workers": 1, "deadline_ms": 20_000, "wake_interval_ms": 30_000}
    with working(fleet.get(impl), **request) as box:
        pid = registered(db, impl)
        keys = lambda: {lock.key for lock in advisory_locks(db)}  # noqa: E731
        check(within(10, lambda: first in keys()), "que2-lock", impl=impl, detail="the first poll locked nothing")
        job_id = quiet_insert(db, ECHO, '["quiet"]')
        [row] = jobs(db, f"id = {job_id}")
        good = job_available(row)
        malformed = (
            {**good, "extra": 1},
            {**good, "id": str(job_id)},
            {**good, "message_type": "job_done"},
            {**good, "id": 2**63},  # past bigint: names no job
        )
        for bad in malformed:
            announce(db, pid, bad)
        check(not within(1, lambda: job_id in keys()), "que2-notify", impl=impl, detail="a malformed message locked it")
        sent = server_now(db)
        announce(db, pid, good)
        locked = within(10, lambda: job_id in keys())
        check(locked, "que2-notify", impl=impl, detail="the well-formed message locked nothing")
    check("error" not in box, "que2-notify", impl=impl, detail=f"work failed: {box.get('error')}")
    ran = db.execute(f"SELECT job_id, at FROM {TABLE} ORDER BY id").fetchall()
    check_equal([r[0] for r in ran], [first, job_id], "que2-notify", impl=impl, detail="the jobs that ran, in order")
    late = ran[1][1] > sent
    check(late, "que2-notify", impl=impl, detail="the job ran before the well-formed message", seen=ran[1][1])
