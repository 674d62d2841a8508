"""The Que 0.x dialect: Ruby Que 0.14.3's and que-go's protocol, on tables of schema version 1..3.

A row is keyed by (queue, priority, run_at, job_id), every job statement matches the whole
key, and a job is locked by a session-level advisory lock on its job_id, taken by the
walk of lock_job. que's own sessions run the same statements (sql), prepared and pipelined
(protocol, inserts); a locker pool claims for many workers on one session (locking).
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Final

from psycopg import pq

from que.core.errors import last_error_text
from que.core.job import Job
from que.core.outcome import Outcome
from que.dialects.base import Copy, Dialect, Query
from que.dialects.que0 import finishes, inserts, listening, locking, protocol, rows, sql, statements, validate, views
from que.engine import wire
from que.engine.rounds import Round, Settled
from que.engine.session import PQGen, Session, Statement
from que.engine.setup import set_up

# COPY's binary columns: que_jobs' types, with args sent as text, which is json's binary form.
_COPY_TYPES: Final = ["text", "int2", "timestamptz", "int8", "text", "text"]


def _representable(jobs: Sequence[validate.Checked], codec: str | None, encoding: str) -> None:
    if codec != "utf-8":  # UTF-8 holds every str que accepts
        for job in jobs:
            wire.check_representable(job.texts(), codec, encoding)


def job_of(row: dict[str, Any]) -> Job:
    """A Job from a row of `SELECT *` read by que's admin cursor (que.engine.loaders)."""
    run_at: datetime = row["run_at"]
    return Job(
        queue=row["queue"],
        priority=row["priority"],
        run_at=run_at,
        job_id=row["job_id"],
        job_class=row["job_class"],
        args_json=row["args"],
        error_count=row["error_count"],
        last_error=row["last_error"],
        run_at_us=wire.INFINITY_US
        if run_at == datetime.max.replace(tzinfo=run_at.tzinfo)
        else wire.timestamp_us(run_at),
    )


class Que0(Dialect):
    name = "0.14"
    title = "Ruby Que 0.x and que-go, schema versions 1..3"
    versions = range(0, 4)
    default_queue = ""
    default_max_retries = None
    one_at_a_time: ClassVar[Any] = protocol
    keeps_rows = False
    default_listen = False
    priorities = False
    growth = 4
    default_buffer = 8

    def catalog(self) -> Sequence[Statement]:
        return [*statements.catalog(), *inserts.catalog()]

    # -- enqueue --------------------------------------------------------------------------

    def check(
        self,
        job_class: object,
        args: object,
        kwargs: object,
        tags: object,
        queue: object,
        priority: object,
        run_at: object,
    ) -> validate.Checked:
        validate.refuse_que2_fields(kwargs, tags)
        return validate.job(job_class, args, self.default_queue if queue is None else queue, priority, run_at)

    def check_many(self, jobs: Iterable[Any]) -> list[Any]:
        return validate.many(jobs)

    def insert(self, session: Session, job: validate.Checked, notify: bool) -> PQGen[Job]:
        _representable([job], session.server_codec, session.server_encoding)
        return (yield from inserts.insert(session, inserts.values(job), notify))

    def insert_many(self, session: Session, jobs: Sequence[validate.Checked], notify: bool) -> PQGen[list[Job]]:
        _representable(jobs, session.server_codec, session.server_encoding)
        return (yield from inserts.insert_many(session, jobs, notify))

    def caller_insert(
        self, codec: str, encoding: str, jobs: Sequence[validate.Checked], notify: bool, many: bool
    ) -> Query:
        _representable(jobs, codec, encoding)
        if not many:
            [job] = jobs
            text = sql.INSERT_JOB_NOTIFY if notify else sql.INSERT_JOB
            return Query(text, job.params(), read_result=lambda result, codec_: rows.jobs(result, codec_))
        params = {
            "queues": [j.queue for j in jobs],
            "priorities": [j.priority for j in jobs],
            "run_ats": [j.run_at for j in jobs],
            "job_classes": [j.job_class for j in jobs],
            "args": [j.args for j in jobs],
        }
        text = sql.INSERT_JOBS_NOTIFY if notify else sql.INSERT_JOBS
        return Query(text, params, read_result=lambda result, _: rows.inserted(result, jobs))

    def copy(self, jobs: Sequence[validate.Checked], notify: bool) -> Copy:
        """A big batch: job_ids drawn, rows written with COPY, queues notified. COPY is one
        statement, so a failure writes nothing; inside a transaction all three commit or
        roll back with it."""

        def made(result: pq.abc.PGresult) -> tuple[list[Job], list[tuple[Any, ...]]]:
            ids, now_us = rows.reserved(result)
            run_ats = [now_us if job.run_at is None else wire.timestamp_us(job.run_at) for job in jobs]
            stored = rows.new_jobs(jobs, ids, run_ats)
            values = [
                (s.queue, s.priority, job.run_at or s.run_at, s.job_id, s.job_class, job.args)
                for job, s in zip(jobs, stored, strict=True)
            ]
            return stored, values

        after = Query(sql.NOTIFY_QUEUES, {"queues": sorted({job.queue for job in jobs})}) if notify else None
        return Copy(Query(sql.RESERVE_JOB_IDS, {"count": len(jobs)}), sql.COPY_JOBS, _COPY_TYPES, made, after)

    # -- a locker -------------------------------------------------------------------------

    def start_locker(self, session: Session, queue: str, priorities: Sequence[int | None], listen: bool) -> PQGen[None]:
        yield from set_up(session)
        if listen:
            yield from listening.listen(session)

    def stop_locker(self, session: Session) -> PQGen[None]:
        return
        yield

    def round_trip(self, session: Session, queue: str, planned: Round, max_retries: int | None) -> PQGen[Settled]:
        return (yield from locking.round_trip(session, queue, planned, max_retries))

    def notified(self, session: Session, queue: str) -> tuple[bool, list[Any]]:
        return listening.notified(session, queue), []

    def outcome(self, job: Job, failure: BaseException | None, asked: str | None, max_retries: int | None) -> Outcome:
        if failure is None:
            return Outcome(Outcome.DESTROY)
        return finishes.failure(job, last_error_text(failure), max_retries)

    # -- admin ----------------------------------------------------------------------------

    def job_stats(self) -> Query:
        return Query(sql.JOB_STATS, read_rows=list)

    def job_states(self) -> Query:
        return Query(sql.JOB_STATES, read_rows=list)

    def overview(self) -> Query:
        return Query(views.OVERVIEW, read_rows=list)

    def worker_states(self) -> Query:
        return Query(sql.WORKER_STATES, read_rows=list)

    def jobs(self, job_class: str | None) -> Query:
        return Query(views.ALL_JOBS, {"job_class": job_class}, read_rows=lambda found: [job_of(row) for row in found])

    def lockers(self) -> Query:
        return Query(views.LOCKERS, read_rows=list)

    def job_page(self, filters: dict[str, Any]) -> Query:
        return Query(views.JOB_PAGE, filters, read_rows=lambda found: [job_of(row) for row in found])

    def job_action(self, action: str, job_id: int) -> Query:
        statements = {"retry": views.RETRY_NOW, "delete": views.DELETE_JOB}
        if action not in statements:
            raise self.refuse("expired jobs", "delete the job, or let it fail past max_retries")
        return Query(statements[action], {"job_id": job_id}, rowcount=True)

    def dead_jobs(self, queue: str | None) -> Query:
        return Query(sql.DEAD_JOBS, {"queue": queue}, read_rows=lambda found: [job_of(row) for row in found])

    def retry_dead(self, job_id: int | None, queue: str | None) -> Query:
        return Query(sql.RETRY_DEAD, {"job_id": job_id, "queue": queue}, rowcount=True)

    def repair_dead(self) -> Query:
        return Query(sql.REPAIR_DEAD, rowcount=True)

    def clear(self) -> Query:
        return Query(sql.CLEAR, rowcount=True)
