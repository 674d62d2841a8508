"""Area 2.x arguments: X enqueues positional and keyword arguments, Y's locker works the
job, and Y's handler receives them, stored byte for byte as jsonb stores the given JSON.

Ruby Que 1.x has no kwargs column: its enqueue appends the keywords to args as one last
hash, and its worker splats args alone, so the handler gets that hash positionally."""

import json
from typing import Any

import psycopg

from conformance.checks import check_equal
from conformance.fleet import Fleet, require
from conformance.que2.witness import HAS_KWARGS, QUEUE, insert, jobs
from conformance.support import ECHO, executions

ARGS = [1, "two", {"three": 3}, [True, None], -4.5, "é✓ \u2028", 12345678901234567890]
KWARGS = {"to": "ann@example.com", "options": {"retry": 3, "at": [1.5, None]}, "empty": {}}


def test_enqueued_by_x_worked_by_y(enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    require(fleet.info(worker), "work_pool")
    case = {"impl": f"{enqueuer} -> {worker}"}
    fleet.get(enqueuer).enqueue(ECHO, json.dumps(ARGS), kwargs_json=json.dumps(KWARGS))
    [row] = jobs(db)
    args, kwargs = (ARGS, KWARGS) if HAS_KWARGS else ([*ARGS, KWARGS], None)
    given = [json.dumps(args), None if kwargs is None else json.dumps(kwargs)]
    stored = db.execute("SELECT %s::jsonb::text, %s::jsonb::text", given).fetchone()
    check_equal((row["args"], row["kwargs"]), stored, "que2-arguments", detail="stored as jsonb stores them", **case)
    result = fleet.get(worker).request("work", queue=QUEUE, workers=1, deadline_ms=20_000)
    check_equal(result.get("drained"), True, "que2-arguments", detail="the work request drained the queue", **case)
    runs = executions(db)
    check_equal([r["job_id"] for r in runs], [row["id"]], "que2-arguments", detail="worked once", **case)
    check_equal(json.loads(runs[0]["received"]), {"args": args, "kwargs": kwargs or {}}, "que2-arguments", **case)
    check_equal(jobs(db), [], "que2-destroy", detail="the job is destroyed after it ran", **case)


def test_a_job_whose_data_holds_more_than_tags_is_worked(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Ruby Que reads only `tags` from a job's data and keeps the rest: a writer may carry
    its own keys there (que's tracing puts the enqueuer's trace context under `trace`), and
    every worker works such a job as any other."""
    require(fleet.info(impl), "work_pool")
    data = {"tags": ["signup"], "trace": {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}
    job_id = insert(db, ECHO, json.dumps([1]), data=json.dumps(data))
    fleet.get(impl).request("work", queue=QUEUE, workers=1, deadline_ms=20_000)
    runs = executions(db)
    check_equal([r["job_id"] for r in runs], [job_id], "que2-arguments", detail="worked once", impl=impl)
    check_equal(jobs(db), [], "que2-destroy", detail="the job is destroyed after it ran", impl=impl)
