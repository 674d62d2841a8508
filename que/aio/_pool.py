"""AsyncWorkerPool: `count` AsyncWorkers on one queue and one event loop."""

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Mapping

from que._handlers import INTERRUPTS, Handler
from que._threads import DaemonThreads
from que.aio._client import AsyncClient
from que.aio._worker import AsyncWorker
from que.errors import TransactionPoolingError
from que.worker import check_pool_size, check_wake_interval

log = logging.getLogger("que")


class AsyncWorkerPool:
    """`count` AsyncWorkers on one queue, each with its own connection, on one loop.

    `run()` returns after SIGTERM or SIGINT: the first signal lets current jobs finish, a
    second cancels them (their jobs stay and run again later). KeyboardInterrupt or
    SystemExit from a handler, or a connection pooler, stop the pool: run() raises it.
    """

    def __init__(
        self,
        client: AsyncClient,
        handlers: Mapping[str, Handler],
        count: int = 4,
        queue: str = "",
        wake_interval: float = 5.0,
        *,
        listen: bool = False,
        max_retries: int | None = None,
    ) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        check_wake_interval(wake_interval)
        self.client = client
        self.count = count
        # Plain handlers run here: one daemon thread per worker, so none waits for a thread,
        # and none holds the process at exit (que._threads). Made anew by each start().
        self.executor = DaemonThreads(count)
        self.workers = [
            AsyncWorker(
                client, handlers, queue, wake_interval, listen=listen, max_retries=max_retries, executor=self.executor
            )
            for _ in range(count)
        ]
        self._stopping = asyncio.Event()
        self._forced = False
        # The signal that asked the pool to stop, if one did.
        self.stop_signal: int | None = None

    async def start(self) -> "AsyncWorkerPool":
        """Start the workers (again, after a shutdown: the pool can be used more than once)."""
        check_pool_size(self.count, await self.client.connection_limit())
        if self.executor.is_shut_down:
            self.executor = DaemonThreads(self.count)
        self._stopping = asyncio.Event()
        self._forced = False
        for worker in self.workers:
            worker.executor = self.executor
            worker.start()
        return self

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Ask every worker to stop after its current job, then wait for them."""
        self._stopping.set()
        for worker in self.workers:
            worker.request_stop()
        tasks = {w._task for w in self.workers if w._task is not None}
        stopped = True
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            stopped = not pending
        if stopped:
            self.executor.shutdown(wait=False)
        return stopped

    async def __aenter__(self) -> "AsyncWorkerPool":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def _cancel(self) -> None:
        for worker in self.workers:
            if worker._task is not None:
                worker._task.cancel()

    async def run(self, shutdown_timeout: float | None = None) -> bool:
        """Start the workers and wait until a signal, shutdown(), or a worker stopped for
        good (then raise what stopped it). Dead workers are restarted with backoff.

        True when every running job finished; False when jobs were cut short (a second
        signal, or `shutdown_timeout` seconds after the first): those jobs stay and run
        again later, though plain handlers may still be running in their threads.
        """
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal(signum: int) -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                self._forced = True
                self._cancel()
                return
            log.info("signal %s: finishing current jobs", signal.Signals(signum).name, extra={"event": "shutdown"})
            self.stop_signal = signum
            self._stopping.set()

        installed = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, on_signal, signum)
                installed.append(signum)
        restarts: dict[int, tuple[int, float]] = {}
        try:
            await self.start()
            while not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), 0.1)
                self._supervise(restarts)
        finally:
            try:
                if not await self.shutdown(shutdown_timeout):
                    self._forced = True
                    self._cancel()
                    await asyncio.wait({w._task for w in self.workers if w._task is not None})
                    # Plain handlers cut short go on in their daemon threads, holding their
                    # jobs' locks until they end (or the process exits).
                    self.executor.shutdown(wait=False)
            finally:
                for signum in installed:
                    loop.remove_signal_handler(signum)
        return not self._forced

    def _supervise(self, restarts: dict[int, tuple[int, float]]) -> None:
        for index, worker in enumerate(self.workers):
            if worker.fatal is not None and isinstance(worker.fatal, (*INTERRUPTS, TransactionPoolingError)):
                raise worker.fatal
            if worker.is_alive() or self._stopping.is_set():
                continue
            count, due = restarts.get(index, (0, 0.0))
            if time.monotonic() < due:
                continue
            restarts[index] = (count + 1, time.monotonic() + min(30.0, 0.5 * 2**count))
            log.warning("worker_restarted after=%s", worker.fatal, extra={"event": "worker_restarted"})
            worker.start()
