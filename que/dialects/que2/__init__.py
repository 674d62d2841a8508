"""The Que 1.x/2.x dialects: Ruby Que 2.x's protocol on tables of schema version 6..8, and
Ruby Que 1.x's on tables of version 4 and 5.

A row is keyed by id, with args (and from version 6 kwargs) and data in jsonb, and is kept
finished or expired rather than deleted when a job asks so. Jobs are worked through a
locker registered in que_lockers (protocol): one session holds the advisory locks of all
its workers' jobs, polls in (priority, run_at, id) order within its workers' priority
thresholds, and is told of new jobs by the table's trigger. Que 1.x and 2.x differ only in
the job schema version their rows carry and poll for (1 and 2; a version 4 table has no
such column) and in Que 2's kwargs column: one class, three tables.
"""

from collections.abc import Iterable, Sequence
from functools import cached_property
from types import SimpleNamespace
from typing import Any

from que.core.job import Job
from que.core.outcome import Outcome
from que.dialects.base import Dialect, Query
from que.dialects.que2 import finishes, inserts, protocol, rows, sql, statements, validate
from que.engine import wire
from que.engine.rounds import Round, Settled
from que.engine.session import PQGen, Session, Statement


def _representable(jobs: Sequence[validate.Checked2], codec: str | None, encoding: str) -> None:
    if codec != "utf-8":
        for job in jobs:
            texts = {"job_class": job.job_class, "queue": job.queue, "args": job.args, "kwargs": job.kwargs}
            wire.check_representable({**texts, "tags": job.data}, codec, encoding)


def job_of(row: dict[str, Any]) -> Job:
    """A Job from a row of sql.job_columns() read by que's admin cursor (que.engine.loaders)."""
    return Job(
        queue=row["queue"],
        priority=row["priority"],
        run_at=row["run_at"],
        job_id=row["id"],
        job_class=row["job_class"],
        args_json=row["args"],
        error_count=row["error_count"],
        last_error=row["last_error_message"],
        run_at_us=wire.timestamp_us(row["run_at"]),
        kwargs_json=row["kwargs"],
        data_json=row["data"],
        last_error_backtrace=row["last_error_backtrace"],
        finished_at=row["finished_at"],
        expired_at=row["expired_at"],
        job_schema_version=row["job_schema_version"],
    )


class Que2(Dialect):
    name = "2"
    title = "Ruby Que 2.x, schema versions 6..8"
    versions = range(6, 9)
    default_queue = validate.DEFAULT_QUEUE
    default_max_retries = protocol.MAX_RETRIES
    one_at_a_time = None
    keeps_rows = True
    default_listen = True
    priorities = True
    growth = 1
    default_buffer = protocol.BUFFER
    # The job schema version this dialect's rows carry and its lockers poll for, and whether
    # its table has the kwargs column.
    job_schema_version: int | None = 2
    kwargs = True

    @cached_property
    def statements(self) -> statements.Statements:
        """The statements on the engine, made from que.dialects.que2.sql when first needed."""
        return statements.Statements("que2", self.job_schema_version, self.kwargs, self._texts)

    def _texts(self) -> Any:
        return sql

    def catalog(self) -> Sequence[Statement]:
        return self.statements.catalog()

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
    ) -> validate.Checked2:
        return validate.job(job_class, args, kwargs, tags, queue, priority, run_at)

    def check_many(self, jobs: Iterable[Any]) -> list[Any]:
        return validate.many(jobs)

    def insert(self, session: Session, job: validate.Checked2, notify: bool) -> PQGen[Job]:
        _representable([job], session.server_codec, session.server_encoding)
        return (yield from inserts.insert(session, self.statements, job))

    def insert_many(self, session: Session, jobs: Sequence[validate.Checked2], notify: bool) -> PQGen[list[Job]]:
        _representable(jobs, session.server_codec, session.server_encoding)
        return (yield from inserts.insert_many(session, self.statements, jobs, notify))

    def caller_insert(
        self, codec: str, encoding: str, jobs: Sequence[validate.Checked2], notify: bool, many: bool
    ) -> Query:
        _representable(jobs, codec, encoding)
        texts = self._texts()
        read = rows.jobs
        if many:
            batch = {"jobs": inserts.batch_text(jobs, self.kwargs)}
            return Query(texts.INSERT_JOBS, batch, read_result=read, prelude=() if notify else (texts.SKIP_NOTIFY,))
        [job] = jobs
        params: dict[str, Any] = {
            "queue": job.queue,
            "priority": job.priority,
            "run_at": job.run_at,
            "job_class": job.job_class,
            "args": job.args,
            "kwargs": job.kwargs,
            "data": job.data,
        }
        return Query(texts.INSERT_JOB, params, read_result=read)

    # -- a locker -------------------------------------------------------------------------

    def start_locker(self, session: Session, queue: str, priorities: Sequence[int | None], listen: bool) -> PQGen[None]:
        return (yield from protocol.start_locker(session, self.statements, priorities, listen, queue))

    def stop_locker(self, session: Session) -> PQGen[None]:
        return (yield from protocol.stop_locker(session, self.statements))

    def round_trip(self, session: Session, queue: str, planned: Round, max_retries: int | None) -> PQGen[Settled]:
        limit = protocol.MAX_RETRIES if max_retries is None else max_retries
        return (yield from protocol.round_trip(session, self.statements, queue, planned, limit))

    def notified(self, session: Session, queue: str) -> tuple[bool, list[Any]]:
        return False, protocol.notified(session)

    def outcome(self, job: Job, failure: BaseException | None, asked: str | None, max_retries: int | None) -> Outcome:
        limit = protocol.MAX_RETRIES if max_retries is None else max_retries
        return finishes.outcome(job, failure, limit, asked)

    # -- admin ----------------------------------------------------------------------------

    def _columns(self) -> str:
        return sql.job_columns(self.kwargs, self.job_schema_version is not None)

    def job_stats(self) -> Query:
        return Query(sql.JOB_STATS, read_rows=list)

    def job_states(self) -> Query:
        return Query(sql.JOB_STATES, read_rows=list)

    def overview(self) -> Query:
        return Query(sql.OVERVIEW, read_rows=list)

    def worker_states(self) -> Query:
        return Query(sql.WORKER_STATES, read_rows=list)

    def jobs(self, job_class: str | None) -> Query:
        text = sql.ALL_JOBS.replace(sql.JOB_COLUMNS, self._columns())
        return Query(text, {"job_class": job_class}, read_rows=lambda found: [job_of(row) for row in found])

    def lockers(self) -> Query:
        return Query(sql.LOCKERS, read_rows=list)

    def job_page(self, filters: dict[str, Any]) -> Query:
        text = sql.JOB_PAGE.replace(sql.JOB_COLUMNS, self._columns())
        return Query(text, filters, read_rows=lambda found: [job_of(row) for row in found])

    def job_action(self, action: str, job_id: int) -> Query:
        statements = {"retry": sql.RETRY_NOW, "delete": sql.DELETE_JOB, "expire": sql.EXPIRE_NOW}
        return Query(statements[action], {"job_id": job_id}, rowcount=True)

    def dead_jobs(self, queue: str | None) -> Query:
        text = sql.EXPIRED_JOBS.replace(sql.JOB_COLUMNS, self._columns())
        return Query(text, {"queue": queue}, read_rows=lambda found: [job_of(row) for row in found])

    def retry_dead(self, job_id: int | None, queue: str | None) -> Query:
        return Query(sql.RETRY_EXPIRED, {"job_id": job_id, "queue": queue}, rowcount=True)

    def repair_dead(self) -> Query:
        raise self.refuse(
            "jobs set aside with run_at 'infinity'",
            "repair_dead() gives Que 0.x jobs set aside by que-interop 0.2 today's marker; on this table a job "
            "past its retry limit is expired (see dead_jobs() and retry_dead())",
        )


class Que1(Que2):
    """Ruby Que 1.x: the Que 2 protocol with job schema version 1 (1.3 and later, table
    version 5) or none (1.0 to 1.2, table version 4), and no kwargs column."""

    name = "1"
    kwargs = False
    default_max_retries = protocol.MAX_RETRIES

    def check(
        self,
        job_class: object,
        args: object,
        kwargs: object,
        tags: object,
        queue: object,
        priority: object,
        run_at: object,
    ) -> validate.Checked2:
        """As Ruby Que 1.x's enqueue(*args, **kwargs): keyword arguments become a last
        positional hash (its table has no kwargs column), which the handler receives."""
        if kwargs:
            if not isinstance(args, tuple | list):
                raise TypeError(f"args must be a list or tuple of positional arguments, got {args!r}")
            args = (*args, kwargs)
        return validate.job(job_class, args, None, tags, queue, priority, run_at)

    def check_many(self, jobs: Iterable[Any]) -> list[Any]:
        return [self._keywords_last(job) for job in validate.many(jobs)]

    def _keywords_last(self, job: validate.Checked2) -> validate.Checked2:
        if job.kwargs == "{}":
            return job
        return job._replace(args=f"{job.args[:-1]}{',' if job.args != '[]' else ''}{job.kwargs}]", kwargs="{}")

    def __init__(self, table_version: int) -> None:
        self.table_version = table_version
        self.versions = range(table_version, table_version + 1)
        self.job_schema_version = 1 if table_version >= 5 else None
        self.title = f"Ruby Que 1.x, schema version {table_version}"

    @cached_property
    def statements(self) -> statements.Statements:
        return statements.Statements(f"que1v{self.table_version}", self.job_schema_version, False, self._texts)

    def _texts(self) -> Any:
        """Que 2's statements, but where Ruby Que 1.x's differ: no kwargs, its version."""
        version = self.job_schema_version
        columns = sql.job_columns(False, version is not None)
        texts = {name: getattr(sql, name) for name in dir(sql) if name.isupper()}
        texts.update(
            INSERT_JOB=sql.insert_job(version, False),
            INSERT_JOBS=sql.insert_jobs(version, False),
            REGISTER_LOCKER=sql.register_locker(version is not None),
            POLL_JOBS=sql.poll_jobs(version).format(columns=columns),
            LOCK_NOTIFIED=sql.LOCK_NOTIFIED.replace(sql.JOB_COLUMNS, columns),
        )
        return SimpleNamespace(**texts)
