"""The Que 2 dialect's locker: Ruby Que 2.x's protocol, for a que.WorkerPool on a v7 table.

One connection per pool (the locker's) registers in que_lockers, LISTENs on
que_listener_<its backend pid>, and takes jobs: the ones a notification names, and the ones
its poll finds (sql2.POLL_JOBS: Que 2's order and priority thresholds). It holds their
advisory locks while the pool's threads run them, each on a connection of its own: the
thread checks the row is still there, runs the handler with the job's args and kwargs, and
destroys the job or records its error (or expires it past the retry limit) on its own
connection, which commits before the locker unlocks the job. Unlocks go in batches, and
every one must report that the lock was held, as Ruby asserts.

Rows of another job_schema_version (1: rows carried over from Que 0.x) are never polled,
as in Ruby Que 2.x.
"""

import contextlib
import json
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row

from que import _enqueue2, sql2
from que._handlers import INTERRUPTS, Handler, arguments, find, keywords, running
from que.client import Client
from que.errors import error_parts, storable
from que.job import Job
from que.retry import retry_delay
from que.worker import backoff

log = logging.getLogger("que")

# Ruby's Que::MAXIMUM_PRIORITY: the threshold of a worker that takes any job.
ANY_PRIORITY: Final = 32767
# Que 2.x's defaults: maximum_retry_count, and the jobs buffered beyond the idle workers.
MAX_RETRIES: Final = 15
BUFFER: Final = 8
# The keys and types of a job_available message; Ruby's listener drops any other shape.
_ANNOUNCED: Final = {"message_type": str, "queue": str, "priority": int, "id": int, "run_at": str}


def announced_id(payload: str) -> int | None:
    """The job id of a well-formed job_available message, else None."""
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message, dict) or set(message) != set(_ANNOUNCED):
        return None
    if any(type(message[key]) is not kind for key, kind in _ANNOUNCED.items()):
        return None
    if message["message_type"] != "job_available":
        return None
    job_id: int = message["id"]
    return job_id


def register_params(priorities: Sequence[int | None], listening: bool, queue: str) -> dict[str, Any]:
    return {
        "worker_count": len(priorities),
        "worker_priorities": list(priorities),
        "process_id": os.getpid(),
        "hostname": socket.gethostname(),
        "listening": listening,
        "queues": [queue],
        "job_schema_version": sql2.JOB_SCHEMA_VERSION,
    }


def poll_params(queue: str, wanted: Mapping[int, int], held: Sequence[int]) -> dict[str, Any]:
    """sql2.POLL_JOBS's parameters for the places `wanted` (threshold -> count)."""
    thresholds = sorted(wanted)
    return {
        "queue": queue,
        "held": list(held),
        "ceiling": max(thresholds),
        "thresholds": thresholds,
        "counts": [wanted[t] for t in thresholds],
    }


def outcome(job: Job, failure: BaseException | None, max_retries: int) -> tuple[str, dict[str, Any]]:
    """The statement that ends a job as Ruby Que 2.x does: destroyed when it succeeded;
    expired past `max_retries`, the error columns left as they are; else retried after
    count**4 + 3 seconds with the message and backtrace cut to the columns' limits."""
    if failure is None:
        return sql2.DESTROY_JOB, {"id": job.job_id}
    count = job.error_count + 1
    if count > max_retries:
        return sql2.EXPIRE_JOB, {"id": job.job_id}
    message, backtrace = error_parts(failure)
    params = {
        "delay": retry_delay(count),
        "message": storable(message),
        "backtrace": storable("\n".join(backtrace)),
        "id": job.job_id,
    }
    return sql2.SET_ERROR, params


class Buffer:
    """The jobs a locker holds, sorted as Que sorts them, and what its workers may take: a
    worker of priority p takes the first job whose priority is at most p (any, for None)."""

    def __init__(self, priorities: Sequence[int | None], size: int) -> None:
        self.priorities = list(priorities)
        self.size = size
        self.ready: list[Job] = []
        self.idle: dict[int | None, int] = {}
        for priority in self.priorities:
            self.idle[priority] = self.idle.get(priority, 0) + 1

    def push(self, jobs: Sequence[Job]) -> None:
        self.ready.extend(jobs)
        self.ready.sort(key=lambda job: (job.priority, job.run_at, job.job_id))

    def take(self, priority: int | None) -> Job | None:
        limit = ANY_PRIORITY if priority is None else priority
        for index, job in enumerate(self.ready):
            if job.priority <= limit:
                return self.ready.pop(index)
        return None

    def wanted(self) -> dict[int, int]:
        """Ruby's available_priorities: idle workers by threshold, the buffer's room added
        to the most permissive one, minus the jobs already waiting for them."""
        wanted: dict[int, int] = {}
        for priority, count in self.idle.items():
            threshold = ANY_PRIORITY if priority is None else priority
            wanted[threshold] = wanted.get(threshold, 0) + count
        if wanted:
            top = max(wanted)
            wanted[top] += max(0, self.size - len(self.ready))
        for job in self.ready:  # each waiting job will take one of these places
            for threshold in sorted(wanted):
                if threshold >= job.priority and wanted[threshold] > 0:
                    wanted[threshold] -= 1
                    break
        return {t: c for t, c in wanted.items() if c > 0}


class Locker2:
    """Claims jobs for the threads of one pool on one session; see the module docstring."""

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
        self.buffer = Buffer(priorities, buffer)
        self.held: set[int] = set()
        self.fatal: BaseException | None = None
        self._done: list[int] = []
        self._announced: list[str] = []  # payloads on the locker's channel, not read yet
        self._cond = threading.Condition()
        self._stopping = False
        self._poll_now = True
        self._conn: psycopg.Connection[Any] | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def __repr__(self) -> str:
        return f"<que.Locker2 queue={self.queue!r} workers={len(self.buffer.priorities)}>"

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.pgconn.backend_pid)

    # -- the workers' side ------------------------------------------------------------

    def take(self, priority: int | None, timeout: float) -> Job | None:
        with self._cond:
            job = None if self._stopping else self.buffer.take(priority)
            if job is None and not self._stopping:
                self._cond.wait(timeout)
                job = None if self._stopping else self.buffer.take(priority)
            if job is not None:
                self.buffer.idle[priority] -= 1
        if job is not None:
            self._poke()  # its place in the buffer is free again
        return job

    def done(self, job: Job, priority: int | None) -> None:
        """A worker finished `job` (its outcome committed): the locker unlocks it."""
        with self._cond:
            self._done.append(job.job_id)
            self.buffer.idle[priority] += 1
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
            while not self._finished():
                try:
                    self._run()
                    return
                except psycopg.OperationalError as error:
                    # The session is gone, and every lock with it: the buffered jobs are no
                    # longer ours; running ones finish on their own connections.
                    self._drop()
                    with self._cond:
                        self.buffer.ready.clear()
                        self.held.clear()
                        self._done.clear()
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

    def _finished(self) -> bool:
        with self._cond:
            return self._stopping and self._running() == 0 and not self._done

    def _running(self) -> int:
        return len(self.buffer.priorities) - sum(self.buffer.idle.values())

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.close()

    def _run(self) -> None:
        conn = self._conn = self.client.connect("que locker")
        pid = conn.pgconn.backend_pid
        conn.execute(sql2.CLEAN_LOCKERS)
        conn.execute(sql2.REGISTER_LOCKER, register_params(self.buffer.priorities, self.listen, self.queue))
        if self.listen:
            # What arrives while a statement runs reaches the handler; what arrives while
            # the session is idle is read in _wait.
            conn.add_notify_handler(lambda notice: self._announced.append(notice.payload))
            conn.execute(f'LISTEN "{sql2.LISTEN_CHANNEL.format(pid=pid)}"')
        try:
            next_poll = 0.0
            while not self._finished():
                self._unlock_done(conn)
                with self._cond:
                    stopping, due = self._stopping, self._poll_now or time.monotonic() >= next_poll
                    self._poll_now = False
                if stopping:
                    self._release_buffered(conn)
                elif due:
                    satisfied = self._poll(conn)
                    next_poll = time.monotonic() + (0.0 if satisfied else self.poll_interval)
                self._wait(conn, max(0.0, next_poll - time.monotonic()) if not stopping else 0.05)
            self._unlock_done(conn)
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql2.CLEAN_LOCKERS)

    def _poll(self, conn: psycopg.Connection[Any]) -> bool:
        """Lock what the free places want; whether the poll got all it asked for (then the
        next one is due at once, as in Ruby)."""
        with self._cond:
            wanted = self.buffer.wanted()
            held = sorted(self.held)
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
            self.held.update(job.job_id for job in jobs)
        present = {row[0] for row in conn.execute(sql2.VERIFY_JOBS, {"ids": [job.job_id for job in jobs]})}
        gone = [job.job_id for job in jobs if job.job_id not in present]
        if gone:
            self._unlock(conn, gone)
        kept = [job for job in jobs if job.job_id in present]
        with self._cond:
            self.buffer.push(kept)
            self._cond.notify_all()
        return jobs

    def _release_buffered(self, conn: psycopg.Connection[Any]) -> None:
        with self._cond:
            unstarted = [job.job_id for job in self.buffer.ready]
            self.buffer.ready.clear()
        if unstarted:
            self._unlock(conn, unstarted)

    def _unlock_done(self, conn: psycopg.Connection[Any]) -> None:
        with self._cond:
            # A job whose lock died with an earlier session of this locker needs no unlock.
            finished = [job_id for job_id in self._done if job_id in self.held]
            self._done = []
        if finished:
            self._unlock(conn, finished)

    def _unlock(self, conn: psycopg.Connection[Any], ids: list[int]) -> None:
        unlocked = [row[0] for row in conn.execute(sql2.UNLOCK_JOBS, {"ids": ids})]
        if not all(unlocked):
            raise AssertionError(f"tried to unlock jobs this locker had not locked: {ids} gave {unlocked}")
        with self._cond:
            self.held.difference_update(ids)

    def _wait(self, conn: psycopg.Connection[Any], timeout: float) -> None:
        """Until a worker reports, a stop, the next poll, or a notification (whose jobs are
        locked at once when there is room for them)."""
        watched = [self._wake_r, conn.pgconn.socket] if self.listen else [self._wake_r]
        readable, _, _ = select.select(watched, [], [], 0 if self._announced else timeout)
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 4096):
                    pass
        if self.listen and conn.pgconn.socket in readable:
            conn.pgconn.consume_input()
            while (notice := conn.pgconn.notifies()) is not None:
                self._announced.append(notice.extra.decode("utf-8", "replace"))
        if self._announced:
            ids = [i for payload in self._announced if (i := announced_id(payload)) is not None]
            self._announced.clear()
            with self._cond:
                room = sum(self.buffer.wanted().values())
                held = sorted(self.held)
            if ids and room:
                self._locked(conn, sql2.LOCK_NOTIFIED, {"ids": ids[:room], "held": held})


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
            conn.execute(*outcome(job, failure, self.max_retries))
