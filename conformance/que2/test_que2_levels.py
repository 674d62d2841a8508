"""Area 2.x poll, level by level: a locker whose workers have four priorities (Que 2's
worker_priorities [10, 30, 50, nil]), read from Ruby Que 2.4.1's JobBuffer
(lib/que/job_buffer.rb) and Poller (lib/que/poller.rb).

The poll gives each job the lowest free worker priority at or above its own, and the
buffer's space to the least demanding one (available_priorities). When jobs come in, the
buffer hands them to the workers waiting for one, the least demanding worker first and each
only the buffer's first job (push: priority_queues.reverse_each, _shift_job): a worker of
priority 30 does not get a job of 40 that heads the buffer even though one of 20 came in
with it, and it waits while that job does. Jobs the buffer cannot hold beyond its size are
released (pop(overage)). The cells watch the locks and when each job ends."""

from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal, within
from conformance.fleet import Fleet, require
from conformance.que2.witness import QUEUE, locked_ids, sleep_job, working
from harness.results import TABLE

PRIORITIES = [10, 30, 50, None]
RUN_MS = 2500


def _ended(db: psycopg.Connection[Any]) -> dict[int, float]:
    """Each job that ended, with when (seconds after the first one ended)."""
    rows = db.execute(f"SELECT job_id, extract(epoch FROM at)::float8 FROM {TABLE} ORDER BY at").fetchall()
    first = rows[0][1] if rows else 0.0
    return {int(job_id): at - first for job_id, at in rows}


@pytest.mark.covers(
    "que2.poll_jobs.slot",
    "que2.poll_jobs.ceiling",
    "que2.job_buffer.available",
    "que2.job_buffer.take",
    "que2.job_buffer.push",
)
def test_four_worker_priorities_fill_and_hand_out_level_by_level(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """Jobs of priority 5 (id 1), 20 (2), 40 (3) and twelve of 60 (4-15), each 2.5 s; workers
    of priority 10, 30, 50 and any. The poll gives 1 to the 10, 2 to the 30, 3 to the 50 and
    nine 60s to the any worker's place and the buffer: twelve locks. The buffer hands 1 to
    the any worker and 2 to the 50; the 30 and the 10 find the 40 at its head and wait; the
    buffer then holds ten and releases its two last 60s (14 and 15 stay unlocked). So jobs 1
    and 2 run together, and 3 only after them, on the any worker."""
    require(fleet.info(impl), "work_pool")
    sleep_job(db, 1, 5, RUN_MS)
    sleep_job(db, 2, 20, RUN_MS)
    sleep_job(db, 3, 40, RUN_MS)
    for job_id in range(4, 16):
        sleep_job(db, job_id, 60, RUN_MS)
    settled = set(range(1, 11))
    request = {"queue": QUEUE, "workers": 4, "priorities": PRIORITIES, "deadline_ms": 6000, "wake_interval_ms": 50}
    with working(fleet.get(impl), **request) as box:
        started = within(15, lambda: bool(locked_ids(db)))
        # Until the first jobs end (2.5 s after their locks were taken) the locks must settle.
        reached = started and within(RUN_MS / 1000 - 0.5, lambda: locked_ids(db) == settled)
        seen = sorted(locked_ids(db))
    check("error" not in box, "que2-buffer", impl=impl, detail=f"work failed: {box.get('error')}")
    check(reached, "que2-buffer", impl=impl, detail="the locks while the first jobs ran", seen=seen)
    ended = _ended(db)
    first_wave = sorted(job_id for job_id, at in ended.items() if at < 1.0)
    check_equal(first_wave, [1, 2], "que2-thresholds", impl=impl, detail="the jobs that ran at once, first")
    check(
        ended.get(3, 0.0) >= RUN_MS / 1000 - 0.5,
        "que2-thresholds",
        impl=impl,
        detail="job 3 (priority 40) ran after them, on the worker the first one freed",
        seen=ended,
    )
