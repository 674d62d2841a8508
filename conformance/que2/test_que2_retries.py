"""Area 2.x retries: the backoff and the last_error_message/backtrace cuts, and expiry past
the retry limit."""

from typing import Any

import psycopg

from conformance.checks import check, check_equal
from conformance.fleet import Fleet, require
from conformance.que2.witness import QUEUE, insert, jobs
from conformance.support import FAIL


def test_a_failure_backs_off_and_keeps_the_cut_message(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    require(fleet.info(impl), "work_pool")
    insert(db, FAIL, '["' + "x" * 600 + '"]')
    fleet.get(impl).request("work", queue=QUEUE, workers=1, deadline_ms=20_000)
    [row] = jobs(db)
    check_equal(row["error_count"], 1, "que2-retry", impl=impl)
    check(
        3.0 <= row["due_in_s"] <= 4.0, "que2-retry", impl=impl, detail="run_at now() + 1**4 + 3 s", seen=row["due_in_s"]
    )
    check_equal(row["last_error_message"], ("RuntimeError: " + "x" * 600)[:500], "que2-retry", impl=impl)
    backtrace = row["last_error_backtrace"] or ""
    check(0 < len(backtrace) <= 10_000, "que2-retry", impl=impl, detail="a backtrace of at most 10,000 characters")
    check_equal((row["expired_at"], row["finished_at"]), (None, None), "que2-retry", impl=impl)


def test_past_the_retry_limit_the_job_expires(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    require(fleet.info(impl), "work_pool")
    insert(db, FAIL, '["again"]', error_count=15, last_error_message="before", last_error_backtrace="trace")
    fleet.get(impl).request("work", queue=QUEUE, workers=1, deadline_ms=20_000)
    [row] = jobs(db)
    check(row["expired_at"] is not None, "que2-expire", impl=impl, detail="expired_at is set")
    seen = (row["error_count"], row["last_error_message"], row["last_error_backtrace"])
    check_equal(seen, (16, "before", "trace"), "que2-expire", impl=impl)
