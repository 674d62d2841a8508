"""Area delivery, the worker's life over many jobs: after each outcome (a success, a failure,
an unknown class, a row deleted while it waited) a worker goes on to the next job. A port
whose loop ends on the first error, or skips a job after one, or runs a job twice, shows
here; each job is checked for its own outcome."""

import threading
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal, within
from conformance.fleet import Fleet, require
from conformance.support import ECHO, FAIL, SLEEP, UNKNOWN, advisory_locks, executions, insert, jobs

# The stream, in the order one worker takes it (priorities 1, 2, ...): what each job is.
STREAM = ["sleep", "echo", "fail", "unknown", "echo", "gone", "fail", "echo", "unknown", "echo", "fail", "echo"]
CLASSES = {"sleep": SLEEP, "echo": ECHO, "fail": FAIL, "unknown": UNKNOWN, "gone": ECHO}
ARGS = {"sleep": "[600]", "fail": '["stream failure"]'}


@pytest.mark.covers("work.unlock_always", "work.run_then_destroy", "work.unknown_class", "work.race")
def test_a_worker_goes_on_after_every_outcome(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """One worker, twelve jobs: a job of 600 ms first, then successes, failures and unknown
    classes mixed, and one job deleted while the first runs. Every success runs once and is
    deleted, every failure and unknown class stays with error_count 1 and never runs
    twice, the deleted job never runs, and no lock is left."""
    require(fleet.info(impl), "work_pool")
    ids = [insert(db, CLASSES[kind], ARGS.get(kind, f"[{n}]"), priority=n + 1) for n, kind in enumerate(STREAM)]
    testee = fleet.get(impl)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = testee.request("work", timeout=60, queue="", workers=1, deadline_ms=20_000)
        except Exception as error:  # reported below
            box["error"] = error

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    first = ids[0]
    locked = within(15, lambda: first in {lock.key for lock in advisory_locks(db)})
    check(locked, "worker-life", impl=impl, detail="the first job was never locked")
    gone = ids[STREAM.index("gone")]
    db.execute("DELETE FROM que_jobs WHERE job_id = %s", [gone])
    thread.join(90)
    check("error" not in box, "worker-life", impl=impl, detail=f"work failed: {box.get('error')}")
    runs = [e["job_id"] for e in executions(db)]
    left = {row["job_id"]: row for row in jobs(db)}
    seen = {}
    for job_id, kind in zip(ids, STREAM, strict=True):
        row = left.get(job_id)
        seen[job_id] = (kind, runs.count(job_id), None if row is None else row["error_count"])
    expected = {
        job_id: (kind, {"sleep": 1, "echo": 1}.get(kind, 0), 1 if kind in ("fail", "unknown") else None)
        for job_id, kind in zip(ids, STREAM, strict=True)
    }
    check_equal(seen, expected, "worker-life", impl=impl, detail="each job: (kind, runs, error_count left or None)")
    check_equal(advisory_locks(db), [], "worker-life", impl=impl, detail="locks left after the stream")
