"""WorkerPool: `count` thread workers on one queue, with signals and supervision."""

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from types import FrameType
from typing import Any

from que._handlers import INTERRUPTS, Handler
from que.client import Client
from que.errors import TransactionPoolingError
from que.worker import Worker, check_pool_size, check_wake_interval

log = logging.getLogger("que")


class WorkerPool:
    """`count` workers on one queue, each in its own thread with its own connection.

    `run()` blocks until SIGTERM or SIGINT (when called in the main thread): the first
    signal lets current jobs finish and returns, a second one exits the process at once
    with status 128 + the first signal's number, which ends the sessions and so releases
    the job locks. A worker stopped by KeyboardInterrupt or SystemExit from a handler, or
    by a connection pooler, stops the pool: run() raises it, so a supervisor sees a failed
    process.
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
        max_retries: int | None = None,
        batch: int = 1,
    ) -> None:
        """Arguments as for que.Worker; `batch=K` makes each worker claim up to K jobs at
        once (see Worker)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        check_wake_interval(wake_interval)
        self.client = client
        self.count = count
        self.workers = [
            Worker(client, handlers, queue, wake_interval, listen=listen, max_retries=max_retries, batch=batch)
            for _ in range(count)
        ]
        self._stopping = threading.Event()
        # The signal that asked the pool to stop, if one did.
        self.stop_signal: int | None = None

    def start(self) -> "WorkerPool":
        """Start the workers, after checking the server can give each its connection."""
        check_pool_size(self.count, self.client.connection_limit())
        for worker in self.workers:
            worker.start()
        return self

    def shutdown(self, timeout: float | None = None) -> bool:
        """Ask every worker to stop after its current job, then wait for them."""
        self._stopping.set()
        for worker in self.workers:
            worker.request_stop()
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped = True
        for worker in self.workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            stopped = worker.shutdown(left) and stopped
        return stopped

    def _supervise(self, restarts: dict[int, tuple[int, float]]) -> None:
        """Raise what stopped a worker for good; restart a worker that died otherwise."""
        for index, worker in enumerate(self.workers):
            if worker.fatal is not None and isinstance(worker.fatal, (*INTERRUPTS, TransactionPoolingError)):
                raise worker.fatal
            if worker.is_alive() or self._stopping.is_set():
                continue
            count, due = restarts.get(index, (0, 0.0))
            if time.monotonic() < due:
                continue
            delay = min(30.0, 0.5 * 2**count)
            restarts[index] = (count + 1, time.monotonic() + delay)
            log.warning("worker_restarted after=%s", worker.fatal, extra={"event": "worker_restarted"})
            worker.start()

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
