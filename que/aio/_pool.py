"""AsyncWorkerPool: `count` tasks working one queue on one event loop.

By default the pool has one session, its locker's (que.aio._locker), which claims and holds
the jobs its tasks run. `locker=False` gives each task an AsyncWorker with a session of its
own, as Ruby Que 0.14 and que-go do.
"""

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from que import dialects as dialect
from que.aio._client import AsyncClient
from que.aio._locker import AsyncLocker
from que.aio._locker2 import AsyncLocker2, AsyncRunner2
from que.aio._worker import AsyncWorker, Handlers
from que.core import handlers as _handlers
from que.core.errors import TransactionPoolingError, last_error_text
from que.core.handlers import INTERRUPTS, Handler
from que.dialects.que0.protocol import Finish
from que.dialects.que2.validate import DEFAULT_QUEUE
from que.drivers.daemon_threads import DaemonThreads
from que.locker import DEFAULT_BUFFER
from que.pool import MAX_THREADS
from que.worker import check_pool_size, check_wake_interval

log = logging.getLogger("que")


class AsyncRunner:
    """One task of a locker pool: runs the jobs its locker hands it and reports each
    outcome to the locker, which finishes the job."""

    def __init__(self, locker: AsyncLocker, handlers: Handlers, max_retries: int | None) -> None:
        self.locker = locker
        self.handlers = handlers
        self.max_retries = max_retries
        self.executor: concurrent.futures.Executor | None = None
        self.fatal: BaseException | None = None
        self.jobs_worked = 0
        self.jobs_errored = 0
        self._task: asyncio.Task[None] | None = None

    def is_alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def backend_pid(self) -> int | None:
        """The server process whose session holds this task's jobs: the locker's."""
        return self.locker.backend_pid

    def start(self) -> "AsyncRunner":
        if self.is_alive():
            raise RuntimeError("runner already started")
        self.fatal = None
        self._task = asyncio.get_running_loop().create_task(self._main(), name=f"que-runner-{id(self):x}")
        return self

    async def _main(self) -> None:
        try:
            await self._work()
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            if self.fatal is None:
                self.fatal = error
                log.exception("runner_died", extra={"event": "runner_died"})

    async def _work(self) -> None:
        assert self.executor is not None
        while (locked := await self.locker.take()) is not None:
            started = time.monotonic()
            cut_short = functools.partial(self.locker.still_running, locked)
            try:
                failure = await self.handlers.call(locked.job, self.executor, cut_short)
            except INTERRUPTS as stop:
                self.locker.interrupted(locked)  # the row is left as Ruby leaves it
                self.fatal = stop
                return
            _handlers.log_finished(locked.job, failure, time.monotonic() - started)
            if failure is None:
                self.jobs_worked += 1
                self.locker.done(Finish(locked, max_retries=self.max_retries))
            else:
                self.jobs_errored += 1
                self.locker.done(Finish.failure(locked, last_error_text(failure), self.max_retries))

    def request_stop(self) -> None:
        self.locker.request_stop()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


class _Options(NamedTuple):
    """The pool's arguments, kept for a Que 2 table found at start()."""

    queue: str | None
    listen: bool | None
    wake_interval: float
    buffer: int
    priorities: Sequence[int | None] | None
    max_retries: int | None
    locker: bool
    handlers: Mapping[str, Handler]


class AsyncWorkerPool:
    """`count` tasks on one queue, on one loop.

    `run()` returns after SIGTERM or SIGINT: the first signal lets current jobs finish, a
    second cancels them (their jobs stay and run again later; a plain handler still running
    in its thread keeps its job's lock until it ends). KeyboardInterrupt or SystemExit from
    a handler, or a connection pooler, stop the pool: run() raises it.
    """

    def __init__(
        self,
        client: AsyncClient,
        handlers: Mapping[str, Handler],
        count: int = 4,
        queue: str | None = None,
        wake_interval: float = 5.0,
        *,
        listen: bool | None = None,
        max_retries: int | None = None,
        locker: bool = True,
        buffer: int = DEFAULT_BUFFER,
        priorities: Sequence[int | None] | None = None,
    ) -> None:
        """Arguments as for que.WorkerPool. The pool speaks the dialect of the table it finds
        at start() (on a Que 2 table, Ruby Que 2.x's protocol: que.aio._locker2)."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        if locker and count > MAX_THREADS:
            raise ValueError(f"count must be at most {MAX_THREADS} tasks, got {count}")
        check_wake_interval(wake_interval)
        self.client = client
        self.count = count
        # Plain handlers run here: one daemon thread per worker, so none waits for a thread,
        # and none holds the process at exit (que.drivers.daemon_threads). Made anew by each start().
        self.executor = DaemonThreads(count)
        self._que2 = _Options(queue, listen, wake_interval, buffer, priorities, max_retries, locker, handlers)
        queue, listen = queue or "", bool(listen)
        self.locker: AsyncLocker | AsyncLocker2 | None = None
        self.workers: list[AsyncWorker | AsyncRunner | AsyncRunner2]
        if locker:
            self.locker = AsyncLocker(client, queue, count, buffer=buffer, wake_interval=wake_interval, listen=listen)
            self.locker.max_retries = max_retries
            shared = Handlers(handlers)
            self.workers = [AsyncRunner(self.locker, shared, max_retries) for _ in range(count)]
        else:
            self.workers = [
                AsyncWorker(
                    client,
                    handlers,
                    queue,
                    wake_interval,
                    listen=listen,
                    max_retries=max_retries,
                    executor=self.executor,
                )
                for _ in range(count)
            ]
        self._stopping = asyncio.Event()
        self._forced = False
        # The signal that asked the pool to stop, if one did.
        self.stop_signal: int | None = None

    @property
    def sessions(self) -> int:
        """How many server sessions the pool's workers use."""
        return 1 if self.locker is not None else self.count

    def _speak_que2(self) -> None:
        """Replace the Que 0.x members with Que 2 ones (see que.WorkerPool for the options)."""
        options = self._que2
        if not options.locker:
            raise ValueError("the Que 2 dialect works through its locker: locker=False is Que 0.x's")
        priorities = options.priorities
        chosen = [None] * self.count if priorities is None else list(priorities)
        if len(chosen) != self.count or not all(p is None or isinstance(p, int) for p in chosen):
            raise ValueError(f"priorities must be {self.count} ints or None, one per task, got {priorities!r}")
        self.locker = AsyncLocker2(
            self.client,
            DEFAULT_QUEUE if options.queue is None else options.queue,
            chosen,
            listen=True if options.listen is None else options.listen,
            poll_interval=options.wake_interval,
            buffer=options.buffer,
        )
        shared = Handlers(options.handlers)
        self.workers = [AsyncRunner2(self.locker, shared, p, options.max_retries) for p in chosen]

    async def start(self) -> "AsyncWorkerPool":
        """Start the pool (again, after a shutdown: a pool can be used more than once)."""
        if await self.client.dialect() == dialect.QUE_2 and not isinstance(self.locker, AsyncLocker2):
            self._speak_que2()
        elif self._que2.priorities is not None and not isinstance(self.locker, AsyncLocker2):
            raise ValueError("priorities= needs a Que 2 table (schema version 4 or later)")
        check_pool_size(self.sessions, await self.client.connection_limit())
        if self.executor.is_shut_down:
            self.executor = DaemonThreads(self.count)
        self._stopping = asyncio.Event()
        self._forced = False
        if self.locker is not None:
            self.locker.start()
        for worker in self.workers:
            worker.executor = self.executor
            worker.start()
        return self

    def _tasks(self) -> set[asyncio.Task[None]]:
        members = [self.locker, *self.workers] if self.locker is not None else self.workers
        return {m._task for m in members if m is not None and m._task is not None}

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Ask every worker to stop after its current job, then wait for them (and for the
        locker to finish their jobs and release the rest)."""
        self._stopping.set()
        if self.locker is not None:
            self.locker.request_stop()
        for worker in self.workers:
            worker.request_stop()
        tasks = self._tasks()
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
        if self.locker is not None:
            self.locker.cancel()

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
                    await asyncio.wait(self._tasks())
                    # Plain handlers cut short go on in their daemon threads, holding their
                    # jobs' locks until they end (or the process exits).
                    self.executor.shutdown(wait=False)
            finally:
                for signum in installed:
                    loop.remove_signal_handler(signum)
        return not self._forced

    def _supervise(self, restarts: dict[int, tuple[int, float]]) -> None:
        members: list[AsyncWorker | AsyncRunner | AsyncRunner2 | AsyncLocker | AsyncLocker2] = [*self.workers]
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
            restarts[index] = (count + 1, time.monotonic() + min(30.0, 0.5 * 2**count))
            log.warning("worker_restarted after=%s", member.fatal, extra={"event": "worker_restarted"})
            member.start()
