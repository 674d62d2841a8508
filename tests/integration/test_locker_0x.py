"""The locker pool (que.locker, the default WorkerPool): one session claims and holds the
jobs of all its threads, with Que 0.14.3's lock, order and finish; a lost locker session
re-runs only the jobs in flight; jobs held elsewhere are skipped without walking them."""

import threading
from typing import Any

import psycopg
import pytest

import que
from harness import implementations, lab, results
from harness.lab import advisory_locks, wait_until
from que.dialects.que0 import protocol as _protocol
from tests.conftest import rows


def que_sessions(conn: psycopg.Connection[Any], kind: str) -> list[int]:
    found = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name LIKE %s ORDER BY pid", [f"que {kind}%"]
    ).fetchall()
    return [pid for (pid,) in found]


def test_a_pool_of_many_threads_is_one_session(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    gate = threading.Event()
    started: list[int] = []

    def slow(n: int) -> None:
        started.append(n)
        gate.wait(20)

    for n in range(16):
        client.enqueue("Slow", n)
    pool = que.WorkerPool(client, {"Slow": slow}, count=16, wake_interval=0.05).start()
    try:
        wait_until(lambda: len(started) == 16, 20, "16 jobs running at once")
        assert len(que_sessions(conn, "locker")) == 1 and que_sessions(conn, "worker") == []
        holders = {lock.pid for lock in advisory_locks(conn)}
        assert holders == set(que_sessions(conn, "locker")), "the locker's session holds every job lock"
        assert len(advisory_locks(conn)) == 16
    finally:
        gate.set()
        assert pool.shutdown(20)
    assert rows(conn) == [] and advisory_locks(conn) == []


def test_one_thread_runs_jobs_in_the_walks_order(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    seen: list[int] = []
    client.enqueue_many([que.NewJob("J", [n], priority=(n * 7) % 11) for n in range(300)])
    expected = [
        int(n) for (n,) in conn.execute("SELECT args->>0 FROM que_jobs ORDER BY priority, run_at, job_id").fetchall()
    ]
    pool = que.WorkerPool(client, {"J": seen.append}, count=1, wake_interval=0.05).start()
    try:
        wait_until(lambda: len(seen) == 300, 30, "the drain")
    finally:
        assert pool.shutdown(10)
    assert seen == expected
    assert rows(conn) == [] and advisory_locks(conn) == []


@pytest.mark.parametrize("name", ["go", "ruby"])
def test_go_and_ruby_workers_skip_the_jobs_a_locker_holds(
    name: str, client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    """A locker pool of one busy thread holds that job and its buffer; a Go or Ruby worker
    beside it works only the jobs beyond them."""
    impl = implementations.builtin("go", build=True) if name == "go" else implementations.builtin("ruby")
    if impl.unavailable:
        pytest.skip(f"unavailable: {impl.unavailable}")
    results.create(conn)
    results.clear(conn)
    gate = threading.Event()
    ids = [client.enqueue("QueConformance::Echo", n).job_id for n in range(6)]
    pool = que.WorkerPool(client, {"QueConformance::Echo": lambda n: gate.wait(20)}, count=1, buffer=2).start()
    try:
        wait_until(lambda: len(advisory_locks(conn)) == 3, 20, "the locker to hold one running job and two more")
        try:
            testee = lab.start_testee(impl, database_url)
        except Exception as error:
            pytest.skip(f"unavailable: {error}")
        try:
            while testee.work_one()["worked"]:
                pass
        finally:
            testee.stop()
        ran = [r[0] for r in conn.execute(f"SELECT job_id FROM {results.TABLE} ORDER BY id").fetchall()]
        assert ran == ids[3:]
        gate.set()
        wait_until(lambda: rows(conn) == [], 20, "the locker's three jobs to run")
    finally:
        gate.set()
        assert pool.shutdown(20)
    assert rows(conn) == [] and advisory_locks(conn) == []


def test_a_lost_locker_session_reruns_only_the_jobs_in_flight(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    runs: dict[int, int] = {}
    lock = threading.Lock()
    gate = threading.Event()
    blocked = threading.Event()

    def job(n: int) -> None:
        job_id = que.current_job().job_id
        with lock:
            runs[job_id] = runs.get(job_id, 0) + 1
        if n == 0 and not gate.is_set():
            blocked.set()
            gate.wait(20)

    ids = [client.enqueue("J", n).job_id for n in range(200)]
    pool = que.WorkerPool(client, {"J": job}, count=2, wake_interval=0.05)
    assert pool.locker is not None
    pool.start()
    try:
        assert blocked.wait(20)
        wait_until(lambda: len(runs) >= 50, 20, "jobs to run beside the blocked one")
        pid = pool.locker.backend_pid
        conn.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])
        gate.set()
        wait_until(lambda: rows(conn) == [], 30, "the drain after the locker's session was lost")
        assert pool.locker.backend_pid not in (None, pid), "the locker reconnected"
    finally:
        gate.set()
        assert pool.shutdown(20)
    assert sorted(runs) == ids
    rerun = [job_id for job_id, count in runs.items() if count > 1]
    assert len(rerun) <= 2, f"jobs run twice: {rerun} (at most the 2 in flight)"
    assert advisory_locks(conn) == []


def test_shutdown_releases_the_buffered_jobs_untouched(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    started = threading.Event()
    gate = threading.Event()

    def slow(n: int) -> None:
        started.set()
        gate.wait(20)

    for n in range(10):
        client.enqueue("Slow", n)
    pool = que.WorkerPool(client, {"Slow": slow}, count=1, buffer=4, wake_interval=0.05).start()
    assert started.wait(20)
    wait_until(lambda: len(advisory_locks(conn)) == 5, 20, "one running job and four buffered")
    assert pool.locker is not None
    pool.locker.request_stop()
    gate.set()
    assert pool.shutdown(20)
    assert len(rows(conn)) == 9 and all(r["error_count"] == 0 for r in rows(conn))
    assert advisory_locks(conn) == []


def test_short_jobs_grow_the_buffer_up_to_four_times_and_no_further(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    """The buffer asked for is a floor (the test above: slow jobs keep exactly 4 buffered);
    jobs that end faster than the locker's round trips let it claim more at once."""
    depths: list[int] = []
    client.enqueue_many([que.NewJob("Quick", [n]) for n in range(600)])
    pool = que.WorkerPool(client, {"Quick": lambda n: depths.append(ledger.depth)}, count=1, buffer=2)
    assert pool.locker is not None
    ledger = pool.locker.books
    pool.start()
    try:
        wait_until(lambda: len(depths) == 600, 30, "the drain")
    finally:
        assert pool.shutdown(10)
    assert min(depths) >= 2 and max(depths) > 2, "short jobs grew the buffer"
    assert max(depths) <= 8, "never past four times the buffer asked for"
    assert rows(conn) == [] and advisory_locks(conn) == []


def test_an_interrupting_handler_leaves_its_row_and_stops_the_pool(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    def stop() -> None:
        raise SystemExit(3)

    client.enqueue("Stop")
    pool = que.WorkerPool(client, {"Stop": stop}, count=2, wake_interval=0.05)
    with pytest.raises(SystemExit):
        threading.Timer(20, lambda: pool.shutdown(0)).start()
        pool.run()
    [row] = rows(conn)
    assert row["error_count"] == 0
    wait_until(lambda: advisory_locks(conn) == [], 10, "the job to be released")


def test_jobs_held_at_the_head_are_skipped_without_walking_them(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    """With 300 jobs held by another session ahead of the queue, the locker's claims stop
    trying their locks one by one (que.dialects.que0.protocol.AVOID_AFTER) and drain the rest in order."""
    conn.execute("INSERT INTO que_jobs (job_class, priority) SELECT 'Held', 1 FROM generate_series(1, 300)")
    client.enqueue_many([("J", [n]) for n in range(500)])
    seen: list[int] = []
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT count(pg_advisory_lock(job_id)) FROM que_jobs WHERE job_class = 'Held'")
        pool = que.WorkerPool(client, {"J": seen.append}, count=1, wake_interval=0.05).start()
        try:
            wait_until(lambda: len(seen) == 500, 30, "the drain behind the held jobs")
            assert pool.locker is not None and pool.locker._session is not None
            assert pool.locker._session.avoiding, "the claims still walk the 300 held jobs"
        finally:
            assert pool.shutdown(10)
        assert seen == list(range(500))
        assert [r["job_class"] for r in rows(conn)] == ["Held"] * 300
    assert _protocol.AVOID_AFTER < 300


def test_a_worker_switches_back_once_the_jobs_held_elsewhere_are_gone(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    conn.execute("INSERT INTO que_jobs (job_class, priority) SELECT 'Held', 1 FROM generate_series(1, 100)")
    for n in range(4):
        client.enqueue("J", n)
    worker = que.Worker(client, {"J": lambda n: None, "Held": lambda: None})
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT count(pg_advisory_lock(job_id)) FROM que_jobs WHERE job_class = 'Held'")
        assert worker.work_one() and worker._session is not None and worker._session.avoiding
        assert worker.work_one()
    wait_until(lambda: advisory_locks(conn) == [], 10, "the holder's locks to go")
    while worker.work_one():
        pass
    assert worker._session is not None and not worker._session.avoiding
    assert rows(conn) == []


def test_a_listening_locker_whose_idle_session_ends_reconnects_without_dying(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    done = threading.Event()
    with que.Client(database_url, notify=True) as notifying:
        pool = que.WorkerPool(notifying, {"J": lambda: done.set()}, count=1, wake_interval=60, listen=True)
        assert pool.locker is not None
        pool.start()
        try:
            first = wait_until(lambda: pool.locker and pool.locker.backend_pid, 10, "the locker to connect")
            conn.execute("SELECT pg_terminate_backend(%s, 10000)", [first])
            wait_until(
                lambda: pool.locker is not None and pool.locker.backend_pid not in (None, first),
                20,
                "the locker to reconnect",
            )
            assert pool.locker.fatal is None, f"the locker died: {pool.locker.fatal!r}"
            notifying.enqueue("J")
            assert done.wait(20), "a job after the reconnection must be worked"
        finally:
            assert pool.shutdown(10)
