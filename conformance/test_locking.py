"""Area 6, locking: a held job is skipped by everyone else, the lock is the job id's single
bigint advisory lock, releasing makes the job workable, and the race check works."""

import threading
import time
from typing import Any

import psycopg
import pytest

from conformance.fleet import Fleet, require
from conformance.support import advisory_locks, executions, insert, jobs


def test_held_job_is_skipped_by_others(holder: str, other: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """While X holds job A, Y locks and works only B; once X releases A, Y works A."""
    require(fleet.info(holder), "lock")
    x, y = fleet.get(holder), fleet.get(other)
    a = insert(db, priority=1, args="[1]")
    b = insert(db, priority=2, args="[2]")
    held = x.lock()
    assert held is not None and held["job_id"] == a
    try:
        if fleet.info(other).can("lock"):
            second = y.lock()
            assert second is not None and second["job_id"] == b, f"{other} locked {second} while {holder} held {a}"
            y.release(b)
        assert y.work_one()["worked"] is True
        assert y.work_one()["worked"] is False, f"{other} worked a job {holder} holds"
        assert [r["job_id"] for r in executions(db)] == [b]
    finally:
        x.release(a)
    assert y.work_one()["worked"] is True
    assert [r["job_id"] for r in executions(db)] == [b, a]
    assert jobs(db) == [] and advisory_locks(db) == []


def test_lock_is_the_job_ids_bigint_key(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """pg_locks shows one advisory lock: classid = id >> 32, objid = id & 0xffffffff, objsubid 1."""
    require(fleet.info(impl), "lock")
    testee = fleet.get(impl)
    job_id = 2**33 + 5
    db.execute("SELECT setval('que_jobs_job_id_seq', %s, false)", [job_id])
    assert insert(db) == job_id
    held = testee.lock()
    assert held is not None and held["job_id"] == job_id
    try:
        locks = [(lock.classid, lock.objid, lock.objsubid) for lock in advisory_locks(db)]
        assert locks == [(2, 5, 1)], (
            f"the lock must be the single bigint key job_id {job_id} (classid 2, objid 5, objsubid 1), got {locks}"
        )
    finally:
        testee.release(job_id)
    assert advisory_locks(db) == []
    assert testee.work_one()["worked"] is True
    assert [r["job_id"] for r in executions(db)] == [job_id]


GATE_KEY = 424242
POLL_SECONDS = 0.01  # how often the gate condition is re-checked

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


def blocked_at_gate(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s", [GATE_KEY]
    ).fetchone()
    return bool(row and row[0])


def test_race_check_after_locking(impl: str, fleet: Fleet, db: psycopg.Connection[Any], pg: Any) -> None:
    """Job J is finished by someone else after the worker's lock_job snapshot but before its
    lock attempt: the worker must notice in check_job, release J's lock and never run J.

    The interleaving is made deterministic by reading que_jobs through a view whose filter
    waits on an advisory lock the test holds when it reaches job G, the first in order.
    G itself is held by the test, so the worker moves on from G to J.
    """
    testee = fleet.get(impl)
    g = insert(db, priority=1, args='["G"]')
    j = insert(db, priority=2, args='["J"]')
    k = insert(db, priority=3, args='["K"]')
    db.execute("ALTER TABLE que_jobs RENAME TO que_jobs_gated")
    db.execute(GATE)
    db.execute(f"CREATE VIEW que_jobs AS SELECT * FROM que_jobs_gated WHERE que_conformance_gate(job_id, {g})")
    result: dict[str, Any] = {}
    try:
        with psycopg.connect(pg.url, autocommit=True) as gate, psycopg.connect(pg.url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", [g])  # G is being worked elsewhere
            gate.execute("SELECT pg_advisory_lock(%s)", [GATE_KEY])
            worker = threading.Thread(target=lambda: result.update(testee.work_one()))
            worker.start()
            deadline = time.monotonic() + 20
            while not blocked_at_gate(db):
                assert worker.is_alive(), f"{impl} finished work_one without reading job G: {result}"
                assert time.monotonic() < deadline, f"{impl}'s lock query never reached job G"
                time.sleep(POLL_SECONDS)
            # Another worker finishes J now: deleted and committed after the snapshot.
            db.execute("DELETE FROM que_jobs_gated WHERE job_id = %s", [j])
            gate.execute("SELECT pg_advisory_unlock(%s)", [GATE_KEY])
            worker.join(30)
            assert not worker.is_alive()
            ran = [r["job_id"] for r in executions(db)]
            assert j not in ran, f"{impl} ran job J although it was already finished (no race check)"
            leftover = [lock for lock in advisory_locks(db) if lock.key != g]
            assert leftover == [], f"locks left after the race: {leftover}"
            if fleet.info(impl).can("race_retry"):
                assert ran == [k], f"{impl} declares race_retry but worked {ran} instead of K"
            else:
                assert ran in ([], [k])
            other.execute("SELECT pg_advisory_unlock(%s)", [g])
    finally:
        db.execute("DROP VIEW que_jobs")
        db.execute("DROP FUNCTION que_conformance_gate(bigint, bigint)")
        db.execute("ALTER TABLE que_jobs_gated RENAME TO que_jobs")


@pytest.mark.parametrize("count", [3])
def test_no_lock_survives_work(impl: str, count: int, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """After working jobs (success and failure) the implementation holds no advisory lock."""
    testee = fleet.get(impl)
    for n in range(count):
        insert(db, args=f"[{n}]")
    insert(db, "QueConformance::Fail", '["boom"]')
    while testee.work_one()["worked"]:
        pass
    assert advisory_locks(db) == []
