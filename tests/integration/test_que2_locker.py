"""que.WorkerPool on a Que 2 table (que.locker2): Ruby Que 2.x's locker protocol, checked
against a real PostgreSQL and, where it can be loaded, the real Ruby Que 2.4.1."""

import asyncio
import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

import que
from harness import results
from harness.lab import advisory_locks, wait_until
from que import aio
from que.dialects.que2 import sql as sql2
from tests.conftest import fresh_database
from tests.integration.test_que2_schema_and_enqueue import ruby2, table


@pytest.fixture
def v7(database_url: str) -> Iterator[que.Client]:

    url = fresh_database(database_url, "que2_worker_tests")
    with que.Client(url) as client:
        client.migrate(7)
        with client.connection() as conn:
            results.create(conn)
        yield client


def lockers(client: que.Client) -> list[dict[str, Any]]:
    with client.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM que_lockers")
        return cur.fetchall()


def locks(client: que.Client) -> list[Any]:
    with client.connection() as conn:
        return advisory_locks(conn)


def test_a_pool_works_jobs_with_args_and_kwargs_and_destroys_them(v7: que.Client) -> None:
    seen: list[tuple[Any, Any]] = []
    for n in range(20):
        v7.enqueue("Echo", n, {"n": [n]}, kwargs={"k": n, "deep": {"x": None}})
    pool = que.WorkerPool(v7, {"Echo": lambda *a, **k: seen.append((a, k))}, count=3, wake_interval=0.05).start()
    try:
        wait_until(lambda: len(seen) == 20, 20, "the drain")
    finally:
        assert pool.shutdown(10)
    assert sorted(seen, key=lambda s: s[0][0]) == [((n, {"n": [n]}), {"k": n, "deep": {"x": None}}) for n in range(20)]
    assert table(v7.conninfo) == []
    assert locks(v7) == [] and lockers(v7) == [], "every lock released and the locker unregistered"


def test_the_locker_registers_as_ruby_does_and_is_woken_by_the_notify(v7: que.Client) -> None:
    gate = threading.Event()
    seen: list[int] = []

    def slow(n: int) -> None:
        seen.append(n)
        gate.wait(20)

    # A poll every 60 s: only the trigger's NOTIFY can bring the second job in time.
    pool = que.WorkerPool(v7, {"Slow": slow}, count=2, wake_interval=60, priorities=[None, 50]).start()
    try:
        wait_until(lambda: lockers(v7) != [], 10, "the locker to register")
        [row] = lockers(v7)
        assert pool.locker is not None and row["pid"] == pool.locker.backend_pid
        assert (row["worker_count"], row["worker_priorities"], row["queues"]) == (2, [None, 50], ["default"])
        assert (row["listening"], row["job_schema_version"]) == (True, 2)
        job = v7.enqueue("Slow", 1)
        wait_until(lambda: seen == [1], 10, "the notified job to run")
        assert [(lock.pid, lock.key) for lock in locks(v7)] == [(row["pid"], job.job_id)], "the locker holds it"
    finally:
        gate.set()
        assert pool.shutdown(10)
    assert lockers(v7) == [] and locks(v7) == []


def test_priority_thresholds_and_the_job_schema_version(v7: que.Client) -> None:
    seen: list[str] = []
    v7.enqueue("Job", "low", priority=50)
    v7.enqueue("Job", "high", priority=5)
    with v7.connection() as conn:
        conn.execute("INSERT INTO que_jobs (job_class, args, job_schema_version) VALUES ('Job', '[\"version 1\"]', 1)")
    pool = que.WorkerPool(v7, {"Job": seen.append}, count=1, wake_interval=0.05, priorities=[10]).start()
    try:
        wait_until(lambda: seen == ["high"], 10, "the job its priority allows")
        with v7.connection() as conn:
            conn.execute("SELECT pg_sleep(0.3)")  # several polls
    finally:
        assert pool.shutdown(10)
    assert seen == ["high"], "a worker of priority 10 leaves priority 50, and no one takes a version-1 row"
    assert sorted(json.loads(r["args_text"])[0] for r in table(v7.conninfo)) == ["low", "version 1"]


def test_a_failure_backs_off_then_expires_past_the_limit(v7: que.Client) -> None:
    def fail(n: int) -> None:
        raise ValueError("x" * 600)

    job = v7.enqueue("Fail", 1)
    with v7.connection() as conn:
        conn.execute("UPDATE que_jobs SET error_count = 2 WHERE id = %s", [job.job_id])
    pool = que.WorkerPool(v7, {"Fail": fail}, count=1, wake_interval=0.05).start()
    try:
        wait_until(lambda: table(v7.conninfo)[0]["error_count"] == 3, 10, "the failure")
    finally:
        assert pool.shutdown(10)
    [row] = table(v7.conninfo)
    with v7.connection() as conn:
        delay = conn.execute("SELECT extract(epoch FROM run_at - now()) FROM que_jobs").fetchone()
    assert delay is not None and 3**4 + 3 - 5 < float(delay[0]) <= 3**4 + 3
    assert row["last_error_message"] == ("ValueError: " + "x" * 600)[:500]
    assert "in 'fail'" in row["last_error_backtrace"] and row["expired_at"] is None

    # error_count 3 > max_retries 2: expired, the error columns left as they were.
    with v7.connection() as conn:
        conn.execute("UPDATE que_jobs SET run_at = now()")
    pool = que.WorkerPool(v7, {"Fail": fail}, count=1, wake_interval=0.05, max_retries=2).start()
    try:
        wait_until(lambda: table(v7.conninfo)[0]["expired_at"] is not None, 10, "the expiry")
    finally:
        assert pool.shutdown(10)
    [expired] = table(v7.conninfo)
    assert expired["error_count"] == 4
    assert (expired["last_error_message"], expired["last_error_backtrace"]) == (
        row["last_error_message"],
        row["last_error_backtrace"],
    )


def test_a_job_ruby_que_2_enqueued_is_worked_by_python_with_args_and_kwargs_intact(v7: que.Client) -> None:
    seen: list[tuple[Any, Any]] = []
    testee = ruby2(v7.conninfo)
    try:
        testee.request(
            "enqueue", job_class="Echo", args_json='[1, "two", {"three": 3.5}]', kwargs_json='{"to": "ann", "n": [1]}'
        )
    finally:
        testee.stop()
    pool = que.WorkerPool(v7, {"Echo": lambda *a, **k: seen.append((a, k))}, count=1, wake_interval=0.05).start()
    try:
        wait_until(lambda: len(seen) == 1, 10, "the job")
    finally:
        assert pool.shutdown(10)
    assert seen == [((1, "two", {"three": 3.5}), {"to": "ann", "n": [1]})]


def test_ruby_que_2_and_python_lockers_together_work_each_job_exactly_once(v7: que.Client) -> None:
    jobs = v7.enqueue_many([que.NewJob("QueConformance::Echo", [n]) for n in range(400)])
    recorded: list[int] = []

    def echo(n: int) -> None:
        recorded.append(que.current_job().job_id)

    testee = ruby2(v7.conninfo)
    pool = que.WorkerPool(v7, {"QueConformance::Echo": echo}, count=2, wake_interval=0.01).start()
    try:
        result = testee.request("work", timeout=90, queue="default", workers=2, deadline_ms=60_000)
        assert result["drained"] is True
        wait_until(lambda: table(v7.conninfo) == [], 20, "python's running jobs to finish")
    finally:
        assert pool.shutdown(10)
        testee.stop()
    with psycopg.connect(v7.conninfo) as conn:
        ruby = [job_id for (job_id,) in conn.execute(f"SELECT job_id FROM {results.TABLE}")]
    assert ruby and recorded, "both took part"
    assert sorted(ruby + recorded) == sorted(job.job_id for job in jobs), "each job worked exactly once"
    assert locks(v7) == [] and lockers(v7) == []


@given(
    priorities=st.lists(st.integers(0, 60), min_size=1, max_size=25),
    thresholds=st.dictionaries(st.sampled_from([5, 10, 30, 50, 32767]), st.integers(1, 4), min_size=1),
    seed=st.integers(0, 2**32),
)
@settings(max_examples=40, deadline=None)
def test_the_poll_fills_the_thresholds_as_rubys_lock_and_update_priorities_does(
    v7: que.Client, priorities: list[int], thresholds: dict[int, int], seed: int
) -> None:
    """A model of Ruby's poll (poller.rb): jobs in (priority, run_at, id) order whose priority
    some threshold with room allows; each one locked takes the lowest such threshold."""
    with v7.connection() as conn:
        conn.execute("DELETE FROM que_jobs")
        ids = [
            row[0]
            for row in conn.execute(
                "INSERT INTO que_jobs (job_class, priority, job_schema_version, run_at) "
                "SELECT 'J', p, 2, now() - interval '1 hour' + n * interval '1 second' "
                "FROM unnest(%s::smallint[]) WITH ORDINALITY AS x(p, n) RETURNING id",
                [priorities],
            )
        ]
    order = sorted(zip(priorities, ids, strict=True))
    elsewhere = set(random.Random(seed).sample(ids, len(ids) // 4))
    room = dict(thresholds)
    expected = []
    for priority, job_id in order:
        open_ = [t for t in sorted(room) if room[t] > 0]
        if not open_:
            break
        if priority > max(open_) or job_id in elsewhere:
            continue
        slot = next(t for t in open_ if t >= priority)
        room[slot] -= 1
        expected.append(job_id)
    with v7.connection() as other, v7.connection() as conn:
        for job_id in elsewhere:
            other.execute("SELECT pg_advisory_lock(%s)", [job_id])
        keys = sorted(thresholds)
        params = {
            "queue": "default",
            "held": [],
            "ceiling": max(keys),
            "thresholds": keys,
            "counts": [thresholds[k] for k in keys],
        }
        got = [row[0] for row in conn.execute(sql2.POLL_JOBS, params) if row[0] is not None]
        conn.execute("SELECT pg_advisory_unlock_all()")
        other.execute("SELECT pg_advisory_unlock_all()")
    assert got == expected


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_a_worker_whose_connection_dies_with_its_job_goes_on_working(v7: que.Client, kind: str) -> None:
    """The outcome of a job whose connection the server ended cannot be written: the job
    runs again later, and the worker takes the next ones (as a Ruby Que 2 worker does)."""
    seen: list[str] = []

    def job(name: str) -> None:
        seen.append(name)
        if name == "first":  # the server ends the pooled connections, this job's among them
            with psycopg.connect(v7.conninfo, autocommit=True) as admin:
                # The timeout waits until each backend has ended: a signalled backend
                # that has not yet exited would still take (and then fail) a statement.
                admin.execute(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                    "WHERE application_name = 'que' AND pid <> pg_backend_pid()"
                )

    v7.enqueue("Job", "first")
    if kind == "threads":
        pool = que.WorkerPool(v7, {"Job": job}, count=1, wake_interval=0.05).start()
        try:
            wait_until(lambda: "first" in seen, 10, "the first job")
            v7.enqueue("Job", "second")
            wait_until(lambda: "second" in seen, 10, "the second job, after the first one's connection died")
        finally:
            assert pool.shutdown(10)
    else:

        async def main() -> None:
            async with aio.AsyncClient(v7.conninfo) as client:
                pool = await aio.AsyncWorkerPool(client, {"Job": job}, count=1, wake_interval=0.05).start()
                try:
                    await asyncio.to_thread(wait_until, lambda: "first" in seen, 10, "the first job")
                    await client.enqueue("Job", "second")
                    await asyncio.to_thread(wait_until, lambda: "second" in seen, 10, "the second job")
                finally:
                    assert await pool.shutdown(10)

        aio.run(main())
    assert locks(v7) == []


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_the_locker_keeps_its_buffer_topped_up_as_jobs_are_taken(v7: que.Client, kind: str) -> None:
    """Ruby Que 2's available_priorities asks for the idle workers plus the buffer's free
    space: as the one worker takes a buffered job, the next poll locks one more, so the
    locker holds 1 + 8 jobs again long before the buffer has run dry. Each job runs only
    when the test lets one go: two run, and while the third is held the locker must hold
    nine locks again."""
    go = threading.Semaphore(0)
    done: list[int] = []

    def job(n: int) -> None:
        go.acquire()
        done.append(n)

    for n in range(20):
        v7.enqueue("Job", n)

    def nine_locks_after_two_jobs() -> None:
        go.release(2)
        wait_until(lambda: len(done) == 2, 10, "two jobs to run")
        wait_until(lambda: len(locks(v7)) == 9, 10, "nine locks again while the third job runs")

    if kind == "threads":
        pool = que.WorkerPool(v7, {"Job": job}, count=1, wake_interval=0.05).start()
        try:
            nine_locks_after_two_jobs()
        finally:
            go.release(20)
            assert pool.shutdown(20)
    else:

        async def main() -> None:
            async with aio.AsyncClient(v7.conninfo) as client:
                pool = await aio.AsyncWorkerPool(client, {"Job": job}, count=1, wake_interval=0.05).start()
                try:
                    await asyncio.to_thread(nine_locks_after_two_jobs)
                finally:
                    go.release(20)
                    assert await pool.shutdown(20)

        aio.run(main())
