"""Area delivery: at least once, and only once while a worker lives.

- A worker that dies mid-job (its process killed while the handler runs) leaves the job in
  que_jobs, untouched, and its lock ends with its session: another worker runs it. A port
  that deletes a job before its handler has run loses it here.
- A job that runs longer than the idle timeouts connection pools use (LONG_MS) keeps its
  lock on one session from start to end, and no other worker runs it meanwhile. A port
  that holds the lock on a pooled connection the pool closes when idle loses it here.
- A row whose args are not a JSON array (que-go lets writers store any JSON) is worked or
  failed like any other job: never left as it was, never the end of the worker.
"""

import json
import threading
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal, within
from conformance.fleet import Fleet, require, require_worker
from conformance.model import ruby_splat
from conformance.support import ECHO, SLEEP, advisory_locks, executions, insert, jobs
from harness.testee import TesteeFailure

REFERENCE = "python"  # the worker that finishes what a killed worker left
DYING_MS = 5_000
LONG_MS = 10_500  # longer than the 5 s and 10 s idle timeouts of common connection pools


def _finisher(fleet: Fleet, impl: str) -> str:
    """A worker other than `impl` to finish its jobs: python, else the first other row."""
    names = [name for name in fleet.names("conformance") if name != impl]
    return REFERENCE if REFERENCE in names else names[0] if names else impl


@pytest.mark.covers("work.run_then_destroy")
def test_a_job_whose_worker_dies_mid_job_stays_and_runs_again(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    require_worker(fleet.info(impl))
    testee = fleet.get(impl)
    job_id = insert(db, SLEEP, f"[{DYING_MS}]")
    [before] = jobs(db)
    box: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: box.update(result=_attempt(lambda: testee.work_one(timeout=DYING_MS / 1000 + 30)))
    )
    worker.start()
    try:
        held = within(20, lambda: job_id in [lock.key for lock in advisory_locks(db)])
        check(held, "at-least-once", impl=impl, job=job_id, detail=f"the job was never locked: {box}")
        testee.kill()  # the process dies while the handler sleeps
    finally:
        worker.join(30)
    check(
        within(10, lambda: job_id not in [lock.key for lock in advisory_locks(db)]),
        "unlock",
        impl=impl,
        job=job_id,
        detail="the killed worker's lock must end with its session",
    )
    left = jobs(db)
    check_equal(
        [{k: j[k] for k in ("job_id", "run_at", "error_count", "last_error")} for j in left],
        [{k: before[k] for k in ("job_id", "run_at", "error_count", "last_error")}],
        "at-least-once",
        impl=impl,
        job=job_id,
        detail="the job after its worker died mid-job (it must stay, untouched)",
    )
    finisher = _finisher(fleet, impl)
    check_equal(
        fleet.get(finisher).work_one(timeout=DYING_MS / 1000 + 30)["worked"], True, "at-least-once", impl=finisher
    )
    check_equal(jobs(db), [], "at-least-once", impl=impl, job=job_id, detail="jobs left after the job ran again")


def _attempt(call: Any) -> Any:
    try:
        return call()
    except TesteeFailure as failure:
        return failure


@pytest.mark.slow
def test_a_long_job_keeps_its_lock_on_one_session(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """X's pool runs a job of LONG_MS; meanwhile another worker keeps looking for work. The
    job's lock is held by one backend all along, and the job runs once."""
    require(fleet.info(impl), "work_pool")
    testee = fleet.get(impl)
    job_id = insert(db, SLEEP, f"[{LONG_MS}]")
    other_name = _finisher(fleet, impl)
    other = fleet.get(other_name)
    holders: list[set[int]] = []
    box: dict[str, Any] = {}
    pool = threading.Thread(
        target=lambda: box.update(result=_attempt(lambda: testee.work(workers=2, deadline_ms=60_000)))
    )
    pool.start()
    try:
        check(
            within(20, lambda: job_id in [lock.key for lock in advisory_locks(db)]),
            "long-job",
            impl=impl,
            job=job_id,
            detail=f"the job was never locked: {box}",
        )
        while pool.is_alive() and jobs(db):
            holders.append({lock.pid for lock in advisory_locks(db) if lock.key == job_id})
            if other_name != impl:
                other.work_one()  # another worker looking for work must not get the long job
            pool.join(0.25)  # the next sample, or the end of the work: whichever comes first
    finally:
        pool.join(LONG_MS / 1000 + 60)
    seen = [pids for pids in holders if pids]
    distinct = set().union(*seen) if seen else set()
    gaps = sum(1 for pids in holders[: len(holders) - 1] if not pids)
    check(
        len(distinct) == 1 and gaps == 0,
        "long-job",
        impl=impl,
        job=job_id,
        detail=f"backends holding the job's lock over {len(holders)} samples of a {LONG_MS} ms job "
        f"(samples with no holder before the end: {gaps})",
        expected="one backend, in every sample",
        seen=sorted(distinct),
    )
    runs = [r for r in executions(db) if r["job_id"] == job_id]
    check_equal(len(runs), 1, "long-job", impl=impl, job=job_id, detail=f"executions of the job: {runs}")
    check_equal(jobs(db), [], "long-job", impl=impl, job=job_id, detail="jobs left after the pool finished")


NOT_ARRAYS = ['{"a":1}', "5", "null", '"s"', "true"]


@pytest.mark.covers("work.splat")
@pytest.mark.parametrize("args", NOT_ARRAYS, ids=["object", "number", "null", "string", "bool"])
def test_a_row_whose_args_are_not_an_array_is_worked_or_failed(
    impl: str, args: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    testee = fleet.get(impl)
    odd = insert(db, ECHO, args)
    after = insert(db, ECHO, "[1]")
    for _ in range(3):
        if not testee.work_one()["worked"]:
            break
    left = {j["job_id"]: j for j in jobs(db)}
    ran = [r["job_id"] for r in executions(db)]
    if odd in left:
        row = left[odd]
        check(
            row["error_count"] == 1 and bool(row["last_error"]) and ran.count(odd) == 0,
            "non-array-args",
            impl=impl,
            job=odd,
            detail=f"args {args}: left in que_jobs, so it must have failed (error_count 1, last_error set)",
            seen={k: row[k] for k in ("error_count", "last_error")} | {"runs": ran.count(odd)},
        )
    else:
        check_equal(ran.count(odd), 1, "non-array-args", impl=impl, job=odd, detail=f"args {args}: runs")
        [run] = [r for r in executions(db) if r["job_id"] == odd]
        check_equal(
            json.loads(run["received"]) if run["received"] is not None else None,
            ruby_splat(json.loads(args)),
            "non-array-args",
            impl=impl,
            job=odd,
            detail=f"args {args}: what the handler received, as Ruby's run(*args) splats it",
        )
    check_equal(ran.count(after), 1, "non-array-args", impl=impl, job=after, detail="the job after it: runs")
    check(after not in left, "non-array-args", impl=impl, job=after, detail="the job after it was not deleted")
    check_equal(advisory_locks(db), [], "unlock", impl=impl, detail=f"locks left after args {json.loads(args)!r}")
