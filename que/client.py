"""Enqueue, lock and inspect Que jobs from Python.

A Client keeps a small pool of connections for enqueueing and for `lock_job`; workers open
connections of their own (`Client.connect`) because a worker's connection carries the job
lock for as long as the job runs. Every connection que owns is opened the same way (see
que.drivers.connecting).
"""

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from que import dialects as dialect
from que.core import validate as _validate
from que.core.errors import redacted, remember_secrets
from que.core.job import Job
from que.core.validate import NewJob
from que.dialects import schema
from que.dialects.que0 import callers as _callers
from que.dialects.que0 import inserts as _inserts
from que.dialects.que0 import protocol as _protocol
from que.dialects.que0 import sql
from que.dialects.que2 import inserts as _enqueue2
from que.dialects.que2 import sql as sql2
from que.dialects.que2 import validate as _validate2
from que.drivers.connecting import connection_options, database_url, idle_and_quiet, never_ran
from que.drivers.waiting import wait
from que.engine import loaders as _loaders
from que.engine import setup as _setup
from que.engine import wire as _wire
from que.engine.session import Session
from que.lock import LockedJob


def _configure(conn: psycopg.Connection[Any]) -> None:
    _loaders.register(conn)


class Client:
    """The entry point for enqueueing and locking jobs.

    `Client("postgresql://...")`, or `Client()` to read QUE_DATABASE_URL / DATABASE_URL.
    Close it (or use it as a context manager) to close its pool.
    """

    def __init__(
        self,
        conninfo: str | None = None,
        *,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        notify: bool = False,
    ) -> None:
        """`notify=True` sends a NOTIFY with every enqueue, so workers started with
        `listen=True` pick the job up at once instead of at their next poll."""
        self.conninfo = database_url(conninfo)
        remember_secrets(self.conninfo)
        self.notify = notify
        # Fail fast with the server's own reason (refused, bad password ...) rather
        # than after the pool's background retries time out.
        try:
            psycopg.connect(self.conninfo, connect_timeout=max(1, int(connect_timeout))).close()
        except psycopg.Error as failure:
            raise redacted(failure) from None
        self._pool = ConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=max_connections,
            kwargs=connection_options("que"),
            configure=_configure,
            open=True,
            name="que",
            timeout=connect_timeout,
        )
        try:
            self._pool.wait(timeout=connect_timeout)
        except PoolTimeout:
            self._pool.close()
            raise
        self._sessions: weakref.WeakKeyDictionary[psycopg.Connection[Any], Session] = weakref.WeakKeyDictionary()
        # The table's schema version, read once (see dialect()).
        self._version: int | None = None

    def __repr__(self) -> str:
        return f"<que.Client {self._pool.name}>"

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self, application_name: str = "que") -> psycopg.Connection[Any]:
        """A new connection opened as que opens its own (see the module docstring)."""
        try:
            conn = psycopg.connect(self.conninfo, **connection_options(application_name))
        except psycopg.Error as failure:
            raise redacted(failure) from None
        _configure(conn)
        return conn

    # -- pooled connections ---------------------------------------------------------------

    def _checkout(self) -> tuple[psycopg.Connection[Any], Session]:
        """A pooled connection that is not already dead; dead ones are closed (the pool
        replaces them in the background) and the next one is tried."""
        for _ in range(self._pool.max_size):
            conn = self._pool.getconn()
            if idle_and_quiet(conn):
                break
            conn.close()
            self._pool.putconn(conn)
        else:
            conn = self._pool.getconn()
        session = self._sessions.get(conn)
        if session is None:
            session = self._sessions[conn] = Session(conn.pgconn)
        return conn, session

    def _checkin(self, conn: psycopg.Connection[Any], session: Session) -> None:
        """Give a connection back; one that cannot go on (it may hold a job lock, or be
        mid-statement) is closed first, which ends its session and its locks."""
        if not session.usable() and not conn.closed:
            conn.close()
        self._pool.putconn(conn)

    @contextlib.contextmanager
    def _borrow(self) -> Iterator[tuple[psycopg.Connection[Any], Session]]:
        conn, session = self._checkout()
        try:
            yield conn, session
        finally:
            self._checkin(conn, session)

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection (autocommit) for the duration of the block."""
        with self._borrow() as (conn, _):
            yield conn

    # -- schema -------------------------------------------------------------------

    def migrate(self, version: int = schema.CURRENT_VERSION) -> None:
        """Move que_jobs to `version`: 3 is Que 0.x's schema, 7 Que 1.x/2.x's (with Ruby's own
        rewrite of the rows between them), 0 drops it."""
        self._version = None
        try:
            with self._borrow() as (conn, _):
                schema.migrate(conn, version)
        finally:
            self._version = None

    def db_version(self) -> int:
        with self._borrow() as (conn, _):
            return schema.db_version(conn)

    def dialect(self) -> str:
        """The protocol que_jobs speaks: que.dialects.QUE_0 ("0.14") or QUE_2 ("2"), from its
        schema version. Read once and kept: migrate() through this client reads it again;
        call refresh_dialect() after migrating the table elsewhere."""
        if self._version is None:
            version = self.db_version()
            dialect.of_version(version)  # refuses a version newer than que knows
            if version == 0:
                return dialect.QUE_0  # no table yet: not kept, it may be created next
            self._version = version
        return dialect.of_version(self._version)

    def refresh_dialect(self) -> str:
        self._version = None
        return self.dialect()

    # -- enqueue ------------------------------------------------------------------

    def enqueue(
        self,
        job_class: str,
        *args: Any,
        kwargs: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        queue: str | None = None,
        priority: int = 100,
        run_at: datetime | None = None,
        conn: _callers.Caller = None,
    ) -> Job:
        """Insert one job and return it as stored (with its job_id).

        `args` are the job's positional arguments. On a Que 1.x/2.x table (schema version 4
        and later), `kwargs` are its keyword arguments and `tags` (at most 5) go to its data;
        a Que 0.x table has no column for them and refuses them. `queue` defaults to the
        table's default: '' on Que 0.x, 'default' on Que 2.x.

        With `conn`, the insert runs on that connection inside the caller's transaction: it
        commits or rolls back with the caller's work. A rejected job inserts nothing.
        """
        if self.dialect() == dialect.QUE_2:
            checked = _validate2.job(job_class, args, kwargs, tags, queue, priority, run_at)
            if conn is not None:
                return _enqueue2.insert_one(_callers.connection_of(conn), checked)
            return self._insert_once(lambda own, _: _enqueue2.insert_one(own, checked))
        _validate.refuse_que2_fields(kwargs, tags)
        job = _validate.job(job_class, args, "" if queue is None else queue, priority, run_at)
        if conn is not None:
            caller = _callers.connection_of(conn)
            return _callers.run(caller, _callers.insert_one(caller, job, self.notify))[0]
        values = _inserts.values(job)

        def insert(own: psycopg.Connection[Any], session: Session) -> Job:
            _wire.check_representable(job.texts(), session.server_codec, session.server_encoding)
            return wait(_inserts.insert(session, values, self.notify), own.pgconn.socket)

        return self._insert_once(insert)

    def _insert_once(self, insert: Callable[[psycopg.Connection[Any], Session], Job]) -> Job:
        """One insert on a pooled connection. A connection the server ended under it (a
        restart) is replaced and the insert tried again, but only when it certainly never
        ran: a second insert after a commit that may have happened would duplicate the job."""
        attempts = self._pool.max_size + 1
        for attempt in range(1, attempts + 1):
            own, session = self._checkout()
            try:
                return insert(own, session)
            except psycopg.OperationalError as failure:
                if attempt == attempts or not never_ran(failure):
                    raise
            finally:
                self._checkin(own, session)
        raise AssertionError("unreachable")

    def enqueue_many(
        self,
        jobs: Iterable[NewJob | tuple[str, Sequence[Any]]],
        *,
        conn: _callers.Caller = None,
    ) -> list[Job]:
        """Insert many jobs at once, in the given order, all or none.

        Items are `que.NewJob`s or `(job_class, args)` tuples. Every job is checked first;
        one bad job rejects the whole batch and nothing is inserted. Batches of fewer than
        1000 jobs are one INSERT in one round trip; bigger ones are written with COPY.
        """
        if self.dialect() == dialect.QUE_2:
            batch = _validate2.many(jobs)
            if not batch:
                return []
            if conn is not None:
                return _enqueue2.insert_many(_callers.connection_of(conn), batch, self.notify)
            with self._borrow() as (own, _):
                return _enqueue2.insert_many(own, batch, self.notify)
        checked = _validate.many(jobs)
        if not checked:
            return []
        big = len(checked) >= _callers.COPY_FROM
        if conn is not None:
            caller = _callers.connection_of(conn)
            if big and not _callers.in_pipeline(caller):
                return _callers.copy_many(caller, checked, self.notify)
            return _callers.run(caller, _callers.insert_many(caller, checked, self.notify))
        with self._borrow() as (own, session):
            if session.server_codec != "utf-8":
                for job in checked:
                    _wire.check_representable(job.texts(), session.server_codec, session.server_encoding)
            if big:
                with own.transaction():
                    return _callers.copy_many(own, checked, self.notify)
            return wait(_inserts.insert_many(session, checked, self.notify), own.pgconn.socket)

    # -- locking ------------------------------------------------------------------

    def lock_job(self, queue: str = "", *, max_retries: int | None = None) -> LockedJob | None:
        """Lock the next due job of `queue`, or return None when there is none.

        The returned job holds one pooled connection until it is released (use it as a
        context manager). With `max_retries`, a failure recorded through it after that many
        retries sets the job aside (see `dead_jobs`) instead of retrying it.
        """
        _validate.queue(queue)
        _validate.max_retries(max_retries)
        if self.dialect() == dialect.QUE_2:
            raise ValueError(dialect.ONE_AT_A_TIME_IS_QUE_0)
        conn, session = self._checkout()
        try:
            wait(_setup.set_up(session), conn.pgconn.socket)
            locked = wait(_protocol.lock(session, queue), conn.pgconn.socket)
        except BaseException:
            conn.close()
            self._checkin(conn, session)
            raise
        if locked is None:
            self._checkin(conn, session)
            return None
        return LockedJob(locked, conn, session, self._checkin, max_retries)

    # -- introspection ------------------------------------------------------------

    def _rows(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._borrow() as (conn, _), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params, binary=True)
            return list(cur.fetchall())

    def job_stats(self) -> list[dict[str, Any]]:
        """Per (queue, job_class): count, count_working, count_errored,
        highest_error_count, oldest_run_at; busiest first, as Ruby Que reports them. On a
        Que 2 table, per job_class over the jobs neither finished nor expired, as Ruby Que
        2's job_stats."""
        if self.dialect() == dialect.QUE_2:
            return self._rows(sql2.JOB_STATS)
        return self._rows(sql.JOB_STATS)

    def job_states(self) -> list[dict[str, Any]]:
        """Que 2 tables: how many jobs each queue has in each state (ready, scheduled,
        errored, finished, expired)."""
        if self.dialect() != dialect.QUE_2:
            raise ValueError("job states are Que 2's (schema version 4 or later); que_jobs is a Que 0.x table")
        return self._rows(sql2.JOB_STATES)

    def worker_states(self) -> list[dict[str, Any]]:
        """Each locked job with the state of the backend holding its lock."""
        return self._rows(sql.WORKER_STATES)

    def dead_jobs(self, queue: str | None = None) -> list[Job]:
        """Jobs set aside by a retry limit (run_at 9999-12-31, or 'infinity' from que-interop
        0.2), oldest first. On a Que 2 table: the expired jobs."""
        if queue is not None:
            _validate.queue(queue)
        if self.dialect() == dialect.QUE_2:  # expired past the retry limit
            return [_enqueue2.job_of(row) for row in self._rows(sql2.EXPIRED_JOBS, {"queue": queue})]
        with self._borrow() as (conn, session), conn.cursor() as cur:
            cur.execute(sql.DEAD_JOBS, {"queue": queue}, binary=True)
            assert cur.pgresult is not None
            return _wire.jobs(cur.pgresult, session.codec)

    def retry_dead(self, job_id: int | None = None, *, queue: str | None = None) -> int:
        """Make jobs set aside due again now, keeping their error_count and last_error:
        one job by id, or every one (of `queue`). Returns how many."""
        if job_id is not None:
            _validate.job_id(job_id)
        if queue is not None:
            _validate.queue(queue)
        statement = sql2.RETRY_EXPIRED if self.dialect() == dialect.QUE_2 else sql.RETRY_DEAD
        with self._borrow() as (conn, _):
            return conn.execute(statement, {"job_id": job_id, "queue": queue}).rowcount

    def repair_dead(self) -> int:
        """Give jobs set aside by que-interop 0.2 (run_at 'infinity', which Ruby Que's
        job_stats and worker_states cannot parse) today's marker; how many were changed."""
        with self._borrow() as (conn, _):
            return conn.execute(sql.REPAIR_DEAD).rowcount

    def clear(self) -> None:
        """Delete every job (Ruby's `Que.clear!`)."""
        with self._borrow() as (conn, _):
            conn.execute(sql.CLEAR)

    def connection_limit(self) -> int:
        """How many connections the server gives ordinary users at most."""
        with self._borrow() as (conn, _):
            row = conn.execute(sql.CONNECTION_LIMIT).fetchone()
            return int(row[0]) if row else 0
