"""Area exactly-once: workers of every available implementation drain one queue together;
every job runs once, none is lost, none is left locked."""

import threading
from typing import Any

import psycopg
import pytest

from conformance.checks import check_equal
from conformance.fleet import Fleet, require
from conformance.support import ECHO, advisory_locks, jobs
from harness.lab import fill
from harness.results import TABLE
from harness.testee import TesteeFailure

JOBS = 3000
WORKERS = 3


def check_exactly_once(db: psycopg.Connection[Any], n: int, impl: str) -> dict[str, int]:
    twice = db.execute(f"SELECT job_id, count(*) FROM {TABLE} GROUP BY job_id HAVING count(*) > 1").fetchall()
    check_equal(twice[:10], [], "exactly-once", impl=impl, detail="(job_id, runs) of jobs run more than once")
    row = db.execute(f"SELECT count(DISTINCT job_id) FROM {TABLE}").fetchone()
    check_equal(row[0] if row else 0, n, "exactly-once", impl=impl, detail="distinct jobs run")
    check_equal([j["job_id"] for j in jobs(db)][:10], [], "exactly-once", impl=impl, detail="jobs left in que_jobs")
    check_equal([lock.key for lock in advisory_locks(db)][:10], [], "exactly-once", impl=impl, detail="locks left")
    return dict(db.execute(f"SELECT impl, count(*) FROM {TABLE} GROUP BY impl ORDER BY impl").fetchall())  # type: ignore[arg-type]


@pytest.mark.covers("check_job.job_id", "work.run_then_destroy")
def test_each_implementation_drains_alone(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Three workers of one row drain 500 jobs: each runs once, because a job another worker
    finished after the walk's snapshot is found gone by check_job (by its job_id) and not
    run again, and each is deleted after it ran."""
    require(fleet.info(impl), "work_pool")
    testee = fleet.get(impl)
    fill(db, 500, ECHO)
    # Every row drains these in well under a second; a port that hangs is told so in 30 s.
    result = testee.work(workers=WORKERS, deadline_ms=30_000)
    check_equal(result.get("drained"), True, "exactly-once", impl=impl, detail=f"drain of 500 jobs: {result}")
    check_exactly_once(db, 500, impl)


def test_all_implementations_drain_together(fleet: Fleet, db: psycopg.Connection[Any], request: Any) -> None:
    available = []
    speaking = fleet.speaking("conformance")
    if not speaking:
        pytest.skip("not applicable: no row of the run speaks this dialect")
    for name in speaking:
        try:
            if fleet.info(name).can("work_pool"):
                available.append((name, fleet.get(name)))
        except pytest.skip.Exception:
            continue
    request.node.user_properties.append(("impls", [name for name, _ in available]))
    if len(available) < 2:
        pytest.skip("unavailable: fewer than two implementations can run here")
    fill(db, JOBS, ECHO)
    outcomes: dict[str, Any] = {}

    def drain(name: str, testee: Any) -> None:
        try:
            outcomes[name] = testee.work(workers=WORKERS, deadline_ms=180_000)
        except TesteeFailure as error:
            outcomes[name] = error

    threads = [threading.Thread(target=drain, args=pair) for pair in available]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failures = {k: str(v) for k, v in outcomes.items() if isinstance(v, Exception)}
    check_equal(failures, {}, "exactly-once", impl=", ".join(outcomes), detail="work requests that failed")
    split = check_exactly_once(db, JOBS, ", ".join(outcomes))
    print(f"{JOBS} jobs drained by {split}")
