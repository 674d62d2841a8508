"""The faults of issue 29 (an adversarial pass over the lockers), each against a real
PostgreSQL, in both I/O styles where the fault was in either. Each test failed on the
code before the fix (main 2ed6db0); the notes say how."""

import asyncio
import gc
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

import que
from harness.lab import advisory_locks, wait_until
from que.aio import AsyncClient, AsyncWorkerPool
from tests.conftest import fresh_database, rows

KINDS = ["threads", "asyncio"]


@pytest.fixture
def v7(database_url: str) -> Iterator[str]:
    url = fresh_database(database_url, "locker_faults")
    with que.Client(url) as client:
        client.migrate(7)
    yield url


def run_pool(
    kind: str, url: str, handlers: dict[str, Callable[..., Any]], body: Callable[[Any], None], **options: Any
) -> None:
    """Start a pool of `kind` on `url`, call body(pool) in a thread, then shut the pool down."""
    if kind == "threads":
        with que.Client(url) as client:
            pool = que.WorkerPool(client, handlers, **options).start()
            try:
                body(pool)
            finally:
                assert pool.shutdown(20)
        return

    async def main() -> None:
        async with AsyncClient(url) as client:
            pool = await AsyncWorkerPool(client, handlers, **options).start()
            try:
                await asyncio.to_thread(body, pool)
            finally:
                assert await pool.shutdown(20)

    asyncio.run(main())


def count(url: str, where: str = "true") -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM que_jobs WHERE {where}").fetchone()
        return int(row[0]) if row else -1


@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_job_available_message_is_dropped_and_the_next_job_runs(v7: str, kind: str) -> None:
    """Fault 1: an id past bigint (NumericValueOutOfRange) or a 3,000-deep array (RecursionError)
    killed the locker; Ruby 2.4.1 drops both messages."""
    seen: list[int] = []

    def body(pool: Any) -> None:
        wait_until(lambda: pool.locker.backend_pid is not None, 10, "the locker to connect")
        with psycopg.connect(v7, autocommit=True) as conn:
            channel = f"que_listener_{pool.locker.backend_pid}"
            big = (
                '{"message_type":"job_available","queue":"default","priority":1,"id":99999999999999999999,'
                '"run_at":"2026-01-01T00:00:00.000000Z"}'
            )
            conn.execute("SELECT pg_notify(%s, %s)", [channel, big])
            conn.execute("SELECT pg_notify(%s, %s)", [channel, "[" * 3000 + "]" * 3000])
        with que.Client(v7) as client:
            client.enqueue("J", 1)
        wait_until(lambda: seen == [1], 10, "the next job to run")
        assert pool.locker.is_alive() and pool.locker.fatal is None

    run_pool(kind, v7, {"J": seen.append}, body, count=1, wake_interval=60)


@pytest.mark.parametrize("kind", KINDS)
def test_jobs_no_worker_may_take_are_held_no_more_than_the_buffer(v7: str, kind: str) -> None:
    """Fault 2: with priorities=[10], every notified priority-100 job was locked and kept (40
    of 40); Ruby's job buffer holds at most its size (8), and a pool beside it runs the rest."""
    with que.Client(v7) as client:
        client.enqueue_many([que.NewJob("J", [n], priority=100) for n in range(40)])
    seen: list[int] = []

    def body(pool: Any) -> None:
        pid = pool.locker.backend_pid

        def held() -> int:
            with psycopg.connect(v7) as conn:
                return len([lock for lock in advisory_locks(conn) if lock.pid == pid])

        wait_until(lambda: pool.locker.claims >= 2, 10, "two polls")
        assert held() <= 8
        with que.Client(v7) as other_client:
            other = que.WorkerPool(other_client, {"J": seen.append}, count=2, wake_interval=0.05).start()
            try:
                wait_until(lambda: len(seen) == 40 - held(), 20, "the other pool to run the jobs not held")
            finally:
                assert other.shutdown(10)

    run_pool(kind, v7, {"J": seen.append}, body, count=1, wake_interval=0.05, priorities=[10])
    assert len(seen) >= 32


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("asked", ["finish", "expire"])
def test_a_handler_that_asks_for_its_end_then_raises_ends_so_and_its_error_is_recorded(
    v7: str, kind: str, asked: str
) -> None:
    """Fault 3: only the error was written; the job ran again 4 s later. Ruby runs it once,
    keeps it finished or expired, and records the error (handle_error after finish)."""
    runs: list[int] = []

    def handler() -> None:
        runs.append(1)
        getattr(que, asked)()
        raise RuntimeError("after asking")

    with que.Client(v7) as client:
        client.enqueue("J")

    def body(pool: Any) -> None:
        wait_until(
            lambda: count(v7, "finished_at IS NULL AND expired_at IS NULL") == 0,
            10,
            f"the job {'finished' if asked == 'finish' else 'expired'}",
        )

    run_pool(kind, v7, {"J": handler}, body, count=1, wake_interval=0.05)
    with psycopg.connect(v7) as conn:
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


def test_the_thread_pool_drains_a_backlog_without_waiting_for_its_polls(v7: str) -> None:
    """Fault 4: the thread pool ran (workers + buffer) jobs per wake_interval (24 of 300 in
    8 s); a poll that gets all it asked for is followed by the next at once."""
    with que.Client(v7) as client:
        client.enqueue_many([que.NewJob("J", [n]) for n in range(300)])
    seen: list[int] = []

    def body(pool: Any) -> None:
        wait_until(lambda: len(seen) == 300, 7.5, "the backlog, before the first poll interval ends")

    run_pool("threads", v7, {"J": seen.append}, body, count=4, wake_interval=8)


@pytest.mark.parametrize("kind", KINDS)
def test_more_workers_than_the_clients_pool_all_run_at_once(v7: str, kind: str) -> None:
    """Fault 5: each running job held one of the client's 10 pooled connections, so 12
    workers ran 10 jobs at once and gave 2 back unrun. A handler holds no connection now."""
    barrier = threading.Barrier(12, timeout=15)
    with que.Client(v7) as client:
        client.enqueue_many([que.NewJob("J", [n]) for n in range(12)])

    def job(n: int) -> None:
        barrier.wait()  # fails unless all 12 run at the same time

    def body(pool: Any) -> None:
        wait_until(lambda: count(v7) == 0, 20, "all 12 jobs")

    run_pool(kind, v7, {"J": job}, body, count=12, wake_interval=0.05)


def test_jobs_that_enqueue_through_the_pools_client_do_not_starve_it(v7: str) -> None:
    """Fault 5: a pool of 10 whose jobs enqueue through the same client failed all 10 with
    PoolTimeout."""
    made: list[int] = []
    with que.Client(v7) as client:
        client.enqueue_many([que.NewJob("Parent", [n]) for n in range(10)])
        gate = threading.Barrier(10, timeout=15)

        def parent(n: int) -> None:
            gate.wait()
            made.append(client.enqueue("Child", n).job_id)

        pool = que.WorkerPool(client, {"Parent": parent}, count=10, wake_interval=0.05).start()
        try:
            wait_until(lambda: len(made) == 10 and count(v7, "job_class = 'Parent'") == 0, 20, "ten children")
        finally:
            assert pool.shutdown(20)


@pytest.mark.parametrize("kind", KINDS)
def test_an_outcome_survives_an_idle_cut_shorter_than_its_job(v7: str, kind: str) -> None:
    """Fault 5: with idle_session_timeout shorter than a job, no run was ever recorded (the
    worker's pooled connection was cut while its handler ran). The locker's session may be
    cut too: its next session takes the running job's lock again and writes the outcome."""
    with psycopg.connect(v7, autocommit=True) as conn:
        conn.execute("ALTER DATABASE locker_faults SET idle_session_timeout = '700ms'")
    runs: list[int] = []
    release = threading.Event()

    def slow() -> None:
        runs.append(1)
        release.wait(10)

    with que.Client(v7) as client:
        client.enqueue("Slow")

    def body(pool: Any) -> None:
        wait_until(lambda: runs == [1], 10, "the job to start")
        first = pool.locker.backend_pid
        wait_until(lambda: pool.locker.backend_pid not in (None, first), 10, "the idle cut and a new session")
        release.set()
        wait_until(lambda: count(v7) == 0, 15, "the outcome")

    try:
        run_pool(kind, v7, {"Slow": slow}, body, count=1, wake_interval=60)
    finally:
        with psycopg.connect(v7, autocommit=True) as conn:
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


def test_a_finish_request_before_an_interrupt_does_not_outlive_its_run(v7: str) -> None:
    """Fault 6: a finish() request followed by SystemExit stayed for that id's next run."""
    calls: list[int] = []

    def interrupted() -> None:
        calls.append(1)
        if len(calls) == 1:
            que.finish()
            raise SystemExit(3)

    with que.Client(v7) as client:
        client.enqueue("J")
        pool = que.WorkerPool(client, {"J": interrupted}, count=1, wake_interval=0.05).start()
        try:
            wait_until(lambda: calls == [1] and not pool.workers[0].is_alive(), 10, "the interrupt")
        finally:
            pool.shutdown(10)
        pool = que.WorkerPool(client, {"J": interrupted}, count=1, wake_interval=0.05).start()
        try:
            wait_until(lambda: count(v7) == 0, 10, "the second run to destroy the job")
        finally:
            assert pool.shutdown(10)
    assert calls == [1, 1]


@pytest.mark.parametrize("kind", KINDS)
def test_a_lost_session_never_starts_again_a_job_this_pool_runs(
    client: que.Client, database_url: str, kind: str
) -> None:
    """Fault 7: after the locker's session was lost, the pool claimed again the jobs its own
    workers were still running and started them beside the first run."""
    runs: dict[int, int] = {}
    lock = threading.Lock()
    blocked = threading.Event()
    gate = threading.Event()

    def job(n: int) -> None:
        job_id = que.current_job().job_id
        with lock:
            runs[job_id] = runs.get(job_id, 0) + 1
        if n < 2:
            if runs.get(job_id) == 1 and n == 1:
                blocked.set()
            gate.wait(20)

    ids = [client.enqueue("J", n).job_id for n in range(100)]

    def body(pool: Any) -> None:
        assert blocked.wait(20)
        pid = pool.locker.backend_pid
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])
            wait_until(lambda: pool.locker.backend_pid not in (None, pid), 10, "a new session")
            wait_until(lambda: len(runs) == 100, 20, "every other job")
            gate.set()
            wait_until(lambda: rows(conn) == [], 20, "the drain")

    run_pool(kind, client.conninfo, {"J": job}, body, count=3, wake_interval=0.05)
    assert sorted(runs) == ids
    assert {job_id: n for job_id, n in runs.items() if n > 1} == {}, "no job started twice by this pool"


@pytest.mark.parametrize("kind", KINDS)
def test_a_session_lost_while_idle_hands_out_none_of_its_dead_buffer(
    client: que.Client, database_url: str, kind: str
) -> None:
    """Fault 8 (asyncio): a session that died while the locker was idle was replaced
    without booking the loss; its 5 buffered jobs, whose locks had died, ran in another pool
    and again in this one. The locker watches its socket while idle now, and drops a dead
    session's buffer at once (it may claim the jobs again, as any pool may)."""
    runs: dict[int, list[str]] = {}
    lock = threading.Lock()
    gate = threading.Event()
    started = threading.Event()

    def runner(name: str) -> Callable[[int], None]:
        def job(n: int) -> None:
            with lock:
                runs.setdefault(n, []).append(name)
            if n == 0:
                started.set()
                gate.wait(20)

        return job

    client.enqueue("J", 0)
    client.enqueue_many([que.NewJob("J", [n]) for n in range(1, 6)])

    def body(pool: Any) -> None:
        assert started.wait(10)
        wait_until(lambda: len(pool.locker.books.ready) == 5, 10, "five buffered jobs")
        pid = pool.locker.backend_pid
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])
        # Another pool may take the five now: their locks died with the session.
        with que.Client(database_url) as other_client:
            other = que.WorkerPool(other_client, {"J": runner("other")}, count=2, wake_interval=0.05).start()
            try:
                gate.set()
                wait_until(lambda: count(database_url) == 0, 15, "every job")
            finally:
                assert other.shutdown(10)

    run_pool(kind, database_url, {"J": runner("this")}, body, count=1, wake_interval=60, buffer=5)
    assert {n: names for n, names in runs.items() if len(names) > 1} == {}, "no job ran twice"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("table", [3, 7])
def test_a_job_deleted_while_it_waits_in_the_buffer_does_not_run(database_url: str, kind: str, table: int) -> None:
    """Fault 9: jobs deleted (cancelled) while they waited in the locker's buffer still ran,
    5 of 5; Ruby checks each job before it runs it (check_job)."""
    url = fresh_database(database_url, "buffer_cancel")
    ran: list[int] = []
    gate = threading.Event()
    started = threading.Event()

    def job(n: int) -> None:
        ran.append(n)
        if n == 0:
            started.set()
            gate.wait(20)

    with que.Client(url) as client:
        client.migrate(table)
        client.enqueue("J", 0)
        client.enqueue_many([que.NewJob("J", [n]) for n in range(1, 6)])

    def body(pool: Any) -> None:
        assert started.wait(10)
        wait_until(lambda: len(pool.locker.books.ready) == 5, 10, "five buffered jobs")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM que_jobs WHERE args::text <> '[0]'")
        gate.set()
        wait_until(lambda: count(url) == 0, 15, "the running job's end")
        wait_until(lambda: len(pool.locker.books.ready) == 0, 10, "the buffer released")

    run_pool(kind, url, {"J": job}, body, count=1, wake_interval=60, buffer=5, recheck_after=0)
    assert ran == [0], "no deleted job ran"


@pytest.mark.parametrize("kind", KINDS)
def test_pools_started_and_shut_down_leave_no_file_descriptor(client: que.Client, kind: str) -> None:
    """Fault 11: every locker pool leaked its wake-up pipe (50 pools: 100 descriptors)."""

    def once() -> None:
        run_pool(kind, client.conninfo, {}, lambda pool: None, count=2, wake_interval=0.05)

    once()  # the first pool loads what is loaded once
    gc.collect()
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        once()
    gc.collect()
    assert len(os.listdir("/proc/self/fd")) <= before + 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("table", [5, 7])
def test_a_notification_naming_a_running_job_does_not_start_it_again(database_url: str, kind: str, table: int) -> None:
    """Found by the Que 1.x cells (test_a_running_job_is_not_taken_again): a job_available
    message naming a job this locker runs took its advisory lock a second time (the lock is
    re-entrant in one session) and started it beside the first run. The locker must skip
    the jobs it holds, as Ruby's lock_jobs does. A second job, enqueued after the message,
    shows the message was read: it runs on the other worker while the first is held."""
    url = fresh_database(database_url, "locker_faults_notified")
    with que.Client(url) as client:
        client.migrate(table)
    runs: list[int] = []
    started = threading.Event()
    gate = threading.Event()

    def job(name: str) -> None:
        runs.append(que.current_job().job_id)
        if name == "first":
            started.set()
            gate.wait(20)

    def body(pool: Any) -> None:
        with que.Client(url) as client:
            first = client.enqueue("J", "first").job_id
            assert started.wait(20)
            with psycopg.connect(url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT queue, priority, id, to_char(run_at AT TIME ZONE 'UTC', "
                    """'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') FROM que_jobs WHERE id = %s""",
                    [first],
                ).fetchone()
                assert row is not None
                message = (
                    f'{{"message_type":"job_available","queue":"{row[0]}","priority":{row[1]},'
                    f'"id":{row[2]},"run_at":"{row[3]}"}}'
                )
                conn.execute("SELECT pg_notify(%s, %s)", [f"que_listener_{pool.locker.backend_pid}", message])
            second = client.enqueue("J", "second").job_id
            wait_until(lambda: second in runs, 20, "the second job")
            gate.set()
            wait_until(lambda: count(url) == 0, 20, "the drain")

    run_pool(kind, url, {"J": job}, body, count=2, wake_interval=30)
    assert sorted(runs) == sorted(set(runs)), f"a job ran twice: {runs}"
    assert len(runs) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_job_announced_during_a_round_trip_is_taken_at_once(v7: str, kind: str) -> None:
    """Found by CI (the Que 1.x cell test_registers_is_notified_and_holds_the_lock_while_the_job_runs):
    a notification the server sends while the locker's round trip runs is read by libpq with
    the round trip's results and queued there. The locker then waited on the socket, which
    had nothing more to say, so the job waited for the next poll (wake_interval). Here the
    round trip is held on a table lock while the job is enqueued, so the job's notification
    always arrives inside it."""
    ran = threading.Event()

    def body(pool: Any) -> None:
        wait_until(lambda: pool.locker.backend_pid is not None, 10, "the locker to connect")
        pid = pool.locker.backend_pid
        with psycopg.connect(v7, autocommit=True) as watcher, psycopg.connect(v7) as holder:

            def state() -> tuple[Any, ...]:
                row = watcher.execute(
                    "SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]
                ).fetchone()
                return tuple(row or ())

            wait_until(lambda: state() == ("idle", "Client"), 10, "the locker's first round trip to end")
            holder.execute("LOCK TABLE que_jobs IN ACCESS EXCLUSIVE MODE")
            # A message for a job that is not there wakes the locker: its round trip locks
            # the announced job, and waits for the table.
            message = (
                '{"message_type":"job_available","queue":"default","priority":1,"id":424242,'
                '"run_at":"2020-01-01T00:00:00.000000Z"}'
            )
            watcher.execute("SELECT pg_notify(%s, %s)", [f"que_listener_{pid}", message])
            wait_until(lambda: state() == ("active", "Lock"), 10, "the locker's round trip to wait for the table")
            with que.Client(v7) as client:
                client.enqueue("J", conn=holder)
            holder.commit()  # the job's notification reaches the locker inside its round trip
            assert ran.wait(15), "the job announced during the round trip ran before the next poll"

    run_pool(kind, v7, {"J": lambda: ran.set()}, body, count=1, wake_interval=600)


@pytest.mark.parametrize("kind", KINDS)
def test_workers_run_no_further_ahead_of_the_outcomes_than_one_job_each(database_url: str, kind: str) -> None:
    """Found by CI's chaos row (Que 2: server restart during a mixed drain: 10 jobs ran twice,
    more than the 2 per worker the docs allow): a worker took job after job from the buffer
    while the locker's round trip that writes their outcomes was stalled, so a lost session
    could make every one of them run again. Here the outcome write waits on a table lock:
    the one worker may run its job and one more, no further, until the write commits. (A
    Que 0.x pool's buffer grows from workers running ahead, and its bound says so.)"""
    url = fresh_database(database_url, "locker_faults_ahead")
    with que.Client(url) as client:
        client.migrate(7)
        for n in range(10):
            client.enqueue("J", n)
    runs: list[int] = []
    first = threading.Event()
    gate = threading.Event()

    def job(n: int) -> None:
        runs.append(n)
        if n == 0:
            first.set()
            gate.wait(20)

    def body(pool: Any) -> None:
        assert first.wait(15)
        wait_until(lambda: len(pool.locker.books.ready) == 8, 10, "a full buffer")
        with psycopg.connect(url) as holder:
            holder.execute("LOCK TABLE que_jobs IN SHARE MODE")  # reads go on; the outcome's write waits
            gate.set()
            with psycopg.connect(url, autocommit=True) as watcher:
                pid = pool.locker.backend_pid
                waiting = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s"
                wait_until(lambda: watcher.execute(waiting, [pid]).fetchone() == ("Lock",), 10, "the write to wait")
            ran_meanwhile = len(runs)
            holder.rollback()
        assert ran_meanwhile <= 2, f"{ran_meanwhile} jobs ran while the first one's outcome waited"
        wait_until(lambda: len(runs) == 10, 15, "the rest")

    run_pool(kind, url, {"J": job}, body, count=1, wake_interval=60, recheck_after=60)
    assert sorted(runs) == list(range(10))
