"""Area cross-language: a job enqueued by X is worked by Y, which receives X's arguments;
deleted once."""

from typing import Any

import psycopg
import pytest

from conformance import rules
from conformance.checks import check, check_equal
from conformance.fleet import Fleet
from conformance.support import ECHO, executions, jobs

ARGS = '[1,"two",{"three":3},[true,null],-4.5]'


@pytest.mark.covers("insert_job.args", "args.json_dump")
def test_enqueued_by_x_worked_by_y(enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    writer, reader = fleet.get(enqueuer), fleet.get(worker)
    writer.enqueue(ECHO, ARGS)
    [job] = jobs(db)
    case = {"impl": f"{enqueuer} -> {worker}", "job": job["job_id"]}
    check_equal(reader.work_one()["worked"], True, "cross-worked", detail="work_one found no job", **case)
    check_equal(jobs(db), [], "cross-worked", detail="the job must be deleted after it was worked", **case)
    check_equal(reader.work_one()["worked"], False, "cross-worked", detail="a second work_one found a job", **case)
    runs = executions(db)
    info = fleet.info(worker)
    check_equal(
        [(r["impl"], r["job_id"]) for r in runs],
        [(info.name, job["job_id"])],
        "cross-worked",
        detail="executions",
        **case,
    )
    # Compared with what X was given: the stored text its writer rule predicts for ARGS,
    # as Y's model reads it.
    given = rules.stored_text(ARGS, fleet.info(enqueuer).args_encoding)
    model = info.number_model
    check(
        rules.received_matches(model, job["args"], given),
        "cross-worked",
        detail=f"{enqueuer} was given {ARGS}",
        expected=given,
        seen=job["args"],
        **case,
    )
    check(
        rules.received_matches(model, runs[0]["received"], given),
        "cross-worked",
        detail=f"{worker}'s handler, reading numbers as {model}",
        expected=given,
        seen=runs[0]["received"],
        **case,
    )
