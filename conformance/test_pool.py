"""Area pool: a worker pool of N works N jobs at once. The witness is pg_locks: while N slow
jobs run, N sessions hold their job locks together. Counting sessions, not locks, keeps a pool
that claims several jobs on one connection and runs them one after another from passing; a
port whose pool ignores its size fails."""

import threading
from typing import Any

import psycopg

from conformance.checks import check_equal
from conformance.fleet import Fleet, require
from conformance.support import SLEEP, executions, insert
from harness.lab import advisory_locks

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
                holders = {lock.pid for lock in advisory_locks(watcher) if lock.key in ids}
                most = max(most, len(holders))
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
    check_equal(
        most, WORKERS, "pool-size", impl=impl, detail=f"most sessions holding job locks at once in a pool of {WORKERS}"
    )
