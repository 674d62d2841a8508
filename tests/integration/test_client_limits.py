"""The Client under hostile use: dead pooled connections, wrong shapes, forgotten locks,
absurd values. Every case is refused with a clear error or handled; nothing half-written."""

import gc
import logging
from typing import Any

import psycopg
import pytest

import que
from harness.lab import advisory_locks
from tests.conftest import rows


def terminate_client_backends(conn: psycopg.Connection[Any]) -> int:
    """End the pooled sessions and wait (the timeout) until each backend has exited, as
    after a restart; a signalled backend still running would take one more statement."""
    row = conn.execute(
        "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
        "WHERE application_name = 'que' AND pid <> pg_backend_pid()"
    ).fetchone()
    return int(row[0]) if row else 0


def test_enqueue_survives_dead_pooled_connections(database_url: str, conn: psycopg.Connection[Any]) -> None:
    """The server dropped every pooled connection (restart, failover, idle timeout): the
    next enqueues find healthy connections instead of failing one per dead connection."""
    with que.Client(database_url, max_connections=4) as client:
        client.enqueue("Warm")
        held = [client.lock_job() for _ in range(3)]
        for n in range(3):
            client.enqueue("Warm", n)
        held = [client.lock_job() for _ in range(3)]
        for job in held:
            assert job is not None
            job.release()
        killed = terminate_client_backends(conn)
        assert killed >= 3
        for n in range(10):
            assert client.enqueue("After", n).args == [n]
        locked = client.lock_job()
        assert locked is not None
        locked.release()
    assert len(rows(conn, "job_class = 'After'")) == 10


@pytest.mark.parametrize(
    "jobs",
    [
        "SendEmail",
        [{"job_class": "SendEmail"}],
        [{"SendEmail": [1]}],
        [("SendEmail",)],
        [("SendEmail", [1], "extra")],
        [("SendEmail", "not a list")],
        [["SendEmail", [1]]],
        [b"SendEmail"],
        [None],
    ],
    ids=["str", "dict", "dict-args", "short-tuple", "long-tuple", "str-args", "list-item", "bytes", "none"],
)
def test_enqueue_many_refuses_wrong_shapes(client: que.Client, conn: psycopg.Connection[Any], jobs: Any) -> None:
    with pytest.raises(TypeError) as raised:
        client.enqueue_many(jobs)
    message = str(raised.value)
    assert "jobs" in message, message
    assert rows(conn) == []


def test_enqueue_many_names_the_index_of_a_wrong_item(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(TypeError, match=r"jobs\[1\]"):
        client.enqueue_many([("A", [1]), {"job_class": "B"}])
    assert rows(conn) == []


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_deep_arguments_are_refused_with_the_rule(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue("A", nested(99))  # 100 levels with the args array itself: Ruby reads it
    with pytest.raises(ValueError, match="100"):
        client.enqueue("A", nested(100))
    with pytest.raises(ValueError, match="100"):
        client.enqueue("A", nested(100_000))
    assert len(rows(conn)) == 1


def test_self_referencing_arguments_are_refused(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match=r"args\[0\]\[1\].*itself"):
        client.enqueue("A", loop)
    mapping: dict[str, Any] = {}
    mapping["me"] = mapping
    with pytest.raises(ValueError, match="itself"):
        client.enqueue("A", mapping)
    assert rows(conn) == []


def test_integers_past_pythons_digit_limit_are_refused_with_their_path(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    with pytest.raises(ValueError, match=r"args\[0\]\['n'\]"):
        client.enqueue("A", {"n": 10**5000})
    assert rows(conn) == []


def test_queue_names_past_the_index_limit_are_refused_before_sql(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    with pytest.raises(ValueError, match="queue"):
        client.enqueue("A", queue="q" * 3000)
    with pytest.raises(ValueError, match="queue"):
        client.lock_job(queue="q" * 3000)
    assert rows(conn) == []


def test_a_forgotten_lock_does_not_leak_its_pool_slot(database_url: str, conn: psycopg.Connection[Any]) -> None:
    with que.Client(database_url, max_connections=2, connect_timeout=3) as client:
        for n in range(5):
            client.enqueue("A", n)
        for _ in range(4):
            with pytest.warns(ResourceWarning, match="release"):
                client.lock_job()  # dropped without release()
                gc.collect()
        assert client.enqueue("B").job_class == "B"
    assert advisory_locks(conn) == []
    assert len(rows(conn)) == 6


def test_locked_job_error_at_the_integer_maximum_keeps_the_callers_exception(
    client: que.Client, conn: psycopg.Connection[Any]
) -> None:
    conn.execute("INSERT INTO que_jobs (job_class, error_count) VALUES ('A', 2147483647)")
    locked = client.lock_job()
    assert locked is not None
    with pytest.raises(KeyError, match="the caller's"), locked:
        raise KeyError("the caller's")
    [row] = rows(conn)
    assert row["error_count"] == 2147483647 and row["last_error"].startswith("KeyError")
    locked = client.lock_job()
    assert locked is None  # rescheduled into the future
    assert advisory_locks(conn) == []


def test_errors_carry_one_error_prefix_and_their_sqlstate(client: que.Client) -> None:
    client.migrate(0)
    with pytest.raises(psycopg.errors.UndefinedTable) as raised:
        client.enqueue("A")
    assert not str(raised.value).startswith("ERROR"), str(raised.value)
    assert raised.value.sqlstate == "42P01"


def test_huge_exception_messages_are_cut_in_the_log(
    client: que.Client, conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    def huge() -> None:
        raise ValueError("x" * 20_000_000)

    client.enqueue("Huge")
    with caplog.at_level(logging.INFO, logger="que"):
        assert que.Worker(client, {"Huge": huge}).work_one() is True
    [record] = [r for r in caplog.records if "job_errored" in r.getMessage()]
    assert len(record.getMessage()) < 2_000
    assert rows(conn)[0]["error_count"] == 1
