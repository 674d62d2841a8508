# This file is generated from que/shells/worker_async.py by tools/async_to_sync.py: do not edit it.
# Edit the asyncio source and run `make generate` (make lint checks that the two agree).
"""Worker: works the jobs of one queue, one at a time, on a connection of its own, in a
daemon thread (Que 0.x's one-at-a-time protocol: que.dialects.que0.protocol).

Generated from que.shells.worker_async (AsyncWorker).

A worker owns one connection. The connection's session holds the lock of the job it runs,
so it is never shared and never handed to handlers: a handler cannot leave a transaction
open on it and so cannot undo the job's delete (que-go's pooled-connection bug). Handlers use
connections of their own.

A worker does not die of a job or of the database: whatever a handler raises is recorded as
the job's error (que.core.handlers), a row it cannot read is backed off, and a lost
connection or a failing statement (a missing table, say) is retried with backoff on a new
connection. Only KeyboardInterrupt or SystemExit from a handler, and a connection pooler
between the worker and the server (TransactionPoolingError), stop it: `fatal` says why.
"""

import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Self

import psycopg
from psycopg import pq

from que.core import hooks as _hooks
from que.core.errors import TransactionPoolingError, last_error_text
from que.core.handlers import INTERRUPTS, Handler, Run
from que.core.validate import max_retries as check_max_retries
from que.core.validate import queue as check_queue
from que.dialects import Dialect
from que.drivers import threads as io
from que.engine.rounds import Held
from que.engine.session import Session
from que.shells.client import Client
from que.shells.common import FRESH_FOR, backoff, check_batch, check_wake_interval
from que.shells.worker_connection import WorkerConnection

log = logging.getLogger("que")


class Worker(WorkerConnection):
    """Works the jobs of one queue, one at a time, on its own connection.

    `work()` drains due jobs back to back, then waits `wake_interval` seconds before looking
    again. `start()` runs it in the background; `shutdown()` (or `request_stop()`) lets the
    current job finish. A job whose handler is still running when the process exits dies
    with it: its connection closes, the server ends its lock, and the job runs again later
    (delivery is at least once)."""

    def __init__(
        self,
        client: Client,
        handlers: Mapping[str, Handler],
        queue: str = "",
        wake_interval: float = 5.0,
        *,
        listen: bool = False,
        reconnect_max: float = 30.0,
        max_retries: int | None = None,
        batch: int = 1,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        """`listen=True` also wakes the worker when a client with `notify=True` enqueues a job
        for its queue; polling every `wake_interval` continues, so jobs enqueued by Ruby or Go
        (which never notify) are still found. `max_retries=N` sets a job aside (run_at
        9999-12-31, see Client.dead_jobs) when it fails after N retries.

        `batch=K` (opt in) claims up to K jobs per round trip, each with its own advisory
        lock, and runs them one after another: Ruby and Go workers see K locked jobs. A job
        waits, locked, while the ones before it in its batch run (one that waited long is
        checked again before it runs, and not run if it was deleted meanwhile). `executor` runs plain
        handlers of the asyncio worker (default: a daemon thread of its own)."""
        self.client = client
        self.handlers = handlers
        self._handlers = io.Handlers(handlers, executor)
        self.queue = check_queue(queue)
        self.wake_interval = check_wake_interval(wake_interval)
        self.reconnect_max = check_wake_interval(reconnect_max, "reconnect_max")
        self.max_retries = check_max_retries(max_retries)
        self.batch = check_batch(batch)
        self.listen = listen
        self.fatal: BaseException | None = None
        self.jobs_worked = 0
        self.jobs_errored = 0
        self._conn: psycopg.Connection[Any] | None = None
        self._session: Session | None = None
        self._channel: io.Channel | None = None
        self._dialect: Dialect | None = None
        self._stop = False
        self._waker: io.Waker | None = None
        self._handle: io.Handle | None = None
        # Finishes sent without waiting for their results (batches), read by the next claim.
        self._sent: list[Any] = []
        # The job whose handler runs now, and (asyncio) a plain handler cut short in its thread.
        self._current: Held | None = None
        self._orphan: tuple[concurrent.futures.Future[BaseException | None], Held] | None = None
        self._protocol()  # a table whose dialect has no one-at-a-time worker is refused now

    def __repr__(self) -> str:
        return f"<{type(self).__name__} queue={self.queue!r}>"

    @property
    def executor(self) -> concurrent.futures.Executor | None:
        return self._handlers.executor  # type: ignore[no-any-return,attr-defined,unused-ignore]

    @executor.setter
    def executor(self, value: concurrent.futures.Executor | None) -> None:
        self._handlers.executor = value  # type: ignore[attr-defined,unused-ignore]

    def is_alive(self) -> bool:
        """Whether the work started by start() is still running."""
        return self._handle is not None and self._handle.is_alive()

    def _wake_up(self) -> io.Waker:
        if self._waker is None or self._waker.closed:
            self._waker = io.Waker()
        return self._waker

    # -- one job ------------------------------------------------------------------

    def work_one(self) -> bool:
        """Lock and run the next due job, then finish and release it; False when none was
        due. Database errors are raised (work() retries them); no lock outlives them."""
        try:
            session = self._open()
            protocol = self._dialect.one_at_a_time  # type: ignore[union-attr]
            held = self._run(protocol.lock(session, self.queue))
            if held is None:
                log.debug("job_unavailable queue=%r", self.queue, extra={"event": "job_unavailable"})
                return False
            self._run(protocol.finish(session, self._call(session, held)))
            return True
        except BaseException:
            if self._session is not None and not self._session.usable():
                self._drop_connection()
            raise

    def _call(self, session: Session, held: Held, running: Sequence[Held] = ()) -> Any:
        """Run the job's handler; how the job must end. An interrupt (KeyboardInterrupt,
        SystemExit) leaves the row as Ruby leaves it, releases the job and the `running` ones
        held with it, and goes on."""
        protocol = self._dialect.one_at_a_time  # type: ignore[union-attr]
        job = held.job
        _hooks.started(job)
        started = time.monotonic()
        self._current = held

        def cut_short(thread: concurrent.futures.Future[BaseException | None]) -> None:
            self._orphan = (thread, held)

        try:
            failure = self._handlers.call(Run(job), cut_short)
        except INTERRUPTS:
            try:
                self._run(protocol.release(session, self._sent, [held, *running]))
                self._sent = []
            except psycopg.Error:
                self._drop_connection()
            raise
        finally:
            self._current = None
        elapsed = time.monotonic() - started
        _hooks.ended(job, self._dialect.outcome(job, failure, None, self.max_retries), elapsed, failure)  # type: ignore[union-attr]
        if failure is None:
            self.jobs_worked += 1
            return protocol.Finish(held, max_retries=self.max_retries)
        self.jobs_errored += 1
        return protocol.Finish.failure(held, last_error_text(failure), self.max_retries)

    # -- the loop -----------------------------------------------------------------

    def work(self) -> None:
        """Run until `request_stop()`: drain, wait wake_interval, repeat."""
        failures = 0
        held: list[Held] = []
        waker = self._wake_up()
        try:
            while not self._stop:
                try:
                    session = self._current_session() or self._open()
                    protocol = self._dialect.one_at_a_time  # type: ignore[union-attr]
                    if self.batch > 1:
                        worked = self._work_batch(session)
                        failures = 0
                        if not worked:
                            self._idle(session)
                        continue
                    if not held:
                        held = self._run(protocol.claim(session, self.queue, 1))
                    if not held:
                        failures = 0
                        self._idle(session)
                        continue
                    done = self._call(session, held[0])
                    if self._stop:
                        held = []
                        self._run(protocol.finish(session, done))
                    else:
                        # The finish travels with the next claim: one round trip per job.
                        held = self._run(protocol.claim(session, self.queue, 1, done=[done]))
                    failures = 0
                except (*INTERRUPTS, TransactionPoolingError) as stop:
                    self.fatal = stop
                    raise
                except Exception as error:
                    held, self._sent = [], []  # dropping the connection ends its locks
                    self._drop_connection()
                    failures += 1
                    self._wake_up().sleep(backoff(failures, self.reconnect_max, error))
        finally:
            last = self._session
            if self._sent and last is not None and last.pgconn.status == pq.ConnStatus.OK:
                with contextlib.suppress(psycopg.Error):
                    self._run(self._dialect.one_at_a_time.release(last, self._sent))  # type: ignore[union-attr]
            self._sent = []
            self._drop_connection()
            waker.close()

    def _work_batch(self, session: Session) -> bool:
        """The batched claim: claim up to `batch` jobs in one round trip (it also reads the
        results of the previous batch's finishes and releases those jobs), then run them in
        order. Each job's delete or error is sent the moment its handler returns, without
        waiting for the result (read after the next handler, see send_finish), so a lost
        session re-runs only the job in flight and at most one whose finish it was sending.
        Jobs that waited more than FRESH_FOR behind the ones before them are checked again
        first, and one deleted or rescheduled meanwhile is released, not run. Returns
        whether any job was due."""
        protocol = self._dialect.one_at_a_time  # type: ignore[union-attr]
        held = self._run(protocol.claim(session, self.queue, self.batch, sent=self._sent))
        checked = io.now()
        gone: set[int] = set()
        self._sent = []
        for index, locked in enumerate(held):
            if self._stop:
                untouched = [job for job in held[index:] if job.job.job_id not in gone]
                self._run(protocol.release(session, self._sent, untouched))
                self._sent = []
                return True
            if not protocol.alive(session):
                raise psycopg.OperationalError("the session ended mid-batch: its jobs' locks ended with it")
            if io.now() - checked > FRESH_FOR:
                # The rest waited behind the jobs before them: checked again, the gone released.
                rest = [job for job in held[index:] if job.job.job_id not in gone]
                there, failed = self._run(protocol.recheck(session, rest, self._sent))
                self._sent = [sent for sent in self._sent if sent not in failed]
                gone.update(job.job.job_id for job in rest if job.job.job_id not in there)
                checked = io.now()
            if locked.job.job_id in gone:
                continue
            waiting = [job for job in held[index + 1 :] if job.job.job_id not in gone]
            finish = self._call(session, locked, waiting)
            failed = self._run(protocol.send_finish(session, finish, self._sent))
            self._sent = [*(sent for sent in self._sent if sent not in failed), finish]
        return bool(held)

    def _idle(self, session: Session) -> None:
        """Wait until the wake interval ends, wake() or request_stop(), or (listening) a
        notification for this worker's queue. A notification that arrived while the worker was
        busy wakes it once more: one spare lock attempt, never a lost job. One that libpq read
        with the last claim's result is queued there, and the socket will not announce it:
        it is looked at first."""
        waker = self._wake_up()
        channel = self._channel
        if channel is not None and self.listen:
            poll, _ = self._dialect.notified(session, self.queue)  # type: ignore[union-attr]
            if poll:
                return
        deadline = time.monotonic() + self.wake_interval
        while not waker.is_set() and (left := deadline - time.monotonic()) > 0:
            if channel is None or not self.listen:
                waker.sleep(left)
                return
            if channel.idle(waker, left, watch=True):
                poll, _ = self._dialect.notified(session, self.queue)  # type: ignore[union-attr]
                if poll:
                    break
        waker.clear()

    def wake(self) -> None:
        """Look for jobs now rather than at the end of the current wait."""
        if self._waker is not None:
            self._waker.wake()

    def request_stop(self) -> None:
        """Stop after the current job, without waiting."""
        self._stop = True
        if self._waker is not None:
            self._waker.wake()

    def _main(self) -> None:
        try:
            self.work()
        except BaseException as error:
            if self.fatal is None:
                self.fatal = error
                log.exception("worker_died", extra={"event": "worker_died"})

    def start(self) -> Self:
        """Run `work()` in the background: a task on the running loop, or a daemon thread
        (so a hung handler never keeps the process alive)."""
        if self.is_alive():
            raise RuntimeError("worker already started")
        self._stop = False
        self.fatal = None
        self._wake_up()
        self._handle = io.spawn(self._main, f"que-worker-{id(self):x}")
        return self

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop after the current job; True when the worker has stopped in time. When False,
        the handler is still running (see the class)."""
        self.request_stop()
        if self._handle is None:
            return True
        return self._handle.join(timeout)

    def cancel(self) -> None:
        """Cut the worker short (asyncio: its task is cancelled; see the module)."""
        if self._handle is not None:
            self._handle.cancel()
