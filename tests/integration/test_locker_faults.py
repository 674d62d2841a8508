"""The faults of issue 29 (an adversarial pass over the lockers), each against a real
PostgreSQL, in both I/O styles where the fault was in either. Each test failed on the
code before the fix (main 2ed6db0); the notes say how."""

import threading
from typing import Any

import psycopg
import pytest

import que
from harness.lab import advisory_locks, wait_until
from tests.conftest import fresh_database
from tests.support.lockers import KINDS, count, run_pool


@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_job_available_message_is_dropped_and_the_next_job_runs(v7_url: str, kind: str) -> None:
    """Fault 1: an id past bigint (NumericValueOutOfRange) or a 3,000-deep array (RecursionError)
    killed the locker; Ruby 2.4.1 drops both messages."""
    seen: list[int] = []

    def body(pool: Any) -> None:
        wait_until(lambda: pool.locker.backend_pid is not None, 10, "the locker to connect")
        with psycopg.connect(v7_url, autocommit=True) as conn:
            channel = f"que_listener_{pool.locker.backend_pid}"
            big = (
                '{"message_type":"job_available","queue":"default","priority":1,"id":99999999999999999999,'
                '"run_at":"2026-01-01T00:00:00.000000Z"}'
            )
            conn.execute("SELECT pg_notify(%s, %s)", [channel, big])
            conn.execute("SELECT pg_notify(%s, %s)", [channel, "[" * 3000 + "]" * 3000])
        with que.Client(v7_url) as client:
            client.enqueue("J", 1)
        wait_until(lambda: seen == [1], 10, "the next job to run")
        assert pool.locker.is_alive() and pool.locker.fatal is None

    run_pool(kind, v7_url, {"J": seen.append}, body, count=1, wake_interval=60)


@pytest.mark.parametrize("kind", KINDS)
def test_jobs_no_worker_may_take_are_held_no_more_than_the_buffer(v7_url: str, kind: str) -> None:
    """Fault 2: with priorities=[10], every notified priority-100 job was locked and kept (40
    of 40); Ruby's job buffer holds at most its size (8), and a pool beside it runs the rest."""
    with que.Client(v7_url) as client:
        client.enqueue_many([que.NewJob("J", [n], priority=100) for n in range(40)])
    seen: list[int] = []

    def body(pool: Any) -> None:
        pid = pool.locker.backend_pid

        def held() -> int:
            with psycopg.connect(v7_url) as conn:
                return len([lock for lock in advisory_locks(conn) if lock.pid == pid])

        wait_until(lambda: pool.locker.claims >= 2, 10, "two polls")
        assert held() <= 8
        with que.Client(v7_url) as other_client:
            other = que.WorkerPool(other_client, {"J": seen.append}, count=2, wake_interval=0.05).start()
            try:
                wait_until(lambda: len(seen) == 40 - held(), 20, "the other pool to run the jobs not held")
            finally:
                assert other.shutdown(10)

    run_pool(kind, v7_url, {"J": seen.append}, body, count=1, wake_interval=0.05, priorities=[10])
    assert len(seen) >= 32


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("asked", ["finish", "expire"])
def test_a_handler_that_asks_for_its_end_then_raises_ends_so_and_its_error_is_recorded(
    v7_url: str, kind: str, asked: str
) -> None:
    """Fault 3: only the error was written; the job ran again 4 s later. Ruby runs it once,
    keeps it finished or expired, and records the error (handle_error after finish)."""
    runs: list[int] = []

    def handler() -> None:
        runs.append(1)
        getattr(que, asked)()
        raise RuntimeError("after asking")

    with que.Client(v7_url) as client:
        client.enqueue("J")

    def body(pool: Any) -> None:
        wait_until(
            lambda: count(v7_url, "finished_at IS NULL AND expired_at IS NULL") == 0,
            10,
            f"the job {'finished' if asked == 'finish' else 'expired'}",
        )

    run_pool(kind, v7_url, {"J": handler}, body, count=1, wake_interval=0.05)
    with psycopg.connect(v7_url) as conn:
        row = conn.execute(
            "SELECT finished_at IS NOT NULL, expired_at IS NOT NULL, error_count, last_error_message FROM que_jobs"
        ).fetchone()
    assert row is not None
    finished, expired, error_count, message = row
    assert (finished, expired) == (asked == "finish", asked == "expire")
    # expire: expire_job counts once, then handle_error's set_error once more (Ruby's order)
    assert error_count == (1 if asked == "finish" else 2)
    assert message == "RuntimeError: after asking"
    assert runs == [1]


def test_the_thread_pool_drains_a_backlog_without_waiting_for_its_polls(v7_url: str) -> None:
    """Fault 4: the thread pool ran (workers + buffer) jobs per wake_interval (24 of 300 in
    8 s); a poll that gets all it asked for is followed by the next at once."""
    with que.Client(v7_url) as client:
        client.enqueue_many([que.NewJob("J", [n]) for n in range(300)])
    seen: list[int] = []

    def body(pool: Any) -> None:
        wait_until(lambda: len(seen) == 300, 7.5, "the backlog, before the first poll interval ends")

    run_pool("threads", v7_url, {"J": seen.append}, body, count=4, wake_interval=8)


@pytest.mark.parametrize("kind", KINDS)
def test_more_workers_than_the_clients_pool_all_run_at_once(v7_url: str, kind: str) -> None:
    """Fault 5: each running job held one of the client's 10 pooled connections, so 12
    workers ran 10 jobs at once and gave 2 back unrun. A handler holds no connection now."""
    barrier = threading.Barrier(12, timeout=15)
    with que.Client(v7_url) as client:
        client.enqueue_many([que.NewJob("J", [n]) for n in range(12)])

    def job(n: int) -> None:
        barrier.wait()  # fails unless all 12 run at the same time

    def body(pool: Any) -> None:
        wait_until(lambda: count(v7_url) == 0, 20, "all 12 jobs")

    run_pool(kind, v7_url, {"J": job}, body, count=12, wake_interval=0.05)


def test_jobs_that_enqueue_through_the_pools_client_do_not_starve_it(v7_url: str) -> None:
    """Fault 5: a pool of 10 whose jobs enqueue through the same client failed all 10 with
    PoolTimeout."""
    made: list[int] = []
    with que.Client(v7_url) as client:
        client.enqueue_many([que.NewJob("Parent", [n]) for n in range(10)])
        gate = threading.Barrier(10, timeout=15)

        def parent(n: int) -> None:
            gate.wait()
            made.append(client.enqueue("Child", n).job_id)

        pool = que.WorkerPool(client, {"Parent": parent}, count=10, wake_interval=0.05).start()
        try:
            wait_until(lambda: len(made) == 10 and count(v7_url, "job_class = 'Parent'") == 0, 20, "ten children")
        finally:
            assert pool.shutdown(20)


@pytest.mark.parametrize("kind", KINDS)
def test_an_outcome_survives_an_idle_cut_shorter_than_its_job(v7_url: str, kind: str) -> None:
    """Fault 5: with idle_session_timeout shorter than a job, no run was ever recorded (the
    worker's pooled connection was cut while its handler ran). The locker's session may be
    cut too: its next session takes the running job's lock again and writes the outcome."""
    with psycopg.connect(v7_url, autocommit=True) as conn:
        conn.execute("ALTER DATABASE locker_faults SET idle_session_timeout = '700ms'")
    runs: list[int] = []
    release = threading.Event()

    def slow() -> None:
        runs.append(1)
        release.wait(10)

    with que.Client(v7_url) as client:
        client.enqueue("Slow")

    def body(pool: Any) -> None:
        wait_until(lambda: runs == [1], 10, "the job to start")
        first = pool.locker.backend_pid
        wait_until(lambda: pool.locker.backend_pid not in (None, first), 10, "the idle cut and a new session")
        release.set()
        wait_until(lambda: count(v7_url) == 0, 15, "the outcome")

    try:
        run_pool(kind, v7_url, {"Slow": slow}, body, count=1, wake_interval=60)
    finally:
        with psycopg.connect(v7_url, autocommit=True) as conn:
            conn.execute("ALTER DATABASE locker_faults RESET idle_session_timeout")
    assert runs == [1], "the job ran once"


def test_finish_requests_belong_to_their_run_not_to_a_job_id(database_url: str) -> None:
    """Fault 6: finish()/expire() requests were kept process-wide by job id, so two pools on
    two databases swapped them (A's finished job destroyed, B's plain job kept)."""
    urls = [fresh_database(database_url, name) for name in ("faults_a", "faults_b")]
    for url in urls:
        with que.Client(url) as client:
            client.migrate(7)
            client.enqueue("J")  # job id 1 in both
    gate = threading.Barrier(2, timeout=15)

    def finishing() -> None:
        gate.wait()
        que.finish()
        gate.wait()

    def plain() -> None:
        gate.wait()
        gate.wait()

    with que.Client(urls[0]) as a, que.Client(urls[1]) as b:
        pools = [
            que.WorkerPool(a, {"J": finishing}, count=1, wake_interval=0.05).start(),
            que.WorkerPool(b, {"J": plain}, count=1, wake_interval=0.05).start(),
        ]
        try:
            wait_until(lambda: count(urls[1]) == 0, 15, "B's plain job destroyed")
            wait_until(lambda: count(urls[0], "finished_at IS NOT NULL") == 1, 15, "A's job kept finished")
        finally:
            for pool in pools:
                assert pool.shutdown(10)


def test_a_finish_request_before_an_interrupt_does_not_outlive_its_run(v7_url: str) -> None:
    """Fault 6: a finish() request followed by SystemExit stayed for that id's next run."""
    calls: list[int] = []

    def interrupted() -> None:
        calls.append(1)
        if len(calls) == 1:
            que.finish()
            raise SystemExit(3)

    with que.Client(v7_url) as client:
        client.enqueue("J")
        pool = que.WorkerPool(client, {"J": interrupted}, count=1, wake_interval=0.05).start()
        try:
            wait_until(lambda: calls == [1] and not pool.workers[0].is_alive(), 10, "the interrupt")
        finally:
            pool.shutdown(10)
        pool = que.WorkerPool(client, {"J": interrupted}, count=1, wake_interval=0.05).start()
        try:
            wait_until(lambda: count(v7_url) == 0, 10, "the second run to destroy the job")
        finally:
            assert pool.shutdown(10)
    assert calls == [1, 1]
