"""Area 2.x locker: registration in que_lockers, the NOTIFY that wakes it, the lock held
while a job runs, priority thresholds and the job schema version filter."""

from typing import Any

import psycopg

from conformance.checks import check, check_equal, within
from conformance.fleet import Fleet, require
from conformance.que2.witness import QUEUE, insert, jobs, lockers, working
from conformance.support import ECHO, SLEEP, advisory_locks, executions


def test_registers_is_notified_and_holds_the_lock_while_the_job_runs(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    require(fleet.info(impl), "work_pool")
    testee = fleet.get(impl)
    # A poll every 30 s: within the cell, only the trigger's NOTIFY brings the job in.
    request = {"queue": QUEUE, "workers": 2, "deadline_ms": 20_000, "min_duration_ms": 4000, "wake_interval_ms": 30_000}
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
        check_equal(seen, (2, [None, None], [QUEUE], True, 2), "que2-locker-registration", impl=impl)
        pid = row["pid"]
        db.execute(f'LISTEN "que_listener_{pid}"')
        job_id = insert(db, SLEEP, "[1500]")
        [notice] = list(db.notifies(timeout=5, stop_after=1))
        [job] = jobs(db)
        run_at = job["run_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        expected = (
            f'{{"message_type":"job_available","queue":"{QUEUE}","priority":100,"id":{job_id},"run_at":"{run_at}"}}'
        )
        check_equal(notice.payload, expected, "que2-notify", impl=impl)
        held = lambda: [(lock.pid, lock.key) for lock in advisory_locks(db)] == [(pid, job_id)]  # noqa: E731
        check(within(10, held), "que2-lock", impl=impl, detail=f"job {job_id} locked by the locker's session {pid}")
        check(within(10, lambda: jobs(db) == []), "que2-destroy", impl=impl, detail="the job was not destroyed")
        db.execute("UNLISTEN *")
    check("error" not in box, "que2-locker-registration", impl=impl, detail=f"work failed: {box.get('error')}")
    check_equal(lockers(db), [], "que2-locker-registration", impl=impl, detail="the row is gone after the stop")
    check_equal(advisory_locks(db), [], "que2-lock", impl=impl, detail="locks after the stop")


def test_priority_thresholds_and_the_job_schema_version(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    require(fleet.info(impl), "work_pool")
    high = insert(db, ECHO, '["high"]', priority=5)
    low = insert(db, ECHO, '["low"]', priority=50)
    old = insert(db, ECHO, '["version 1"]', job_schema_version=1)
    fleet.get(impl).request(
        "work", queue=QUEUE, workers=1, priorities=[10], deadline_ms=1500, min_duration_ms=1000, wake_interval_ms=50
    )
    check_equal([r["job_id"] for r in executions(db)], [high], "que2-thresholds", impl=impl, detail="jobs worked")
    left = [r["id"] for r in jobs(db)]
    check(low in left, "que2-thresholds", impl=impl, detail="a worker of priority 10 took a priority-50 job")
    check(old in left, "que2-version-filter", impl=impl, detail="a job_schema_version 1 row was worked")
