"""The Que 2 dialect's locker on an event loop: que.dialects.que2.protocol (the same statements, books,
poll parameters and outcomes as que.locker2's threads) on psycopg's async connections. The locker's session
registers, LISTENs and holds the locks; each runner task works its job on a pooled
connection of its own (plain handlers in a thread, `async def` ones on the loop), commits
the outcome there, and hands the job back for its unlock."""

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from que.aio._client import AsyncClient
from que.aio._worker import Handlers
from que.core.handlers import INTERRUPTS, resolution
from que.core.job import Job
from que.dialects.que2 import inserts as _enqueue2
from que.dialects.que2 import sql as sql2
from que.dialects.que2.protocol import BUFFER, MAX_RETRIES, Books, outcome, poll_params, register_params
from que.worker import backoff

log = logging.getLogger("que")


class AsyncLocker2:
    """Claims jobs for the tasks of one pool on one session (see que.locker2)."""

    def __init__(
        self,
        client: AsyncClient,
        queue: str,
        priorities: Sequence[int | None],
        *,
        listen: bool = True,
        poll_interval: float = 5.0,
        buffer: int = BUFFER,
        reconnect_max: float = 30.0,
    ) -> None:
        self.client = client
        self.queue = queue
        self.listen = listen
        self.poll_interval = poll_interval
        self.reconnect_max = reconnect_max
        self.books = Books(priorities, buffer)
        self.fatal: BaseException | None = None
        self.stopping = False
        self._changed = asyncio.Event()  # a job finished, a place freed, a stop
        self._ready = asyncio.Condition()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.pgconn.backend_pid)

    # -- the runners' side ------------------------------------------------------------

    async def take(self, priority: int | None) -> Job | None:
        """The next job this runner's priority allows; None once the locker stops."""
        async with self._ready:
            while True:
                if self.stopping:
                    return None
                job = self.books.take(priority)
                if job is not None:
                    self._changed.set()
                    return job
                await self._ready.wait()

    def done(self, job: Job, priority: int | None) -> None:
        self.books.finish(job, priority)
        self._changed.set()

    # -- the locker's task ------------------------------------------------------------

    def start(self) -> "AsyncLocker2":
        if self.is_alive():
            raise RuntimeError("locker already started")
        self.fatal = None
        self.stopping = False
        self._task = asyncio.get_running_loop().create_task(self._main(), name=f"que-locker2-{id(self):x}")
        return self

    def is_alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def request_stop(self) -> None:
        self.stopping = True
        self._changed.set()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _finished(self) -> bool:
        return self.books.settled(self.stopping)

    async def _wake_runners(self) -> None:
        async with self._ready:
            self._ready.notify_all()

    async def _main(self) -> None:
        failures = 0
        try:
            while not self._finished():
                try:
                    await self._run()
                    return
                except psycopg.OperationalError as error:
                    await self._drop()
                    self.books.session_lost()
                    failures += 1
                    await asyncio.sleep(backoff(failures, self.reconnect_max, error))
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self.fatal = error
            log.exception("locker_died", extra={"event": "locker_died"})
        finally:
            await self._drop()
            self.stopping = True
            await self._wake_runners()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            await conn.close()

    async def _run(self) -> None:
        conn = self._conn = await self.client.connect("que locker")
        await conn.execute(sql2.CLEAN_LOCKERS)
        await conn.execute(sql2.REGISTER_LOCKER, register_params(self.books.priorities, self.listen, self.queue))
        announced = self.books.announced
        if self.listen:
            # What arrives while a statement runs reaches the handler; what arrives while
            # the session is idle is read in _idle.
            conn.add_notify_handler(lambda notice: announced.append(notice.payload))
            await conn.execute(f'LISTEN "{sql2.LISTEN_CHANNEL.format(pid=conn.pgconn.backend_pid)}"')
        try:
            next_poll = 0.0
            loop = asyncio.get_running_loop()
            while not self._finished():
                self._changed.clear()
                await self._unlock(conn, self.books.owed())
                if self.stopping:
                    await self._unlock(conn, self.books.unstarted())
                    await self._wake_runners()
                elif loop.time() >= next_poll:
                    satisfied = await self._poll(conn)
                    next_poll = loop.time() + (0.0 if satisfied else self.poll_interval)
                if announced and not self.stopping and (ids := self.books.notified()):
                    await self._locked(conn, sql2.LOCK_NOTIFIED, {"ids": ids, "held": sorted(self.books.held)})
                await self._idle(conn, 0.05 if self.stopping else max(0.0, next_poll - loop.time()), announced)
                if self._changed.is_set() and not self.stopping:
                    next_poll = min(next_poll, loop.time())  # a place is free: look for work
            await self._unlock(conn, self.books.owed())
        finally:
            with contextlib.suppress(psycopg.Error):
                await conn.execute(sql2.CLEAN_LOCKERS)

    async def _idle(self, conn: psycopg.AsyncConnection[Any], timeout: float, announced: list[str]) -> None:
        """Until a runner reports, a stop, the timeout, or (listening) a notification."""
        if self._changed.is_set() or announced:
            return
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        waits = [asyncio.ensure_future(self._changed.wait())]
        if self.listen:
            loop.add_reader(conn.pgconn.socket, readable.set)
            waits.append(asyncio.ensure_future(readable.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
            if self.listen:
                loop.remove_reader(conn.pgconn.socket)
        if readable.is_set():
            conn.pgconn.consume_input()
            while (notice := conn.pgconn.notifies()) is not None:
                announced.append(notice.extra.decode("utf-8", "replace"))

    async def _poll(self, conn: psycopg.AsyncConnection[Any]) -> bool:
        wanted = self.books.wanted()
        if not wanted:
            return False
        jobs = await self._locked(conn, sql2.POLL_JOBS, poll_params(self.queue, wanted, sorted(self.books.held)))
        return len(jobs) >= sum(wanted.values())

    async def _locked(self, conn: psycopg.AsyncConnection[Any], statement: str, params: Mapping[str, Any]) -> list[Job]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(statement, params)
            jobs = [_enqueue2.job_of(row) for row in await cur.fetchall()]
        if not jobs:
            return []
        self.books.locked(jobs)
        verified = await conn.execute(sql2.VERIFY_JOBS, {"ids": [job.job_id for job in jobs]})
        gone = self.books.verified(jobs, {row[0] for row in await verified.fetchall()})
        await self._wake_runners()
        await self._unlock(conn, gone)
        return jobs

    async def _unlock(self, conn: psycopg.AsyncConnection[Any], ids: list[int]) -> None:
        if not ids:
            return
        results = [row[0] for row in await (await conn.execute(sql2.UNLOCK_JOBS, {"ids": ids})).fetchall()]
        self.books.unlocked(ids, results)


class AsyncRunner2:
    """One task of a Que 2 pool (see que.locker2.Runner2)."""

    def __init__(self, locker: AsyncLocker2, handlers: Handlers, priority: int | None, max_retries: int | None) -> None:
        self.locker = locker
        self.handlers = handlers
        self.priority = priority
        self.max_retries = MAX_RETRIES if max_retries is None else max_retries
        self.executor: concurrent.futures.Executor | None = None
        self.fatal: BaseException | None = None
        self.jobs_worked = 0
        self.jobs_errored = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def backend_pid(self) -> int | None:
        return self.locker.backend_pid

    def is_alive(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> "AsyncRunner2":
        if self.is_alive():
            raise RuntimeError("runner already started")
        self.fatal = None
        self._task = asyncio.get_running_loop().create_task(self._main(), name=f"que-runner2-{id(self):x}")
        return self

    def request_stop(self) -> None:
        self.locker.request_stop()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _main(self) -> None:
        try:
            while (job := await self.locker.take(self.priority)) is not None:
                try:
                    await self._work(job)
                except psycopg.Error as error:  # see que.locker2.Runner2
                    log.warning(
                        "outcome_not_written job_id=%s error=%s",
                        job.job_id,
                        error,
                        extra={"event": "outcome_not_written", "job_id": job.job_id},
                    )
                finally:
                    self.locker.done(job, self.priority)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            self.fatal = error
            if not isinstance(error, INTERRUPTS):
                log.exception("runner_died", extra={"event": "runner_died"})

    async def _work(self, job: Job) -> None:
        assert self.executor is not None
        async with self.locker.client.connection() as conn:
            if await (await conn.execute(sql2.CHECK_JOB, {"id": job.job_id})).fetchone() is None:
                return  # worked and gone meanwhile
            failure = await self.handlers.call(job, self.executor, lambda running: None)
            if failure is None:
                self.jobs_worked += 1
            else:
                self.jobs_errored += 1
            await conn.execute(*outcome(job, failure, self.max_retries, resolution(job)))
