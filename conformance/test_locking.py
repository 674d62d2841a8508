"""Area locking: a held job is skipped by everyone else, the lock is the job id's single
bigint advisory lock, releasing makes the job workable, the race check works, and a job's
delete commits before its lock is released."""

import threading
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal, within
from conformance.fleet import Fleet, require, require_worker
from conformance.support import (
    ECHO,
    FAIL,
    GATE_KEY,
    advisory_locks,
    executions,
    insert,
    jobs,
    race_gate,
    waiting_at_gate,
)


@pytest.mark.covers("lock_job.lock", "lock_job.locked", "lock_job.next")
def test_held_job_is_skipped_by_others(holder: str, other: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """While X holds job A, Y locks and works only B; once X releases A, Y works A."""
    require(fleet.info(holder), "lock")
    x, y = fleet.get(holder), fleet.get(other)
    a = insert(db, priority=1, args="[1]")
    b = insert(db, priority=2, args="[2]")
    pair = f"{holder} holds, {other} works"
    held = x.lock()
    check_equal(held and held["job_id"], a, "lock-order", impl=holder, detail="the first job by priority")
    try:
        if fleet.info(other).can("lock"):
            second = y.lock()
            check_equal(second and second["job_id"], b, "lock-skip", impl=pair, job=a, detail=f"{other}'s lock")
            y.release(b)
        check_equal(y.work_one()["worked"], True, "lock-skip", impl=pair, job=b, detail="work_one of B")
        check_equal(y.work_one()["worked"], False, "lock-skip", impl=pair, job=a, detail="work_one of held A")
        check_equal([r["job_id"] for r in executions(db)], [b], "lock-skip", impl=pair, detail="jobs run")
    finally:
        x.release(a)
    check_equal(y.work_one()["worked"], True, "lock-skip", impl=pair, job=a, detail="work_one after the release")
    check_equal([r["job_id"] for r in executions(db)], [b, a], "lock-skip", impl=pair, detail="jobs run")
    check_equal(jobs(db), [], "lock-skip", impl=pair, detail="jobs left")


@pytest.mark.covers("lock_job.lock", "unlock.key")
def test_lock_is_the_job_ids_bigint_key(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """pg_locks shows one advisory lock: classid = id >> 32, objid = id & 0xffffffff, objsubid 1."""
    require(fleet.info(impl), "lock")
    testee = fleet.get(impl)
    job_id = 2**33 + 5
    db.execute("SELECT setval('que_jobs_job_id_seq', %s, false)", [job_id])
    insert(db)
    held = testee.lock()
    check_equal(held and held["job_id"], job_id, "lock-order", impl=impl)
    try:
        locks = [(lock.classid, lock.objid, lock.objsubid) for lock in advisory_locks(db)]
        check_equal(locks, [(2, 5, 1)], "lock-key", impl=impl, job=job_id, detail="pg_locks (classid, objid, objsubid)")
    finally:
        testee.release(job_id)
    check_equal(advisory_locks(db), [], "unlock", impl=impl, job=job_id, detail="after release")
    check_equal(testee.work_one()["worked"], True, "lock-skip", impl=impl, job=job_id, detail="work_one after release")
    check_equal([r["job_id"] for r in executions(db)], [job_id], "lock-skip", impl=impl)


# How another session finishes or moves job J between the worker's walk and its check:
# the SQL run at the gate ({j} is J's job_id), and whether K may run after the race.
RACES = {
    "finished": "DELETE FROM que_jobs_gated WHERE job_id = {j}",
    "queue-moved": "UPDATE que_jobs_gated SET queue = 'elsewhere' WHERE job_id = {j}",
    "priority-moved": "UPDATE que_jobs_gated SET priority = priority + 1000 WHERE job_id = {j}",
    "run_at-moved": "UPDATE que_jobs_gated SET run_at = run_at + interval '1 hour' WHERE job_id = {j}",
    # J finished, and another job with J's queue, priority and run_at but another job_id
    # (failing, so it records nothing if it runs) took its place.
    "replaced": "INSERT INTO que_jobs_gated (queue, priority, run_at, job_class, args) SELECT queue, priority, "
    "run_at, 'QueConformance::Fail', '[\"twin\"]' FROM que_jobs_gated WHERE job_id = {j}; "
    "DELETE FROM que_jobs_gated WHERE job_id = {j}",
}


@pytest.mark.covers(
    "check_job.queue", "check_job.priority", "check_job.run_at", "check_job.job_id", "work.race", "work.unlock_always"
)
@pytest.mark.parametrize("race", list(RACES))
def test_race_check_after_locking(impl: str, race: str, fleet: Fleet, db: psycopg.Connection[Any], pg: Any) -> None:
    """Job J is finished, or its key moved, by someone else after the worker's lock_job
    snapshot but before its lock attempt: the worker must notice in check_job (which looks
    for J again by its whole key, in a new snapshot), release J's lock and never run J.

    The interleaving is made deterministic by reading que_jobs through a view whose filter
    waits on an advisory lock the test holds when it reaches job G, the first in order.
    G itself is held by the test, so the worker moves on from G to J.
    """
    require_worker(fleet.info(impl))
    testee = fleet.get(impl)
    g = insert(db, priority=1, args='["G"]')
    j = insert(db, priority=2, args='["J"]')
    k = insert(db, priority=3, args='["K"]')
    result: dict[str, Any] = {}
    with race_gate(db, pg.url, first=g, finished=j) as gate:
        worker = threading.Thread(target=lambda: result.update(testee.work_one()))
        worker.start()
        within(20, lambda: gate.waiting() or not worker.is_alive())
        check(gate.waiting(), "race-check", impl=impl, detail=f"lock_job never reached job G: {result}")
        gate.release(RACES[race].format(j=j))
        worker.join(30)
        check(not worker.is_alive(), "race-check", impl=impl, detail="work_one did not return within 30 s")
    ran = [r["job_id"] for r in executions(db)]
    check(j not in ran, "race-check", impl=impl, job=j, detail=f"J was run although {race} meanwhile", seen=ran)
    leftover = [lock.key for lock in advisory_locks(db) if lock.key != g]
    check_equal(leftover, [], "race-check", impl=impl, job=j, detail="locks left after the race")
    if race == "replaced":
        check(ran in ([], [k]), "race-check", impl=impl, expected=f"[] or [{k}]", seen=ran)
    elif fleet.info(impl).can("race_retry"):
        check_equal(ran, [k], "race-check", impl=impl, detail="declares race_retry: after the race, K")
    else:
        check(ran in ([], [k]), "race-check", impl=impl, expected=f"[] or [{k}]", seen=ran)


@pytest.mark.covers("work.unlock_always", "unlock.key", "lock_job.one", "lock_job.step", "lock_job.first")
@pytest.mark.parametrize("count", [3])
def test_no_lock_survives_work(impl: str, count: int, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """After working jobs (success and failure) the implementation holds no advisory lock."""
    testee = fleet.get(impl)
    for n in range(count):
        insert(db, args=f"[{n}]")
    insert(db, FAIL, '["boom"]')
    while testee.work_one()["worked"]:
        pass
    locks = [lock.key for lock in advisory_locks(db)]
    check_equal(locks, [], "unlock", impl=impl, detail="job locks held after work_one of every job")


# A gate at COMMIT time: a deferred constraint trigger runs when the worker's delete (or
# set_error) commits, after every statement of its transaction ran, and waits there on an
# advisory lock the test holds.
FINISH_GATE = f"""
CREATE FUNCTION que_conformance_commit_gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_lock_shared({GATE_KEY});
  PERFORM pg_advisory_unlock_shared({GATE_KEY});
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER que_conformance_commit_gate AFTER DELETE OR UPDATE ON que_jobs
DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION que_conformance_commit_gate()
"""


@pytest.mark.covers("work.order")
@pytest.mark.parametrize("job_class", [ECHO, FAIL], ids=["delete", "error"])
def test_finish_commits_before_the_unlock(
    impl: str, job_class: str, fleet: Fleet, db: psycopg.Connection[Any], pg: Any
) -> None:
    """While the worker's delete (or set_error) waits to commit, at a gate the test holds,
    the job's lock must still be held. Deterministic: the gate is in the commit itself, so
    an unlock anywhere before it (a statement earlier, or in the same statement or
    transaction) has already happened when the commit waits."""
    require_worker(fleet.info(impl))
    testee = fleet.get(impl)
    job_id = insert(db, job_class, '["x"]')
    db.execute(FINISH_GATE)
    outcome: dict[str, Any] = {}
    try:
        with psycopg.connect(pg.url, autocommit=True) as gate:
            gate.execute("SELECT pg_advisory_lock(%s)", [GATE_KEY])
            worker = threading.Thread(target=lambda: outcome.update(testee.work_one()))
            worker.start()
            try:
                within(20, lambda: waiting_at_gate(db) or not worker.is_alive())
                check(
                    waiting_at_gate(db),
                    "delete-before-unlock",
                    impl=impl,
                    job=job_id,
                    detail=f"work_one ended without committing a delete or error: {outcome}",
                )
                held = [lock.key for lock in advisory_locks(db) if lock.key == job_id]
                check_equal(
                    held,
                    [job_id],
                    "delete-before-unlock",
                    impl=impl,
                    job=job_id,
                    detail="job locks held while the finish waits to commit",
                )
            finally:
                gate.execute("SELECT pg_advisory_unlock_all()")
                worker.join(30)
        gone = within(10, lambda: job_id not in [lock.key for lock in advisory_locks(db)])
        check(gone, "unlock", impl=impl, job=job_id, detail="the job's lock was still held 10 s after work_one")
    finally:
        db.execute("DROP TRIGGER que_conformance_commit_gate ON que_jobs")
        db.execute("DROP FUNCTION que_conformance_commit_gate()")


HELD_AT_HEAD = 20  # more than a claim walks past before que's claims stop trying held jobs
BEHIND = 10


@pytest.mark.covers("lock_job.lock", "lock_job.locked", "lock_job.next", "lock_job.end")
def test_jobs_held_at_the_head_are_passed_over_in_order(
    holder: str, other: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """X holds the first jobs of the queue, as long-running jobs would; Y works the jobs
    behind them, in order, each once, and none of X's. Once X releases them, Y works them.
    (A port may skip held jobs without trying their locks, as que's claim does once it has
    walked past many; it must not skip a free one, nor take a held one.)"""
    require(fleet.info(holder), "lock")
    x, y = fleet.get(holder), fleet.get(other)
    head = [insert(db, priority=1, args=f'["held {n}"]') for n in range(HELD_AT_HEAD)]
    behind = [insert(db, priority=2, args=f"[{n}]") for n in range(BEHIND)]
    pair = f"{holder} holds {HELD_AT_HEAD} at the head, {other} works"
    held = []
    try:
        for _ in range(HELD_AT_HEAD):
            job = x.lock()
            held.append(job and job["job_id"])
        check_equal(held, head, "lock-order", impl=holder, detail="the jobs the holder locked, in order")
        for _ in range(BEHIND + 1):
            if not y.work_one()["worked"]:
                break
        ran = [r["job_id"] for r in executions(db)]
        check_equal(ran, behind, "lock-skip", impl=pair, detail="jobs run while the head is held, in order")
    finally:
        for job_id in held:
            if job_id is not None:
                x.release(job_id)
    for _ in range(HELD_AT_HEAD + 1):
        if not y.work_one()["worked"]:
            break
    ran = [r["job_id"] for r in executions(db)]
    check_equal(ran, behind + head, "lock-skip", impl=pair, detail="jobs run, once the head was released")
    check_equal(jobs(db), [], "lock-skip", impl=pair, detail="jobs left")
