"""The Que 2 dialect's locker for a que.WorkerPool of threads on a v7 table: Ruby Que 2.x's
protocol (que.dialects.que2.protocol) on psycopg's sync connections. The locker runs in a thread of
its own on one session; each Runner2 thread works its jobs on a pooled connection.
"""

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from que.client import Client
from que.core.handlers import INTERRUPTS, Handler, arguments, find, keywords, resolution, running
from que.core.job import Job
from que.dialects.que2 import inserts as _enqueue2
from que.dialects.que2 import sql as sql2
from que.dialects.que2.protocol import BUFFER, MAX_RETRIES, Books, outcome, poll_params, register_params
from que.worker import backoff

log = logging.getLogger("que")


class Locker2:
    """Claims jobs for the threads of one pool on one session (see que.dialects.que2.protocol)."""

    def __init__(
        self,
        client: Client,
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
        self._cond = threading.Condition()  # guards the books
        self._stopping = False
        self._poll_now = True
        self._conn: psycopg.Connection[Any] | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def __repr__(self) -> str:
        return f"<que.Locker2 queue={self.queue!r} workers={len(self.books.priorities)}>"

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.pgconn.backend_pid)

    # -- the workers' side ------------------------------------------------------------

    def take(self, priority: int | None, timeout: float) -> Job | None:
        with self._cond:
            job = None if self._stopping else self.books.take(priority)
            if job is None and not self._stopping:
                self._cond.wait(timeout)
                job = None if self._stopping else self.books.take(priority)
        if job is not None:
            self._poke()  # its place in the buffer is free again
        return job

    def done(self, job: Job, priority: int | None) -> None:
        """A worker ended `job` (its outcome committed, or not written): the locker unlocks it."""
        with self._cond:
            self.books.finish(job, priority)
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b".")

    # -- the locker's thread ----------------------------------------------------------

    def start(self) -> "Locker2":
        if self.is_alive():
            raise RuntimeError("locker already started")
        self.fatal = None
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name=f"que-locker2-{id(self):x}", daemon=True)
        self._thread.start()
        return self

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def request_stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._poke()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_alive()

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _main(self) -> None:
        failures = 0
        try:
            while not self._settled():
                try:
                    self._run()
                    return
                except psycopg.OperationalError as error:
                    self._drop()
                    with self._cond:
                        self.books.session_lost()
                    failures += 1
                    time.sleep(backoff(failures, self.reconnect_max, error))
        except BaseException as error:
            self.fatal = error
            log.exception("locker_died", extra={"event": "locker_died"})
        finally:
            self._drop()
            with self._cond:
                self._stopping = True
                self._cond.notify_all()

    def _settled(self) -> bool:
        with self._cond:
            return self.books.settled(self._stopping)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.close()

    def _run(self) -> None:
        conn = self._conn = self.client.connect("que locker")
        pid = conn.pgconn.backend_pid
        conn.execute(sql2.CLEAN_LOCKERS)
        conn.execute(sql2.REGISTER_LOCKER, register_params(self.books.priorities, self.listen, self.queue))
        if self.listen:
            # What arrives while a statement runs reaches the handler; what arrives while
            # the session is idle is read in _wait.
            conn.add_notify_handler(lambda notice: self.books.announced.append(notice.payload))
            conn.execute(f'LISTEN "{sql2.LISTEN_CHANNEL.format(pid=pid)}"')
        try:
            next_poll = 0.0
            while not self._settled():
                with self._cond:
                    owed = self.books.owed()
                self._unlock(conn, owed)
                with self._cond:
                    stopping, due = self._stopping, self._poll_now or time.monotonic() >= next_poll
                    self._poll_now = False
                    unstarted = self.books.unstarted() if stopping else []
                if stopping:
                    self._unlock(conn, unstarted)
                elif due:
                    satisfied = self._poll(conn)
                    next_poll = time.monotonic() + (0.0 if satisfied else self.poll_interval)
                self._wait(conn, max(0.0, next_poll - time.monotonic()) if not stopping else 0.05)
            with self._cond:
                owed = self.books.owed()
            self._unlock(conn, owed)
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql2.CLEAN_LOCKERS)

    def _poll(self, conn: psycopg.Connection[Any]) -> bool:
        """Lock what the free places want; whether the poll got all it asked for (then the
        next one is due at once, as in Ruby)."""
        with self._cond:
            wanted = self.books.wanted()
            held = sorted(self.books.held)
        if not wanted:
            return False
        jobs = self._locked(conn, sql2.POLL_JOBS, poll_params(self.queue, wanted, held))
        return len(jobs) >= sum(wanted.values())

    def _locked(self, conn: psycopg.Connection[Any], statement: str, params: Mapping[str, Any]) -> list[Job]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(statement, params)
            jobs = [_enqueue2.job_of(row) for row in cur.fetchall()]
        if not jobs:
            return []
        with self._cond:
            self.books.locked(jobs)
        present = {row[0] for row in conn.execute(sql2.VERIFY_JOBS, {"ids": [job.job_id for job in jobs]})}
        with self._cond:
            gone = self.books.verified(jobs, present)
            self._cond.notify_all()
        self._unlock(conn, gone)
        return jobs

    def _unlock(self, conn: psycopg.Connection[Any], ids: list[int]) -> None:
        if not ids:
            return
        results = [row[0] for row in conn.execute(sql2.UNLOCK_JOBS, {"ids": ids})]
        with self._cond:
            self.books.unlocked(ids, results)

    def _wait(self, conn: psycopg.Connection[Any], timeout: float) -> None:
        """Until a worker reports, a stop, the next poll, or a notification (whose jobs are
        locked at once when there is room for them)."""
        watched = [self._wake_r, conn.pgconn.socket] if self.listen else [self._wake_r]
        readable, _, _ = select.select(watched, [], [], 0 if self.books.announced else timeout)
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 4096):
                    pass
        if self.listen and conn.pgconn.socket in readable:
            conn.pgconn.consume_input()
            while (notice := conn.pgconn.notifies()) is not None:
                self.books.announced.append(notice.extra.decode("utf-8", "replace"))
        with self._cond:
            ids = self.books.notified() if self.books.announced else []
            held = sorted(self.books.held)
        if ids:
            self._locked(conn, sql2.LOCK_NOTIFIED, {"ids": ids, "held": held})


class Runner2:
    """One thread of a Que 2 pool: takes the locker's jobs its priority allows and works
    each on a pooled connection of its own, as a Ruby Que 2.x worker does."""

    def __init__(
        self, locker: Locker2, handlers: Mapping[str, Handler], priority: int | None, max_retries: int | None
    ) -> None:
        self.locker = locker
        self.handlers = handlers
        self.priority = priority
        self.max_retries = MAX_RETRIES if max_retries is None else max_retries
        self.fatal: BaseException | None = None
        self.jobs_worked = 0
        self.jobs_errored = 0
        self._thread: threading.Thread | None = None

    @property
    def backend_pid(self) -> int | None:
        return self.locker.backend_pid

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> "Runner2":
        if self.is_alive():
            raise RuntimeError("runner already started")
        self.fatal = None
        self._thread = threading.Thread(target=self._main, name=f"que-runner2-{id(self):x}", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        self.locker.request_stop()

    def shutdown(self, timeout: float | None = None) -> bool:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_alive()

    def _main(self) -> None:
        try:
            while True:
                job = self.locker.take(self.priority, 1.0)
                if job is None:
                    if self.locker.stopping or not self.locker.is_alive():
                        return
                    continue
                try:
                    self._work(job)
                except psycopg.Error as error:
                    # Its connection failed (a restart, a terminated backend): its outcome is
                    # not written, so the job runs again once the locker unlocks it.
                    log.warning(
                        "outcome_not_written job_id=%s error=%s",
                        job.job_id,
                        error,
                        extra={"event": "outcome_not_written", "job_id": job.job_id},
                    )
                finally:
                    self.locker.done(job, self.priority)
        except BaseException as error:
            self.fatal = error
            if not isinstance(error, INTERRUPTS):
                log.exception("runner_died", extra={"event": "runner_died"})

    def _work(self, job: Job) -> None:
        with self.locker.client.connection() as conn:
            if conn.execute(sql2.CHECK_JOB, {"id": job.job_id}).fetchone() is None:
                return  # worked and gone meanwhile: advisory locks do not follow MVCC
            failure = None
            try:
                with running(job):
                    find(self.handlers, job)(*arguments(job), **keywords(job))
            except INTERRUPTS:
                raise
            except BaseException as error:
                failure = error
            if failure is None:
                self.jobs_worked += 1
            else:
                self.jobs_errored += 1
            conn.execute(*outcome(job, failure, self.max_retries, resolution(job)))
