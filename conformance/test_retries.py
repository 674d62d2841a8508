"""Area 7, retries: error_count + 1 and run_at = now() + count**4 + 3 s, whoever fails the job;
last_error in each implementation's declared shape; unknown classes are errors with backoff."""

import re
from typing import Any

import psycopg

from conformance.fleet import Fleet
from conformance.support import FAIL, UNKNOWN, fixture, insert, jobs, make_due

RETRY = fixture("retry.json")
FORMATS = fixture("last_error.json")["formats"]
TOLERANCE = RETRY["tolerance_seconds"]
DELAYS = {row["error_count"]: row["delay_seconds"] for row in RETRY["schedule"]}


def check_backoff(job: dict[str, Any], count: int) -> None:
    assert job["error_count"] == count
    delay = DELAYS[count]
    assert delay - TOLERANCE < job["due_in_s"] <= delay, (
        f"after failure {count} the job is due in {job['due_in_s']:.3f}s, the schedule says {delay}s"
    )


def check_last_error(fleet: Fleet, impl: str, text: str | None, case: str) -> None:
    assert text, f"{impl} left last_error empty"
    shape = fleet.info(impl).capabilities.get("last_error_format")
    if shape in FORMATS:
        pattern = FORMATS[shape][case]["pattern"]
        assert re.search(pattern, text), (
            f"{impl}'s last_error {text[:200]!r} does not match its {shape} shape {pattern!r}"
        )


def test_failures_alternate_between_implementations(
    enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """Failures 1 and 3 in X, 2 and 4 in Y: the count and schedule carry across."""
    x, y = fleet.get(enqueuer), fleet.get(worker)
    job_id = insert(db, FAIL, '["boom"]')
    for count, (name, testee) in enumerate([(enqueuer, x), (worker, y), (enqueuer, x), (worker, y)], start=1):
        assert testee.work_one()["worked"] is True
        [job] = jobs(db)
        check_backoff(job, count)
        check_last_error(fleet, name, job["last_error"], "failing_job")
        make_due(db, job_id)


def test_failing_job_records_last_error(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    insert(db, FAIL, '["boom"]')
    assert fleet.get(impl).work_one()["worked"] is True
    [job] = jobs(db)
    check_backoff(job, 1)
    check_last_error(fleet, impl, job["last_error"], "failing_job")


def test_high_error_counts_keep_the_schedule(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """A job that already failed 9 times is next due 10**4 + 3 seconds after its tenth failure."""
    job_id = insert(db, FAIL, '["boom"]')
    db.execute("UPDATE que_jobs SET error_count = 9 WHERE job_id = %s", [job_id])
    assert fleet.get(impl).work_one()["worked"] is True
    [job] = jobs(db)
    check_backoff(job, 10)


def test_unknown_job_class_is_an_error_with_backoff(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    insert(db, UNKNOWN, "[1]")
    assert fleet.get(impl).work_one()["worked"] is True
    [job] = jobs(db)
    check_backoff(job, 1)
    check_last_error(fleet, impl, job["last_error"], "unknown_class")
