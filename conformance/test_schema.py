"""Area schema: an implementation's migration builds the v3 table of the fixture catalog,
and jobs written under one implementation's schema are worked by the others."""

from typing import Any

import psycopg

from conformance.checks import check_equal
from conformance.fleet import Fleet, require
from conformance.support import ECHO, executions, fixture, jobs

CATALOG = fixture("schema_v3.json")


def catalog(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    columns = conn.execute(
        "SELECT column_name, data_type, column_default, is_nullable = 'YES' FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = 'que_jobs' ORDER BY ordinal_position"
    ).fetchall()
    pkey = conn.execute(
        "SELECT c.conname, array_agg(a.attname ORDER BY k.n) FROM pg_constraint c "
        "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "WHERE c.conrelid = 'que_jobs'::regclass AND c.contype = 'p' GROUP BY c.conname"
    ).fetchone()
    indexes = conn.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'que_jobs'::regclass ORDER BY 1"
    ).fetchall()
    comment = conn.execute("SELECT obj_description('que_jobs'::regclass, 'pg_class')").fetchone()
    return {
        "columns": [{"name": n, "type": t, "default": d, "nullable": nullable} for n, t, d, nullable in columns],
        "primary_key": {"name": pkey[0], "columns": list(pkey[1])} if pkey else None,
        "indexes": [i[0] for i in indexes],
        "comment": comment[0] if comment else None,
    }


def expected_catalog() -> dict[str, Any]:
    return {k: CATALOG[k] for k in ("columns", "primary_key", "indexes", "comment")}


def test_migration_builds_the_v3_catalog(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """migrate(3) on an empty database gives the fixture's columns, key, index and comment."""
    require(fleet.info(impl), "migrate", "it ships no migrations")
    db.execute("DROP TABLE que_jobs")
    fleet.get(impl).migrate(3)
    check_equal(catalog(db), expected_catalog(), "schema-v3", impl=impl)


def test_migration_down_to_0_and_back(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Down to 0 drops the table; up again restores the same catalog."""
    require(fleet.info(impl), "migrate", "it ships no migrations")
    testee = fleet.get(impl)
    testee.migrate(0)
    check_equal(db.execute("SELECT to_regclass('que_jobs')").fetchone(), (None,), "schema-down", impl=impl)
    testee.migrate(3)
    check_equal(catalog(db), expected_catalog(), "schema-down", impl=impl, detail="after 3 -> 0 -> 3")


def test_jobs_under_one_schema_are_worked_by_another(
    enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """The enqueuer's migration builds the table and it enqueues; the worker works the job."""
    require(fleet.info(enqueuer), "migrate", "it ships no migrations")
    writer, reader = fleet.get(enqueuer), fleet.get(worker)
    db.execute("DROP TABLE que_jobs")
    writer.migrate(3)
    writer.enqueue(ECHO, "[42]")
    [job] = jobs(db)
    pair = f"{enqueuer} -> {worker}"
    check_equal(reader.work_one()["worked"], True, "schema-shared", impl=pair, job=job["job_id"], detail="work_one")
    check_equal(jobs(db), [], "schema-shared", impl=pair, job=job["job_id"], detail="rows left")
    runs = [(r["impl"], r["job_id"]) for r in executions(db)]
    check_equal(runs, [(fleet.info(worker).name, job["job_id"])], "schema-shared", impl=pair)
