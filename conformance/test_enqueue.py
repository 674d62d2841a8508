"""Area enqueue: defaults (queue '', priority 100, run_at now, args []) and options as given."""

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal
from conformance.fleet import Fleet, require
from conformance.support import ECHO, jobs, server_now

# A default run_at is judged to the second here: whose clock it comes from (the server's,
# not the client's, which may also be coarser than a microsecond) is the clock area's
# question, asked of a server whose clock is hours off, where the answer cannot depend on
# timing (test_clock.py).
DEFAULT_RUN_AT_SLACK = timedelta(seconds=1)


@pytest.mark.covers(
    "insert_job.queue", "insert_job.priority", "insert_job.run_at", "insert_job.job_class", "insert_job.args"
)
def test_defaults(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """With no options and no args: queue '', priority 100, args [], error_count 0, run_at now."""
    testee = fleet.get(impl)
    before = server_now(db)
    testee.enqueue(ECHO)
    after = server_now(db)
    [job] = jobs(db)
    stored = {k: job[k] for k in ("queue", "priority", "args", "error_count", "last_error", "job_class")}
    expected = {"queue": "", "priority": 100, "args": "[]", "error_count": 0, "last_error": None, "job_class": ECHO}
    check_equal(stored, expected, "enqueue-defaults", impl=impl, job=job["job_id"])
    check(
        before - DEFAULT_RUN_AT_SLACK <= job["run_at"] <= after + DEFAULT_RUN_AT_SLACK,
        "enqueue-defaults",
        impl=impl,
        job=job["job_id"],
        expected=f"run_at within a second of the enqueue ({before} to {after}, the server's clock)",
        seen=job["run_at"],
    )


@pytest.mark.covers("insert_job.returning")
def test_returns_the_job_id(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """The id an implementation returns is the row's job_id."""
    require(fleet.info(impl), "enqueue_returns_job_id")
    job_id = fleet.get(impl).enqueue(ECHO, "[1]")
    check_equal(job_id, jobs(db)[0]["job_id"], "enqueue-job-id", impl=impl)


@pytest.mark.covers("insert_job.priority")
@pytest.mark.parametrize("priority", [-32768, -5, 0, 1, 32767])
def test_priority_is_stored_as_given(impl: str, priority: int, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Any smallint priority, including 0 and the bounds, is stored as given."""
    fleet.get(impl).enqueue(ECHO, priority=priority)
    check_equal([j["priority"] for j in jobs(db)], [priority], "enqueue-priority", impl=impl)


@pytest.mark.covers("insert_job.queue")
@pytest.mark.parametrize("queue", ["mail", "Mail queue é", ""])
def test_queue_is_stored_as_given(impl: str, queue: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    fleet.get(impl).enqueue(ECHO, queue=queue)
    check_equal([j["queue"] for j in jobs(db)], [queue], "enqueue-queue", impl=impl)


@pytest.mark.covers("insert_job.run_at")
@pytest.mark.parametrize("offset", [timedelta(days=3), timedelta(days=-3)], ids=["future", "past"])
def test_run_at_is_stored_to_the_microsecond(
    impl: str, offset: timedelta, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    require(fleet.info(impl), "enqueue_run_at")
    at = (datetime.now(UTC) + offset).replace(microsecond=123456)
    fleet.get(impl).enqueue(ECHO, run_at=at.isoformat().replace("+00:00", "Z"))
    check_equal([j["run_at"] for j in jobs(db)], [at], "enqueue-run-at", impl=impl)
