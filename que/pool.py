"""WorkerPool: `count` threads working one queue, with signals and supervision.

By default the pool has one session, its locker's (que.locker), which claims and holds the
jobs its threads run: a pool of 64 threads is one server session, not 64. `locker=False`
gives each thread a que.Worker with a session of its own, as Ruby Que 0.14 and que-go do
(and `batch=K` lets each such worker claim K jobs at a time).
"""

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

from que import dialects as dialect
from que.client import Client
from que.core import handlers as _handlers
from que.core.errors import TransactionPoolingError, last_error_text
from que.core.handlers import INTERRUPTS, Handler
from que.dialects.que0.protocol import Finish
from que.dialects.que2.validate import DEFAULT_QUEUE
from que.locker import DEFAULT_BUFFER, Locker
from que.locker2 import Locker2, Runner2
from que.worker import Worker, check_pool_size, check_wake_interval

log = logging.getLogger("que")

# A locker pool's threads need no session each; their number is bounded by what a process
# should run, not by the server.
MAX_THREADS = 10_000


class Runner:
    """One thread of a locker pool: runs the jobs its locker hands it, one at a time, and
    reports each outcome to the locker, which finishes the job."""

    def __init__(self, locker: Locker, handlers: Mapping[str, Handler], max_retries: int | None = None) -> None:
        self.locker = locker
        self.handlers = handlers
        self.max_retries = max_retries
        self.fatal: BaseException | None = None
        self.jobs_worked = 0
        self.jobs_errored = 0
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<que.pool.Runner of {self.locker!r}>"

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def backend_pid(self) -> int | None:
        """The server process whose session holds this thread's jobs: the locker's."""
        return self.locker.backend_pid

    def start(self) -> "Runner":
        if self.is_alive():
            raise RuntimeError("runner already started")
        self.fatal = None
        self._thread = threading.Thread(target=self._main, name=f"que-runner-{id(self):x}", daemon=True)
        self._thread.start()
        return self

    def _main(self) -> None:
        try:
            self._work()
        except BaseException as error:
            if self.fatal is None:
                self.fatal = error
                log.exception("runner_died", extra={"event": "runner_died"})

    def _work(self) -> None:
        while True:
            locked = self.locker.take(1.0)
            if locked is None:
                if not self.locker.is_alive() or self.locker.stopping:
                    return
                continue
            job = locked.job
            started = time.monotonic()
            try:
                failure = _handlers.call(self.handlers, job)
            except INTERRUPTS as stop:
                self.locker.interrupted(locked)  # the row is left as Ruby leaves it
                self.fatal = stop
                return
            _handlers.log_finished(job, failure, time.monotonic() - started)
            if failure is None:
                self.jobs_worked += 1
                self.locker.done(Finish(locked, max_retries=self.max_retries))
            else:
                self.jobs_errored += 1
                self.locker.done(Finish.failure(locked, last_error_text(failure), self.max_retries))

    def request_stop(self) -> None:
        self.locker.request_stop()

    def shutdown(self, timeout: float | None = None) -> bool:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_alive()


class WorkerPool:
    """`count` threads on one queue.

    `run()` blocks until SIGTERM or SIGINT (when called in the main thread): the first
    signal lets current jobs finish and returns, a second one exits the process at once
    with status 128 + the first signal's number, which ends the sessions and so releases
    the job locks. A thread stopped by KeyboardInterrupt or SystemExit from a handler, or
    a connection pooler between the pool and the server, stops the pool: run() raises it,
    so a supervisor sees a failed process.
    """

    def __init__(
        self,
        client: Client,
        handlers: Mapping[str, Handler],
        count: int = 4,
        queue: str | None = None,
        wake_interval: float = 5.0,
        *,
        listen: bool | None = None,
        max_retries: int | None = None,
        locker: bool = True,
        buffer: int = DEFAULT_BUFFER,
        batch: int = 1,
        priorities: Sequence[int | None] | None = None,
    ) -> None:
        """Arguments as for que.Worker. With the locker (the default), one session claims
        the jobs of all `count` threads, `buffer` more than there are idle threads (up to 4 times
        `buffer` while jobs end faster than the locker's round trips).
        `locker=False` gives each thread its own session (a que.Worker), and `batch=K` then
        makes each claim up to K jobs at once (see Worker).

        On a Que 2 table (que.dialects), the pool speaks Ruby Que 2.x's protocol instead
        (que.locker2): `queue` defaults to 'default', `listen` to True, `max_retries` to 15
        (then a job is expired), and `priorities` gives each thread the highest job priority
        it takes (None: any), as Que 2's worker_priorities do."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        if locker and count > MAX_THREADS:
            raise ValueError(f"count must be at most {MAX_THREADS} threads, got {count}")
        check_wake_interval(wake_interval)
        if locker and batch != 1:
            raise ValueError(
                f"batch={batch} is for workers with sessions of their own (locker=False); the locker already "
                "claims the jobs of every thread together"
            )
        self.client = client
        self.count = count
        self.locker: Locker | Locker2 | None = None
        self.workers: list[Worker | Runner | Runner2]
        self.dialect = client.dialect()
        if self.dialect == dialect.QUE_2:
            if not locker or batch != 1:
                raise ValueError("the Que 2 dialect works through its locker: locker=False and batch= are Que 0.x's")
            chosen = [None] * count if priorities is None else list(priorities)
            if len(chosen) != count or not all(p is None or isinstance(p, int) for p in chosen):
                raise ValueError(f"priorities must be {count} ints or None, one per thread, got {priorities!r}")
            self.locker = Locker2(
                client,
                DEFAULT_QUEUE if queue is None else queue,
                chosen,
                listen=True if listen is None else listen,
                poll_interval=wake_interval,
                buffer=buffer,
            )
            self.workers = [Runner2(self.locker, handlers, p, max_retries) for p in chosen]
        elif priorities is not None:
            raise ValueError("priorities= needs a Que 2 table (schema version 4 or later)")
        elif locker:
            self.locker = Locker(
                client, queue or "", count, buffer=buffer, wake_interval=wake_interval, listen=bool(listen)
            )
            self.workers = [Runner(self.locker, handlers, max_retries) for _ in range(count)]
        else:
            self.workers = [
                Worker(
                    client,
                    handlers,
                    queue or "",
                    wake_interval,
                    listen=bool(listen),
                    max_retries=max_retries,
                    batch=batch,
                )
                for _ in range(count)
            ]
        self._stopping = threading.Event()
        # The signal that asked the pool to stop, if one did.
        self.stop_signal: int | None = None

    @property
    def sessions(self) -> int:
        """How many server sessions the pool's workers use."""
        return 1 if self.locker is not None else self.count

    def start(self) -> "WorkerPool":
        """Start the pool, after checking the server can give it its sessions."""
        check_pool_size(self.sessions, self.client.connection_limit())
        if self.locker is not None:
            self.locker.start()
        for worker in self.workers:
            worker.start()
        return self

    def shutdown(self, timeout: float | None = None) -> bool:
        """Ask every worker to stop after its current job, then wait for them (and for the
        locker to finish their jobs and release the rest)."""
        self._stopping.set()
        if self.locker is not None:
            self.locker.request_stop()
        for worker in self.workers:
            worker.request_stop()
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        stopped = True
        for worker in self.workers:
            stopped = worker.shutdown(left()) and stopped
        if self.locker is not None:
            stopped = self.locker.join(left()) and stopped
        return stopped

    def _supervise(self, restarts: dict[int, tuple[int, float]]) -> None:
        """Raise what stopped a worker (or the locker) for good; restart one that died otherwise."""
        members: list[Worker | Runner | Runner2 | Locker | Locker2] = [*self.workers]
        if self.locker is not None:
            members.insert(0, self.locker)
        for index, member in enumerate(members):
            if member.fatal is not None and isinstance(member.fatal, (*INTERRUPTS, TransactionPoolingError)):
                raise member.fatal
            if member.is_alive() or self._stopping.is_set():
                continue
            count, due = restarts.get(index, (0, 0.0))
            if time.monotonic() < due:
                continue
            delay = min(30.0, 0.5 * 2**count)
            restarts[index] = (count + 1, time.monotonic() + delay)
            log.warning("worker_restarted after=%s", member.fatal, extra={"event": "worker_restarted"})
            member.start()

    def run(self, shutdown_timeout: float | None = None) -> bool:
        """Start the workers and block until a signal (or `shutdown()` elsewhere).

        `shutdown_timeout` bounds the wait for running jobs after the first signal (None:
        wait for them). True when every running job finished; False when some were still
        running at the timeout: they die with the process and run again later.
        """
        installed = threading.current_thread() is threading.main_thread()
        previous: dict[int, Any] = {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self._stopping.is_set():
                # No logging here: another thread may hold the logging lock while blocked
                # on a full stderr pipe, and the point of a second signal is to exit now.
                os._exit(128 + (self.stop_signal or signum))
            log.info("signal %s: finishing current jobs", signal.Signals(signum).name, extra={"event": "shutdown"})
            self.stop_signal = signum
            self._stopping.set()

        if installed:
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, on_signal)
        restarts: dict[int, tuple[int, float]] = {}
        try:
            self.start()
            while not self._stopping.wait(0.1):
                self._supervise(restarts)
        finally:
            try:
                finished = self.shutdown(shutdown_timeout)
            finally:
                for number, old in previous.items():
                    signal.signal(number, old)
        return finished
