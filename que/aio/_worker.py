"""AsyncWorker and AsyncWorkerPool: working jobs on an event loop.

Each worker is a task with a connection of its own, driving the one protocol engine
(que.dialects.que0.protocol) through the loop. Handlers may be `async def` (awaited on the loop) or
plain functions (run in the pool's threads, so a blocking handler never stalls the other
workers). A handler's exception means what it means for the thread worker (que.core.handlers).

Stopping: `request_stop()` / `shutdown()` let current jobs finish. Cancelling a worker's
task aborts its job. An async handler is cancelled: the job's row is left as it is and its
connection closed, which ends its lock, so the job runs again later (delivery is at least
once). A plain handler cannot be stopped: it runs to its end in its (daemon) thread, and
its connection, with the job's lock, goes with it, so no other worker runs the job
meanwhile; when the handler ends, that thread finishes the job as the worker would have
and closes the connection. If the process exits first, the session ends with it.
"""

import asyncio
import concurrent.futures
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import psycopg

from que.aio._client import AsyncClient
from que.aio._lock import _being_cancelled
from que.core import handlers as _handlers
from que.core import validate as _validate
from que.core.errors import TransactionPoolingError, last_error_text
from que.core.handlers import INTERRUPTS, Handler
from que.dialects.que0 import listening
from que.dialects.que0 import protocol as _protocol
from que.dialects.que0.protocol import Finish, Locked
from que.drivers.daemon_threads import DaemonThreads
from que.drivers.waiting import Channel, wait
from que.engine import setup as _setup
from que.engine.session import PQGen, Session
from que.worker import backoff, check_wake_interval

log = logging.getLogger("que")
T = TypeVar("T")


def _in_thread(handler: Handler, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BaseException | None:
    """A plain handler's run in a thread; what it raised comes back as a value, because
    some BaseExceptions (GeneratorExit) cannot be caught once raised through a future."""
    try:
        handler(*args, **kwargs)
    except BaseException as failure:
        return failure
    return None


class Handlers:
    """Calling handlers from the loop: `async def` ones awaited on it, plain ones run in a
    thread of `executor`. Whether a handler is async is asked once per handler."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self.handlers = handlers
        # is_async() of each handler seen (by id: a handler need not be hashable)
        self._awaitable: dict[int, tuple[Handler, bool]] = {}

    async def call(
        self,
        job: Any,
        executor: concurrent.futures.Executor,
        cut_short: Callable[[concurrent.futures.Future[BaseException | None]], None],
    ) -> BaseException | None:
        """Run the job's handler; its failure, or None. Interrupts and this task's own
        cancellation propagate; a CancelledError the handler raised itself is a failure.
        When the task is cancelled while a plain handler runs on in its thread, that
        thread's future goes to `cut_short` (the job must keep its lock till it ends)."""
        with _handlers.running(job):
            try:
                handler = _handlers.find(self.handlers, job)
                args = _handlers.arguments(job)
                kwargs = _handlers.keywords(job)
                seen = self._awaitable.get(id(handler))
                if seen is None or seen[0] is not handler:
                    seen = self._awaitable[id(handler)] = (handler, _handlers.is_async(handler))
                if seen[1]:
                    await handler(*args, **kwargs)
                else:
                    context = contextvars.copy_context()  # current_job() works in the thread too
                    running = executor.submit(context.run, _in_thread, handler, args, kwargs)
                    try:
                        outcome = await asyncio.wrap_future(running)
                    except asyncio.CancelledError:
                        if not running.done():
                            cut_short(running)
                        raise
                    if outcome is not None:
                        raise outcome
            except INTERRUPTS:
                raise
            except asyncio.CancelledError as failure:
                if _being_cancelled():
                    raise
                return failure
            except BaseException as failure:
                return failure
        return None


class AsyncWorker:
    """Works the jobs of one queue, one at a time, as a task on the running loop."""

    def __init__(
        self,
        client: AsyncClient,
        handlers: Mapping[str, Handler],
        queue: str = "",
        wake_interval: float = 5.0,
        *,
        listen: bool = False,
        reconnect_max: float = 30.0,
        max_retries: int | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        """Arguments as for que.Worker; `executor` runs plain (non-async) handlers
        (default: a daemon thread of the worker's own, see que.drivers.daemon_threads)."""
        self.client = client
        self.handlers = handlers
        self._handlers = Handlers(handlers)
        self.queue = _validate.queue(queue)
        self.wake_interval = check_wake_interval(wake_interval)
        self.reconnect_max = check_wake_interval(reconnect_max, "reconnect_max")
        self.max_retries = _validate.max_retries(max_retries)
        self.listen = listen
        self.executor = executor
        self.fatal: BaseException | None = None
        self.jobs_worked = 0
        self.jobs_errored = 0
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._session: Session | None = None
        self._channel: Channel | None = None
        self._stop = False
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # A plain handler whose task was cancelled while it ran in its thread, and its job.
        self._orphan: tuple[concurrent.futures.Future[BaseException | None], Locked] | None = None
        self._current_job: Locked | None = None

    def __repr__(self) -> str:
        return f"<que.aio.AsyncWorker queue={self.queue!r}>"

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.pgconn.backend_pid)

    def is_alive(self) -> bool:
        """Whether the task started by start() is still running."""
        return self._task is not None and not self._task.done()

    # -- the connection -------------------------------------------------------------

    def _current(self) -> Session | None:
        """This worker's session while its connection is open (checked without an await:
        the loop runs this once per job)."""
        conn = self._conn
        return None if conn is None or conn.closed else self._session

    async def _open(self) -> Session:
        session = self._current()
        if session is not None:
            return session
        await self._drop_connection()  # one the server ended, if any
        conn = await self.client.connect(application_name=f"que worker {self.queue!r}")
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
        """Close the connection: this also ends every lock its session held. The session
        ends at once, even when the task is being cancelled. While a plain handler cut
        short still runs, its thread takes the connection over instead (see the module)."""
        conn, session = self._conn, self._session
        self._conn = self._session = None
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()
        orphan, self._orphan = self._orphan, None
        if orphan is not None and conn is not None and not conn.closed and session is not None and session.usable():
            future, held = orphan
            future.add_done_callback(lambda done: self._finish_orphan(conn, session, held, done))
            return
        if conn is not None and not conn.closed:
            conn.pgconn.finish()
            with contextlib.suppress(psycopg.Error):
                await conn.close()

    def _finish_orphan(
        self,
        conn: psycopg.AsyncConnection[Any],
        session: Session,
        held: Locked,
        done: concurrent.futures.Future[BaseException | None],
    ) -> None:
        """In the handler's thread, once a plain handler cut short has ended: finish its job
        on its own connection, without the loop (which may be gone), and close it."""
        try:
            failure = done.exception() or done.result()
            if not isinstance(failure, INTERRUPTS):
                finish = (
                    Finish(held, max_retries=self.max_retries)
                    if failure is None
                    else Finish.failure(held, last_error_text(failure), self.max_retries)
                )
                _handlers.log_finished(held.job, failure, 0.0)
                wait(_protocol.finish(session, finish), conn.pgconn.socket)
        except Exception:
            log.exception("orphan_not_finished job_id=%s", held.job.job_id, extra={"event": "orphan_not_finished"})
        finally:
            conn.pgconn.finish()  # ends the session, and with it the job's lock if still held

    def _run(self, gen: PQGen[T]) -> Coroutine[Any, Any, T]:
        """The statements of `gen` on this worker's connection, to be awaited."""
        assert self._channel is not None, "no connection"
        return self._channel.run(gen)

    # -- one job ------------------------------------------------------------------

    async def work_one(self) -> bool:
        """Lock and run the next due job, then finish and release it; False when none was due."""
        try:
            session = await self._open()
            held = await self._run(_protocol.lock(session, self.queue))
            if held is None:
                return False
            await self._run(_protocol.finish(session, await self._work(session, held)))
            return True
        except asyncio.CancelledError:
            await self._drop_connection()  # mid-statement or mid-job: end the session and its lock
            raise
        except BaseException:
            if self._session is not None and not self._session.usable():
                await self._drop_connection()
            raise

    async def _call(self, job: Any) -> BaseException | None:
        if self.executor is None:
            self.executor = DaemonThreads(1)
        held = self._current_job

        def cut_short(thread: concurrent.futures.Future[BaseException | None]) -> None:
            if held is not None:
                self._orphan = (thread, held)

        return await self._handlers.call(job, self.executor, cut_short)

    async def _work(self, session: Session, held: Locked) -> Finish:
        """Run the job's handler; how the job must end (see que.Worker._call)."""
        job = held.job
        started = time.monotonic()
        self._current_job = held
        try:
            failure = await self._call(job)
        except INTERRUPTS:
            try:
                await self._run(_protocol.unlock(session, held))
            except psycopg.Error:
                await self._drop_connection()
            raise
        finally:
            self._current_job = None
        _handlers.log_finished(job, failure, time.monotonic() - started)
        if failure is None:
            self.jobs_worked += 1
            return Finish(held, max_retries=self.max_retries)
        self.jobs_errored += 1
        return Finish.failure(held, last_error_text(failure), self.max_retries)

    # -- the loop -----------------------------------------------------------------

    async def work(self) -> None:
        """Run until request_stop() (or cancellation): drain, wait wake_interval, repeat."""
        failures = 0
        held: list[Locked] = []
        try:
            while not self._stop:
                try:
                    session = self._current() or await self._open()
                    if not held:
                        held = await self._run(_protocol.claim(session, self.queue, 1))
                    if not held:
                        failures = 0
                        await self._idle(session)
                        continue
                    done = await self._work(session, held[0])
                    if self._stop:
                        held = []
                        await self._run(_protocol.finish(session, done))
                    else:
                        # The finish travels with the next claim: one round trip per job.
                        held = await self._run(_protocol.claim(session, self.queue, 1, done=[done]))
                    failures = 0
                except (*INTERRUPTS, TransactionPoolingError) as stop:
                    self.fatal = stop
                    raise
                except Exception as error:
                    held = []  # dropping the connection ends its lock
                    await self._drop_connection()
                    failures += 1
                    await self._sleep(backoff(failures, self.reconnect_max, error))
        finally:
            await self._drop_connection()

    async def _idle(self, session: Session) -> None:
        """Wait for the wake interval, wake() or request_stop(), or (listening) a
        notification for this worker's queue."""
        channel = self._channel
        if not self.listen or channel is None:
            await self._sleep(self.wake_interval)
            return
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        channel.on_idle = readable.set
        deadline = loop.time() + self.wake_interval
        try:
            while not self._wake.is_set() and (left := deadline - loop.time()) > 0:
                waits = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(readable.wait())}
                _, pending = await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                for waiting in pending:
                    waiting.cancel()
                if readable.is_set():
                    readable.clear()
                    if listening.notified(session, self.queue):
                        break
        finally:
            channel.on_idle = None
        self._wake.clear()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        """Stop after the current job, without waiting."""
        self._stop = True
        self._wake.set()

    async def _main(self) -> None:
        try:
            await self.work()
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            if self.fatal is None:
                self.fatal = error
                log.exception("worker_died", extra={"event": "worker_died"})

    def start(self) -> "AsyncWorker":
        """Run work() as a task on the running loop."""
        if self.is_alive():
            raise RuntimeError("worker already started")
        self._stop = False
        self.fatal = None
        self._task = asyncio.get_running_loop().create_task(self._main(), name=f"que-worker-{id(self):x}")
        return self

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Stop after the current job; True when the worker stopped in time."""
        self.request_stop()
        if self._task is None:
            return True
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        return bool(done)
