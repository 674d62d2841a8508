"""Area 8, exactly once: workers of every available implementation drain one queue together;
every job runs once, none is lost, none is left locked."""

import threading
from typing import Any

import psycopg
import pytest

from conformance.fleet import Fleet, require
from conformance.support import ECHO, advisory_locks, jobs
from harness.lab import fill
from harness.results import TABLE
from harness.testee import TesteeFailure

JOBS = 3000
WORKERS = 3


def check_exactly_once(db: psycopg.Connection[Any], n: int) -> dict[str, int]:
    counts = db.execute(f"SELECT job_id, count(*) FROM {TABLE} GROUP BY job_id HAVING count(*) > 1").fetchall()
    assert counts == [], f"jobs run more than once: {counts[:10]}"
    row = db.execute(f"SELECT count(DISTINCT job_id) FROM {TABLE}").fetchone()
    assert row == (n,), f"{n - row[0] if row else n} jobs never ran"  # type: ignore[index]
    assert jobs(db) == []
    assert advisory_locks(db) == []
    return dict(db.execute(f"SELECT impl, count(*) FROM {TABLE} GROUP BY impl ORDER BY impl").fetchall())  # type: ignore[arg-type]


def test_each_implementation_drains_alone(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    require(fleet.info(impl), "work_pool")
    testee = fleet.get(impl)
    fill(db, 500, ECHO)
    result = testee.work(workers=WORKERS, deadline_ms=120_000)
    assert result.get("drained") is True, f"{impl} did not drain 500 jobs: {result}"
    check_exactly_once(db, 500)


def test_all_implementations_drain_together(fleet: Fleet, db: psycopg.Connection[Any], request: Any) -> None:
    available = []
    for name in fleet.names():
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
    failures = {k: v for k, v in outcomes.items() if isinstance(v, Exception)}
    assert not failures, failures
    split = check_exactly_once(db, JOBS)
    print(f"{JOBS} jobs drained by {split}")
