"""Area 2.x schema: migrate(7) builds Ruby Que 2.4.1's catalogue (migrate(5), Ruby Que
1.4.1's, in the Que 1.x dialect), and rewrites the live rows of a Que 0.x table as Ruby's
migration 4 does (and back again)."""

import json
import re
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal
from conformance.fixtures_check import load
from conformance.fleet import Fleet, require
from conformance.que2.witness import QUEUE, TABLE_VERSION, VERSION, catalogue, insert, job_available, jobs, run_at_text
from conformance.support import ECHO
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


# What Ruby's que_state_notify sends (lib/que/migrations/4/up.sql, que_state_notify): a
# row_to_json of these columns, in this order; `time` is the server's now() at the change.
STATE_KEYS = ("message_type", "id", "queue", "tags", "run_at", "time", "job_class", "previous_state", "current_state")
UTC_TEXT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def _state_change(payload: str, row: dict[str, Any], before: str, after: str) -> tuple[bool, str]:
    """Whether a que_state payload is the one Ruby's trigger writes for this change of `row`
    (its `time` only matched by form); and what Ruby's would be, for the report."""
    # jsonb's own text of the tags (", " between members), as row_to_json embeds it.
    tags = json.dumps(json.loads(row["data"]).get("tags", []))
    head = (
        f'{{"message_type":"job_change","id":{row["id"]},"queue":{json.dumps(row["queue"])},"tags":{tags},'
        f'"run_at":"{run_at_text(row)}","time":"'
    )
    tail = f'","job_class":{json.dumps(row["job_class"])},"previous_state":"{before}","current_state":"{after}"}}'
    middle = payload[len(head) : len(payload) - len(tail)]
    return payload.startswith(head) and payload.endswith(tail) and re.fullmatch(UTC_TEXT, middle) is not None, (
        head + "<now() in UTC>" + tail
    )


@pytest.mark.covers("que2.job_notify.payload", "que2.state_notify.payload")
def test_its_own_migrations_triggers_notify_as_rubys(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """The table the row's own migrate built, with a listening locker registered on it: a
    due job inserted is announced to that locker by que_job_notify, byte for byte as Ruby's
    trigger writes it (Ruby's listener reads nothing else), and each change of state (a new
    ready job, an error, its delete) by que_state_notify, as Ruby's writes it."""
    require(fleet.info(impl), "migrate")
    lab.drop_que(db)
    fleet.get(impl).request("migrate", version=TABLE_VERSION)
    pid = db.info.backend_pid
    db.execute(
        "INSERT INTO que_lockers (pid, worker_count, worker_priorities, ruby_pid, ruby_hostname, listening, queues, "
        "job_schema_version) VALUES (pg_backend_pid(), 1, '{NULL}', 1, 'cell', true, %s, %s)",
        [[QUEUE], VERSION],
    )
    db.execute(f'LISTEN "que_listener_{pid}"')
    db.execute("LISTEN que_state")
    job_id = insert(db, ECHO, "[1]", data='{"tags": ["t1", "t2"]}')
    [row] = jobs(db)
    db.execute("UPDATE que_jobs SET error_count = 1, run_at = now() + interval '1 hour' WHERE id = %s", [job_id])
    [errored] = jobs(db)
    db.execute("DELETE FROM que_jobs WHERE id = %s", [job_id])
    notices = list(db.notifies(timeout=2, stop_after=4))
    announced = [n.payload for n in notices if n.channel == f"que_listener_{pid}"]
    expected = json.dumps(job_available(row), separators=(",", ":"))
    check_equal(announced, [expected], "que2-notify", impl=impl, detail="what its que_job_notify sent the locker")
    changes = [n.payload for n in notices if n.channel == "que_state"]
    steps = [(row, "nonexistent", "ready"), (errored, "ready", "errored"), (errored, "errored", "nonexistent")]
    check(len(changes) == len(steps), "que2-state-notify", impl=impl, detail="que_state messages", seen=changes)
    for payload, (state_row, before, after) in zip(changes, steps, strict=True):
        same, ruby = _state_change(payload, state_row, before, after)
        check(
            same, "que2-state-notify", impl=impl, detail=f"the {before} -> {after} message", expected=ruby, seen=payload
        )
