"""Area 3: a job enqueued by X is worked by Y, which receives X's arguments; deleted once."""

from typing import Any

import psycopg

from conformance import rules
from conformance.fleet import Fleet
from conformance.support import ECHO, executions, jobs

ARGS = '[1,"two",{"three":3},[true,null],-4.5]'


def test_enqueued_by_x_worked_by_y(enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    writer, reader = fleet.get(enqueuer), fleet.get(worker)
    writer.enqueue(ECHO, ARGS)
    [job] = jobs(db)
    assert reader.work_one()["worked"] is True
    assert jobs(db) == [], "the job must be deleted after it was worked"
    assert reader.work_one()["worked"] is False
    [run] = executions(db)
    info = fleet.info(worker)
    assert (run["impl"], run["job_id"]) == (info.name, job["job_id"])
    model = info.capabilities.get("number_model", "exact")
    assert rules.received_matches(model, run["received"], job["args"]), (
        f"{worker} received {run['received']} for stored args {job['args']}"
    )
