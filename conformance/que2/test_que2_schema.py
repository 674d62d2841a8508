"""Area 2.x schema: migrate(7) builds Ruby Que 2.4.1's catalogue (migrate(5), Ruby Que
1.4.1's, in the Que 1.x dialect), and rewrites the live rows of a Que 0.x table as Ruby's
migration 4 does (and back again)."""

from typing import Any

import psycopg

from conformance.checks import check_equal
from conformance.fixtures_check import load
from conformance.fleet import Fleet, require
from conformance.que2.witness import TABLE_VERSION, catalogue, jobs
from harness import lab


def _reference() -> dict[str, list[tuple[Any, ...]]]:
    """The catalogue Ruby's own migrations build: Que 2.4.1's (fixtures/schema_v7.json), or
    Que 1.4.1's (fixtures/schema_v5.json)."""
    found = load(f"schema_v{TABLE_VERSION}.json")["catalogue"]
    return {name: [tuple(row) for row in rows] for name, rows in found.items()}


def test_migrate_builds_rubys_catalogue(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    require(fleet.info(impl), "migrate")
    lab.drop_que(db)
    fleet.get(impl).request("migrate", version=TABLE_VERSION)
    check_equal(catalogue(db), _reference(), "que2-schema", impl=impl)
    check_equal(lab.db_version(db), TABLE_VERSION, "que2-schema", impl=impl, detail="the table comment")


V3_ROWS = [
    # queue, args as JSON text, last_error
    ("", "[1,2]", None),
    ("mail", '{"to":"ann"}', "RuntimeError: boom\n/app/a.rb:1\n/app/b.rb:2"),
    ("", '"text"', "x" * 600),
]


def test_a_0x_table_with_live_rows_goes_up_and_back(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    require(fleet.info(impl), "migrate")
    lab.drop_que(db)
    testee = fleet.get(impl)
    testee.request("migrate", version=3)  # the testee's own Que 0.x table
    for queue, args, last_error in V3_ROWS:
        db.execute(
            "INSERT INTO que_jobs (queue, job_class, args, last_error) VALUES (%s, 'J', %s::json, %s)",
            [queue, args, last_error],
        )
    testee.request("migrate", version=TABLE_VERSION)
    up = [
        (r["queue"], r["args"], r["last_error_message"], r["last_error_backtrace"], r["job_schema_version"])
        for r in jobs(db)
    ]
    check_equal(
        up,
        [
            ("default", "[1, 2]", None, None, 1),
            ("mail", '[{"to": "ann"}]', "RuntimeError: boom", "/app/a.rb:1\n/app/b.rb:2", 1),
            ("default", '["text"]', "x" * 500, None, 1),
        ],
        "que2-upgrade",
        impl=impl,
    )
    testee.request("migrate", version=3)
    down = db.execute("SELECT queue, args::text, last_error FROM que_jobs ORDER BY job_id").fetchall()
    check_equal(
        down,
        [("", "[1, 2]", None), ("mail", '[{"to": "ann"}]', V3_ROWS[1][2]), ("", '["text"]', "x" * 500)],
        "que2-upgrade",
        impl=impl,
        detail="migrated down to 3 again",
    )
