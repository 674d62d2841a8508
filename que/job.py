"""Jobs as rows, and a locked job's three ways to finish: delete, error, release.

A locked job owns the connection whose session holds its advisory lock. Everything
that finishes the job runs on that connection, matched on the full primary key
(queue, priority, run_at, job_id) read at lock time, and the lock is released
exactly once, after the delete or error has committed (see the reference's trap:
unlocking in the same statement as the delete lets another worker run the job again).
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import psycopg

from que import encoding, sql
from que.errors import JobFinishedError, last_error_text
from que.retry import retry_delay

# A run_at that Python's datetime cannot hold ('infinity', year 10000, BC dates)
# arrives as its PostgreSQL text; it is shown as datetime.max/min and sent back as
# that text, so the row is still matched exactly.
RunAtKey = datetime | str


def _display_run_at(value: RunAtKey) -> datetime:
    if isinstance(value, datetime):
        return value
    if value.startswith("-") or value.endswith("BC"):
        return datetime.min.replace(tzinfo=UTC)
    return datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Job:
    """One `que_jobs` row. `args` is decoded from `args_json` on first use."""

    queue: str
    priority: int
    run_at: datetime
    job_id: int
    job_class: str
    args_json: str
    error_count: int
    last_error: str | None = None
    run_at_key: RunAtKey = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.run_at_key is None:
            object.__setattr__(self, "run_at_key", self.run_at)

    @property
    def args(self) -> Any:
        """The decoded arguments: a list when the job was written by a Que client,
        any JSON value when a que-go writer stored something else. Decoded once."""
        # Cached by hand: functools.cached_property takes a lock on every access (3.11).
        try:
            return self.__dict__["_args"]
        except KeyError:
            value = self.__dict__["_args"] = encoding.loads(self.args_json)
            return value

    @classmethod
    def from_row(
        cls,
        *,
        queue: str,
        priority: int,
        run_at: RunAtKey,
        job_id: int,
        job_class: str,
        args: str,
        error_count: int,
        last_error: str | None = None,
    ) -> "Job":
        return cls(
            queue=queue,
            priority=priority,
            run_at=_display_run_at(run_at),
            job_id=job_id,
            job_class=job_class,
            args_json=args,
            error_count=error_count,
            last_error=last_error,
            run_at_key=run_at,
        )

    def key(self) -> dict[str, Any]:
        """The full primary key every job statement matches on."""
        return {
            "queue": self.queue,
            "priority": self.priority,
            "run_at": self.run_at_key,
            "job_id": self.job_id,
        }


class LockedJob:
    """A job whose advisory lock this process holds, until `release()`.

    Use it as a context manager: leaving the block releases the lock, and an exception
    escaping the block is first recorded as the job's error (with the usual backoff)
    unless the job was already deleted or errored. Without the block, call `delete()`
    or `error()` and then `release()` yourself; `release()` is safe to call twice.
    """

    def __init__(
        self,
        job: Job,
        conn: psycopg.Connection[Any],
        on_release: Callable[[psycopg.Connection[Any], bool], None],
    ) -> None:
        self.job = job
        self._conn: psycopg.Connection[Any] | None = conn
        self._on_release = on_release
        self._mutex = threading.Lock()
        self.deleted = False
        self.errored = False

    def __repr__(self) -> str:
        state = "released" if self._conn is None else "locked"
        return f"<LockedJob {self.job.job_id} {self.job.job_class!r} {state}>"

    @property
    def released(self) -> bool:
        return self._conn is None

    def _connection(self, action: str) -> psycopg.Connection[Any]:
        if self._conn is None:
            raise JobFinishedError(f"cannot {action} job {self.job.job_id}: its lock was already released")
        return self._conn

    def delete(self) -> None:
        """Delete the row (matched on the full key). A second call does nothing."""
        with self._mutex:
            if self.deleted:
                return
            conn = self._connection("delete")
            conn.execute(sql.DESTROY_JOB, self.job.key(), prepare=True)
            self.deleted = True

    def error(self, message: str) -> None:
        """Record a failure: error_count + 1, run_at = now() + count**4 + 3 s,
        last_error = message. The count is incremented in SQL, as Ruby Que does."""
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, got {message!r}")
        with self._mutex:
            conn = self._connection("record an error on")
            params = {
                **self.job.key(),
                "delay": retry_delay(self.job.error_count + 1),
                "message": message,
            }
            conn.execute(sql.SET_ERROR, params, prepare=True)
            self.errored = True

    def release(self) -> None:
        """Release the advisory lock exactly once and give the connection back.

        If the unlock cannot run (the connection broke) the connection is closed
        instead, which ends the session and so the lock: a connection that may still
        hold a job lock is never reused.
        """
        with self._mutex:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            healthy = False
            try:
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    row = conn.execute(sql.UNLOCK_JOB, {"job_id": self.job.job_id}).fetchone()
                    healthy = bool(row and row[0])
            except psycopg.Error:
                healthy = False
            if not healthy and not conn.closed:
                conn.close()
            self._on_release(conn, healthy)

    def __enter__(self) -> "LockedJob":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if isinstance(exc, Exception) and not (self.deleted or self.errored) and self._conn is not None:
                self.error(last_error_text(exc))
        finally:
            self.release()
