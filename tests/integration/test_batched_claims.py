"""The batched claim (WorkerPool(batch=K)): up to K jobs per round trip, each its own
advisory lock taken in the walk's order; deleted only after they ran, unlocked only after
their delete committed; invisible to other workers while held; free again if the session dies."""

import threading
from typing import Any

import psycopg
import pytest

import que
from harness import implementations, lab, results
from harness.lab import advisory_locks, wait_until
from que.dialects.que0 import protocol as _protocol
from que.dialects.que0.statements import catalog as que0_catalog
from que.drivers.connecting import connection_options
from que.drivers.threads import run as wait
from que.engine import setup as _setup
from que.engine.session import Session
from tests.conftest import rows


def engine(url: str) -> tuple[psycopg.Connection[Any], Session]:
    conn = psycopg.connect(url, **connection_options("que batch test"))
    session = Session(conn.pgconn, que0_catalog())
    wait(_setup.set_up(session), conn.pgconn.socket)
    return conn, session


def test_a_batch_is_locked_in_order_each_with_its_own_lock(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    ids = [client.enqueue("J", n, priority=10 - n).job_id for n in range(6)]
    in_order = list(reversed(ids))
    own, session = engine(database_url)
    held = wait(_protocol.claim(session, "", 4), own.pgconn.socket)
    assert [locked.job.job_id for locked in held] == in_order[:4]
    assert sorted(lock.key for lock in advisory_locks(conn)) == sorted(in_order[:4])
    assert {lock.pid for lock in advisory_locks(conn)} == {own.pgconn.backend_pid}
    other = client.lock_job()
    assert other is not None and other.job.job_id == in_order[4], "held jobs are skipped by others"
    other.release()
    sent: list[_protocol.Finish] = []
    for locked in held[:2]:
        finish = _protocol.Finish(locked)
        wait(_protocol.send_finish(session, finish, sent), own.pgconn.socket)
        sent.append(finish)
    wait(_protocol.release(session, sent, held[2:]), own.pgconn.socket)
    assert [r["job_id"] for r in rows(conn)] == sorted(in_order[2:])
    assert advisory_locks(conn) == []
    own.close()


def test_a_batch_pool_drains_exactly_once_in_order(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    seen: list[int] = []
    client.enqueue_many([("J", [n]) for n in range(400)])
    worker = que.Worker(client, {"J": seen.append}, wake_interval=0.05, batch=7).start()
    try:
        wait_until(lambda: len(seen) == 400, 60, "the drain")
    finally:
        assert worker.shutdown(10)
    assert seen == list(range(400)), "one batch worker runs jobs in the walk's order"
    assert rows(conn) == [] and advisory_locks(conn) == []


def test_failures_in_a_batch_are_recorded_and_the_rest_deleted(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    def maybe(n: int) -> None:
        if n % 3 == 0:
            raise ValueError(f"bad {n}")

    client.enqueue_many([("J", [n]) for n in range(9)])
    pool = que.WorkerPool(client, {"J": maybe}, count=2, wake_interval=0.05, locker=False, batch=4).start()
    try:
        wait_until(lambda: len(rows(conn)) == 3 and all(r["error_count"] == 1 for r in rows(conn)), 30, "the batch")
    finally:
        assert pool.shutdown(10)
    assert sorted(r["args_text"] for r in rows(conn)) == ["[0]", "[3]", "[6]"]
    assert all(r["last_error"].startswith("ValueError: bad") for r in rows(conn))
    assert advisory_locks(conn) == []


def test_a_crashed_batch_frees_its_jobs(client: que.Client, conn: psycopg.Connection[Any], database_url: str) -> None:
    ids = [client.enqueue("J", n).job_id for n in range(5)]
    own, session = engine(database_url)
    held = wait(_protocol.claim(session, "", 5), own.pgconn.socket)
    assert len(held) == 5
    conn.execute("SELECT pg_terminate_backend(%s, 10000)", [own.pgconn.backend_pid])
    wait_until(lambda: advisory_locks(conn) == [], 10, "the crashed session's locks to go")
    seen: list[int] = []
    worker = que.Worker(client, {"J": lambda n: seen.append(que.current_job().job_id)}, batch=3)
    while worker.work_one():
        pass
    assert sorted(seen) == ids


def test_shutdown_mid_batch_releases_the_jobs_not_run(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    started = threading.Event()
    gate = threading.Event()

    def slow(n: int) -> None:
        started.set()
        gate.wait(10)

    for n in range(5):
        client.enqueue("J", n)
    worker = que.Worker(client, {"J": slow}, wake_interval=0.05, batch=5).start()
    assert started.wait(10)
    worker.request_stop()
    gate.set()
    assert worker.shutdown(10)
    assert len(rows(conn)) == 4, "the job that ran is deleted, the four not run are left"
    assert advisory_locks(conn) == []


@pytest.mark.parametrize("name", ["go", "ruby"])
def test_go_and_ruby_workers_skip_a_held_batch(
    name: str, client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    impl = implementations.builtin("go", build=True) if name == "go" else implementations.builtin("ruby")
    if impl.unavailable:
        pytest.skip(f"unavailable: {impl.unavailable}")
    ids = [client.enqueue("QueConformance::Echo", n).job_id for n in range(4)]
    own, session = engine(database_url)
    held = wait(_protocol.claim(session, "", 3), own.pgconn.socket)
    results.create(conn)
    results.clear(conn)
    try:
        testee = lab.start_testee(impl, database_url)
    except Exception as error:
        pytest.skip(f"unavailable: {error}")
    try:
        assert testee.work_one()["worked"] is True
        assert testee.work_one()["worked"] is False
    finally:
        testee.stop()
    ran = [r[0] for r in conn.execute(f"SELECT job_id FROM {results.TABLE}").fetchall()]
    assert ran == [ids[3]]
    for locked in held:
        wait(_protocol.finish(session, _protocol.Finish(locked)), own.pgconn.socket)
    own.close()
    assert rows(conn) == []
