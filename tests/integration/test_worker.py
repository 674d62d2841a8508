"""The worker: handlers, errors in Ruby's shape, unknown classes, shutdown, reconnects."""

import logging
import threading
from typing import Any

import psycopg
import pytest

import que
from harness.lab import advisory_locks
from harness.lab import wait_until as wait_for
from tests.conftest import rows


def make_worker(client: que.Client, handlers: dict[str, Any], **kw: Any) -> que.Worker:
    return que.Worker(client, handlers, wake_interval=kw.pop("wake_interval", 0.05), **kw)


def test_handler_gets_positional_args_and_job_is_deleted(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    seen: list[Any] = []

    def send(to: str, n: int, opts: dict[str, Any]) -> None:
        seen.append((to, n, opts, que.current_job().job_class))

    client.enqueue("Send", "a@b", 2, {"x": [1]})
    worker = make_worker(client, {"Send": send})
    assert worker.work_one() is True
    assert worker.work_one() is False
    assert seen == [("a@b", 2, {"x": [1]}, "Send")]
    assert rows(conn) == [] and advisory_locks(conn) == []


def test_non_array_args_are_splatted_as_rubys_run_splats_them(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    """Ruby calls run(*args): an object gives one [key, value] pair per member (Hash#to_a),
    null no argument, a scalar one (what Ruby 3.1 prints for each, by hand: [["Name",
    "bgentry"]], [5], [], ["s"], [])."""
    seen: list[Any] = []
    for text in ['{"Name":"bgentry"}', "5", "null", '"s"', "{}"]:
        conn.execute("INSERT INTO que_jobs (job_class, args) VALUES ('Go', %s)", [text])
    worker = make_worker(client, {"Go": lambda *a: seen.append(a)})
    while worker.work_one():
        pass
    assert seen == [(["Name", "bgentry"],), (5,), (), ("s",), ()]


def failing(message: str) -> None:
    raise ValueError(message)


def test_raised_error_is_recorded_in_ruby_shape(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue("Fail", "ErrorJob!")
    make_worker(client, {"Fail": failing}).work_one()
    [row] = rows(conn)
    lines = row["last_error"].split("\n")
    assert lines[0] == "ValueError: ErrorJob!"
    assert lines[-1].endswith(":in 'failing'") and "test_worker.py:" in lines[-1]
    assert row["error_count"] == 1
    assert advisory_locks(conn) == []


@pytest.mark.parametrize(("message", "head"), [("", "ValueError"), ("   ", "ValueError")])
def test_blank_message_gives_the_class_alone(
    client: que.Client, conn: psycopg.Connection[Any], message: str, head: str
) -> None:
    client.enqueue("Fail", message)
    make_worker(client, {"Fail": failing}).work_one()
    assert rows(conn)[0]["last_error"].split("\n")[0] == head


def test_long_message_is_cut_to_500_characters(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue("Fail", "é" * 600)
    make_worker(client, {"Fail": failing}).work_one()
    first = rows(conn)[0]["last_error"].split("\n")[0]
    assert len(first) == 500 and first == "ValueError: " + "é" * 488


def test_message_with_nul_is_still_recorded(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue("Fail", "a\x00b")
    make_worker(client, {"Fail": failing}).work_one()
    assert rows(conn)[0]["last_error"].startswith("ValueError: a\\u0000b\n")


class CustomError(Exception):
    pass


def test_custom_exception_class_is_qualified(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    def boom() -> None:
        raise CustomError("no")

    client.enqueue("Boom")
    make_worker(client, {"Boom": boom}).work_one()
    assert rows(conn)[0]["last_error"].startswith("tests.integration.test_worker.CustomError: no\n")


def test_unknown_job_class_is_an_error_with_backoff(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue("NoSuchJob")
    assert make_worker(client, {}).work_one() is True
    [row] = rows(conn)
    assert row["error_count"] == 1
    assert row["last_error"].startswith(
        "que.errors.UnknownJobClass: no handler is registered for job class 'NoSuchJob'"
    )
    delay = conn.execute("SELECT extract(epoch FROM run_at - now()) FROM que_jobs").fetchone()[0]  # type: ignore[index]
    assert 2 < delay <= 4


def test_wrong_arity_is_an_error(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue("Two", 1)
    make_worker(client, {"Two": lambda a, b: None}).work_one()
    assert rows(conn)[0]["last_error"].startswith("TypeError: ")


def test_base_exception_propagates_row_untouched_lock_released(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    client.enqueue("Int")
    with pytest.raises(KeyboardInterrupt):
        make_worker(client, {"Int": interrupt}).work_one()
    [row] = rows(conn)
    assert row["error_count"] == 0 and row["last_error"] is None
    assert advisory_locks(conn) == []


def test_events_are_logged(client: que.Client, caplog: pytest.LogCaptureFixture) -> None:
    client.enqueue("Ok")
    client.enqueue("Bad")
    worker = make_worker(client, {"Ok": lambda: None, "Bad": lambda: failing("x")})
    with caplog.at_level(logging.DEBUG, logger="que"):
        while worker.work_one():
            pass
    events = [getattr(r, "event", None) for r in caplog.records]
    assert events == ["job_worked", "job_errored", "job_unavailable"]
    assert all(isinstance(getattr(r, "elapsed", None), float) for r in caplog.records[:2])


def test_work_drains_and_shutdown_lets_current_job_finish(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    started, release = threading.Event(), threading.Event()
    done: list[int] = []

    def slow(n: int) -> None:
        if n == 2:
            started.set()
            assert release.wait(10)
        done.append(n)

    for n in (1, 2, 3):
        client.enqueue("Slow", n)
    worker = make_worker(client, {"Slow": slow}).start()
    assert started.wait(10)
    stopper = threading.Thread(target=worker.shutdown)
    stopper.start()
    release.set()
    stopper.join(10)
    assert not stopper.is_alive()
    assert done == [1, 2]
    assert [r["args_text"] for r in rows(conn)] == ["[3]"]
    assert advisory_locks(conn) == []


def test_shutdown_of_a_worker_never_started_returns(client: que.Client) -> None:
    assert make_worker(client, {}).shutdown(timeout=1) is True


def test_registry_decorator_and_duplicates() -> None:
    registry = que.Registry()

    @registry.handler()
    def SendEmail() -> None:
        pass

    registry.register("Other", lambda: None)
    assert sorted(registry) == ["Other", "SendEmail"]
    with pytest.raises(ValueError, match="already registered"):
        registry.register("Other", lambda: None)
    with pytest.raises(TypeError, match="callable"):
        registry.register("X", 5)  # type: ignore[arg-type]


def terminate(conn: psycopg.Connection[Any], pid: int) -> None:
    conn.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])


def test_reconnects_after_idle_connection_is_terminated(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    worked: list[int] = []
    client.enqueue("J", 1)
    worker = make_worker(client, {"J": worked.append}).start()
    try:
        wait_for(lambda: worked == [1], what="first job")
        pid = worker._conn.info.backend_pid  # type: ignore[union-attr]
        terminate(conn, pid)
        client.enqueue("J", 2)
        wait_for(lambda: worked == [1, 2], what="job after reconnect")
        assert worker._conn is not None and worker._conn.info.backend_pid != pid
    finally:
        assert worker.shutdown(10)


def test_connection_lost_mid_job_runs_job_again(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    runs: list[int] = []
    first_run = threading.Event()
    proceed = threading.Event()

    def job(n: int) -> None:
        runs.append(n)
        if len(runs) == 1:
            first_run.set()
            assert proceed.wait(10)

    client.enqueue("J", 7)
    worker = make_worker(client, {"J": job}).start()
    try:
        assert first_run.wait(10)
        terminate(conn, worker._conn.info.backend_pid)  # type: ignore[union-attr]
        wait_for(lambda: advisory_locks(conn) == [], what="the lock to end with the session")
        proceed.set()
        wait_for(lambda: rows(conn) == [], what="the job to be run again and deleted")
        assert runs == [7, 7]
    finally:
        proceed.set()
        assert worker.shutdown(10)
