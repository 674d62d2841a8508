"""Area clock: the database's clock decides. These cells run against a second server whose
clock is two hours behind the testees' (libfaketime): an implementation that computes
due-ness, the default run_at or a retry time from its own clock fails them. One more runs
against a server whose clock stands still, where a job can be due exactly at the claim's
now(). Where the server's clock cannot be changed (a server given by URL, a container),
they are not applicable."""

from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal
from conformance.fleet import Fleet
from conformance.support import ECHO, FAIL, executions, insert, jobs, server_now

SKEW = "two hours behind the testee's clock"


@pytest.mark.covers("lock_job.due")
def test_due_is_the_servers_judgement(impl: str, skewed_fleet: Fleet, skewed_db: psycopg.Connection[Any]) -> None:
    """A job due in a minute by the server's clock (and two hours ago by the testee's) is
    not worked; one due a minute ago is."""
    testee = skewed_fleet.get(impl)
    later = insert(skewed_db, ECHO, '["later"]', run_at_offset_s=60)
    check_equal(testee.work_one()["worked"], False, "clock-due", impl=impl, job=later, detail=f"server clock {SKEW}")
    now = insert(skewed_db, ECHO, '["now"]', run_at_offset_s=-60)
    check_equal(testee.work_one()["worked"], True, "clock-due", impl=impl, job=now, detail=f"server clock {SKEW}")
    check_equal([r["job_id"] for r in executions(skewed_db)], [now], "clock-due", impl=impl, detail="jobs run")


@pytest.mark.covers("lock_job.due")
def test_a_job_due_exactly_at_the_claims_now_is_due(
    impl: str, frozen_fleet: Fleet, frozen_db: psycopg.Connection[Any]
) -> None:
    """Ruby's lock_job takes `run_at <= now()`. On a server whose clock stands still, now()
    is one instant in every transaction: a job due a microsecond after it is not worked,
    one due exactly at it is."""
    testee = frozen_fleet.get(impl)
    frozen = "server clock frozen, now() the same in every transaction"
    later = insert(frozen_db, ECHO, '["later"]', run_at_offset_s=0.000001)
    check_equal(
        testee.work_one()["worked"], False, "clock-due", impl=impl, job=later, detail=f"{frozen}; due 1 µs after now()"
    )
    exact = insert(frozen_db, ECHO, '["exact"]')
    check_equal(testee.work_one()["worked"], True, "clock-due", impl=impl, job=exact, detail=f"{frozen}; due at now()")
    check_equal([r["job_id"] for r in executions(frozen_db)], [exact], "clock-due", impl=impl, detail="jobs run")


@pytest.mark.covers("insert_job.run_at")
def test_default_run_at_is_the_servers_now(impl: str, skewed_fleet: Fleet, skewed_db: psycopg.Connection[Any]) -> None:
    testee = skewed_fleet.get(impl)
    before = server_now(skewed_db)
    testee.enqueue(ECHO, "[1]")
    after = server_now(skewed_db)
    [job] = jobs(skewed_db)
    check(
        before <= job["run_at"] <= after,
        "clock-default-run-at",
        impl=impl,
        job=job["job_id"],
        detail=f"server clock {SKEW}",
        expected=f"between {before} and {after}",
        seen=job["run_at"],
    )
    check_equal(testee.work_one()["worked"], True, "clock-due", impl=impl, job=job["job_id"], detail="due at once")


@pytest.mark.covers("set_error.run_at")
def test_retry_time_is_the_servers_now_plus_the_delay(
    impl: str, skewed_fleet: Fleet, skewed_db: psycopg.Connection[Any]
) -> None:
    testee = skewed_fleet.get(impl)
    job_id = insert(skewed_db, FAIL, '["boom"]')
    check_equal(testee.work_one()["worked"], True, "clock-retry", impl=impl, job=job_id, detail="work_one")
    [job] = jobs(skewed_db)
    check(
        0 < job["due_in_s"] <= 60,
        "clock-retry",
        impl=impl,
        job=job_id,
        detail=f"seconds until due by the server's clock ({SKEW}); the delays of all shapes are under a minute",
        expected="0 < due_in <= 60",
        seen=round(job["due_in_s"], 3),
    )
