"""Area 2, enqueue: defaults (queue '', priority 100, run_at now, args []) and options as given."""

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from conformance.fleet import Fleet, require
from conformance.support import ECHO, jobs


def now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def test_defaults(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """With no options and no args: queue '', priority 100, args [], error_count 0, run_at now."""
    testee = fleet.get(impl)
    before = now(db)
    testee.enqueue(ECHO)
    after = now(db)
    [job] = jobs(db)
    assert (job["queue"], job["priority"], job["args"], job["error_count"], job["last_error"]) == (
        "",
        100,
        "[]",
        0,
        None,
    )
    assert job["job_class"] == ECHO
    assert before <= job["run_at"] <= after


def test_returns_the_job_id(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """The id an implementation returns is the row's job_id."""
    require(fleet.info(impl), "enqueue_returns_job_id")
    job_id = fleet.get(impl).enqueue(ECHO, "[1]")
    assert [j["job_id"] for j in jobs(db)] == [job_id]


@pytest.mark.parametrize("priority", [-32768, -5, 0, 1, 32767])
def test_priority_is_stored_as_given(impl: str, priority: int, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Any smallint priority, including 0 and the bounds, is stored as given."""
    fleet.get(impl).enqueue(ECHO, priority=priority)
    assert [j["priority"] for j in jobs(db)] == [priority]


@pytest.mark.parametrize("queue", ["mail", "Mail queue é", ""])
def test_queue_is_stored_as_given(impl: str, queue: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    fleet.get(impl).enqueue(ECHO, queue=queue)
    assert [j["queue"] for j in jobs(db)] == [queue]


@pytest.mark.parametrize("offset", [timedelta(days=3), timedelta(days=-3)], ids=["future", "past"])
def test_run_at_is_stored_to_the_microsecond(
    impl: str, offset: timedelta, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    require(fleet.info(impl), "enqueue_run_at")
    at = (datetime.now(UTC) + offset).replace(microsecond=123456)
    fleet.get(impl).enqueue(ECHO, run_at=at.isoformat().replace("+00:00", "Z"))
    assert [j["run_at"] for j in jobs(db)] == [at]
