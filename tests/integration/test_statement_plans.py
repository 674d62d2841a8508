"""The plans of the locker's statements on a Que 2 table with a backlog: every statement the
locker runs per round trip reads que_jobs through an index, never the whole table, so a
round trip costs the same on 100 jobs or 1,000,000 (the poll once joined its walk's ids to
a sequential scan of que_jobs: 1.6 ms a round on 5,000 jobs, growing with the table)."""

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import que
from que.dialects.que2 import sql as sql2
from tests.conftest import fresh_database

BACKLOG = 5_000


@pytest.fixture(scope="module")
def backlog(database_url: str) -> Iterator[str]:
    url = fresh_database(database_url, "que2_plan_tests")
    with que.Client(url) as client:
        client.migrate(7)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO que_jobs (job_class, args, job_schema_version) "
            "SELECT 'Noop', jsonb_build_array(i), 2 FROM generate_series(1, %s) AS i",
            [BACKLOG],
        )
        conn.execute("VACUUM ANALYZE que_jobs")
    yield url


def scans(plan: Any) -> list[tuple[str, str]]:
    """Every (node type, relation) that reads a relation in a JSON plan."""
    found = []
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.append((plan["Node Type"], plan["Relation Name"]))
        for value in plan.values():
            found += scans(value)
    elif isinstance(plan, list):
        for value in plan:
            found += scans(value)
    return found


def some_ids(url: str, count: int) -> list[int]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM que_jobs ORDER BY id DESC LIMIT %s", [count])]


STATEMENTS: dict[str, tuple[str, Any]] = {
    "poll_jobs": (
        sql2.POLL_JOBS,
        lambda ids: {
            "queue": "default",
            "held": ids[:3],
            "ceiling": 32767,
            "thresholds": [10, 32767],
            "counts": [2, 14],
        },
    ),
    "lock_notified": (sql2.LOCK_NOTIFIED, lambda ids: {"ids": ids[:8], "held": ids[8:]}),
    "verify_jobs": (sql2.VERIFY_JOBS, lambda ids: {}),
    "check_job": (sql2.CHECK_JOB, lambda ids: {"ids": ids}),
    "release_jobs": (sql2.RELEASE_JOBS, lambda ids: {"ids": ids, "error_counts": [0] * len(ids)}),
}


@pytest.mark.parametrize("name", list(STATEMENTS))
def test_a_round_trip_statement_reads_que_jobs_through_an_index(backlog: str, name: str) -> None:
    statement, params = STATEMENTS[name]
    ids = some_ids(backlog, 16)
    with psycopg.connect(backlog, autocommit=True) as conn:
        conn.execute("SELECT set_config('que_interop.polled', %s, false)", ["{" + ",".join(map(str, ids)) + "}"])
        (plan,) = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params(ids)).fetchone() or (None,)
        conn.execute("SELECT pg_advisory_unlock_all()")
    read = [scan for scan in scans(plan) if scan[1] == "que_jobs"]
    assert read, f"{name} reads no que_jobs? {plan}"
    assert all(node != "Seq Scan" for node, _ in read), f"{name} scans all {BACKLOG} jobs: {read}"
