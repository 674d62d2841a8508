"""Working jobs: the Worker loop, a pool of them, and the handler registry.

A worker owns one connection. The connection's session holds the lock of the job it
runs, so it is never shared and never handed to handlers: a handler cannot leave a
transaction open on it and so cannot undo the job's delete (que-go's pooled-connection
bug). Handlers use connections of their own.
"""

import contextlib
import contextvars
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import Any

import psycopg

from que import sql
from que.client import Client, _check_text
from que.errors import TransactionPoolingError, UnknownJobClass, last_error_text
from que.job import Job
from que.retry import retry_delay
from que.session import Finish, JobSession, Locked

log = logging.getLogger("que")

Handler = Callable[..., object]

_current_job: contextvars.ContextVar[Job] = contextvars.ContextVar("que_current_job")


def current_job() -> Job:
    """The job the calling handler is running (its id, error_count, queue ...)."""
    try:
        return _current_job.get()
    except LookupError:
        raise RuntimeError("current_job() called outside a que job handler") from None


class Registry(Mapping[str, Handler]):
    """Handlers by job class name. A plain dict works as well; this adds a decorator.

    >>> handlers = Registry()
    >>> @handlers.handler("SendEmail")
    ... def send_email(to, subject): ...
    """

    def __init__(self, handlers: Mapping[str, Handler] | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        for name, fn in (handlers or {}).items():
            self.register(name, fn)

    def register(self, job_class: str, fn: Handler) -> Handler:
        _check_text("job_class", job_class, allow_empty=False)
        if not callable(fn):
            raise TypeError(f"handler for {job_class!r} must be callable, got {fn!r}")
        if job_class in self._handlers:
            raise ValueError(f"a handler for job class {job_class!r} is already registered")
        self._handlers[job_class] = fn
        return fn

    def handler(self, job_class: str | None = None) -> Callable[[Handler], Handler]:
        """Register the decorated function, under its __name__ if no name is given."""

        def decorate(fn: Handler) -> Handler:
            return self.register(job_class or fn.__name__, fn)

        return decorate

    def __getitem__(self, job_class: str) -> Handler:
        return self._handlers[job_class]

    def __iter__(self) -> Iterator[str]:
        return iter(self._handlers)

    def __len__(self) -> int:
        return len(self._handlers)


def call_handler(handler: Handler, job: Job) -> None:
    """Call `handler` as Ruby calls `run(*args)`.

    A JSON array is spread into positional arguments. Any other JSON value (a que-go
    writer may store an object, a scalar or null) is passed as one argument; Ruby
    would instead splat an object into [key, value] pairs and null into nothing.
    """
    args = job.args
    token = _current_job.set(job)
    try:
        if isinstance(args, list):
            handler(*args)
        else:
            handler(args)
    finally:
        _current_job.reset(token)


_CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)


class Worker:
    """Works the jobs of one queue, one at a time, on its own connection.

    `work()` drains due jobs back to back, then waits `wake_interval` seconds before
    looking again. `shutdown()` lets the current job finish. A lost connection is
    re-opened with backoff; the job being run when it was lost is run again later by
    some worker (at-least-once), because its lock ended with the session.
    """

    def __init__(
        self,
        client: Client,
        handlers: Mapping[str, Handler],
        queue: str = "",
        wake_interval: float = 5.0,
        *,
        listen: bool = False,
        reconnect_max: float = 30.0,
    ) -> None:
        """`listen=True` also wakes the worker when a Client with `notify=True` enqueues a
        job for its queue; polling every `wake_interval` continues, so jobs enqueued by
        Ruby or Go (which never notify) are still found."""
        _check_text("queue", queue, allow_empty=True)
        if wake_interval <= 0:
            raise ValueError(f"wake_interval must be positive seconds, got {wake_interval!r}")
        self.client = client
        self.handlers = handlers
        self.queue = queue
        self.wake_interval = float(wake_interval)
        self.listen = listen
        self.reconnect_max = reconnect_max
        self._conn: psycopg.Connection[Any] | None = None
        self._session: JobSession | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._thread: threading.Thread | None = None
        self.jobs_worked = 0
        self.jobs_errored = 0

    def __repr__(self) -> str:
        return f"<que.Worker queue={self.queue!r}>"

    # -- one job ------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            conn = self.client.connect(application_name=f"que worker {self.queue!r}")
            if self.listen:
                conn.execute(sql.LISTEN)
            self._conn = conn
            self._session = JobSession(conn)
        return self._conn

    def _job_session(self) -> JobSession:
        self._connection()
        assert self._session is not None
        return self._session

    def _drop_connection(self) -> None:
        conn, self._conn, self._session = self._conn, None, None
        if conn is not None and not conn.closed:
            conn.close()

    def work_one(self) -> bool:
        """Lock and run the next due job, then finish and release it; False when none
        was due. Raises psycopg errors about the connection; `work()` handles those."""
        session = self._job_session()
        locked = session.lock(self.queue)
        if locked is None:
            self._log_unavailable()
            return False
        self._run(session, locked, prefetch=False)
        return True

    def _log_unavailable(self) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        log.debug(
            "job_unavailable queue=%r",
            self.queue,
            extra={"event": "job_unavailable", "queue": self.queue},
        )

    def _run(self, session: JobSession, locked: Locked, prefetch: bool) -> Locked | None:
        """Run the handler, then finish the job; with `prefetch`, the finish travels with
        the lock of the next job, which is returned (still locked, already checked)."""
        job = locked.job
        started = time.monotonic()
        failure: Exception | None = None
        try:
            handler = self.handlers.get(job.job_class)
            if handler is None:
                raise UnknownJobClass(job.job_class)
            call_handler(handler, job)
        except Exception as error:
            failure = error
        except BaseException:
            # KeyboardInterrupt, SystemExit ...: leave the row as it is (Ruby does the
            # same for non-StandardError exceptions), release the lock, let it propagate.
            try:
                session.release(locked)
            except psycopg.Error:
                self._drop_connection()
            raise
        if failure is None:
            finish = Finish(locked)
        else:
            finish = Finish(locked, last_error_text(failure), retry_delay(job.error_count + 1))
        following = None
        if prefetch and not self._stop.is_set():
            following = session.lock(self.queue, finish)
        else:
            session.finish(finish)
        self._log_finished(job, failure, time.monotonic() - started)
        return following

    def _log_finished(self, job: Job, failure: Exception | None, elapsed: float) -> None:
        if failure is None:
            self.jobs_worked += 1
            if not log.isEnabledFor(logging.INFO):
                return
            log.info(
                "job_worked job_id=%s job_class=%s elapsed=%.5f",
                job.job_id,
                job.job_class,
                elapsed,
                extra={
                    "event": "job_worked",
                    "job_id": job.job_id,
                    "job_class": job.job_class,
                    "elapsed": round(elapsed, 5),
                },
            )
            return
        self.jobs_errored += 1
        log.info(
            "job_errored job_id=%s job_class=%s error=%s: %s elapsed=%.5f",
            job.job_id,
            job.job_class,
            type(failure).__name__,
            failure,
            elapsed,
            extra={
                "event": "job_errored",
                "job_id": job.job_id,
                "job_class": job.job_class,
                "error_class": type(failure).__name__,
                "error_message": str(failure),
                "elapsed": round(elapsed, 5),
            },
        )

    # -- the loop -----------------------------------------------------------------

    def work(self) -> None:
        """Run until `shutdown()`: drain, sleep wake_interval, repeat."""
        self._done.clear()
        failures = 0
        held: Locked | None = None
        try:
            while not self._stop.is_set():
                try:
                    session = self._job_session()
                    if held is None:
                        held = session.lock(self.queue)
                    worked = held is not None
                    if held is None:
                        self._log_unavailable()
                    else:
                        held = self._run(session, held, prefetch=True)
                    failures = 0
                except _CONNECTION_ERRORS as error:
                    held = None  # the lock ended with the session
                    self._drop_connection()
                    failures += 1
                    delay = self._backoff(failures)
                    log.warning(
                        "connection_lost error=%s retry_in=%.2f",
                        error,
                        delay,
                        extra={"event": "connection_lost", "retry_in": delay},
                    )
                    self._sleep(delay)
                    continue
                except TransactionPoolingError:
                    raise
                except psycopg.Error as error:
                    # A database error that is not about the connection (a broken
                    # schema, a statement the server refuses): do not spin on it.
                    # JobSession never leaves a lock behind when it raises one.
                    held = None
                    failures += 1
                    delay = self._backoff(failures)
                    log.error(
                        "database_error error=%s retry_in=%.2f",
                        error,
                        delay,
                        extra={"event": "database_error", "retry_in": delay},
                    )
                    self._sleep(delay)
                    continue
                if not worked:
                    try:
                        self._wait_for_work(self.wake_interval)
                    except _CONNECTION_ERRORS:
                        self._drop_connection()
        finally:
            if held is not None and self._session is not None:
                # Closing the connection below ends the lock if the unlock fails.
                with contextlib.suppress(psycopg.Error):
                    self._session.release(held)
            self._drop_connection()
            self._done.set()

    def _backoff(self, failures: int) -> float:
        base = min(self.reconnect_max, 0.1 * 2 ** min(failures - 1, 20))
        return float(base * (0.5 + random.random() / 2))

    def start(self) -> "Worker":
        """Run `work()` in a background thread."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("worker already started")
        self._stop.clear()
        self._done.clear()
        self._thread = threading.Thread(target=self.work, name=f"que-worker-{id(self):x}")
        self._thread.start()
        return self

    def wake(self) -> None:
        """Look for jobs now rather than at the end of the current wait."""
        self._wake.set()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def _wait_for_work(self, seconds: float) -> None:
        """Sleep until the wake interval ends, wake() or shutdown(), or (listening) a
        notification for this worker's queue. A notification that arrived while the
        worker was busy wakes it once more: one spare lock attempt, never a lost job."""
        conn = self._conn
        if not self.listen or conn is None or conn.closed:
            self._sleep(seconds)
            return
        deadline = time.monotonic() + seconds
        while not self._wake.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # Short slices keep shutdown() and wake() responsive while listening.
            for note in conn.notifies(timeout=min(left, 0.05)):
                if note.payload == self.queue:
                    self._wake.set()
                    break
        self._wake.clear()

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop after the current job; True when the worker has stopped in time."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return self._done.wait(timeout)


class WorkerPool:
    """`count` workers on one queue, each in its own thread with its own connection.

    `run()` blocks until SIGTERM or SIGINT (when called in the main thread): the first
    signal lets current jobs finish and returns, a second one exits the process at
    once, which ends the sessions and so releases the job locks.
    """

    def __init__(
        self,
        client: Client,
        handlers: Mapping[str, Handler],
        count: int = 4,
        queue: str = "",
        wake_interval: float = 5.0,
        *,
        listen: bool = False,
    ) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        self.workers = [Worker(client, handlers, queue, wake_interval, listen=listen) for _ in range(count)]
        self._stopping = threading.Event()

    def start(self) -> "WorkerPool":
        for worker in self.workers:
            worker.start()
        return self

    def shutdown(self, timeout: float | None = None) -> bool:
        """Ask every worker to stop after its current job, then wait for them."""
        self._stopping.set()
        for worker in self.workers:
            worker._stop.set()
            worker._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped = True
        for worker in self.workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            stopped = worker.shutdown(left) and stopped
        return stopped

    def run(self) -> None:
        """Start the workers and block until a signal (or `shutdown()` elsewhere)."""
        installed = threading.current_thread() is threading.main_thread()
        previous: dict[int, Any] = {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set():
                # No logging here: another thread may hold the logging lock while blocked
                # on a full stderr pipe, and the point of a second signal is to exit now.
                os._exit(128 + signum)
            log.info(
                "signal %s: finishing current jobs",
                signal.Signals(signum).name,
                extra={"event": "shutdown"},
            )
            self._stopping.set()

        if installed:
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, on_signal)
        try:
            self.start()
            while not self._stopping.wait(0.5):
                if not any(w._thread is not None and w._thread.is_alive() for w in self.workers):
                    log.error("every worker has stopped; exiting", extra={"event": "workers_stopped"})
                    break
            self.shutdown()
        finally:
            for number, old in previous.items():
                signal.signal(number, old)
