"""Area 2.x poll: which jobs a Que 2 locker takes and in what order, read from Ruby Que
2.4.1's poll_jobs (lib/que/poller.rb) and its Locker (lib/que/locker.rb): due jobs
(`run_at <= now()`, the server's now), neither finished nor expired, of its queue (the
same text), of its dialect's job_schema_version (2; 1 for Ruby Que 1.x), not held
already, in (priority, run_at, id) order; no more at once than its workers and its buffer
(Que's default: 8) have room for; a job named by a notification is locked only if it is
not held already and kept only if it is still unfinished and unexpired."""

from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal, within
from conformance.conftest import FROZEN_AT
from conformance.fleet import Fleet, require
from conformance.que2.witness import (
    OTHER_VERSION,
    QUEUE,
    VERSION,
    announce,
    job_available,
    jobs,
    lockers,
    registered,
    working,
)
from conformance.support import ECHO, FAIL, SLEEP, advisory_locks, executions

# (id, priority, seconds before now) in the order they are written: ids, priorities and
# run_ats disagree, and two pairs tie on priority and run_at, written in descending id.
ORDERED = [
    (12, 1, 5),
    (11, 1, 5),
    (3, 1, 1),
    (5, 2, 9),
    (1, 3, 10),
    (7, 2, 9),
    (2, 2, 3),
    (10, 3, 8),
    (4, 1, 2),
    (9, 3, 6),
    (6, 2, 4),
    (8, 3, 7),
]
# Jobs no poll of queue 'default' may take, each at priority 1 and long due: (id, why, columns).
NEVER: list[tuple[int, str, dict[str, Any]]] = [
    (101, f"job_schema_version {OTHER_VERSION}", {"job_schema_version": OTHER_VERSION}),
    (102, "queue 'DEFAULT'", {"queue": "DEFAULT"}),
    (103, "queue ' default'", {"queue": " default"}),
    (104, "queue 'other'", {"queue": "other"}),
    (105, "finished", {"finished_at": "now()"}),
    (106, "expired", {"expired_at": "now()"}),
    (107, "due in an hour", {"run_at": "now() + interval '1 hour'"}),
]


# Columns whose value is SQL (relative to the server's now()); the others are literals.
_SQL_COLUMNS = ("run_at", "finished_at", "expired_at")


def _write(db: psycopg.Connection[Any], job_id: int, priority: int, columns: dict[str, Any]) -> None:
    """A row with this id and priority, due 20 s ago, of `queue` 'default' and this dialect's
    job_schema_version unless `columns` say otherwise."""
    values: dict[str, Any] = {"queue": QUEUE, "job_class": ECHO, "args": f"[{job_id}]", "job_schema_version": VERSION}
    values.update((name, value) for name, value in columns.items() if name not in _SQL_COLUMNS)
    times = {"run_at": "now() - interval '20 seconds'"}
    times.update((name, value) for name, value in columns.items() if name in _SQL_COLUMNS)
    names = ["id", "priority", *values, *times]
    marks = ["%s", "%s", *["%s"] * len(values), *times.values()]
    db.execute(
        f"INSERT INTO que_jobs ({', '.join(names)}) VALUES ({', '.join(marks)})",
        [job_id, priority, *values.values()],
    )


def _stored(db: psycopg.Connection[Any], where: str = "true") -> dict[int, dict[str, Any]]:
    """The rows by id, as stored (without jobs()'s due_in_s, which moves with the clock)."""
    return {row["id"]: {k: v for k, v in row.items() if k != "due_in_s"} for row in jobs(db, where)}


@pytest.mark.covers(
    "que2.poll_jobs.queue",
    "que2.poll_jobs.version",
    "que2.poll_jobs.due",
    "que2.poll_jobs.unfinished",
    "que2.poll_jobs.order",
)
def test_one_worker_takes_due_jobs_of_its_queue_in_que_order(
    impl: str, unindexed_fleet: Fleet, unindexed_db: psycopg.Connection[Any]
) -> None:
    """Twelve due jobs, more than one worker and its buffer take in one poll, on a server
    that walks no index (so only the poll's ORDER BY orders them; ties written in
    descending id), and seven jobs no poll of the queue may take. One worker runs the
    twelve in (priority, run_at, id) order and leaves the seven as they were."""
    db = unindexed_db
    require(unindexed_fleet.info(impl), "work_pool")
    with db.transaction():  # one now() for every run_at: the ties are exact
        for job_id, priority, ago in ORDERED:
            _write(db, job_id, priority, {"run_at": f"now() - interval '{ago} seconds'"})
        for job_id, _, columns in NEVER:
            _write(db, job_id, 1, columns)
    before = _stored(db, "id > 100")
    unindexed_fleet.get(impl).request(
        "work", queue=QUEUE, workers=1, deadline_ms=10_000, min_duration_ms=300, wake_interval_ms=50
    )
    # The filter first: a job it let through also shows in the order, but the rule it broke
    # is the filter's.
    after = _stored(db, "id > 100")
    for job_id, why, _ in NEVER:
        check_equal(after.get(job_id), before[job_id], "que2-poll-filter", impl=impl, job=job_id, detail=why)
    expected = [job_id for job_id, _, _ in sorted(ORDERED, key=lambda j: (j[1], -j[2], j[0]))]
    worked = [r["job_id"] for r in executions(db)]
    check_equal(
        worked,
        expected,
        "que2-poll-order",
        impl=impl,
        detail="the order one worker ran twelve due jobs in: (priority, run_at, id), no index walked",
    )


@pytest.mark.covers("que2.poll_jobs.due")
def test_the_servers_now_decides_what_is_due(
    impl: str, frozen_fleet: Fleet, frozen_db: psycopg.Connection[Any]
) -> None:
    """On a server whose clock stands still, now() is one instant in every transaction: a
    job due half a second before it or exactly at it is worked; one due a microsecond or
    half a second after it is not."""
    db = frozen_db
    require(frozen_fleet.info(impl), "work_pool")
    due = {"before": "now() - interval '0.5 seconds'", "exact": "now()"}
    later = {"1 µs after": "now() + interval '1 microsecond'", "0.5 s after": "now() + interval '0.5 seconds'"}
    ids = {}
    for number, (name, run_at) in enumerate([*due.items(), *later.items()], start=1):
        _write(db, number, 100, {"run_at": run_at})
        ids[name] = number
    frozen_fleet.get(impl).request(
        "work", queue=QUEUE, workers=1, deadline_ms=8000, min_duration_ms=500, wake_interval_ms=50
    )
    worked = sorted(r["job_id"] for r in executions(db))
    check_equal(
        worked,
        [ids[name] for name in due],
        "que2-poll-filter",
        impl=impl,
        detail=f"server clock frozen at {FROZEN_AT}: jobs due before, at, 1 µs after and 0.5 s after now()",
    )


@pytest.mark.covers("que2.insert_job.run_at", "que2.set_error.run_at", "que2.set_error.count")
def test_default_run_at_and_the_retry_time_are_the_servers_now(
    impl: str, frozen_fleet: Fleet, frozen_db: psycopg.Connection[Any]
) -> None:
    """On a server whose clock stands still, an enqueued job's run_at is now() exactly, and
    a job failing for the third time is due now() + 3**4 + 3 = 84 seconds exactly, with
    error_count 3."""
    db = frozen_db
    require(frozen_fleet.info(impl), "work_pool")
    testee = frozen_fleet.get(impl)
    testee.enqueue(ECHO, queue="elsewhere")
    [row] = jobs(db)
    check_equal(row["due_in_s"], 0.0, "que2-enqueue-defaults", impl=impl, detail="run_at - now() of an enqueued job")
    db.execute("DELETE FROM que_jobs")
    _write(db, 1, 100, {"job_class": FAIL, "error_count": 2, "run_at": "now() - interval '10 seconds'"})
    testee.request("work", queue=QUEUE, workers=1, deadline_ms=8000, wake_interval_ms=50)
    [row] = jobs(db)
    seen = (row["error_count"], row["due_in_s"])
    check_equal(seen, (3, 84.0), "que2-retry", impl=impl, detail="(error_count, run_at - now()) after a third failure")


@pytest.mark.covers("que2.poll_jobs.held", "que2.lock_jobs.held")
def test_a_running_job_is_not_taken_again(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """A job runs for two seconds while a second worker is idle and the locker polls every
    50 ms, and a notification names it again meanwhile: it is held, so neither the poll nor
    the notification takes it a second time. It runs once."""
    require(fleet.info(impl), "work_pool")
    testee = fleet.get(impl)
    request = {"queue": QUEUE, "workers": 2, "deadline_ms": 20_000, "min_duration_ms": 3000, "wake_interval_ms": 50}
    with working(testee, **request) as box:
        pid = registered(db, impl)
        _write(db, 1, 100, {"job_class": SLEEP, "args": "[2000]"})
        check(within(10, lambda: advisory_locks(db)), "que2-lock", impl=impl, detail="the job was not locked")
        [row] = jobs(db)
        announce(db, pid, job_available(row))
    check("error" not in box, "que2-lock", impl=impl, detail=f"work failed: {box.get('error')}")
    check_equal([r["job_id"] for r in executions(db)], [1], "que2-exactly-once", impl=impl, detail="runs of the job")


@pytest.mark.covers("que2.push_jobs.unfinished")
def test_a_notified_job_that_is_finished_or_expired_is_not_run(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """Advisory locks do not follow MVCC, so a locker checks a job it locked from a
    notification is still unfinished and unexpired: notifications naming a finished and an
    expired job lock nothing that runs, and leave both rows as they were."""
    require(fleet.info(impl), "work_pool")
    testee = fleet.get(impl)
    _write(db, 1, 100, {"finished_at": "now()"})
    _write(db, 2, 100, {"expired_at": "now()"})
    before = _stored(db)
    request = {"queue": QUEUE, "workers": 1, "deadline_ms": 20_000, "min_duration_ms": 3000, "wake_interval_ms": 50}
    with working(testee, **request) as box:
        pid = registered(db, impl)
        for row in before.values():
            announce(db, pid, job_available(row))
    check("error" not in box, "que2-lock", impl=impl, detail=f"work failed: {box.get('error')}")
    check_equal(executions(db), [], "que2-poll-filter", impl=impl, detail="runs of a finished and an expired job")
    check_equal(_stored(db), before, "que2-poll-filter", impl=impl, detail="the rows after the notifications")


@pytest.mark.covers(
    "que2.poll_jobs.slot",
    "que2.poll_jobs.room",
    "que2.poll_jobs.ceiling",
    "que2.job_buffer.available",
    "que2.job_buffer.take",
)
def test_a_locker_holds_no_more_jobs_than_its_workers_and_buffer(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """Thirty due jobs of 100 ms, one of priority 5 and the others at exactly 10, and one
    worker of priority 10: the locker fills its buffer, so it holds 1 + 8 (Que's default
    buffer) job locks at once, and never more; every job runs."""
    require(fleet.info(impl), "work_pool")
    for job_id in range(1, 31):
        _write(db, job_id, 5 if job_id == 30 else 10, {"job_class": SLEEP, "args": "[100]"})
    most = 0
    request = {"queue": QUEUE, "workers": 1, "priorities": [10], "deadline_ms": 15_000, "wake_interval_ms": 50}
    with working(fleet.get(impl), **request) as box:

        def drained() -> bool:
            nonlocal most
            most = max(most, len(advisory_locks(db)))
            return not jobs(db)

        within(15, drained)
    check("error" not in box, "que2-thresholds", impl=impl, detail=f"work failed: {box.get('error')}")
    check_equal(most, 9, "que2-poll-order", impl=impl, detail="most job locks held at once: 1 running, 8 buffered")
    check_equal(len(executions(db)), 30, "que2-thresholds", impl=impl, detail="jobs run (priorities 5 and 10)")
    check_equal(jobs(db), [], "que2-thresholds", impl=impl, detail="jobs left")


@pytest.mark.covers("que2.clean_lockers.dead")
def test_a_crashed_lockers_row_is_removed_by_the_next_locker(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """A que_lockers row whose session is gone (a crashed process) is deleted when a
    locker starts, so the notify trigger never picks it again."""
    require(fleet.info(impl), "work_pool")
    dead = db.execute("SELECT max(pid) + 100000 FROM pg_stat_activity").fetchone()
    assert dead is not None
    db.execute(
        "INSERT INTO que_lockers (pid, worker_count, worker_priorities, ruby_pid, ruby_hostname, listening, queues, "
        "job_schema_version) VALUES (%s, 1, '{NULL}', 1, 'gone', true, %s, %s)",
        [dead[0], [QUEUE], VERSION],
    )
    request = {"queue": QUEUE, "workers": 1, "deadline_ms": 20_000, "min_duration_ms": 500, "wake_interval_ms": 50}
    with working(fleet.get(impl), **request) as box:
        check(
            within(15, lambda: [row["pid"] for row in lockers(db)] not in ([], [dead[0]])),
            "que2-locker-registration",
            impl=impl,
            detail="no locker registered",
        )
        pids = [row["pid"] for row in lockers(db)]
    check("error" not in box, "que2-locker-registration", impl=impl, detail=f"work failed: {box.get('error')}")
    check(dead[0] not in pids, "que2-locker-registration", impl=impl, detail="the dead locker's row", seen=pids)


@pytest.mark.covers("que2.unlock_jobs.key")
def test_a_locker_stopped_with_a_full_buffer_unlocks_every_job_it_did_not_start(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """One worker, twenty jobs of 400 ms and a deadline of 1.5 s: when the locker stops its
    buffer is full. It gives back each job it did not start (Ruby's unlock_jobs), so no lock
    is left, and those rows are as they were."""
    require(fleet.info(impl), "work_pool")
    for job_id in range(1, 21):
        _write(db, job_id, 10, {"job_class": SLEEP, "args": "[400]"})
    before = _stored(db)
    result = fleet.get(impl).request("work", queue=QUEUE, workers=1, deadline_ms=1500, wake_interval_ms=50)
    check_equal(result.get("drained"), False, "que2-lock", impl=impl, detail="the work request ended at its deadline")
    check_equal(advisory_locks(db), [], "que2-lock", impl=impl, detail="locks left after the stop")
    ran = {r["job_id"] for r in executions(db)}
    after = _stored(db)
    untouched = {job_id: row for job_id, row in before.items() if job_id not in ran}
    check_equal(
        {job_id: after.get(job_id) for job_id in untouched},
        untouched,
        "que2-lock",
        impl=impl,
        detail="the jobs it did not start",
    )
