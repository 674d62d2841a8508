"""The faults of issue 29 about lost sessions and notifications (an adversarial pass over
the lockers), each against a real PostgreSQL, in both I/O styles: a pool never starts again
a job it runs, hands out nothing of a dead buffer, runs no job deleted while it waited or
named while it runs, takes a job announced during a round trip at once, leaves no file
descriptor, and runs no further ahead of its outcomes than one job per worker. Each test
failed on the code before its fix."""

import gc
import os
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

import que
from harness.lab import wait_until
from tests.conftest import fresh_database, rows
from tests.support.lockers import KINDS, count, run_pool


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
def test_a_job_announced_during_a_round_trip_is_taken_at_once(v7_url: str, kind: str) -> None:
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
        with psycopg.connect(v7_url, autocommit=True) as watcher, psycopg.connect(v7_url) as holder:

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
            with que.Client(v7_url) as client:
                client.enqueue("J", conn=holder)
            holder.commit()  # the job's notification reaches the locker inside its round trip
            assert ran.wait(15), "the job announced during the round trip ran before the next poll"

    run_pool(kind, v7_url, {"J": lambda: ran.set()}, body, count=1, wake_interval=600)


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
