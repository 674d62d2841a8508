"""AsyncClient: enqueue, lock and inspect jobs from asyncio code.

The same arguments, checks, errors and stored bytes as que.Client: the validation, the
statements and the protocol are shared (que.core.validate, que.dialects.que0.protocol), and only the waiting
differs (que.drivers.waiting.wait_async).
"""

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from que import dialects as dialect
from que.aio._lock import AsyncLockedJob
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
from que.dialects.que2 import validate as _validate2
from que.drivers.connecting import connection_options, database_url, idle_and_quiet, never_ran
from que.drivers.waiting import wait_async
from que.engine import loaders as _loaders
from que.engine import setup as _setup
from que.engine import wire as _wire
from que.engine.session import Session


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    _loaders.register(conn)


class AsyncClient:
    """The asyncio entry point: `async with AsyncClient(url) as client: ...`.

    A pool of connections for enqueueing and lock_job; AsyncWorkers open their own.
    """

    def __init__(
        self,
        conninfo: str | None = None,
        *,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        notify: bool = False,
    ) -> None:
        self.conninfo = database_url(conninfo)
        remember_secrets(self.conninfo)
        self.notify = notify
        self.connect_timeout = connect_timeout
        self._pool = AsyncConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=max_connections,
            kwargs=connection_options("que"),
            configure=_configure,
            open=False,
            name="que-async",
            timeout=connect_timeout,
        )
        self._sessions: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], Session] = weakref.WeakKeyDictionary()
        self._loop: asyncio.AbstractEventLoop | None = None
        # The table's schema version, read once (see dialect()).
        self._version: int | None = None

    def __repr__(self) -> str:
        return f"<que.aio.AsyncClient {self._pool.name}>"

    async def open(self) -> "AsyncClient":
        """Connect; fails fast with the server's own reason (refused, bad password ...).
        The client then belongs to the running event loop (its pool works on no other)."""
        self._loop = asyncio.get_running_loop()
        try:
            probe = await psycopg.AsyncConnection.connect(
                self.conninfo, connect_timeout=max(1, int(self.connect_timeout))
            )
        except psycopg.Error as failure:
            raise redacted(failure) from None
        await probe.close()
        await self._pool.open()
        try:
            await self._pool.wait(timeout=self.connect_timeout)
        except PoolTimeout:
            await self._pool.close()
            raise
        return self

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> "AsyncClient":
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def connect(self, application_name: str = "que") -> psycopg.AsyncConnection[Any]:
        """A new connection opened as que opens its own (see que.client)."""
        try:
            conn = await psycopg.AsyncConnection.connect(self.conninfo, **connection_options(application_name))
        except psycopg.Error as failure:
            raise redacted(failure) from None
        await _configure(conn)
        return conn

    # -- pooled connections ---------------------------------------------------------------

    def _check_loop(self) -> None:
        running = asyncio.get_running_loop()
        if self._loop is not None and running is not self._loop:
            raise RuntimeError(
                f"this AsyncClient was opened on another event loop ({self._loop!r}, not the running "
                f"{running!r}): its connection pool works only on the loop it was opened on. Open one "
                "client per event loop (async with AsyncClient(...) inside the code that runs on it)"
            )

    async def _checkout(self) -> tuple[psycopg.AsyncConnection[Any], Session]:
        """A pooled connection that is not already dead (see que.drivers.connecting.idle_and_quiet)."""
        self._check_loop()
        for _ in range(self._pool.max_size):
            conn = await self._pool.getconn()
            if idle_and_quiet(conn):
                break
            await conn.close()
            await self._pool.putconn(conn)
        else:
            conn = await self._pool.getconn()
        session = self._sessions.get(conn)
        if session is None:
            session = self._sessions[conn] = Session(conn.pgconn)
        return conn, session

    async def _checkin(self, conn: psycopg.AsyncConnection[Any], session: Session) -> None:
        if not session.usable() and not conn.closed:
            await conn.close()
        await self._pool.putconn(conn)

    @contextlib.asynccontextmanager
    async def _borrow(self) -> AsyncIterator[tuple[psycopg.AsyncConnection[Any], Session]]:
        conn, session = await self._checkout()
        try:
            yield conn, session
        finally:
            await self._checkin(conn, session)

    # -- schema -------------------------------------------------------------------

    async def migrate(self, version: int = schema.CURRENT_VERSION) -> None:
        """See que.Client.migrate."""
        self._version = None
        try:
            async with self._borrow() as (conn, _):
                await schema.migrate_async(conn, version)
        finally:
            self._version = None

    async def db_version(self) -> int:
        async with self._borrow() as (conn, _):
            return await schema.db_version_async(conn)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection (autocommit) for the duration of the block."""
        async with self._borrow() as (conn, _):
            yield conn

    async def dialect(self) -> str:
        """The protocol que_jobs speaks (see que.Client.dialect)."""
        if self._version is None:
            version = await self.db_version()
            dialect.of_version(version)
            if version == 0:
                return dialect.QUE_0
            self._version = version
        return dialect.of_version(self._version)

    async def refresh_dialect(self) -> str:
        self._version = None
        return await self.dialect()

    # -- enqueue ------------------------------------------------------------------

    async def enqueue(
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
        """Insert one job and return it as stored (see que.Client.enqueue). `conn` may be a
        psycopg AsyncConnection or AsyncTransaction, or a SQLAlchemy AsyncSession or
        AsyncConnection: the job then commits or rolls back with the caller's work."""
        if await self.dialect() == dialect.QUE_2:
            checked = _validate2.job(job_class, args, kwargs, tags, queue, priority, run_at)
            if conn is not None:
                return await _enqueue2.insert_one_async(await _callers.async_connection_of(conn), checked)
            return await self._insert_once(lambda own, _: _enqueue2.insert_one_async(own, checked))
        _validate.refuse_que2_fields(kwargs, tags)
        job = _validate.job(job_class, args, "" if queue is None else queue, priority, run_at)
        if conn is not None:
            caller = await _callers.async_connection_of(conn)
            return (await _callers.run_async(caller, _callers.insert_one(caller, job, self.notify)))[0]
        values = _inserts.values(job)

        async def insert(own: psycopg.AsyncConnection[Any], session: Session) -> Job:
            _wire.check_representable(job.texts(), session.server_codec, session.server_encoding)
            return await wait_async(_inserts.insert(session, values, self.notify), own.pgconn.socket)

        return await self._insert_once(insert)

    async def _insert_once(self, insert: Callable[[psycopg.AsyncConnection[Any], Session], Awaitable[Job]]) -> Job:
        """One insert on a pooled connection, tried again on another only when the server
        ended the first under it and the insert certainly never ran (see que.Client)."""
        attempts = self._pool.max_size + 1
        for attempt in range(1, attempts + 1):
            own, session = await self._checkout()
            try:
                return await insert(own, session)
            except psycopg.OperationalError as failure:
                if attempt == attempts or not never_ran(failure):
                    raise
            finally:
                await self._checkin(own, session)
        raise AssertionError("unreachable")

    async def enqueue_many(
        self,
        jobs: Iterable[NewJob | tuple[str, Sequence[Any]]],
        *,
        conn: _callers.Caller = None,
    ) -> list[Job]:
        """Insert many jobs in one statement (see que.Client.enqueue_many)."""
        if await self.dialect() == dialect.QUE_2:
            batch = _validate2.many(jobs)
            if not batch:
                return []
            if conn is not None:
                caller = await _callers.async_connection_of(conn)
                return await _enqueue2.insert_many_async(caller, batch, self.notify)
            async with self._borrow() as (own, _):
                return await _enqueue2.insert_many_async(own, batch, self.notify)
        checked = _validate.many(jobs)
        if not checked:
            return []
        big = len(checked) >= _callers.COPY_FROM
        if conn is not None:
            caller = await _callers.async_connection_of(conn)
            if big and not _callers.in_pipeline(caller):
                return await _callers.copy_many_async(caller, checked, self.notify)
            return await _callers.run_async(caller, _callers.insert_many(caller, checked, self.notify))
        async with self._borrow() as (own, session):
            if session.server_codec != "utf-8":
                for job in checked:
                    _wire.check_representable(job.texts(), session.server_codec, session.server_encoding)
            if big:
                async with own.transaction():
                    return await _callers.copy_many_async(own, checked, self.notify)
            return await wait_async(_inserts.insert_many(session, checked, self.notify), own.pgconn.socket)

    # -- locking ------------------------------------------------------------------

    async def lock_job(self, queue: str = "", *, max_retries: int | None = None) -> AsyncLockedJob | None:
        """Lock the next due job of `queue` (see que.Client.lock_job); use the result with
        `async with`."""
        _validate.queue(queue)
        _validate.max_retries(max_retries)
        if await self.dialect() == dialect.QUE_2:
            raise ValueError(dialect.ONE_AT_A_TIME_IS_QUE_0)
        conn, session = await self._checkout()
        try:
            await wait_async(_setup.set_up(session), conn.pgconn.socket)
            locked = await wait_async(_protocol.lock(session, queue), conn.pgconn.socket)
        except BaseException:
            await conn.close()
            await self._checkin(conn, session)
            raise
        if locked is None:
            await self._checkin(conn, session)
            return None
        return AsyncLockedJob(locked, conn, session, self._checkin, max_retries)

    # -- introspection ------------------------------------------------------------

    async def _rows(self, query: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        async with self._borrow() as (conn, _), conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params, binary=True)
            return list(await cur.fetchall())

    async def job_stats(self) -> list[dict[str, Any]]:
        return await self._rows(sql.JOB_STATS)

    async def worker_states(self) -> list[dict[str, Any]]:
        return await self._rows(sql.WORKER_STATES)

    async def dead_jobs(self, queue: str | None = None) -> list[Job]:
        if queue is not None:
            _validate.queue(queue)
        async with self._borrow() as (conn, session), conn.cursor() as cur:
            await cur.execute(sql.DEAD_JOBS, {"queue": queue}, binary=True)
            assert cur.pgresult is not None, "SELECT gave no result"
            return _wire.jobs(cur.pgresult, session.codec)

    async def retry_dead(self, job_id: int | None = None, *, queue: str | None = None) -> int:
        if job_id is not None:
            _validate.job_id(job_id)
        if queue is not None:
            _validate.queue(queue)
        async with self._borrow() as (conn, _):
            return (await conn.execute(sql.RETRY_DEAD, {"job_id": job_id, "queue": queue})).rowcount

    async def repair_dead(self) -> int:
        """See que.Client.repair_dead."""
        async with self._borrow() as (conn, _):
            return (await conn.execute(sql.REPAIR_DEAD)).rowcount

    async def clear(self) -> None:
        async with self._borrow() as (conn, _):
            await conn.execute(sql.CLEAR)

    async def connection_limit(self) -> int:
        async with self._borrow() as (conn, _):
            row = await (await conn.execute(sql.CONNECTION_LIMIT)).fetchone()
            return int(row[0]) if row else 0
