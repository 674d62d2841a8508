"""The Que 1.x/2.x dialects' enqueue on the engine: Ruby's insert_job for one job, and one
INSERT of a JSON array for many (all or none, in order), as que.dialects.que0.inserts is for
Que 0.x. The statements are the dialect's (que.dialects.que2.statements)."""

import json
from collections.abc import Sequence
from typing import Any

from que.core.job import Job
from que.dialects.que2 import rows
from que.dialects.que2.statements import Statements
from que.engine import wire
from que.engine.session import OK, Call, PQGen, Session, error, execute, pipeline


def insert_params(job: Any, kwargs: bool) -> tuple[bytes | None, ...]:
    values = [
        wire.text(job.queue),
        wire.int2(job.priority),
        None if job.run_at is None else wire.int8(wire.timestamp_us(job.run_at)),
        wire.text(job.job_class),
        wire.text(job.args),
    ]
    if kwargs:
        values.append(wire.text(job.kwargs))
    values.append(wire.text(job.data))
    return tuple(values)


def insert(session: Session, st: Statements, job: Any) -> PQGen[Job]:
    """Ruby's insert_job: one job; the table's trigger wakes a listening locker."""
    result = yield from execute(session, (st["insert_job"], insert_params(job, st.kwargs)))
    made = rows.job(result, 0, session.codec)
    assert made is not None, "INSERT ... RETURNING gave no row"
    return made


def batch_text(jobs: Sequence[Any], kwargs: bool) -> str:
    """INSERT_JOBS's parameter: the jobs as one JSON array (args, kwargs and data are JSON
    text already, embedded as they are)."""
    items = []
    for job in jobs:
        run_at = "null" if job.run_at is None else json.dumps(job.run_at.isoformat())
        head = (
            f'{{"queue":{json.dumps(job.queue, ensure_ascii=False)},"priority":{job.priority},'
            f'"run_at":{run_at},"job_class":{json.dumps(job.job_class, ensure_ascii=False)}'
        )
        items.append(
            f'{head},"args":{job.args}' + (f',"kwargs":{job.kwargs}' if kwargs else "") + f',"data":{job.data}}}'
        )
    return "[" + ",".join(items) + "]"


def insert_many(session: Session, st: Statements, jobs: Sequence[Any], notify: bool) -> PQGen[list[Job]]:
    """Every job in one statement, all or none, in the given order. Like Ruby's bulk enqueue,
    the transaction sets que.skip_notify unless `notify`, so no locker is woken per job."""
    call: Call = (st["insert_jobs"], (wire.text(batch_text(jobs, st.kwargs)),))
    if notify:
        result = yield from execute(session, call)
    else:
        # One segment is one transaction: SET LOCAL holds for the insert, and goes with it.
        _, result = yield from pipeline(session, [[(st["skip_notify"], ()), call]])
        if result.status not in OK:
            raise error(session, result, "insert_jobs")
    return rows.jobs(result, session.codec)
