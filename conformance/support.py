"""Reading the witnesses (que_jobs, the results table, pg_locks) and writing raw rows."""

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from harness.lab import THIS_DATABASE
from harness.lab import advisory_locks as advisory_locks
from harness.results import TABLE

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # a link to fixtures/ in a checkout
ECHO = "QueConformance::Echo"
FAIL = "QueConformance::Fail"
SLEEP = "QueConformance::Sleep"
FINISH = "QueConformance::Finish"  # the Que 2 dialect only
EXPIRE = "QueConformance::Expire"  # the Que 2 dialect only
UNKNOWN = "QueConformance::NoSuchJob"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def server_now(conn: psycopg.Connection[Any]) -> datetime:
    """The server's clock (clock_timestamp(), not the transaction's now())."""
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None, "SELECT clock_timestamp() returned no row"
    return row[0]  # type: ignore[no-any-return]


def jobs(conn: psycopg.Connection[Any], where: str = "true") -> list[dict[str, Any]]:
    """que_jobs rows; run_at in UTC (instants from zones with daylight saving compare
    unequal to the same instant at a fixed offset when read in the session's zone), or None
    beyond Python's datetime (a job retried after a thousand failures is due after year
    9999: its due_in_s says when)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT queue, priority, CASE WHEN run_at < '9999-12-31 12:00:00+00' THEN run_at END AS run_at, "
            "job_id, job_class, args::text AS args, error_count, last_error, "
            f"extract(epoch FROM run_at - now())::float8 AS due_in_s FROM que_jobs WHERE {where} ORDER BY job_id"
        )
        found = cur.fetchall()
    for row in found:
        if row["run_at"] is not None:
            row["run_at"] = row["run_at"].astimezone(UTC)
    return found


def executions(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT impl, pid, job_id, job_class, received, raw FROM {TABLE} ORDER BY id")
        return cur.fetchall()


def insert(
    conn: psycopg.Connection[Any],
    job_class: str = ECHO,
    args: str = "[]",
    *,
    priority: int = 100,
    queue: str = "",
    run_at_offset_s: float = 0.0,
) -> int:
    """A job written straight into que_jobs with SQL, as any writer could."""
    row = conn.execute(
        "INSERT INTO que_jobs (job_class, args, priority, queue, run_at) "
        "VALUES (%s, %s::json, %s, %s, now() + %s * interval '1 second') RETURNING job_id",
        [job_class, args, priority, queue, run_at_offset_s],
    ).fetchone()
    assert row is not None, "INSERT ... RETURNING job_id returned no row"
    return int(row[0])


def make_due(conn: psycopg.Connection[Any], job_id: int) -> None:
    conn.execute("UPDATE que_jobs SET run_at = now() - interval '1 second' WHERE job_id = %s", [job_id])


# -- a deterministic race for the check after lock_job ---------------------------------------

GATE_KEY = 424242  # an advisory lock key the test holds to stop a statement where it wants

GATE = f"""
CREATE FUNCTION que_conformance_gate(id bigint, gated bigint) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF id = gated THEN
    PERFORM pg_advisory_lock_shared({GATE_KEY});
    PERFORM pg_advisory_unlock_shared({GATE_KEY});
  END IF;
  RETURN true;
END $$
"""


def waiting_at_gate(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        f"SELECT count(*) FROM pg_locks WHERE {THIS_DATABASE} AND locktype = 'advisory' AND NOT granted AND objid = %s",
        [GATE_KEY],
    ).fetchone()
    return bool(row and row[0])


@dataclass
class RaceGate:
    db: psycopg.Connection[Any]
    gate: psycopg.Connection[Any]
    finished: int

    def waiting(self) -> bool:
        """Whether a lock_job walk waits at job `first`, its snapshot already taken."""
        return waiting_at_gate(self.db)

    def release(self, finish: str | None = None) -> None:
        """Another session finishes job `finished` now (after the walk's snapshot), or runs
        `finish` (SQL on que_jobs_gated) instead; then the walk goes on and reaches it."""
        self.db.execute(finish or f"DELETE FROM que_jobs_gated WHERE job_id = {int(self.finished)}")
        self.gate.execute("SELECT pg_advisory_unlock(%s)", [GATE_KEY])


@contextlib.contextmanager
def race_gate(db: psycopg.Connection[Any], url: str, first: int, finished: int) -> Iterator[RaceGate]:
    """que_jobs read through a view whose filter waits on GATE_KEY when the walk reaches job
    `first`, itself held by another session (so the walk moves on to `finished` next). The
    table is restored on exit: call release() and let the worker finish inside the block."""
    db.execute("ALTER TABLE que_jobs RENAME TO que_jobs_gated")
    db.execute(GATE)
    db.execute(f"CREATE VIEW que_jobs AS SELECT * FROM que_jobs_gated WHERE que_conformance_gate(job_id, {first})")
    try:
        with psycopg.connect(url, autocommit=True) as gate, psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", [first])  # `first` is being worked elsewhere
            gate.execute("SELECT pg_advisory_lock(%s)", [GATE_KEY])
            try:
                yield RaceGate(db, gate, finished)
            finally:
                # Released here, not by closing the sessions: a closed session's locks stay
                # until its server process has exited, which the next check may not wait for.
                for session in (gate, holder):
                    with contextlib.suppress(psycopg.Error):
                        session.execute("SELECT pg_advisory_unlock_all()")
    finally:
        db.execute("DROP VIEW que_jobs")
        db.execute("DROP FUNCTION que_conformance_gate(bigint, bigint)")
        db.execute("ALTER TABLE que_jobs_gated RENAME TO que_jobs")
