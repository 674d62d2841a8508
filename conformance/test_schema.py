"""Area schema: an implementation's migration builds the v3 table of the fixture catalog,
and jobs written under one implementation's schema are worked by the others."""

from typing import Any

import psycopg
import pytest

from conformance.checks import check_equal
from conformance.fleet import Fleet, require
from conformance.support import ECHO, executions, fixture, jobs

CATALOGS = {version: fixture(f"schema_v{version}.json") for version in (1, 2, 3)}
CATALOG = CATALOGS[3]


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


def expected_catalog(version: int = 3) -> dict[str, Any]:
    return {k: CATALOGS[version][k] for k in ("columns", "primary_key", "indexes", "comment")}


@pytest.mark.covers("migration.1", "migration.2", "migration.3", "migration.version")
def test_migration_builds_the_v3_catalog(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """migrate(3) on an empty database gives the fixture's columns, key, index and comment."""
    require(fleet.info(impl), "migrate", "it ships no migrations")
    db.execute("DROP TABLE que_jobs")
    fleet.get(impl).migrate(3)
    check_equal(catalog(db), expected_catalog(), "schema-v3", impl=impl)


@pytest.mark.covers("migration.down")
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


@pytest.mark.covers("migration.1", "migration.2", "migration.3", "migration.down", "migration.version")
def test_each_version_down_and_up_is_rubys(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Down from 3 to 2, to 1, to 0, and up again from each: every version's table is
    Ruby's migrations' (fixtures/schema_v1..3.json), its comment the version. Version 1 is
    checked as migration 1 builds it from nothing, too: later migrations rewrite its
    priority default and its key, so only there does migration 1 show."""
    require(fleet.info(impl), "migrate", "it ships no migrations")
    testee = fleet.get(impl)
    for version in (2, 1, 0, 1, 2, 3, 1, 3):
        testee.migrate(version)
        if version == 0:
            gone = db.execute("SELECT to_regclass('que_jobs')").fetchone()
            check_equal(gone, (None,), "schema-down", impl=impl, detail="que_jobs after migrate(0)")
            continue
        rule = "schema-down" if version < 3 else "schema-v3"
        check_equal(catalog(db), expected_catalog(version), rule, impl=impl, detail=f"after migrate({version})")


@pytest.mark.covers("db_version.read")
def test_a_table_without_a_comment_is_version_1(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """A que_jobs built before migrations were versioned (no comment) reads as version 1:
    migrating it to 3 runs steps 2 and 3, keeping its jobs."""
    require(fleet.info(impl), "migrate", "it ships no migrations")
    testee = fleet.get(impl)
    testee.migrate(1)
    db.execute("COMMENT ON TABLE que_jobs IS NULL")
    db.execute("INSERT INTO que_jobs (job_class, args, priority) VALUES ('QueConformance::Echo', '[1]', 5)")
    testee.migrate(3)
    check_equal(catalog(db), expected_catalog(3), "db-version", impl=impl, detail="after migrate(3) from no comment")
    check_equal([(j["priority"], j["queue"]) for j in jobs(db)], [(5, "")], "db-version", impl=impl)
