# This file is generated from que/shells/lock_async.py by tools/async_to_sync.py: do not edit it.
# Edit the asyncio source and run `make generate` (make lint checks that the two agree).
"""LockedJob: a locked job and its three ways to finish: delete, error, release.

Generated from que.shells.lock_async (AsyncLockedJob). A locked job owns the pooled
connection whose session holds its advisory lock (Que 0.x's one-at-a-time API:
Client.lock_job). Everything that finishes it runs on that connection through the dialect's
protocol, matched on the full primary key read at lock time, and the lock is released
exactly once, after the delete or error has committed.
"""

import logging
import threading
import warnings
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg

from que.core.errors import JobFinishedError, last_error_text, short_message
from que.core.handlers import INTERRUPTS
from que.drivers import threads as io
from que.engine.rounds import Held
from que.engine.session import PQGen, Session

log = logging.getLogger("que")
T = TypeVar("T")
# How a locked job gives its connection back to the client's pool (awaited in asyncio).
GiveBack = Callable[[Any, Session], Any]


def _abandoned(slot: list[Any], give_back: GiveBack, job_id: int, loop: Any) -> None:
    """Garbage collected unreleased: end the session (and so the lock) at once, and give the
    pool slot back."""
    conn, session = slot
    if conn is None:
        return
    slot[0] = None
    warnings.warn(
        f"job {job_id} was locked but never released: call release() or use it as a context manager; "
        "its connection was closed to end the lock",
        ResourceWarning,
        stacklevel=2,
    )
    conn.pgconn.finish()
    give_back(conn, session)


class LockedJob:
    """A job whose advisory lock this process holds, until `release()`.

    Use it as a context manager: leaving the block releases the lock, and an exception
    escaping the block is first recorded as the job's error (with the usual backoff) unless
    the job was already deleted or errored; KeyboardInterrupt, SystemExit (and a task's own
    cancellation) leave the row as it is. Without the block, call `delete()` or `error()`
    and then `release()` yourself; `release()` is safe to call twice. One dropped without
    release() is released when it is garbage collected, with a ResourceWarning.
    """

    def __init__(
        self,
        protocol: Any,
        locked: Held,
        conn: psycopg.Connection[Any],
        session: Session,
        give_back: GiveBack,
        max_retries: int | None = None,
    ) -> None:
        self.job = locked.job
        self._protocol = protocol
        self._locked = locked
        self._slot: list[Any] = [conn, session]
        self._max_retries = max_retries
        self._mutex = threading.Lock()
        loop = None
        self.deleted = False
        self.errored = False
        self._give_back = give_back
        self._finalizer = weakref.finalize(self, _abandoned, self._slot, give_back, locked.job.job_id, loop)

    def __repr__(self) -> str:
        state = "released" if self.released else "locked"
        return f"<{type(self).__name__} {self.job.job_id} {self.job.job_class!r} {state}>"

    @property
    def released(self) -> bool:
        return self._slot[0] is None

    @property
    def backend_pid(self) -> int | None:
        """The server process whose session holds the lock (None once released)."""
        conn = self._slot[0]
        return None if conn is None else int(conn.pgconn.backend_pid)

    def _run(self, action: str, gen: PQGen[T]) -> T:
        conn = self._slot[0]
        if conn is None:
            gen.close()
            raise JobFinishedError(f"cannot {action} job {self.job.job_id}: its lock was already released")
        return io.run(gen, conn.pgconn.socket)

    def delete(self) -> None:
        """Delete the row (matched on the full key). A second call does nothing."""
        with self._mutex:
            if self.deleted:
                return
            self._run("delete", self._protocol.delete(self._slot[1], self._locked))
            self.deleted = True

    def error(self, message: str) -> None:
        """Record a failure: error_count + 1, run_at = now() + count**4 + 3 s (or set aside
        when max_retries ran out), last_error = message. Counted in SQL, as Ruby Que does."""
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, got {message!r}")
        with self._mutex:
            finish = self._protocol.Finish.failure(self._locked, message, self._max_retries)
            self._run("record an error on", self._protocol.record(self._slot[1], finish))
            self.errored = True

    def release(self) -> None:
        """Release the advisory lock exactly once and give the connection back.

        If the unlock cannot run (the connection broke, or a task was cancelled mid-unlock)
        the connection is closed instead, which ends the session and so the lock: a
        connection that may still hold a job lock is never reused."""
        with self._mutex:
            conn, session = self._slot
            if conn is None:
                return
            self._slot[0] = None
            self._finalizer.detach()
            try:
                if session.usable():
                    io.run(self._protocol.unlock(session, self._locked), conn.pgconn.socket)
            except BaseException as failure:
                conn.pgconn.finish()
                if not isinstance(failure, psycopg.Error):
                    self._give_back(conn, session)
                    raise
            self._give_back(conn, session)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            cancelled = False
            if (
                exc is not None
                and not isinstance(exc, INTERRUPTS)
                and not cancelled
                and not (self.deleted or self.errored)
            ):
                try:
                    self.error(last_error_text(exc))
                except psycopg.Error as failure:
                    # The caller's exception is what matters; this one is only logged.
                    log.error(
                        "error_not_recorded job_id=%s error=%s",
                        self.job.job_id,
                        short_message(failure),
                        extra={"event": "error_not_recorded", "job_id": self.job.job_id},
                    )
        finally:
            self.release()
