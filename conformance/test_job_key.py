"""Area job key: a job is its whole key (queue, priority, run_at, job_id). Ruby's destroy_job
and set_error address a job by the whole key, so rows that share only its job_id (a
migration or a manual repair can leave them), and rows that share the rest of its key, are
untouched when the job is deleted, failed or released."""

from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal
from conformance.fleet import Fleet, require
from conformance.support import ECHO, FAIL, insert
from harness.testee import TesteeError

COLUMNS = "queue, priority, run_at, job_id, job_class, args::text AS args, error_count, last_error"
# Each twin differs from the job in one key column: queue, priority, or run_at (+1 hour).
TWINS = [("other queue", 100, "0 hours"), ("", 200, "0 hours"), ("", 100, "1 hour")]


def rows(db: psycopg.Connection[Any], job_id: int) -> list[tuple[Any, ...]]:
    return db.execute(
        f"SELECT {COLUMNS} FROM que_jobs WHERE job_id = %s ORDER BY queue, priority, run_at", [job_id]
    ).fetchall()


def add_twins(db: psycopg.Connection[Any], job_id: int) -> list[tuple[Any, ...]]:
    """Rows with the same job_id as the job, differing in one other key column each."""
    for queue, priority, later in TWINS:
        db.execute(
            "INSERT INTO que_jobs (queue, priority, run_at, job_id, job_class, args) "
            "SELECT %s, %s, run_at + %s::interval, job_id, 'QueConformance::Twin', '[\"twin\"]' "
            "FROM que_jobs WHERE job_id = %s AND job_class <> 'QueConformance::Twin'",
            [queue, priority, later, job_id],
        )
    return db.execute(
        f"SELECT {COLUMNS} FROM que_jobs WHERE job_id = %s AND job_class = 'QueConformance::Twin' "
        "ORDER BY queue, priority, run_at",
        [job_id],
    ).fetchall()


@pytest.mark.covers(
    "destroy_job.queue",
    "destroy_job.priority",
    "destroy_job.run_at",
    "destroy_job.job_id",
    "set_error.queue",
    "set_error.priority",
    "set_error.key_run_at",
    "set_error.job_id",
)
@pytest.mark.parametrize("action", ["delete", "error", "release"])
def test_finishing_a_job_leaves_rows_sharing_its_job_id(
    impl: str, action: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    testee = fleet.get(impl)
    if action == "release":
        require(fleet.info(impl), "lock")
    job_id = insert(db, FAIL if action == "error" else ECHO, '["main"]', run_at_offset_s=-60)
    [main] = rows(db, job_id)
    twins = add_twins(db, job_id)
    if action == "release":
        held = testee.lock()
        check_equal(held and held["job_id"], job_id, "lock-order", impl=impl)
        testee.release(job_id)
        expected = sorted([main, *twins])
    else:
        try:
            worked = testee.work_one()["worked"]
        except TesteeError as error:
            check(False, "whole-key", impl=impl, job=job_id, detail=f"work_one failed: {error}")
        check_equal(worked, True, "whole-key", impl=impl, job=job_id, detail="work_one")
        expected = list(twins)
        if action == "error":
            failed = db.execute(
                "SELECT error_count FROM que_jobs WHERE job_id = %s AND job_class <> 'QueConformance::Twin'", [job_id]
            ).fetchall()
            check_equal(failed, [(1,)], "whole-key", impl=impl, job=job_id, detail="the failed job's error_count")
    left = [r for r in rows(db, job_id) if action == "release" or r[4] == "QueConformance::Twin"]
    check_equal(
        sorted(left), sorted(expected), "whole-key", impl=impl, job=job_id, detail=f"rows sharing job_id after {action}"
    )


@pytest.mark.covers("destroy_job.job_id", "set_error.job_id")
@pytest.mark.parametrize("action", ["delete", "error"])
def test_finishing_a_job_leaves_rows_sharing_the_rest_of_its_key(
    impl: str, action: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """A row with the job's queue, priority and run_at but another job_id (jobs enqueued in
    one transaction share their run_at) is another job: finishing this one leaves it as it
    was."""
    job_id = insert(db, FAIL if action == "error" else ECHO, '["main"]', run_at_offset_s=-60)
    db.execute(
        "INSERT INTO que_jobs (queue, priority, run_at, job_id, job_class, args) "
        "SELECT queue, priority, run_at, job_id + 1000, 'QueConformance::Twin', '[\"twin\"]' FROM que_jobs "
        "WHERE job_id = %s",
        [job_id],
    )
    [sibling] = rows(db, job_id + 1000)
    check_equal(fleet.get(impl).work_one()["worked"], True, "whole-key", impl=impl, job=job_id, detail="work_one")
    check_equal(
        rows(db, job_id + 1000), [sibling], "whole-key", impl=impl, job=job_id, detail=f"the sibling after {action}"
    )
