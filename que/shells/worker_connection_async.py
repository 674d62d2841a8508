"""AsyncWorkerConnection: the one connection of an AsyncWorker (que.shells.worker_async).

This asyncio form is the source: que.shells.worker_connection (WorkerConnection) is
generated from it.

The worker opens its connection on first use, asking the table's dialect then (a table
whose dialect has no one-at-a-time worker is refused), sets its session up (and LISTENs when
asked), and drops it when the server ended it: closing the connection ends every lock its
session held. While a plain handler cut short still runs (asyncio), that handler's thread
takes the connection over instead, and finishes the job on it (que.shells.orphan).
"""
# sync-doc: WorkerConnection: the one connection of a Worker (que.shells.worker).
# sync-doc:
# sync-doc: Generated from que.shells.worker_connection_async (AsyncWorkerConnection).
# sync-doc:
# sync-doc: The worker opens its connection on first use, asking the table's dialect then (a table
# sync-doc: whose dialect has no one-at-a-time worker is refused), sets its session up (and LISTENs when
# sync-doc: asked), and drops it when the server ended it: closing the connection ends every lock its
# sync-doc: session held.

import concurrent.futures
from typing import Any

import psycopg

from que.dialects import Dialect
from que.drivers import aio as io
from que.engine.rounds import Held
from que.engine.session import PQGen, Session
from que.engine.setup import set_up
from que.shells import sessions_async
from que.shells.client_async import AsyncClient

if True:  # ASYNC
    import functools

    from que.shells.orphan import finish_orphan


class AsyncWorkerConnection:
    """The connection part of a worker; AsyncWorker sets these attributes up."""

    client: AsyncClient
    queue: str
    listen: bool
    max_retries: int | None
    _conn: psycopg.AsyncConnection[Any] | None
    _session: Session | None
    _channel: io.Channel | None
    _dialect: Dialect | None
    _orphan: tuple[concurrent.futures.Future[BaseException | None], Held] | None

    @property
    def backend_pid(self) -> int | None:
        """The server process of this worker's connection, if it has one."""
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.pgconn.backend_pid)

    # -- the connection -------------------------------------------------------------

    async def _protocol(self) -> Any:
        """The dialect's one-at-a-time protocol; a table whose dialect has none is refused."""
        dialect = await self.client.dialect()
        if dialect.one_at_a_time is None:
            raise dialect.refuse(
                "one-at-a-time worker (que.Worker, AsyncWorker, WorkerPool(locker=False))",
                "Ruby Que 1.x/2.x work jobs through a registered locker only; use WorkerPool or "
                "AsyncWorkerPool, which speak its locker protocol",
            )
        self._dialect = dialect
        return dialect.one_at_a_time

    def _current_session(self) -> Session | None:
        """This worker's session while its connection is open (checked without a wait: the
        loop runs this once per job)."""
        conn = self._conn
        return None if conn is None or conn.closed else self._session

    async def _open(self) -> Session:
        session = self._current_session()
        if session is not None:
            return session
        await self._drop_connection()  # one the server ended, if any
        await self._protocol()
        assert self._dialect is not None
        conn = await self.client.connect(application_name=f"que worker {self.queue!r}")
        channel = io.Channel(conn.pgconn.socket)
        channel.attach(conn.pgconn.consume_input)
        try:
            session = self._dialect.session(conn.pgconn)
            await channel.run(set_up(session))
            if self.listen:
                await channel.run(self._dialect.one_at_a_time.listen(session))
        except BaseException:
            await sessions_async.close(conn, channel)
            raise
        self._conn, self._session, self._channel = conn, session, channel
        return session

    async def _drop_connection(self) -> None:
        """Close the connection: this also ends every lock its session held. While a plain
        handler cut short still runs (asyncio), its thread takes the connection over instead."""
        conn, self._conn = self._conn, None
        if True:  # ASYNC
            session = self._session
        self._session = None
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()
        if True:  # ASYNC
            orphan, self._orphan = self._orphan, None
            if orphan is not None and conn is not None and not conn.closed and session is not None and session.usable():
                future, held = orphan
                finish = functools.partial(finish_orphan, self._dialect, self.max_retries, conn, session, held)
                future.add_done_callback(finish)
                return
        await sessions_async.close(conn, None)

    async def _run(self, gen: PQGen[Any]) -> Any:
        """The statements of `gen` on this worker's connection."""
        assert self._channel is not None, "no connection"
        return await self._channel.run(gen)
