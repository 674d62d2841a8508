# This file is generated from que/shells/worker_connection_async.py by tools/async_to_sync.py: do not edit it.
# Edit the asyncio source and run `make generate` (make lint checks that the two agree).
"""WorkerConnection: the one connection of a Worker (que.shells.worker).

Generated from que.shells.worker_connection_async (AsyncWorkerConnection).

The worker opens its connection on first use, asking the table's dialect then (a table
whose dialect has no one-at-a-time worker is refused), sets its session up (and LISTENs when
asked), and drops it when the server ended it: closing the connection ends every lock its
session held.
"""

import concurrent.futures
from typing import Any

import psycopg

from que.dialects import Dialect
from que.drivers import threads as io
from que.engine.rounds import Held
from que.engine.session import PQGen, Session
from que.engine.setup import set_up
from que.shells import sessions
from que.shells.client import Client


class WorkerConnection:
    """The connection part of a worker; Worker sets these attributes up."""

    client: Client
    queue: str
    listen: bool
    max_retries: int | None
    _conn: psycopg.Connection[Any] | None
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

    def _protocol(self) -> Any:
        """The dialect's one-at-a-time protocol; a table whose dialect has none is refused."""
        dialect = self.client.dialect()
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

    def _open(self) -> Session:
        session = self._current_session()
        if session is not None:
            return session
        self._drop_connection()  # one the server ended, if any
        self._protocol()
        assert self._dialect is not None
        conn = self.client.connect(application_name=f"que worker {self.queue!r}")
        channel = io.Channel(conn.pgconn.socket)
        channel.attach(conn.pgconn.consume_input)
        try:
            session = self._dialect.session(conn.pgconn)
            channel.run(set_up(session))
            if self.listen:
                channel.run(self._dialect.one_at_a_time.listen(session))
        except BaseException:
            sessions.close(conn, channel)
            raise
        self._conn, self._session, self._channel = conn, session, channel
        return session

    def _drop_connection(self) -> None:
        """Close the connection: this also ends every lock its session held. While a plain
        handler cut short still runs (asyncio), its thread takes the connection over instead."""
        conn, self._conn = self._conn, None
        self._session = None
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()
        sessions.close(conn, None)

    def _run(self, gen: PQGen[Any]) -> Any:
        """The statements of `gen` on this worker's connection."""
        assert self._channel is not None, "no connection"
        return self._channel.run(gen)
