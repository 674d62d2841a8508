"""AsyncLockedJob: a locked job for asyncio code, finished through the one protocol engine
exactly as que.LockedJob is (see que.lock)."""

import asyncio
import logging
import warnings
import weakref
from collections.abc import Callable, Coroutine, Generator
from types import TracebackType
from typing import Any, TypeVar

import psycopg

from que.core.errors import JobFinishedError, last_error_text, short_message
from que.core.handlers import INTERRUPTS
from que.dialects.que0 import protocol as _protocol
from que.dialects.que0.protocol import Finish, Locked
from que.drivers.waiting import wait_async
from que.engine.session import Session

log = logging.getLogger("que")
T = TypeVar("T")
GiveBack = Callable[[psycopg.AsyncConnection[Any], Session], Coroutine[Any, Any, None]]


def _abandoned(slot: list[Any], give_back: GiveBack, loop: asyncio.AbstractEventLoop, job_id: int) -> None:
    """Garbage collected unreleased: end the session (and so the lock) at once, and give
    the pool slot back on the loop."""
    conn, session = slot
    if conn is None:
        return
    slot[0] = None
    warnings.warn(
        f"job {job_id} was locked but never released: call release() or use `async with`; its "
        "connection was closed to end the lock",
        ResourceWarning,
        stacklevel=2,
    )
    conn.pgconn.finish()
    if not loop.is_closed():
        loop.call_soon_threadsafe(lambda: loop.create_task(give_back(conn, session)))


class AsyncLockedJob:
    """A job whose advisory lock this process holds, until `await release()`.

    Use `async with`: leaving the block releases the lock, and an exception escaping it is
    first recorded as the job's error (unless deleted or errored already); KeyboardInterrupt,
    SystemExit and the task's own cancellation leave the row as it is.
    """

    def __init__(
        self,
        locked: Locked,
        conn: psycopg.AsyncConnection[Any],
        session: Session,
        give_back: GiveBack,
        max_retries: int | None = None,
    ) -> None:
        self.job = locked.job
        self._locked = locked
        self._slot: list[Any] = [conn, session]
        self._max_retries = max_retries
        self._mutex = asyncio.Lock()
        self._give_back = give_back
        self.deleted = False
        self.errored = False
        loop = asyncio.get_running_loop()
        self._finalizer = weakref.finalize(self, _abandoned, self._slot, give_back, loop, locked.job.job_id)

    def __repr__(self) -> str:
        return f"<AsyncLockedJob {self.job.job_id} {self.job.job_class!r} {'released' if self.released else 'locked'}>"

    @property
    def released(self) -> bool:
        return self._slot[0] is None

    @property
    def backend_pid(self) -> int | None:
        conn = self._slot[0]
        return None if conn is None else int(conn.pgconn.backend_pid)

    async def _run(self, action: str, gen: Generator[int, int, T]) -> T:
        conn = self._slot[0]
        if conn is None:
            gen.close()
            raise JobFinishedError(f"cannot {action} job {self.job.job_id}: its lock was already released")
        return await wait_async(gen, conn.pgconn.socket)

    async def delete(self) -> None:
        async with self._mutex:
            if self.deleted:
                return
            await self._run("delete", _protocol.delete(self._slot[1], self._locked))
            self.deleted = True

    async def error(self, message: str) -> None:
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, got {message!r}")
        async with self._mutex:
            finish = Finish.failure(self._locked, message, self._max_retries)
            await self._run("record an error on", _protocol.record(self._slot[1], finish))
            self.errored = True

    async def release(self) -> None:
        """Release the lock exactly once; a connection whose unlock cannot run is closed,
        which ends the session and the lock."""
        async with self._mutex:
            conn, session = self._slot
            if conn is None:
                return
            self._slot[0] = None
            self._finalizer.detach()
            cancelled: asyncio.CancelledError | None = None
            try:
                if session.usable():
                    await wait_async(_protocol.unlock(session, self._locked), conn.pgconn.socket)
            except psycopg.Error:
                conn.pgconn.finish()
            except asyncio.CancelledError as stop:
                conn.pgconn.finish()  # the unlock may not have run: end the session, and the lock
                cancelled = stop
            await self._give_back(conn, session)
            if cancelled is not None:
                raise cancelled

    async def __aenter__(self) -> "AsyncLockedJob":
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            cancelled = isinstance(exc, asyncio.CancelledError) and _being_cancelled()
            if (
                exc is not None
                and not isinstance(exc, INTERRUPTS)
                and not cancelled
                and not (self.deleted or self.errored)
            ):
                try:
                    await self.error(last_error_text(exc))
                except psycopg.Error as failure:
                    log.error(
                        "error_not_recorded job_id=%s error=%s",
                        self.job.job_id,
                        short_message(failure),
                        extra={"event": "error_not_recorded", "job_id": self.job.job_id},
                    )
        finally:
            await self.release()


def _being_cancelled() -> bool:
    """Whether the running task itself was asked to stop (not just a CancelledError raised
    by the code it ran)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
