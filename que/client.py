"""Enqueue, lock and inspect Que jobs from Python.

A Client keeps a small connection pool for enqueueing and for `lock_job`; workers open
connections of their own (`Client.connect`) because a worker's connection carries the
job lock for as long as the job runs.
"""

import logging
import os
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from que import adapt, encoding, schema, sql
from que.job import Job, LockedJob
from que.session import ensure_direct, insert_prepared

log = logging.getLogger("que")

SMALLINT_MIN: Final = -32768
SMALLINT_MAX: Final = 32767


def database_url(explicit: str | None = None) -> str:
    """The connection string: the argument, else QUE_DATABASE_URL, else DATABASE_URL."""
    url = explicit or os.environ.get("QUE_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        raise ValueError("no database given: pass a connection string or set QUE_DATABASE_URL (or DATABASE_URL)")
    return url


@dataclass(frozen=True)
class NewJob:
    """One job for `Client.enqueue_many`."""

    job_class: str
    args: Sequence[Any] = ()
    queue: str = ""
    priority: int = 100
    run_at: datetime | None = None


def _check_text(name: str, value: object, *, allow_empty: bool) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {value!r} of type {type(value).__name__}")
    if not allow_empty and not value:
        raise ValueError(f"{name} must not be empty")
    if "\x00" in value:
        raise ValueError(f"{name} {value!r} contains a NUL character, which PostgreSQL text cannot hold")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} {value!r} contains an unpaired surrogate") from None
    return value


def _check_priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"priority must be an int, got {value!r} of type {type(value).__name__}")
    if not SMALLINT_MIN <= value <= SMALLINT_MAX:
        raise ValueError(f"priority {value} is outside the smallint range {SMALLINT_MIN}..{SMALLINT_MAX}")
    return value


def _check_run_at(value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(
            f"run_at must be a timezone-aware datetime or None, got {value!r} of type {type(value).__name__}"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"run_at {value!r} is naive: give it a tzinfo, because the server would "
            "otherwise read it in its own time zone"
        )
    return value


def _check_args(args: object) -> str:
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise TypeError(f"args must be a list or tuple of positional arguments, got {args!r}")
    return encoding.encode_args(args)


def validate(job_class: object, args: object, queue: object, priority: object, run_at: object) -> dict[str, Any]:
    """Check one job's fields and encode its args; raises before any SQL runs."""
    return {
        "job_class": _check_text("job_class", job_class, allow_empty=False),
        "args": _check_args(args),
        "queue": _check_text("queue", queue, allow_empty=True),
        "priority": _check_priority(priority),
        "run_at": _check_run_at(run_at),
    }


def _configure(conn: psycopg.Connection[Any]) -> None:
    """Pool connections: que's loaders, and ISO dates so enqueue can parse run_at fast."""
    adapt.register(conn)
    conn.execute("SET DateStyle = 'ISO, MDY'")


def _connection_of(conn: object) -> psycopg.Connection[Any]:
    if isinstance(conn, psycopg.Transaction):
        return conn.connection
    if isinstance(conn, psycopg.Connection):
        return conn
    raise TypeError(f"conn must be a psycopg Connection or Transaction, got {conn!r}")


class Client:
    """The entry point for enqueueing and locking jobs.

    `Client("postgresql://...")`, or `Client()` to read QUE_DATABASE_URL / DATABASE_URL.
    Close it (or use it as a context manager) to close its pool.
    """

    def __init__(
        self,
        conninfo: str | None = None,
        *,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        notify: bool = False,
    ) -> None:
        """`notify=True` sends a NOTIFY with every enqueue, so workers started with
        `listen=True` pick the job up at once instead of at their next poll."""
        self.conninfo = database_url(conninfo)
        self.notify = notify
        # Fail fast with the server's own reason (refused, bad password ...) rather
        # than after the pool's background retries time out.
        psycopg.connect(self.conninfo, connect_timeout=max(1, int(connect_timeout))).close()
        self._pool = ConnectionPool(
            self.conninfo,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            configure=_configure,
            open=True,
            name="que",
            timeout=connect_timeout,
        )
        try:
            self._pool.wait(timeout=connect_timeout)
        except PoolTimeout:
            self._pool.close()
            raise
        # Pool connections verified to reach the server directly (see lock_job), and the
        # insert statements each pool connection has prepared (see enqueue).
        self._direct: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
        self._inserts: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[bool]] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<que.Client {self._pool.name}>"

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self, application_name: str = "que") -> psycopg.Connection[Any]:
        """A new autocommit connection with que's loaders, owned by the caller."""
        conn = psycopg.connect(self.conninfo, autocommit=True, application_name=application_name)
        adapt.register(conn)
        return conn

    # -- schema -------------------------------------------------------------------

    def migrate(self, version: int = schema.CURRENT_VERSION) -> None:
        with self._pool.connection() as conn:
            schema.migrate(conn, version)

    def db_version(self) -> int:
        with self._pool.connection() as conn:
            return schema.db_version(conn)

    # -- enqueue ------------------------------------------------------------------

    def enqueue(
        self,
        job_class: str,
        *args: Any,
        queue: str = "",
        priority: int = 100,
        run_at: datetime | None = None,
        conn: psycopg.Connection[Any] | psycopg.Transaction | None = None,
    ) -> Job:
        """Insert one job and return it as stored (with its job_id).

        With `conn`, the insert runs on that connection: inside its open transaction
        it commits or rolls back with the caller's work. A rejected job inserts nothing.
        """
        params = validate(job_class, args, queue, priority, run_at)
        if conn is not None:
            return self._insert_one(_connection_of(conn), params)
        with self._pool.connection() as own:
            prepared = self._inserts.setdefault(own, set())
            return insert_prepared(own, params, self.notify, prepared)

    def _insert_one(self, conn: psycopg.Connection[Any], params: dict[str, Any]) -> Job:
        with adapt.cursor(conn) as cur:
            cur.execute(sql.INSERT_JOB_NOTIFY if self.notify else sql.INSERT_JOB, params, prepare=True)
            row = cur.fetchone()
        assert row is not None
        return Job.from_row(**row)

    def enqueue_many(
        self,
        jobs: Iterable[NewJob | tuple[str, Sequence[Any]]],
        *,
        conn: psycopg.Connection[Any] | psycopg.Transaction | None = None,
    ) -> list[Job]:
        """Insert many jobs in one statement and one round trip, in the given order.

        Every job is checked first; one bad job rejects the whole batch and nothing
        is inserted.
        """
        checked = []
        for index, item in enumerate(jobs):
            spec = item if isinstance(item, NewJob) else NewJob(*item)
            try:
                checked.append(validate(spec.job_class, spec.args, spec.queue, spec.priority, spec.run_at))
            except (TypeError, ValueError) as error:
                raise type(error)(f"jobs[{index}]: {error}") from None
        if not checked:
            return []
        params = {
            "queues": [c["queue"] for c in checked],
            "priorities": [c["priority"] for c in checked],
            "run_ats": [c["run_at"] for c in checked],
            "job_classes": [c["job_class"] for c in checked],
            "args": [c["args"] for c in checked],
        }
        if conn is not None:
            return self._insert_many(_connection_of(conn), params)
        with self._pool.connection() as own:
            return self._insert_many(own, params)

    def _insert_many(self, conn: psycopg.Connection[Any], params: dict[str, Any]) -> list[Job]:
        with conn.transaction(), adapt.cursor(conn) as cur:
            cur.execute(sql.INSERT_JOBS, params)
            jobs = [Job.from_row(**row) for row in cur.fetchall()]
            if self.notify:
                cur.execute(sql.NOTIFY_QUEUES, {"queues": params["queues"]})
            return jobs

    # -- locking ------------------------------------------------------------------

    def lock_job(self, queue: str = "") -> LockedJob | None:
        """Lock the next due job of `queue`, or return None when there is none.

        The returned job holds one pooled connection until it is released.
        """
        _check_text("queue", queue, allow_empty=True)
        conn = self._pool.getconn()
        try:
            if conn not in self._direct:
                ensure_direct(conn)
                self._direct.add(conn)
            job = lock_next(conn, queue)
        except BaseException:
            conn.close()
            self._pool.putconn(conn)
            raise
        if job is None:
            self._pool.putconn(conn)
            return None
        return LockedJob(job, conn, self._give_back)

    def _give_back(self, conn: psycopg.Connection[Any], healthy: bool) -> None:
        self._pool.putconn(conn)

    # -- introspection ------------------------------------------------------------

    def job_stats(self) -> list[dict[str, Any]]:
        """Per (queue, job_class): count, count_working, count_errored,
        highest_error_count, oldest_run_at; busiest first, as Ruby Que reports them."""
        with self._pool.connection() as conn, adapt.cursor(conn) as cur:
            cur.execute(sql.JOB_STATS)
            return list(cur.fetchall())

    def worker_states(self) -> list[dict[str, Any]]:
        """Each locked job with the state of the backend holding its lock."""
        with self._pool.connection() as conn, adapt.cursor(conn) as cur:
            cur.execute(sql.WORKER_STATES)
            return list(cur.fetchall())

    def clear(self) -> None:
        """Delete every job (Ruby's `Que.clear!`)."""
        with self._pool.connection() as conn:
            conn.execute(sql.CLEAR)


def lock_next(conn: psycopg.Connection[Any], queue: str) -> Job | None:
    """lock_job then check_job on `conn`, retrying after races; None when none is due.

    A race means another worker deleted the job after lock_job's snapshot; its lock is
    released and the walk starts again. Each retry can only find a different job, so
    the loop ends.
    """
    with adapt.cursor(conn) as cur:
        while True:
            cur.execute(sql.LOCK_JOB, {"queue": queue}, prepare=True)
            row = cur.fetchone()
            if row is None:
                return None
            job = Job.from_row(**row)
            cur.execute(sql.CHECK_JOB, job.key(), prepare=True)
            if cur.fetchone() is not None:
                return job
            log.debug(
                "job_race_condition job_id=%s",
                job.job_id,
                extra={"event": "job_race_condition", "job_id": job.job_id},
            )
            cur.execute(sql.UNLOCK_JOB, {"job_id": job.job_id})
