# This file is generated from que/shells/client_async.py by tools/async_to_sync.py: do not edit it.
# Edit the asyncio source and run `make generate` (make lint checks that the two agree).
"""Client: enqueue, lock and inspect Que jobs.

Generated from que.shells.client_async (AsyncClient) by tools/async_to_sync.py. A client
keeps a small pool of connections for enqueueing, admin calls and `lock_job`; workers and
lockers open connections of their own (`connect`), because theirs carry job locks for as
long as the jobs run. Every connection que owns is opened the same way
(que.drivers.connecting).

A client asks its table's dialect (que.dialects) for everything that depends on it: the
dialect is read once from the table's schema version, and again after migrate() or
refresh_dialect().
"""

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from que.core.errors import redacted, remember_secrets
from que.core.job import Job
from que.core.validate import NewJob
from que.core.validate import max_retries as check_max_retries
from que.core.validate import queue as check_queue
from que.dialects import Dialect, of_version, schema
from que.drivers import threads as io
from que.drivers.connecting import connection_options, database_url, idle_and_quiet, never_ran
from que.engine import loaders, setup
from que.engine.session import PQGen, Session
from que.shells.admin import Admin
from que.shells.lock import LockedJob


def _configure(conn: psycopg.Connection[Any]) -> None:
    loaders.register(conn)


class Client(Admin):
    """The entry point for enqueueing, locking and inspecting jobs:
    `with Client("postgresql://...") as client: ...`, or Client() to read
    QUE_DATABASE_URL / DATABASE_URL. (asyncio: the client belongs to the event loop it was
    opened on.)"""

    def __init__(
        self,
        conninfo: str | None = None,
        *,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        notify: bool = False,
    ) -> None:
        """`notify=True` sends a NOTIFY with every enqueue on a Que 0.x table, so workers
        started with `listen=True` pick the job up at once instead of at their next poll (a
        Que 1.x/2.x table's trigger always notifies its lockers)."""
        self.conninfo = database_url(conninfo)
        remember_secrets(self.conninfo)
        self.notify = notify
        self.connect_timeout = connect_timeout
        self._pool = ConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=max_connections,
            kwargs=connection_options("que"),
            configure=_configure,
            open=False,
            name="que",
            timeout=connect_timeout,
        )
        self._sessions: weakref.WeakKeyDictionary[psycopg.Connection[Any], Session] = weakref.WeakKeyDictionary()
        # The table's dialect, read once (see dialect()).
        self._dialect: Dialect | None = None
        self._open_pool()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._pool.name}>"

    def _open_pool(self) -> None:
        """Connect, failing fast with the server's own reason (refused, bad password ...)
        rather than after the pool's background retries time out."""
        try:
            probe = psycopg.Connection.connect(self.conninfo, connect_timeout=max(1, int(self.connect_timeout)))
        except psycopg.Error as failure:
            raise redacted(failure) from None
        probe.close()
        self._pool.open()
        try:
            self._pool.wait(timeout=self.connect_timeout)
        except PoolTimeout:
            self._pool.close()
            raise

    def __enter__(self) -> Self:
        return self

    def close(self) -> None:
        self._pool.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self, application_name: str = "que") -> psycopg.Connection[Any]:
        """A new connection opened as que opens its own (que.drivers.connecting)."""
        try:
            conn = psycopg.Connection.connect(self.conninfo, **connection_options(application_name))
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
        dialect = self._dialect or of_version(0)
        session = self._sessions.get(conn)
        if session is None:
            session = self._sessions[conn] = dialect.session(conn.pgconn)
        else:
            # The table's dialect may have changed (migrate): the connection keeps what it
            # prepared, and prepares the new dialect's statements when first needed.
            session.catalog = dialect.catalog()
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

    # -- schema and dialect ---------------------------------------------------------------

    def migrate(self, version: int = schema.CURRENT_VERSION) -> None:
        """Move que_jobs to `version`: 3 is Que 0.x's schema, 5 Que 1.x's, 7 Que 2.x's (with
        Ruby's own rewrite of the rows between them), 0 drops it."""
        self._forget_dialect()
        try:
            with self._borrow() as (conn, _):
                schema.migrate(conn, version)
        finally:
            self._forget_dialect()

    def db_version(self) -> int:
        with self._borrow() as (conn, _):
            return schema.db_version(conn)

    def dialect(self) -> Dialect:
        """The protocol que_jobs speaks (que.dialects: QUE_0, QUE_1 or QUE_2), from its
        schema version. Read once and kept: migrate() through this client reads it again;
        call refresh_dialect() after migrating the table elsewhere. A database without the
        table yet speaks Que 0.x (not kept: it may be created next)."""
        if self._dialect is None:
            version = self.db_version()
            found = of_version(version)  # refuses a version newer than que knows
            if version == 0:
                return found
            self._dialect = found
        return self._dialect

    def refresh_dialect(self) -> Dialect:
        self._forget_dialect()
        return self.dialect()

    def _forget_dialect(self) -> None:
        self._dialect = None

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
        conn: Any = None,
    ) -> Job:
        """Insert one job and return it as stored (with its job_id).

        `args` are the job's positional arguments. On a Que 2.x table, `kwargs` are its
        keyword arguments, and on a Que 1.x/2.x table `tags` (at most 5) go to its data; a
        Que 0.x table has no column for them and refuses them. `queue` defaults to the
        table's default: '' on Que 0.x, 'default' on Que 1.x/2.x.

        With `conn` (a psycopg connection or transaction, a Django connection, a SQLAlchemy
        session or connection), the insert runs inside the caller's transaction: it commits
        or rolls back with the caller's work. A rejected job inserts nothing.
        """
        dialect = self.dialect()
        checked = dialect.check(job_class, args, kwargs, tags, queue, priority, run_at)
        if conn is not None:
            return (self._in_caller(conn, dialect, [checked], many=False))[0]
        return self._insert_once(lambda session: dialect.insert(session, checked, self.notify))  # type: ignore[no-any-return]

    def _insert_once(self, insert: Callable[[Session], PQGen[Any]]) -> Any:
        """One insert on a pooled connection. A connection the server ended under it (a
        restart) is replaced and the insert tried again, but only when it certainly never
        ran: a second insert after a commit that may have happened would duplicate the job."""
        attempts = self._pool.max_size + 1
        for attempt in range(1, attempts + 1):
            own, session = self._checkout()
            try:
                return io.run(insert(session), own.pgconn.socket)
            except psycopg.OperationalError as failure:
                if attempt == attempts or not never_ran(failure):
                    raise
            finally:
                self._checkin(own, session)
        raise AssertionError("unreachable")

    def _in_caller(self, conn: Any, dialect: Dialect, jobs: Sequence[Any], many: bool) -> list[Job]:
        """Insert on the caller's connection, through its driver, so their transaction is
        joined exactly as their own statements join it; que never commits, begins or ends a
        transaction there, and never prepares statements (psycopg manages them). Results are
        read in binary, whatever the session's DateStyle, TimeZone or client encoding."""
        caller = io.caller_connection(conn)
        codec = caller.info.encoding
        encoding = caller.info.parameter_status("client_encoding") or codec
        query = dialect.caller_insert(codec, encoding, jobs, self.notify, many)
        # A plain server-side-binding cursor, whatever cursor_factory the caller configured
        # (Django's is a client-side-binding one).
        with psycopg.Cursor(caller) as cur:
            if query.prelude:
                with caller.transaction():
                    for text in query.prelude:
                        cur.execute(text, prepare=False)
                    cur.execute(query.text, query.params, binary=True, prepare=False)
            else:
                cur.execute(query.text, query.params, binary=True, prepare=False)
            # In the caller's pipeline the result waits until asked for; scroll(0) asks for it
            # (and moves nothing), so the jobs written are returned, never an error after a write.
            cur.scroll(0)
            if cur.pgresult is None or query.read_result is None:
                raise psycopg.InterfaceError("the INSERT ... RETURNING of que's enqueue gave no result")
            return query.read_result(cur.pgresult, codec)  # type: ignore[no-any-return]

    def enqueue_many(
        self,
        jobs: Iterable[NewJob | tuple[str, Sequence[Any]]],
        *,
        conn: Any = None,
    ) -> list[Job]:
        """Insert many jobs at once, in the given order, all or none.

        Items are `que.NewJob`s or `(job_class, args)` tuples. Every job is checked first;
        one bad job rejects the whole batch and nothing is inserted. A batch is one INSERT in
        one round trip; on a Que 0.x table one of 1000 jobs or more is written with COPY."""
        dialect = self.dialect()
        checked = dialect.check_many(jobs)
        if not checked:
            return []
        copy = dialect.copy(checked, self.notify) if len(checked) >= dialect.copy_from else None
        if conn is not None:
            caller = io.caller_connection(conn)
            if copy is not None and caller.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF:
                # COPY cannot run in the caller's pipeline: the batch is one INSERT there.
                return self._copy(caller, copy)
            return self._in_caller(caller, dialect, checked, many=True)
        if copy is not None:
            with self._borrow() as (own, _), own.transaction():
                return self._copy(own, copy)
        return self._insert_once(lambda session: dialect.insert_many(session, checked, self.notify))  # type: ignore[no-any-return]

    def _copy(self, conn: psycopg.Connection[Any], copy: Any) -> list[Job]:
        """A big batch with COPY: ids drawn, rows written, queues notified, on `conn`."""
        with psycopg.Cursor(conn) as cur:
            cur.execute(copy.reserve.text, copy.reserve.params, binary=True, prepare=False)
            assert cur.pgresult is not None
            made, values = copy.rows(cur.pgresult)
            with cur.copy(copy.copy) as writing:
                writing.set_types(list(copy.types))
                for row in values:
                    writing.write_row(row)
            if copy.after is not None:
                cur.execute(copy.after.text, copy.after.params, prepare=False)
        return made  # type: ignore[no-any-return]

    # -- locking ------------------------------------------------------------------

    def lock_job(self, queue: str = "", *, max_retries: int | None = None) -> LockedJob | None:
        """Lock the next due job of `queue`, or return None when there is none (Que 0.x).

        The returned job holds one pooled connection until it is released (use it as a
        context manager). With `max_retries`, a failure recorded through it after that many
        retries sets the job aside (see `dead_jobs`) instead of retrying it."""
        check_queue(queue)
        check_max_retries(max_retries)
        dialect = self.dialect()
        solo = dialect.one_at_a_time
        if solo is None:
            raise dialect.refuse(
                "one-at-a-time locking (lock_job, que.Worker)",
                "Ruby Que 1.x/2.x work jobs through a registered locker only; use WorkerPool or "
                "AsyncWorkerPool, which speak its locker protocol",
            )
        conn, session = self._checkout()
        try:
            io.run(setup.set_up(session), conn.pgconn.socket)
            locked = io.run(solo.lock(session, queue), conn.pgconn.socket)
        except BaseException:
            conn.close()
            self._checkin(conn, session)
            raise
        if locked is None:
            self._checkin(conn, session)
            return None
        return LockedJob(solo, locked, conn, session, self._checkin, max_retries)

    def connection_limit(self) -> int:
        """How many connections the server gives ordinary users at most."""
        with self._borrow() as (conn, _):
            row = (conn.execute(setup.CONNECTION_LIMIT)).fetchone()
            return int(row[0]) if row else 0
