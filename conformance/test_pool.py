"""Area pool: a worker pool of N works N jobs at once. The witnesses are pg_locks (the N jobs
are locked together, by one session or several: a pool may hold its jobs' locks on one
connection, as Que 1.x's locker does) and the results table: each job sleeps SLEEP_MS and
then records the time, so N finish times within SLEEP_MS of each other mean the N jobs were
running at one moment. A pool that claims several jobs and runs them one after another, or
ignores its size, fails."""

import threading
from typing import Any

import psycopg

from conformance.checks import check, check_equal
from conformance.fleet import Fleet, require
from conformance.support import SLEEP, executions, insert
from harness.lab import advisory_locks
from harness.results import TABLE

WORKERS = 4
SLEEP_MS = 1500  # long enough for the sampler to see every worker's lock held


def test_a_pool_of_n_works_n_jobs_at_once(impl: str, fleet: Fleet, db: psycopg.Connection[Any], pg: Any) -> None:
    require(fleet.info(impl), "work_pool")
    testee = fleet.get(impl)
    ids = {insert(db, SLEEP, f"[{SLEEP_MS}]") for _ in range(WORKERS)}
    most = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal most
        with psycopg.connect(pg.url, autocommit=True) as watcher:
            while not done.is_set():
                held = {lock.key for lock in advisory_locks(watcher) if lock.key in ids}
                most = max(most, len(held))
                done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = testee.work(workers=WORKERS, deadline_ms=60_000)
    finally:
        done.set()
        sampler.join()
    check_equal(result.get("drained"), True, "pool-size", impl=impl, detail=f"work with {WORKERS} workers: {result}")
    check_equal(sorted(r["job_id"] for r in executions(db)), sorted(ids), "pool-size", impl=impl, detail="jobs run")
    check_equal(most, WORKERS, "pool-size", impl=impl, detail=f"most of the {WORKERS} jobs locked at once")
    spread = db.execute(f"SELECT extract(epoch FROM max(at) - min(at)) * 1000 FROM {TABLE}").fetchone()
    check(
        spread is not None and spread[0] is not None and float(spread[0]) < SLEEP_MS,
        "pool-size",
        impl=impl,
        detail=f"ms between the first and the last of {WORKERS} jobs of {SLEEP_MS} ms to finish (all at once: "
        f"under {SLEEP_MS})",
        seen=spread and spread[0],
    )
