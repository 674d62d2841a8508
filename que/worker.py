"""Working jobs: the Worker loop, a pool of them, and the handler registry.

A worker owns one connection. The connection's session holds the lock of the job it
runs, so it is never shared and never handed to handlers: a handler cannot leave a
transaction open on it and so cannot undo the job's delete (que-go's pooled-connection
bug). Handlers use connections of their own.
"""

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

from que.client import Client, _check_text, lock_next
from que.errors import UnknownJobClass, last_error_text
from que.job import Job, LockedJob

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
        reconnect_max: float = 30.0,
    ) -> None:
        _check_text("queue", queue, allow_empty=True)
        if wake_interval <= 0:
            raise ValueError(f"wake_interval must be positive seconds, got {wake_interval!r}")
        self.client = client
        self.handlers = handlers
        self.queue = queue
        self.wake_interval = float(wake_interval)
        self.reconnect_max = reconnect_max
        self._conn: psycopg.Connection[Any] | None = None
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
            self._conn = self.client.connect()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.close()

    def _released(self, conn: psycopg.Connection[Any], healthy: bool) -> None:
        if not healthy:
            self._drop_connection()

    def work_one(self) -> bool:
        """Lock and run the next due job; False when none was due.

        Raises psycopg errors about the connection; `work()` handles those.
        """
        conn = self._connection()
        job = lock_next(conn, self.queue)
        if job is None:
            log.debug(
                "job_unavailable queue=%r",
                self.queue,
                extra={"event": "job_unavailable", "queue": self.queue},
            )
            return False
        locked = LockedJob(job, conn, self._released)
        try:
            self._run(locked)
        finally:
            locked.release()
        return True

    def _run(self, locked: LockedJob) -> None:
        job = locked.job
        started = time.monotonic()
        try:
            handler = self.handlers.get(job.job_class)
            if handler is None:
                raise UnknownJobClass(job.job_class)
            call_handler(handler, job)
        except Exception as error:
            locked.error(last_error_text(error))
            self.jobs_errored += 1
            elapsed = time.monotonic() - started
            log.info(
                "job_errored job_id=%s job_class=%s error=%s: %s elapsed=%.5f",
                job.job_id,
                job.job_class,
                type(error).__name__,
                error,
                elapsed,
                extra={
                    "event": "job_errored",
                    "job_id": job.job_id,
                    "job_class": job.job_class,
                    "error_class": type(error).__name__,
                    "error_message": str(error),
                    "elapsed": round(elapsed, 5),
                },
            )
            return
        locked.delete()
        self.jobs_worked += 1
        elapsed = time.monotonic() - started
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

    # -- the loop -----------------------------------------------------------------

    def work(self) -> None:
        """Run until `shutdown()`: drain, sleep wake_interval, repeat."""
        self._done.clear()
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    worked = self.work_one()
                    failures = 0
                except _CONNECTION_ERRORS as error:
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
                except psycopg.Error as error:
                    # A database error that is not about the connection (a broken
                    # schema, a statement the server refuses): do not spin on it.
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
                    self._sleep(self.wake_interval)
        finally:
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
    ) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        self.workers = [Worker(client, handlers, queue, wake_interval) for _ in range(count)]
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
                log.warning("second signal: exiting now", extra={"event": "exit_now"})
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
                pass
            self.shutdown()
        finally:
            for number, old in previous.items():
                signal.signal(number, old)
