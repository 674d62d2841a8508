"""Area retries: error_count + 1 and run_at = now() + count**4 + 3 s, whoever fails the job;
unknown job classes are errors with backoff."""

import re
from typing import Any

import psycopg

from conformance.checks import check, check_equal
from conformance.fleet import Fleet
from conformance.support import FAIL, UNKNOWN, fixture, insert, jobs, make_due

RETRY = fixture("retry.json")
FORMATS = fixture("last_error.json")["formats"]
TOLERANCE = RETRY["tolerance_seconds"]
DELAYS = {row["error_count"]: row["delay_seconds"] for row in RETRY["schedule"]}


def check_backoff(job: dict[str, Any], count: int, impl: str) -> None:
    check_equal(job["error_count"], count, "retry-schedule", impl=impl, job=job["job_id"], detail="error_count")
    delay = DELAYS[count]
    check(
        delay - TOLERANCE < job["due_in_s"] <= delay,
        "retry-schedule",
        impl=impl,
        job=job["job_id"],
        detail=f"run_at - now() after failure {count}, in seconds",
        expected=delay,
        seen=round(job["due_in_s"], 3),
    )


def test_failures_alternate_between_implementations(
    enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """Failures 1 and 3 in X, 2 and 4 in Y: the count and schedule carry across."""
    x, y = fleet.get(enqueuer), fleet.get(worker)
    job_id = insert(db, FAIL, '["boom"]')
    for count, (name, testee) in enumerate([(enqueuer, x), (worker, y), (enqueuer, x), (worker, y)], start=1):
        check_equal(testee.work_one()["worked"], True, "retry-schedule", impl=name, job=job_id, detail="work_one")
        [job] = jobs(db)
        check_backoff(job, count, name)
        make_due(db, job_id)


def test_failing_job_backs_off(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    insert(db, FAIL, '["boom"]')
    check_equal(fleet.get(impl).work_one()["worked"], True, "retry-schedule", impl=impl, detail="work_one")
    [job] = jobs(db)
    check_backoff(job, 1, impl)


def test_high_error_counts_keep_the_schedule(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """A job that already failed 9 times is next due 10**4 + 3 seconds after its tenth failure."""
    job_id = insert(db, FAIL, '["boom"]')
    db.execute("UPDATE que_jobs SET error_count = 9 WHERE job_id = %s", [job_id])
    check_equal(fleet.get(impl).work_one()["worked"], True, "retry-schedule", impl=impl, detail="work_one")
    [job] = jobs(db)
    check_backoff(job, 10, impl)


def test_unknown_job_class_is_an_error_with_backoff(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    job_id = insert(db, UNKNOWN, "[1]")
    check_equal(fleet.get(impl).work_one()["worked"], True, "unknown-class", impl=impl, job=job_id)
    rows = jobs(db)
    check_equal(len(rows), 1, "unknown-class", impl=impl, job=job_id, detail="rows left (the job must stay)")
    check_backoff(rows[0], 1, impl)
    shape = fleet.info(impl).capabilities.get("last_error_format")
    text = rows[0]["last_error"]
    if shape in FORMATS:
        pattern = FORMATS[shape]["unknown_class"]
        check(
            text is not None and re.fullmatch(pattern, text) is not None,
            "last-error",
            impl=impl,
            job=job_id,
            detail=f"{shape} shape for an unknown class",
            expected=pattern,
            seen=text,
        )
    else:
        check(bool(text), "unknown-class", impl=impl, job=job_id, detail="last_error must be recorded", seen=text)
