"""AsyncWorkerPool: `count` tasks working one queue, with signals and supervision.

This asyncio form is the source: que.shells.pool (WorkerPool: threads) is generated from it.

By default the pool has one session, its locker's (que.shells.locker_async), which locks and
holds the jobs its workers run, in the dialect of its table: a pool of 64 workers is one
server session, not 64. On a Que 0.x table, `locker=False` gives each worker an AsyncWorker
with a session of its own, as Ruby Que 0.14 and que-go do.
"""
# sync-doc: WorkerPool: `count` threads working one queue, with signals and supervision.
# sync-doc:
# sync-doc: Generated from que.shells.pool_async (AsyncWorkerPool).
# sync-doc:
# sync-doc: By default the pool has one session, its locker's (que.shells.locker), which locks and holds
# sync-doc: the jobs its threads run, in the dialect of its table: a pool of 64 threads is one server
# sync-doc: session, not 64. On a Que 0.x table, `locker=False` gives each thread a Worker with a session
# sync-doc: of its own, as Ruby Que 0.14 and que-go do (and `batch=K` lets each claim K jobs at a time).

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any, Self

from que.core.errors import TransactionPoolingError
from que.core.handlers import INTERRUPTS, Handler
from que.dialects import Dialect
from que.drivers import aio as io
from que.shells.client_async import AsyncClient
from que.shells.common import FRESH_FOR, MAX_THREADS, check_pool_size, check_wake_interval
from que.shells.locker_async import AsyncLocker
from que.shells.runner_async import AsyncRunner
from que.shells.worker_async import AsyncWorker

if True:  # ASYNC
    import asyncio
    import contextlib
    import signal

    from que.drivers.daemon_threads import DaemonThreads
else:
    import os
    import signal
    import threading

log = logging.getLogger("que")


class AsyncWorkerPool:
    """`count` workers on one queue.

    `run()` returns after SIGTERM or SIGINT (when it can install handlers): the first signal
    lets current jobs finish; a second one exits at once (threads: the process exits with
    status 128 + the first signal's number, which ends the sessions and so releases the job
    locks; asyncio: the jobs are cancelled, stay and run again later, though plain handlers
    may still run in their threads, keeping their jobs' locks till they end). A worker stopped
    by KeyboardInterrupt or SystemExit from a handler, or a connection pooler between the pool
    and the server, stops the pool: run() raises it, so a supervisor sees a failed process.
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
        buffer: int | None = None,
        batch: int = 1,
        priorities: Sequence[int | None] | None = None,
        recheck_after: float = FRESH_FOR,
    ) -> None:
        """With the locker (the default), one session locks the jobs of all `count` workers,
        `buffer` more than there are idle workers (Que 0.x: up to 4 times `buffer` while jobs
        end faster than the locker's round trips; Que 1.x/2.x: Ruby's maximum_buffer_size, 8).

        The dialect of the table decides the defaults: `queue` is '' (Que 0.x) or 'default';
        `listen` False (Que 0.x: only que's notify=True enqueues notify) or True (the table's
        trigger notifies); `max_retries` None (retried forever; with N, set aside after N
        retries) or 15 (then the job is expired). `priorities` (Que 1.x/2.x) gives each worker
        the highest job priority it takes (None: any), as Que 2's worker_priorities.
        `locker=False` (Que 0.x) gives each worker a session of its own, as each AsyncWorker has,
        and `batch=K` then makes each claim up to K jobs at once.

        A job that waited in the locker's buffer more than `recheck_after` seconds is checked
        again (still there, unchanged) before a worker starts it, as Ruby's worker checks
        each job; one deleted or rescheduled meanwhile is released, not run."""
        if isinstance(recheck_after, bool) or not isinstance(recheck_after, int | float) or recheck_after < 0:
            raise ValueError(f"recheck_after must be 0 or more seconds, got {recheck_after!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        if locker and count > MAX_THREADS:
            raise ValueError(f"count must be at most {MAX_THREADS} workers, got {count}")
        check_wake_interval(wake_interval)
        if locker and batch != 1:
            raise ValueError(
                f"batch={batch} is for workers with sessions of their own (locker=False); the locker already "
                "claims the jobs of every worker together"
            )
        self.client = client
        self.handlers = handlers
        self.count = count
        self.queue = queue
        self.wake_interval = wake_interval
        self.listen = listen
        self.max_retries = max_retries
        self.use_locker = locker
        self.buffer = buffer
        self.batch = batch
        self.priorities = priorities
        self.recheck_after = float(recheck_after)
        self.dialect: Dialect | None = None
        self.locker: AsyncLocker | None = None
        self.workers: list[AsyncWorker | AsyncRunner] = []
        self._stop_requested = False
        self._forced = False
        self._waker: io.Waker | None = None
        # The signal that asked the pool to stop, if one did.
        self.stop_signal: int | None = None
        if True:  # ASYNC
            # Plain handlers run here: one daemon thread per worker, so none waits for a
            # thread, and none holds the process at exit. Made anew by each start().
            self.executor = DaemonThreads(count)
        else:
            self._build(self.client.dialect())

    def _build(self, dialect: Dialect) -> None:
        """The pool's members for a table of `dialect`."""
        if dialect.one_at_a_time is None and (not self.use_locker or self.batch != 1):
            raise dialect.refuse(
                "worker with a session of its own (locker=False, batch=)",
                "Ruby Que 1.x/2.x work jobs through a registered locker: leave locker=True",
            )
        if self.priorities is not None and not dialect.priorities:
            raise dialect.refuse(
                "worker priorities (priorities=)", "Que 0.x workers take any job of their queue: leave it out"
            )
        chosen = [None] * self.count if self.priorities is None else list(self.priorities)
        if len(chosen) != self.count or not all(p is None or isinstance(p, int) for p in chosen):
            raise ValueError(f"priorities must be {self.count} ints or None, one per worker, got {self.priorities!r}")
        queue = dialect.default_queue if self.queue is None else self.queue
        self.dialect = dialect
        if self.use_locker:
            self.locker = AsyncLocker(
                self.client,
                dialect,
                queue,
                chosen,
                buffer=self.buffer,
                wake_interval=self.wake_interval,
                listen=self.listen,
                max_retries=self.max_retries,
                fresh_for=self.recheck_after,
            )
            shared = io.Handlers(self.handlers)
            self.workers = [AsyncRunner(self.locker, shared, priority, self.max_retries) for priority in chosen]
        else:
            self.locker = None
            self.workers = [
                AsyncWorker(
                    self.client,
                    self.handlers,
                    queue,
                    self.wake_interval,
                    listen=bool(self.listen),
                    max_retries=self.max_retries,
                    batch=self.batch,
                )
                for _ in range(self.count)
            ]

    @property
    def sessions(self) -> int:
        """How many server sessions the pool's workers use."""
        return 1 if self.use_locker else self.count

    async def start(self) -> Self:
        """Start the pool (again, after a shutdown: a pool can be used more than once), after
        checking the server can give it its sessions."""
        if True:  # ASYNC
            if self.dialect is None:
                self._build(await self.client.dialect())
            if self.executor.is_shut_down:
                self.executor = DaemonThreads(self.count)
            for member in self.workers:
                if isinstance(member, AsyncRunner):
                    member.handlers.executor = self.executor
                else:
                    member.executor = self.executor
        check_pool_size(self.sessions, await self.client.connection_limit())
        self._stop_requested = False
        self._forced = False
        if self._waker is None or self._waker.closed:
            self._waker = io.Waker()
        if self.locker is not None:
            self.locker.start()
        for worker in self.workers:
            worker.start()
        return self

    async def shutdown(self, timeout: float | None = None) -> bool:
        """Ask every worker to stop after its current job, then wait for them (and for the
        locker to write their outcomes and release the rest)."""
        self.request_stop()
        if self.locker is not None:
            self.locker.request_stop()
        for worker in self.workers:
            worker.request_stop()
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        stopped = True
        for worker in self.workers:
            stopped = await worker.shutdown(left()) and stopped
        if self.locker is not None:
            stopped = await self.locker.join(left()) and stopped
        if True:  # ASYNC
            if stopped:
                self.executor.shutdown(wait=False)
        if stopped and self._waker is not None:
            self._waker.close()
        return stopped

    def request_stop(self) -> None:
        self._stop_requested = True
        if self._waker is not None:
            self._waker.wake()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown()

    def is_alive(self) -> bool:
        """Whether the pool runs: started, not stopped, and every member (the locker, each
        worker) alive. What `que work`'s /health reports."""
        members = self._members()
        return bool(members) and not self._stop_requested and all(member.is_alive() for member in members)

    def _members(self) -> list[Any]:
        return [self.locker, *self.workers] if self.locker is not None else list(self.workers)

    def _cancel(self) -> None:
        """Cut every member short: the workers first, so that a runner whose plain handler
        runs on in its thread tells the locker (still_running) before the locker, cancelled
        next, hands its session over (see que.shells.locker_async)."""
        for worker in self.workers:
            worker.cancel()
        if self.locker is not None:
            self.locker.cancel()

    def _supervise(self, restarts: dict[int, tuple[int, float]]) -> None:
        """Raise what stopped a member for good; restart one that died otherwise, with backoff."""
        for index, member in enumerate(self._members()):
            if member.fatal is not None and isinstance(member.fatal, (*INTERRUPTS, TransactionPoolingError)):
                raise member.fatal
            if member.is_alive() or self._stop_requested:
                continue
            count, due = restarts.get(index, (0, 0.0))
            if time.monotonic() < due:
                continue
            restarts[index] = (count + 1, time.monotonic() + min(30.0, 0.5 * 2**count))
            log.warning("worker_restarted after=%s", member.fatal, extra={"event": "worker_restarted"})
            member.start()

    async def run(self, shutdown_timeout: float | None = None) -> bool:
        """Start the workers and wait until a signal, shutdown() or request_stop() elsewhere,
        or a member stopped for good (then raise what stopped it). Members that died are
        restarted with backoff.

        `shutdown_timeout` bounds the wait for running jobs after the first signal (None:
        wait for them). True when every running job finished; False when jobs were cut short
        (a second signal, or the timeout): those stay and run again later."""
        uninstall = self._install_signals()
        restarts: dict[int, tuple[int, float]] = {}
        try:
            await self.start()
            waker = self._waker
            assert waker is not None
            while not self._stop_requested:
                await waker.sleep(0.1)
                self._supervise(restarts)
        finally:
            try:
                finished = await self.shutdown(shutdown_timeout)
                if True:  # ASYNC
                    if not finished:
                        self._forced = True
                        self._cancel()
                        handles = [m._handle for m in self._members() if m._handle is not None]
                        for handle in handles:
                            with contextlib.suppress(BaseException):
                                await handle.join()
                        # Plain handlers cut short go on in their daemon threads, holding their
                        # jobs' locks until they end (or the process exits).
                        self.executor.shutdown(wait=False)
                else:
                    self._forced = not finished
            finally:
                uninstall()
        return not self._forced

    if True:  # ASYNC

        def _install_signals(self) -> Any:
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
                self.request_stop()

            installed = []
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, on_signal, signum)
                    installed.append(signum)

            def uninstall() -> None:
                for signum in installed:
                    loop.remove_signal_handler(signum)

            return uninstall

    else:

        def _install_signals(self) -> Any:
            if threading.current_thread() is not threading.main_thread():
                return lambda: None

            def on_signal(signum: int, frame: Any) -> None:
                if self._stop_requested:
                    # No logging here: another thread may hold the logging lock while blocked
                    # on a full stderr pipe, and the point of a second signal is to exit now.
                    os._exit(128 + (self.stop_signal or signum))
                log.info("signal %s: finishing current jobs", signal.Signals(signum).name, extra={"event": "shutdown"})
                self.stop_signal = signum
                self.request_stop()

            previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}

            def uninstall() -> None:
                for number, old in previous.items():
                    signal.signal(number, old)

            return uninstall
