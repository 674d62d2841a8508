"""Area 2.x locker, the worker's life over many jobs: after each outcome (a success, a
failure, an unknown class, a job that finishes or expires itself, a row deleted while it
waits in the buffer) the locker's worker goes on to the next job, each job gets its own
outcome, and none runs twice."""

from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal, within
from conformance.fleet import Fleet, require
from conformance.que2.witness import QUEUE, insert, jobs, working
from conformance.support import ECHO, EXPIRE, FAIL, FINISH, SLEEP, UNKNOWN, advisory_locks, executions

STREAM = ["sleep", "echo", "fail", "unknown", "finish", "gone", "echo", "expire", "fail", "echo", "unknown", "echo"]
CLASSES = {"sleep": SLEEP, "echo": ECHO, "fail": FAIL, "unknown": UNKNOWN, "finish": FINISH, "expire": EXPIRE}
ARGS = {"sleep": "[800]", "fail": '["stream failure"]'}
# Per kind: (runs recorded, the row left as (error_count, finished, expired), or None: gone).
OUTCOMES: dict[str, tuple[int, tuple[int, bool, bool] | None]] = {
    "sleep": (1, None),
    "echo": (1, None),
    "fail": (0, (1, False, False)),
    "unknown": (0, (1, False, False)),
    "finish": (1, (0, True, False)),
    "expire": (1, (1, False, True)),
    "gone": (0, None),
}


@pytest.mark.covers("que2.destroy_job.delete", "que2.set_error.count", "que2.check_job.row", "que2.finish_job.columns")
def test_the_worker_goes_on_after_every_outcome(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """One worker, twelve jobs in priority order: one of 800 ms first (the buffer fills
    behind it), then successes, failures, unknown classes, a job that finishes itself and
    one that expires itself, and one deleted while it waits in the buffer."""
    require(fleet.info(impl), "work_pool")
    ids = [
        insert(db, CLASSES.get(kind, ECHO), ARGS.get(kind, f"[{n}]"), priority=n + 1) for n, kind in enumerate(STREAM)
    ]
    request = {"queue": QUEUE, "workers": 1, "deadline_ms": 20_000, "wake_interval_ms": 50}
    with working(fleet.get(impl), **request) as box:
        first = ids[0]
        locked = within(15, lambda: first in {lock.key for lock in advisory_locks(db)})
        check(locked, "que2-worker-life", impl=impl, detail="the first job was never locked")
        db.execute("DELETE FROM que_jobs WHERE id = %s", [ids[STREAM.index("gone")]])
    check("error" not in box, "que2-worker-life", impl=impl, detail=f"work failed: {box.get('error')}")
    runs = [e["job_id"] for e in executions(db)]
    left = {row["id"]: row for row in jobs(db)}
    seen = {}
    for job_id, kind in zip(ids, STREAM, strict=True):
        row = left.get(job_id)
        state = None
        if row is not None:
            state = (row["error_count"], row["finished_at"] is not None, row["expired_at"] is not None)
        seen[job_id] = (kind, runs.count(job_id), state)
    expected = {job_id: (kind, *OUTCOMES[kind]) for job_id, kind in zip(ids, STREAM, strict=True)}
    check_equal(seen, expected, "que2-worker-life", impl=impl, detail="each job: (kind, runs, row left)")
    check_equal(advisory_locks(db), [], "que2-worker-life", impl=impl, detail="locks left after the stream")
