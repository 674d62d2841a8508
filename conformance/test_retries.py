"""Area retries: error_count + 1 and run_at = now() + count**4 + 3 s, whoever fails the job;
unknown job classes are errors with backoff."""

import re
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal
from conformance.fleet import Fleet, require_worker
from conformance.support import FAIL, UNKNOWN, executions, fixture, insert, jobs, make_due

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


@pytest.mark.covers("set_error.count", "set_error.run_at", "backoff.formula", "backoff.count")
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


@pytest.mark.covers("set_error.count", "set_error.run_at", "backoff.formula", "backoff.count")
def test_failing_job_backs_off(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    insert(db, FAIL, '["boom"]')
    check_equal(fleet.get(impl).work_one()["worked"], True, "retry-schedule", impl=impl, detail="work_one")
    [job] = jobs(db)
    check_backoff(job, 1, impl)


# Error counts across the formula's range, up to well past 100 years of delay (237 failures)
# and short of where now() + count**4 + 3 leaves PostgreSQL's timestamps (about 1,740).
COUNTS = [9, 99, 236, 237, 999]


@pytest.mark.covers("set_error.count", "backoff.formula", "backoff.count")
@pytest.mark.parametrize("before", COUNTS)
def test_high_error_counts_keep_the_schedule(impl: str, before: int, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """A job that already failed n times is next due (n+1)**4 + 3 seconds after this failure."""
    job_id = insert(db, FAIL, '["boom"]')
    db.execute("UPDATE que_jobs SET error_count = %s WHERE job_id = %s", [before, job_id])
    check_equal(fleet.get(impl).work_one()["worked"], True, "retry-schedule", impl=impl, detail="work_one")
    [job] = jobs(db)
    count = before + 1
    check_equal(job["error_count"], count, "retry-schedule", impl=impl, job=job_id, detail="error_count")
    delay = count**4 + 3
    check(
        delay - TOLERANCE < job["due_in_s"] <= delay,
        "retry-schedule",
        impl=impl,
        job=job_id,
        detail=f"run_at - now() after failure {count}, in seconds ({count}**4 + 3)",
        expected=delay,
        seen=round(job["due_in_s"], 3),
    )


@pytest.mark.covers("set_error.run_at")
def test_an_overdue_job_is_retried_from_now(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """A job due an hour ago fails: its next run is now() + 4 s, not its old run_at + 4 s."""
    insert(db, FAIL, '["boom"]', run_at_offset_s=-3600)
    check_equal(fleet.get(impl).work_one()["worked"], True, "retry-schedule", impl=impl, detail="work_one")
    [job] = jobs(db)
    check_backoff(job, 1, impl)


@pytest.mark.covers("set_error.last_error")
def test_a_failure_changes_only_error_count_run_at_and_last_error(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """Every other column of a failed job, args to the byte, is as it was."""
    job_id = insert(db, FAIL, '["boom", {"b": 1, "a": [1.0, 2]}, 30000000000000000000]', priority=7, queue="")
    [before] = jobs(db)
    check_equal(fleet.get(impl).work_one()["worked"], True, "retry-schedule", impl=impl, detail="work_one")
    [after] = jobs(db)
    kept = ("queue", "priority", "job_id", "job_class", "args")
    check_equal(
        {k: after[k] for k in kept},
        {k: before[k] for k in kept},
        "retry-schedule",
        impl=impl,
        job=job_id,
        detail="the failed job's other columns",
    )


@pytest.mark.covers("work.unknown_class")
def test_unknown_job_class_is_an_error_with_backoff(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    job_id = insert(db, UNKNOWN, "[1]")
    check_equal(fleet.get(impl).work_one()["worked"], True, "unknown-class", impl=impl, job=job_id)
    rows = jobs(db)
    check_equal(len(rows), 1, "unknown-class", impl=impl, job=job_id, detail="rows left (the job must stay)")
    check_backoff(rows[0], 1, impl)
    # Ruby's text (NameError: uninitialized constant ...) is Ruby's own: what carries over
    # is that the text names the class, in the shape the port's failures take.
    text = rows[0]["last_error"] or ""
    check(UNKNOWN in text, "last-error", impl=impl, job=job_id, detail="last_error names the unknown class", seen=text)
    shape = fleet.info(impl).last_error_format
    pattern = FORMATS[shape]["unknown_class"]
    check(
        re.fullmatch(pattern, text) is not None,
        "last-error",
        impl=impl,
        job=job_id,
        detail=f"{shape} shape for an unknown class",
        expected=pattern,
        seen=text,
    )


# Names that differ from a registered job class only the way another language's lookup
# may forgive: Ruby Que resolves a class by its exact constant path (Que.constantize:
# job_class.split('::').inject(Object, &:const_get)), so each is unknown there.
NEAR_NAMES = {
    "lower_case": "queconformance::echo",
    "trailing_space": "QueConformance::Echo ",
    "leading_space": " QueConformance::Echo",
    "last_segment": "Echo",
    "other_module": "Other::Echo",
}


@pytest.mark.covers("work.unknown_class")
@pytest.mark.parametrize("case", list(NEAR_NAMES))
def test_a_class_name_near_a_registered_one_is_unknown(
    impl: str, case: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    require_worker(fleet.info(impl))
    job_id = insert(db, NEAR_NAMES[case], "[1]")
    fleet.get(impl).work_one()
    rows = jobs(db)
    ran = [e["job_id"] for e in executions(db)]
    detail = f"job_class {NEAR_NAMES[case]!r} ({case}), which names no class Ruby can find"
    check_equal(ran, [], "unknown-class", impl=impl, job=job_id, detail=f"{detail}: runs")
    check_equal(len(rows), 1, "unknown-class", impl=impl, job=job_id, detail=f"{detail}: rows left")
    check_equal(rows[0]["error_count"], 1, "unknown-class", impl=impl, job=job_id, detail=f"{detail}: error_count")
