"""One poison job never takes a worker down: whatever a handler raises and whatever a row
holds, the job is recorded (or backed off), its lock released, and the worker goes on."""

import asyncio
import logging
import math
import subprocess
import sys
import textwrap
from typing import Any

import psycopg
import pytest

import que
from harness.lab import advisory_locks
from harness.lab import wait_until as wait_for
from tests.conftest import rows


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print me")


class CustomBaseError(BaseException):
    pass


def raiser(error: BaseException) -> Any:
    def handler(*args: Any) -> None:
        raise error

    return handler


POISONS = {
    "unprintable": UnprintableError(),
    "cancelled": asyncio.CancelledError(),
    "generator_exit": GeneratorExit(),
    "custom_base": CustomBaseError("base"),
}


@pytest.mark.parametrize("name", list(POISONS))
def test_poison_handlers_are_recorded_and_the_pool_goes_on(
    client: que.Client, conn: psycopg.Connection[Any], name: str
) -> None:
    error = POISONS[name]
    done: list[int] = []
    poison = client.enqueue("Poison").job_id
    good = [client.enqueue("Good", n).job_id for n in range(6)]
    pool = que.WorkerPool(client, {"Poison": raiser(error), "Good": done.append}, count=2, wake_interval=0.05)
    pool.start()
    try:
        wait_for(lambda: len(done) == 6 and rows(conn, "error_count > 0"), what="good jobs and the poison recorded")
        assert all(w.is_alive() for w in pool.workers), "a worker died on the poison job"
    finally:
        assert pool.shutdown(10)
    [row] = rows(conn)
    assert row["job_id"] == poison and row["error_count"] == 1
    assert type(error).__name__ in row["last_error"].split("\n")[0], row["last_error"][:200]
    assert sorted(done) == list(range(6)) and good
    assert advisory_locks(conn) == []


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3)], ids=["KeyboardInterrupt", "SystemExit"])
def test_interrupts_leave_the_row_untouched_and_propagate(
    client: que.Client, conn: psycopg.Connection[Any], error: BaseException
) -> None:
    client.enqueue("Stop")
    worker = que.Worker(client, {"Stop": raiser(error)}, wake_interval=0.05)
    with pytest.raises(type(error)):
        worker.work_one()
    [row] = rows(conn)
    assert row["error_count"] == 0 and row["last_error"] is None
    assert advisory_locks(conn) == []


def test_a_negative_error_count_backs_off_as_ruby_would(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    """Ruby computes count = error_count + 1 = 0, and waits 0**4 + 3 = 3 seconds."""
    conn.execute("INSERT INTO que_jobs (job_class, error_count) VALUES ('Fail', -1)")
    worker = que.Worker(client, {"Fail": raiser(ValueError("no"))}, wake_interval=0.05)
    assert worker.work_one() is True
    [row] = conn.execute("SELECT error_count, extract(epoch FROM run_at - now())::float8 FROM que_jobs").fetchall()
    assert row[0] == 0 and 2 < row[1] <= 3


@pytest.mark.parametrize("column", ["args", "job_class", "error_count"])
def test_rows_with_nulls_the_schema_forbids_are_backed_off_not_fatal(
    client: que.Client, conn: psycopg.Connection[Any], column: str, caplog: pytest.LogCaptureFixture
) -> None:
    conn.execute(f"ALTER TABLE que_jobs ALTER COLUMN {column} DROP NOT NULL")
    conn.execute("INSERT INTO que_jobs (job_class, args, priority) VALUES ('Good', '[0]', 1)")
    conn.execute(f"UPDATE que_jobs SET {column} = NULL")
    done: list[int] = []
    for n in range(1, 4):
        client.enqueue("Good", n)
    pool = que.WorkerPool(client, {"Good": done.append}, count=2, wake_interval=0.05)
    with caplog.at_level(logging.WARNING, logger="que"):
        pool.start()
        try:
            wait_for(lambda: sorted(done) == [1, 2, 3], what="the good jobs")
            assert all(w.is_alive() for w in pool.workers)
        finally:
            assert pool.shutdown(10)
    [row] = conn.execute("SELECT run_at > now(), last_error FROM que_jobs").fetchall()
    assert row[0] is True, f"the unreadable row (NULL {column}) must be backed off"
    assert column in (row[1] or ""), row[1]
    assert any(column in r.getMessage() for r in caplog.records)
    assert advisory_locks(conn) == []


def test_a_worker_started_before_the_table_exists_waits_for_it(
    database_url: str, conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    conn.execute("DROP TABLE que_jobs")
    done: list[int] = []
    with caplog.at_level(logging.INFO, logger="que"), que.Client(database_url) as client:
        worker = que.Worker(client, {"Good": done.append}, wake_interval=0.05, reconnect_max=0.2).start()
        try:
            wait_for(lambda: any("que_jobs" in r.getMessage() for r in caplog.records), what="the worker to try")
            client.migrate()
            client.enqueue("Good", 7)
            wait_for(lambda: done == [7], what="the job after the migration")
            assert worker.is_alive()
        finally:
            assert worker.shutdown(10)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e20, 0, -1])
def test_wake_interval_must_be_a_sensible_number_of_seconds(client: que.Client, value: float) -> None:
    with pytest.raises(ValueError, match="wake_interval"):
        que.Worker(client, {}, wake_interval=value)
    with pytest.raises(ValueError, match="wake_interval"):
        que.WorkerPool(client, {}, wake_interval=value)


def test_a_pool_larger_than_the_server_allows_is_refused(client: que.Client) -> None:
    """Workers with sessions of their own need one connection each; a locker pool needs one
    in all, but no more threads than que.shells.common.MAX_THREADS."""
    with pytest.raises(ValueError, match="max_connections"):
        que.WorkerPool(client, {}, count=100_000, locker=False).start()
    with pytest.raises(ValueError, match="at most"):
        que.WorkerPool(client, {}, count=que.shells.common.MAX_THREADS + 1)


def test_a_hung_handler_does_not_keep_the_process_alive(database_url: str, conn: psycopg.Connection[Any]) -> None:
    """shutdown(timeout) gives up on a handler that never returns; the process can still exit,
    and the job's lock ends with its connection."""
    script = textwrap.dedent(
        f"""
        import threading, que
        started = threading.Event()
        def hang():
            started.set()
            threading.Event().wait()
        client = que.Client({database_url!r})
        client.enqueue("Hang")
        worker = que.Worker(client, {{"Hang": hang}}, wake_interval=0.05).start()
        started.wait(20)
        print("stopped in time:", worker.shutdown(0.5), flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "stopped in time: False" in done.stdout
    wait_for(lambda: advisory_locks(conn) == [], what="the lock to end with the process")
    [row] = rows(conn)
    assert row["error_count"] == 0
