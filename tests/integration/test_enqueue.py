"""Enqueue: defaults, options, transactions, batches, and bad input inserting nothing."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

import que
from tests.conftest import rows


def test_defaults_match_ruby_que(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    before = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    job = client.enqueue("Que::Job")
    [row] = rows(conn)
    assert (row["queue"], row["priority"], row["args_text"], row["error_count"], row["last_error"]) == (
        "",
        100,
        "[]",
        0,
        None,
    )
    assert row["job_class"] == "Que::Job"
    assert before <= row["run_at"] <= datetime.now(UTC) + timedelta(seconds=1)
    assert job.job_id == row["job_id"] and job.run_at == row["run_at"] and job.args == []
    assert client.enqueue("Que::Job", queue=None).queue == "", "queue=None is the table's default queue"


def test_positional_args_and_options(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    at = datetime(2031, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    job = client.enqueue("MyJob", 1, "two", {"three": 3}, queue="mail", priority=-5, run_at=at)
    [row] = rows(conn)
    assert row["args_text"] == '[1,"two",{"three":3}]'
    assert (row["queue"], row["priority"], row["run_at"]) == ("mail", -5, at)
    assert job.args == [1, "two", {"three": 3}] and job.run_at == at


@pytest.mark.parametrize("priority", [-32768, -1, 0, 1, 32767])
def test_priority_bounds_and_zero_are_stored_as_given(
    client: que.Client, conn: psycopg.Connection[Any], priority: int
) -> None:
    client.enqueue("J", priority=priority)
    assert rows(conn)[0]["priority"] == priority


def test_enqueue_in_callers_transaction_commits_or_rolls_back_with_it(
    client: que.Client, database_url: str, conn: psycopg.Connection[Any]
) -> None:
    with psycopg.connect(database_url) as app:
        with pytest.raises(RuntimeError), app.transaction() as tx:
            client.enqueue("Rolled", conn=tx)
            client.enqueue("Rolled", conn=app)
            assert rows(conn) == []  # not visible before commit
            raise RuntimeError("abort")
        assert rows(conn) == []
        with app.transaction():
            job = client.enqueue("Kept", 1, conn=app)
        [row] = rows(conn)
        assert row["job_id"] == job.job_id and row["job_class"] == "Kept"


def test_enqueue_on_callers_connection_keeps_its_adapters(client: que.Client, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as app:
        client.enqueue("J", {"x": 1}, conn=app)
        # Our loaders were installed on a cursor, not on the caller's connection.
        assert app.execute("SELECT '{\"a\":1}'::json").fetchone() == ({"a": 1},)


def test_enqueue_many_in_one_statement(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    jobs = client.enqueue_many(
        [
            que.NewJob("A", [1]),
            que.NewJob("B", (), queue="q", priority=0, run_at=at),
            ("C", ["x", {"y": None}]),
        ]
    )
    stored = rows(conn)
    assert [j.job_id for j in jobs] == [r["job_id"] for r in stored]
    assert [(r["job_class"], r["args_text"], r["queue"], r["priority"]) for r in stored] == [
        ("A", "[1]", "", 100),
        ("B", "[]", "q", 0),
        ("C", '["x",{"y":null}]', "", 100),
    ]
    assert stored[1]["run_at"] == at
    assert client.enqueue_many([]) == []


def test_enqueue_many_rejects_whole_batch(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ValueError, match=r"jobs\[1\]: priority 40000 is outside the smallint range"):
        client.enqueue_many([que.NewJob("A"), que.NewJob("B", priority=40000)])
    assert rows(conn) == []


BAD = [
    (("",), {}, ValueError, "job_class must not be empty"),
    ((None,), {}, TypeError, "job_class must be a str"),
    (("A\x00B",), {}, ValueError, "NUL"),
    (("J",), {"queue": b"mail"}, TypeError, "queue must be a str"),
    (("J",), {"queue": 5}, TypeError, "queue must be a str"),
    (("J",), {"priority": 32768}, ValueError, "priority 32768 is outside the smallint range"),
    (("J",), {"priority": -32769}, ValueError, "outside the smallint range"),
    (("J",), {"priority": 1.5}, TypeError, "priority must be an int"),
    (("J",), {"priority": True}, TypeError, "priority must be an int"),
    (("J",), {"run_at": datetime(2030, 1, 1)}, ValueError, "naive"),
    (("J",), {"run_at": "2030-01-01"}, TypeError, "run_at must be a timezone-aware datetime"),
    (("J", float("nan")), {}, ValueError, r"args\[0\] is nan"),
    (("J", 1, {"when": datetime(2020, 1, 1, tzinfo=UTC)}), {}, TypeError, r"args\[1\]\['when'\]"),
    (("J", {1, 2}), {}, TypeError, "set"),
]


@pytest.mark.parametrize(("args", "kwargs", "kind", "message"), BAD)
def test_bad_input_is_refused_and_inserts_nothing(
    client: que.Client, conn: psycopg.Connection[Any], args: Any, kwargs: Any, kind: type, message: str
) -> None:
    with pytest.raises(kind, match=message):
        client.enqueue(*args, **kwargs)
    assert rows(conn) == []


invalid_priority = st.one_of(
    st.integers().filter(lambda p: not -32768 <= p <= 32767),
    st.floats(),
    st.text(),
    st.none(),
    st.booleans(),
)


@given(priority=invalid_priority)
def test_any_invalid_priority_inserts_nothing(client: que.Client, conn: psycopg.Connection[Any], priority: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="priority"):
        client.enqueue("J", priority=priority)
    assert rows(conn) == []
