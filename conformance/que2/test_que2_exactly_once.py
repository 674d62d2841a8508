"""Area 2.x exactly-once: the lockers of every row work one queue together."""

import contextlib
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal
from conformance.fleet import Fleet
from conformance.que2.witness import QUEUE, VERSION, jobs, lockers, working
from conformance.support import ECHO, advisory_locks, executions

JOBS = 300


@pytest.mark.covers("que2.check_job.row")
def test_every_row_together_works_each_job_once(fleet: Fleet, db: psycopg.Connection[Any], request: Any) -> None:
    rows = []
    speaking = fleet.speaking("que2")
    if not speaking:
        pytest.skip("not applicable: no row of the run speaks this dialect")
    for name in speaking:
        try:
            if fleet.info(name).can("work_pool"):
                rows.append(name)
        except pytest.skip.Exception:
            continue
    request.node.user_properties.append(("impls", rows))
    if not rows:
        pytest.skip("unavailable: no row can work a pool here")
    db.execute(
        "INSERT INTO que_jobs (job_class, args, job_schema_version) "
        "SELECT %s, jsonb_build_array(i), %s FROM generate_series(1, %s) AS i",
        [ECHO, VERSION, JOBS],
    )
    ids = [r["id"] for r in jobs(db)]
    request = {"queue": QUEUE, "workers": 2, "deadline_ms": 60_000, "wake_interval_ms": 10}
    boxes = []
    with contextlib.ExitStack() as stack:
        for name in rows:
            boxes.append((name, stack.enter_context(working(fleet.get(name), **request))))
    for name, box in boxes:
        check("error" not in box, "que2-exactly-once", impl=name, detail=f"work failed: {box.get('error')}")
    worked = [r["job_id"] for r in executions(db)]
    check_equal(sorted(worked), sorted(ids), "que2-exactly-once", detail="each job worked once")
    check_equal(jobs(db), [], "que2-exactly-once", detail="rows left")
    check_equal((advisory_locks(db), lockers(db)), ([], []), "que2-exactly-once", detail="locks and lockers left")
