"""The asyncio locker: one session that claims jobs for an AsyncWorkerPool's tasks and holds
their locks (que.locker explains the design; the books are que.engine.books's, shared with it).

Cut short (its task cancelled while plain handlers still run in their threads), the locker
hands its connection to a daemon thread. That thread waits for those handlers, writes their
outcomes and the ones already known, releases every other job untouched and closes the
session, so no job a handler is still running loses its lock. If the process exits first,
the session ends with it and the jobs run again later.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from typing import Any

import psycopg

from que.aio._client import AsyncClient
from que.core import handlers as _handlers
from que.core.errors import TransactionPoolingError, last_error_text
from que.core.handlers import INTERRUPTS
from que.dialects.que0 import listening
from que.dialects.que0 import protocol as _protocol
from que.dialects.que0.protocol import Finish, Locked
from que.drivers.waiting import Channel, wait
from que.engine import books as _ledger
from que.engine import setup as _setup
from que.engine.books import Ledger
from que.engine.session import Session
from que.locker import check_buffer
from que.worker import backoff

log = logging.getLogger("que")


class AsyncLocker:
    """Claims jobs of one queue on one session for `workers` tasks, which take them with
    `take()` and report with `done()`. Runs as a task on the running loop (`start()`)."""

    def __init__(
        self,
        client: AsyncClient,
        queue: str,
        workers: int,
        *,
        buffer: int,
        wake_interval: float = 5.0,
        listen: bool = False,
        reconnect_max: float = 30.0,
    ) -> None:
        self.client = client
        self.queue = queue
        self.wake_interval = wake_interval
        self.listen = listen
        self.reconnect_max = reconnect_max
        self.ledger = Ledger(workers, check_buffer(buffer))
        self.fatal: BaseException | None = None
        self.claims = 0
        self.stopping = False
        self._poll_now = True
        self._wake = asyncio.Event()
        self._ready = asyncio.Condition()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._session: Session | None = None
        self._channel: Channel | None = None
        self._task: asyncio.Task[None] | None = None
        # Plain handlers whose task was cancelled while their thread ran, by job id.
        self._threads: dict[int, tuple[Locked, concurrent.futures.Future[BaseException | None]]] = {}
        self.max_retries: int | None = None

    def __repr__(self) -> str:
        return f"<que.aio.AsyncLocker queue={self.queue!r} workers={self.ledger.workers}>"

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.pgconn.backend_pid)

    # -- the tasks' side --------------------------------------------------------------

    async def take(self) -> Locked | None:
        """The next job to run; None once the locker stops (or died) with none ready."""
        async with self._ready:
            await self._ready.wait_for(lambda: bool(self.ledger.ready) or self.stopping or not self.is_alive())
            return None if self.stopping else self.ledger.take()

    def done(self, finish: Finish) -> None:
        self.ledger.done(finish)
        self._wake.set()

    def interrupted(self, locked: Locked) -> None:
        self.ledger.interrupted(locked)
        self._wake.set()

    def still_running(self, locked: Locked, thread: concurrent.futures.Future[BaseException | None]) -> None:
        """A task was cancelled while its plain handler runs on in `thread`: the job keeps
        its lock until the handler ends (see the module)."""
        self._threads[locked.job.job_id] = (locked, thread)

    def wake(self) -> None:
        self._poll_now = True
        self._wake.set()

    # -- the locker's task ------------------------------------------------------------

    def is_alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> "AsyncLocker":
        if self.is_alive():
            raise RuntimeError("locker already started")
        self.fatal = None
        self.stopping = False
        self._task = asyncio.get_running_loop().create_task(self._main(), name=f"que-locker-{id(self):x}")
        return self

    def request_stop(self) -> None:
        self.stopping = True
        self._wake.set()
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._ready:
            self._ready.notify_all()

    async def wait_stopped(self, timeout: float | None) -> bool:
        if self._task is None:
            return True
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        return bool(done)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _main(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            self._hand_over()
            raise
        except BaseException as error:
            self.fatal = error
            if not isinstance(error, TransactionPoolingError):
                log.exception("locker_died", extra={"event": "locker_died"})
        finally:
            await self._drop_connection()
            self.stopping = True
            await self._notify()

    async def _open(self) -> Session:
        if self._conn is not None and not self._conn.closed and self._session is not None:
            return self._session
        await self._drop_connection()
        conn = await self.client.connect(application_name=f"que locker {self.queue!r}")
        channel = Channel(asyncio.get_running_loop(), conn.pgconn.socket)
        channel.attach(conn.pgconn.consume_input)
        try:
            session = Session(conn.pgconn)
            await channel.run(_setup.set_up(session))
            if self.listen:
                await channel.run(listening.listen(session))
        except BaseException:
            channel.close()
            conn.pgconn.finish()
            await conn.close()
            raise
        self._conn, self._session, self._channel = conn, session, channel
        return session

    async def _drop_connection(self) -> None:
        conn, self._conn, self._session = self._conn, None, None
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()
        if conn is not None and not conn.closed:
            conn.pgconn.finish()
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        next_poll = 0.0
        while not (self.stopping and not self.ledger.busy()):
            try:
                session = await self._open()
                next_poll = await self._round(session, next_poll)
                failures = 0
                if self.stopping and not self.ledger.busy():
                    return
                # Polls are due only while there is room for jobs and the locker still claims.
                await self._idle(next_poll if self.ledger.want(self.stopping) else None, session)
            except TransactionPoolingError:
                raise
            except Exception as error:
                await self._drop_connection()
                self.ledger.session_lost()
                await self._notify()
                failures += 1
                await self._idle(loop.time() + backoff(failures, self.reconnect_max, error), None)

    async def _round(self, session: Session, next_poll: float) -> float:
        loop = asyncio.get_running_loop()
        due = self._poll_now or loop.time() >= next_poll
        self._poll_now = False
        planned = self.ledger.plan(self.stopping, due)
        if planned.idle():
            return next_poll
        assert self._channel is not None
        try:
            claimed, written = await self._channel.run(_ledger.round_trip(session, self.queue, planned))
        except BaseException:
            self.ledger.unsent(planned)
            raise
        self.claims += 1
        drained = self.ledger.settle(planned, claimed, written, self.stopping)
        await self._notify()
        return loop.time() + self.wake_interval if drained else loop.time()

    async def _idle(self, until: float | None, session: Session | None) -> None:
        """Wait for a task's outcome, a stop, the next poll (`until`, loop time), or
        (listening) a notification for the queue."""
        loop = asyncio.get_running_loop()
        channel = self._channel
        readable = asyncio.Event()
        if self.listen and channel is not None:
            channel.on_idle = readable.set
        try:
            while not self._wake.is_set():
                timeout = None if until is None else until - loop.time()
                if timeout is not None and timeout <= 0:
                    break
                waits = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(readable.wait())}
                try:
                    await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiting in waits:
                        waiting.cancel()
                if readable.is_set():
                    readable.clear()
                    if session is not None and listening.notified(session, self.queue):
                        self._poll_now = True
                        break
        finally:
            if channel is not None:
                channel.on_idle = None
        self._wake.clear()

    # -- cut short ----------------------------------------------------------------------

    def _hand_over(self) -> None:
        """The locker's task is cancelled: its connection goes to a daemon thread that waits
        for the plain handlers still running, writes every known outcome, releases the rest
        untouched and closes the session (see the module)."""
        conn, session, channel = self._conn, self._session, self._channel
        self._conn = self._session = self._channel = None
        if channel is not None:
            channel.close()
        if conn is None or conn.closed or session is None or not session.usable():
            return
        threads = dict(self._threads)
        self._threads.clear()
        ledger = self.ledger
        finished = list(ledger.finished)
        untouched = [
            *ledger.ready,
            *ledger.abandoned,
            *(locked for job_id, locked in ledger.running.items() if job_id not in threads),
        ]
        ledger.finished, ledger.abandoned = [], []
        ledger.ready.clear()
        ledger.running.clear()
        max_retries = self.max_retries

        def finish_in_thread() -> None:
            try:
                outcomes = list(finished)
                for locked, future in threads.values():
                    failure = future.exception() or future.result()
                    if isinstance(failure, INTERRUPTS):
                        untouched.append(locked)
                    elif failure is None:
                        outcomes.append(Finish(locked, max_retries=max_retries))
                    else:
                        outcomes.append(Finish.failure(locked, last_error_text(failure), max_retries))
                    _handlers.log_finished(locked.job, failure, 0.0)
                if outcomes or untouched:
                    wait(
                        _protocol.claim(session, self.queue, 0, done=outcomes, untouched=untouched), conn.pgconn.socket
                    )
            except Exception:
                log.exception("handover_failed", extra={"event": "handover_failed"})
            finally:
                conn.pgconn.finish()

        threading.Thread(target=finish_in_thread, name="que-locker-handover", daemon=True).start()
