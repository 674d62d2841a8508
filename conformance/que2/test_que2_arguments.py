"""Area 2.x arguments: X enqueues positional and keyword arguments, Y's locker works the
job, and Y's handler receives them, stored byte for byte as jsonb stores the given JSON.

Ruby Que 1.x has no kwargs column: its enqueue appends the keywords to args as one last
hash, and its worker splats args alone, so the handler gets that hash positionally."""

import json
from typing import Any

import psycopg

from conformance.checks import check_equal
from conformance.fleet import Fleet, require
from conformance.que2.witness import HAS_KWARGS, QUEUE, jobs
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
