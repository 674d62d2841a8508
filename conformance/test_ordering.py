"""Area 5, ordering: due jobs of exactly the requested queue, in (priority, run_at, job_id) order."""

from typing import Any

import psycopg
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from conformance.checks import check, check_equal
from conformance.fleet import Fleet, require
from conformance.support import ECHO, advisory_locks, executions, fixture, insert, jobs
from harness.testee import Testee

SCENARIOS = fixture("ordering.json")["scenarios"]


def lock_order(testee: Testee, queue: str) -> list[int]:
    """Lock jobs one after another while holding each, then release them all."""
    held: list[int] = []
    try:
        while (job := testee.lock(queue)) is not None:
            job_id = int(job["job_id"])
            check(job_id not in held, "lock-order", impl=testee.label, job=job_id, detail="locked twice by one testee")
            held.append(job_id)
            check(len(held) <= 50, "lock-order", impl=testee.label, detail="lock kept returning jobs (50 locked)")
    finally:
        for job_id in held:
            testee.release(job_id)
    return held


def insert_scenario(db: psycopg.Connection[Any], jobs: list[dict[str, Any]], queue: str) -> dict[int, str]:
    db.execute("DELETE FROM que_jobs")
    ids = {}
    with db.transaction():  # one now() for all rows, so equal offsets are equal run_at values
        for job in jobs:
            job_id = insert(
                db,
                priority=job["priority"],
                queue=job.get("queue", queue),
                run_at_offset_s=job["run_at_offset_s"],
            )
            ids[job_id] = job["label"]
    return ids


@pytest.mark.covers(
    "lock_job.queue",
    "lock_job.due",
    "lock_job.order.priority",
    "lock_job.order.run_at",
    "lock_job.order.job_id",
    "lock_job.first",
    "lock_job.next",
    "lock_job.step",
    "lock_job.end",
    "lock_job.columns",
    "lock_job.one",
)
def test_fixture_scenarios(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    require(fleet.info(impl), "lock")
    testee = fleet.get(impl)
    problems = []
    for scenario in SCENARIOS:
        ids = insert_scenario(db, scenario["jobs"], scenario["queue"])
        got = [ids[i] for i in lock_order(testee, scenario["queue"])]
        if got != scenario["expected"]:
            problems.append(f"{scenario['name']}: locked {got}, expected {scenario['expected']}")
    check(not problems, "lock-order", impl=impl, detail="\n  ".join(problems))
    check_equal(advisory_locks(db), [], "unlock", impl=impl, detail="after releasing every locked job")


job_specs = st.lists(
    st.fixed_dictionaries(
        {
            "priority": st.sampled_from([-32768, -1, 0, 1, 5, 100, 32767]),
            "run_at_offset_s": st.sampled_from([-3600, -60, -1, 0, 60, 3600]),
            "queue": st.sampled_from(["", "q"]),
        }
    ),
    min_size=1,
    max_size=8,
)


@pytest.mark.covers(
    "lock_job.queue",
    "lock_job.due",
    "lock_job.order.priority",
    "lock_job.order.run_at",
    "lock_job.order.job_id",
    "lock_job.next",
)
@given(specs=job_specs, queue=st.sampled_from(["", "q"]))
def test_generated_job_sets(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any], specs: list[dict[str, Any]], queue: str
) -> None:
    require(fleet.info(impl), "lock")
    testee = fleet.get(impl)
    jobs = [{**spec, "label": f"j{i}"} for i, spec in enumerate(specs)]
    ids = insert_scenario(db, jobs, queue)
    due = sorted(
        (j["priority"], j["run_at_offset_s"], job_id, j["label"])
        for job_id, j in zip(ids, jobs, strict=True)
        if j["queue"] == queue and j["run_at_offset_s"] <= 0
    )
    expected = [label for *_, label in due]
    note(
        "as a fixture scenario: "
        + repr({"name": "hypothesis_case", "queue": queue, "jobs": jobs, "expected": expected})
    )
    check_equal([ids[i] for i in lock_order(testee, queue)], expected, "lock-order", impl=impl, detail="job labels")


BATCH = 3  # smaller than most scenarios, so a batch must be the first due jobs, not all of them


@pytest.mark.covers("lock_job.order.priority", "lock_job.order.run_at", "lock_job.order.job_id")
def test_batch_locks_in_order(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """A batched claim (capability lock_batch) takes the first due jobs in the order one-at-a-time
    locking would, each job once."""
    require(fleet.info(impl), "lock_batch")
    testee = fleet.get(impl)
    problems = []
    for scenario in SCENARIOS:
        ids = insert_scenario(db, scenario["jobs"], scenario["queue"])
        jobs = testee.lock_batch(BATCH, scenario["queue"])
        got = [ids[int(job["job_id"])] for job in jobs]
        for job in jobs:
            testee.release(int(job["job_id"]))
        if got != scenario["expected"][:BATCH]:
            problems.append(
                f"{scenario['name']}: batch of {BATCH} locked {got}, expected {scenario['expected'][:BATCH]}"
            )
    check(not problems, "lock-order", impl=impl, detail="\n  ".join(problems))
    check_equal(advisory_locks(db), [], "unlock", impl=impl, detail="after releasing every job of each batch")


@pytest.mark.covers("lock_job.order.job_id")
def test_ties_go_by_job_id_when_the_server_does_not_walk_the_key(
    impl: str, unindexed_fleet: Fleet, unindexed_db: psycopg.Connection[Any]
) -> None:
    """Ruby orders by priority, run_at and then job_id. The primary key walks rows in that
    order anyway, so only a server that does not walk it (a sequential scan and a sort, as
    the planner picks for a table whose statistics favour it) shows whether a claim says
    so: three jobs tied on priority and run_at, written in descending job_id order, are
    worked in ascending job_id order."""
    testee = unindexed_fleet.get(impl)
    unindexed_db.execute(
        "INSERT INTO que_jobs (job_id, job_class, args, run_at) "
        "SELECT id, %s, '[]', now() - interval '1 second' FROM unnest(ARRAY[30, 20, 10]) AS id",
        [ECHO],
    )
    for _ in range(3):
        check_equal(testee.work_one()["worked"], True, "lock-order", impl=impl, detail="three due jobs, tied")
    check_equal(
        [r["job_id"] for r in executions(unindexed_db)],
        [10, 20, 30],
        "lock-order",
        impl=impl,
        detail="jobs 30, 20, 10 tied on priority and run_at, no index walked: the order they ran in",
    )


QUEUES = ["q", "Q", " q", "q ", ""]


@pytest.mark.covers("lock_job.queue")
def test_work_one_and_work_take_only_their_queue(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Routing is the same through a single work_one and through the library's pool: only
    jobs whose queue is exactly the one asked for (case and spaces included) run."""
    testee = fleet.get(impl)
    by_queue = {queue: insert(db, args=f"[{index}]", queue=queue) for index, queue in enumerate(QUEUES)}
    for _ in range(len(QUEUES)):
        if not testee.work_one(queue="q")["worked"]:
            break
    ran = [r["job_id"] for r in executions(db)]
    check_equal(ran, [by_queue["q"]], "lock-order", impl=impl, detail="jobs work_one(queue='q') ran")
    if fleet.info(impl).can("work_pool"):
        more = [insert(db, args=f"[{n}]", queue="q") for n in range(3)]
        result = testee.work(queue="q", workers=2, deadline_ms=60_000)
        check_equal(result.get("drained"), True, "lock-order", impl=impl, detail=f"work(queue='q'): {result}")
        ran = sorted(r["job_id"] for r in executions(db))
        check_equal(ran, sorted([by_queue["q"], *more]), "lock-order", impl=impl, detail="jobs work(queue='q') ran")
    left = sorted(j["queue"] for j in jobs(db))
    check_equal(left, sorted(q for q in QUEUES if q != "q"), "lock-order", impl=impl, detail="queues left")
