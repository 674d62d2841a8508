"""Area stats: job_stats and worker_states report the queue as Ruby Que 0.14.3's do (for
implementations that have them: capability `stats`). The expected rows are computed here
from que_jobs and the locks the cell itself holds."""

from datetime import datetime
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal
from conformance.fleet import Fleet, require
from conformance.support import insert, jobs

# (queue, job_class, error_count, run_at offset in seconds)
ROWS = [
    ("", "QueConformance::A", 0, -30),
    ("", "QueConformance::A", 2, -10),
    ("", "QueConformance::A", 5, 60),
    ("", "QueConformance::B", 0, -20),
    ("", "QueConformance::B", 0, -5),
    ("q", "QueConformance::A", 1, -40),
]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.covers("job_stats.counts", "job_stats.locks", "job_stats.group")
def test_job_stats(impl: str, fleet: Fleet, db: psycopg.Connection[Any], pg: Any) -> None:
    require(fleet.info(impl), "stats")
    testee = fleet.get(impl)
    ids = [insert(db, cls, "[]", queue=queue, run_at_offset_s=offset) for queue, cls, _, offset in ROWS]
    for job_id, (_, _, errors, _) in zip(ids, ROWS, strict=True):
        db.execute("UPDATE que_jobs SET error_count = %s WHERE job_id = %s", [errors, job_id])
    stored = jobs(db)
    working = {ids[1], ids[5]}
    with psycopg.connect(pg.url, autocommit=True) as holder:
        for job_id in working:
            holder.execute("SELECT pg_advisory_lock(%s)", [job_id])
        rows = testee.request("job_stats")["rows"]
        holder.execute("SELECT pg_advisory_unlock_all()")
    expected: dict[tuple[str, str], dict[str, Any]] = {}
    for job in stored:
        group = expected.setdefault(
            (job["queue"], job["job_class"]),
            {"count": 0, "count_working": 0, "count_errored": 0, "highest_error_count": 0, "oldest_run_at": None},
        )
        group["count"] += 1
        group["count_working"] += job["job_id"] in working
        group["count_errored"] += job["error_count"] > 0
        group["highest_error_count"] = max(group["highest_error_count"], job["error_count"])
        oldest = group["oldest_run_at"]
        group["oldest_run_at"] = job["run_at"] if oldest is None else min(oldest, job["run_at"])
    seen = {
        (row["queue"], row["job_class"]): {
            **{k: row[k] for k in ("count", "count_working", "count_errored", "highest_error_count")},
            "oldest_run_at": _instant(row["oldest_run_at"]),
        }
        for row in rows
    }
    check_equal(seen, expected, "job-stats", impl=impl, detail="job_stats by (queue, job_class)")
    counts = [row["count"] for row in rows]
    check(counts == sorted(counts, reverse=True), "job-stats", impl=impl, detail="the biggest group first", seen=counts)


@pytest.mark.covers("worker_states.join")
def test_worker_states(impl: str, fleet: Fleet, db: psycopg.Connection[Any], pg: Any) -> None:
    require(fleet.info(impl), "stats")
    testee = fleet.get(impl)
    held = insert(db, "QueConformance::Held", "[]")
    insert(db, "QueConformance::Free", "[]")
    with psycopg.connect(pg.url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [held])
        rows = testee.request("worker_states")["rows"]
        holder.execute("SELECT pg_advisory_unlock_all()")
        pid = holder.info.backend_pid
    check_equal(
        [(row["job_id"], row["job_class"], row["pg_backend_pid"]) for row in rows],
        [(held, "QueConformance::Held", pid)],
        "worker-states",
        impl=impl,
        detail="worker_states while one job's lock is held by another session",
    )
