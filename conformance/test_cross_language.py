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
    # Compared with what X was given: the stored text its writer rule predicts for ARGS
    # (or ARGS itself for a writer rule the fixtures do not know), as Y's model reads it.
    encoding = fleet.info(enqueuer).capabilities.get("args_encoding", "")
    given = rules.stored_text(ARGS, encoding) or ARGS
    model = info.capabilities.get("number_model", "exact")
    assert rules.received_matches(model, job["args"], given), f"{enqueuer} was given {ARGS} but stored {job['args']}"
    assert rules.received_matches(model, run["received"], given), (
        f"{worker} received {run['received']} for arguments {ARGS} given to {enqueuer}"
    )
