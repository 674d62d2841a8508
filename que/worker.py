"""Working jobs in threads: the Worker loop and a pool of them.

A worker owns one connection. The connection's session holds the lock of the job it runs,
so it is never shared and never handed to handlers: a handler cannot leave a transaction
open on it and so cannot undo the job's delete (que-go's pooled-connection bug). Handlers
use connections of their own. The protocol itself is que.dialects.que0.protocol's; a worker only
decides when to run it.

A worker does not die of a job or of the database: whatever a handler raises is recorded
as the job's error (que.core.handlers), a row it cannot read is backed off, and a lost
connection or a failing statement (a missing table, say) is retried with backoff on a new
connection. Only KeyboardInterrupt or SystemExit from a handler, and a connection pooler
between the worker and the server (TransactionPoolingError), stop it: `fatal` says why.
"""

import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

import psycopg
from psycopg import pq

from que import dialects as dialect
from que.client import Client
from que.core import handlers as _handlers
from que.core import validate as _validate
from que.core.errors import TransactionPoolingError, last_error_text, short_message
from que.core.handlers import INTERRUPTS, Handler
from que.dialects import ONE_AT_A_TIME_IS_QUE_0
from que.dialects.que0 import listening
from que.dialects.que0 import protocol as _protocol
from que.dialects.que0.protocol import Finish, Locked
from que.drivers.waiting import readable, wait
from que.engine import setup as _setup
from que.engine.session import PQGen, Session

log = logging.getLogger("que")

MAX_WAKE_INTERVAL: Final = 24 * 3600.0


def check_wake_interval(value: object, name: str = "wake_interval") -> float:
    """Seconds between looks for jobs: finite, positive, at most a day."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or not 0 < value <= MAX_WAKE_INTERVAL:
        raise ValueError(
            f"{name} must be a finite number of seconds above 0 and at most {MAX_WAKE_INTERVAL:g} (a day), "
            f"got {value!r}"
        )
    return float(value)


def connection_lost(error: psycopg.Error) -> bool:
    """Whether the connection itself failed (no server answer, SQLSTATE class 08, or the
    server ending the session), as opposed to a statement failing on a live connection (a
    statement timeout is an OperationalError too)."""
    state = error.sqlstate
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def backoff(failures: int, cap: float, error: Exception) -> float:
    """How long a worker waits after its `failures`-th failure in a row (exponential with
    jitter, at most `cap`), logged with the error that caused it."""
    delay = min(cap, 0.1 * 2 ** min(failures - 1, 20)) * (0.5 + random.random() / 2)
    if not isinstance(error, psycopg.Error):
        event = "worker_error"
    elif connection_lost(error):
        event = "connection_lost"
    else:
        event = "database_error"
    log.log(
        logging.WARNING if event == "connection_lost" else logging.ERROR,
        "%s error=%s retry_in=%.2f",
        event,
        short_message(error),
        delay,
        exc_info=event == "worker_error",
        extra={"event": event, "retry_in": delay},
    )
    return float(delay)


MAX_BATCH: Final = 1000


def check_batch(value: object) -> int:
    """A batch size: how many jobs a worker claims at once (1: one at a time)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"batch must be an int, got {value!r}")
    if not 1 <= value <= MAX_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_BATCH} jobs, got {value}")
    return value


def check_pool_size(count: object, limit: int) -> int:
    """A pool's worker count: a positive int the server can give a connection each."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    if count > limit:
        raise ValueError(
            f"a pool of {count} workers needs {count} connections, more than this server's "
            f"max_connections allows ordinary users ({limit}): each worker holds one connection"
        )
    return count


def open_session(client: Client, name: str, listen: bool) -> tuple[psycopg.Connection[Any], Session]:
    """A connection of `client` set up as every session of que's is (and LISTENing when
    asked); closed again when the set-up fails, so no half-made session is kept."""
    conn = client.connect(application_name=name)
    try:
        session = Session(conn.pgconn)
        wait(_setup.set_up(session), conn.pgconn.socket)
        if listen:
            wait(listening.listen(session), conn.pgconn.socket)
    except BaseException:
        conn.close()
        raise
    return conn, session


class Worker:
    """Works the jobs of one queue, one at a time, on its own connection.

    `work()` drains due jobs back to back, then waits `wake_interval` seconds before
    looking again. `start()` runs it in a daemon thread; `shutdown()` (or
    `request_stop()`) lets the current job finish. A job whose handler is still running
    when the process exits dies with it: its connection closes, the server ends its lock,
    and the job runs again later (delivery is at least once).
    """

    def __init__(
        self,
        client: Client,
        handlers: Mapping[str, Handler],
        queue: str = "",
        wake_interval: float = 5.0,
        *,
        listen: bool = False,
        reconnect_max: float = 30.0,
        max_retries: int | None = None,
        batch: int = 1,
    ) -> None:
        """`listen=True` also wakes the worker when a Client with `notify=True` enqueues a
        job for its queue; polling every `wake_interval` continues, so jobs enqueued by
        Ruby or Go (which never notify) are still found. `max_retries=N` sets a job aside
        (run_at 9999-12-31, see Client.dead_jobs) when it fails after N retries.

        `batch=K` (opt in) claims up to K jobs per round trip, each with its own advisory
        lock, and runs them one after another: Ruby and Go workers see K locked jobs. A job
        waits, locked, while the ones before it in its batch run."""
        if client.dialect() == dialect.QUE_2:
            raise ValueError(ONE_AT_A_TIME_IS_QUE_0)
        self.client = client
        self.handlers = handlers
        self.queue = _validate.queue(queue)
        self.wake_interval = check_wake_interval(wake_interval)
        self.reconnect_max = check_wake_interval(reconnect_max, "reconnect_max")
        self.max_retries = _validate.max_retries(max_retries)
        self.batch = check_batch(batch)
        self.listen = listen
        self.fatal: BaseException | None = None
        self.jobs_worked = 0
        self.jobs_errored = 0
        self._conn: psycopg.Connection[Any] | None = None
        self._session: Session | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # Finishes sent without waiting for their results (batches), read by the next claim.
        self._sent: list[Finish] = []

    def __repr__(self) -> str:
        return f"<que.Worker queue={self.queue!r}>"

    @property
    def backend_pid(self) -> int | None:
        """The server process of this worker's connection, if it has one."""
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.pgconn.backend_pid)

    def is_alive(self) -> bool:
        """Whether the thread started by start() is still running."""
        return self._thread is not None and self._thread.is_alive()

    # -- the connection -------------------------------------------------------------

    def _open(self) -> tuple[psycopg.Connection[Any], Session]:
        if self._conn is None or self._session is None or self._conn.closed:
            self._conn, self._session = open_session(self.client, f"que worker {self.queue!r}", self.listen)
        return self._conn, self._session

    def _drop_connection(self) -> None:
        """Close the connection: this also ends every lock its session held."""
        conn, self._conn, self._session = self._conn, None, None
        if conn is not None and not conn.closed:
            conn.close()

    def _run(self, gen: PQGen[Any]) -> Any:
        assert self._conn is not None
        return wait(gen, self._conn.pgconn.socket)

    # -- one job ------------------------------------------------------------------

    def work_one(self) -> bool:
        """Lock and run the next due job, then finish and release it; False when none was
        due. Database errors are raised (work() retries them); no lock outlives them."""
        try:
            _, session = self._open()
            held = self._run(_protocol.lock(session, self.queue))
            if held is None:
                log.debug("job_unavailable queue=%r", self.queue, extra={"event": "job_unavailable"})
                return False
            self._run(_protocol.finish(session, self._call(session, held)))
            return True
        except BaseException:
            if self._session is not None and not self._session.usable():
                self._drop_connection()
            raise

    def _call(self, session: Session, held: Locked, running: Sequence[Locked] = ()) -> Finish:
        """Run the job's handler; how the job must end. An interrupt (KeyboardInterrupt,
        SystemExit) leaves the row as Ruby leaves it, releases the job and the `running`
        ones held with it, and goes on."""
        job = held.job
        started = time.monotonic()
        try:
            failure = _handlers.call(self.handlers, job)
        except INTERRUPTS:
            try:
                self._run(_protocol.release(session, self._sent, [held, *running]))
            except psycopg.Error:
                self._drop_connection()
            raise
        _handlers.log_finished(job, failure, time.monotonic() - started)
        if failure is None:
            self.jobs_worked += 1
            return Finish(held, max_retries=self.max_retries)
        self.jobs_errored += 1
        return Finish.failure(held, last_error_text(failure), self.max_retries)

    # -- the loop -----------------------------------------------------------------

    def work(self) -> None:
        """Run until `request_stop()`: drain, wait wake_interval, repeat."""
        failures = 0
        held: list[Locked] = []
        try:
            while not self._stop.is_set():
                try:
                    _, session = self._open()
                    if self.batch > 1:
                        worked = self._work_batch(session)
                        failures = 0
                        if not worked:
                            self._idle(session)
                        continue
                    if not held:
                        held = self._run(_protocol.claim(session, self.queue, 1))
                    if not held:
                        failures = 0
                        self._idle(session)
                        continue
                    done = self._call(session, held[0])
                    if self._stop.is_set():
                        held = []
                        self._run(_protocol.finish(session, done))
                    else:
                        # The finish travels with the next claim: one round trip per job.
                        held = self._run(_protocol.claim(session, self.queue, 1, done=[done]))
                    failures = 0
                except (*INTERRUPTS, TransactionPoolingError) as stop:
                    self.fatal = stop
                    raise
                except Exception as error:
                    held, self._sent = [], []  # dropping the connection ends its locks
                    self._drop_connection()
                    failures += 1
                    self._sleep(self._backoff(failures, error))
        finally:
            last = self._session
            if self._sent and last is not None and last.pgconn.status == pq.ConnStatus.OK:
                with contextlib.suppress(psycopg.Error):
                    self._run(_protocol.release(last, self._sent))
            self._sent = []
            self._drop_connection()

    def _work_batch(self, session: Session) -> bool:
        """The batched claim: claim up to `batch` jobs in one round trip (it also reads the
        results of the previous batch's finishes and releases those jobs), then run them in
        order. Each job's delete or error is sent the moment its handler returns, without
        waiting for the result (read after the next handler, see send_finish), so a lost
        session re-runs only the job in flight and at most one whose finish it was sending.
        Returns whether any job was due."""
        held = self._run(_protocol.claim(session, self.queue, self.batch, sent=self._sent))
        self._sent = []
        for index, locked in enumerate(held):
            if self._stop.is_set():
                self._run(_protocol.release(session, self._sent, held[index:]))
                self._sent = []
                return True
            if not _protocol.alive(session):
                raise psycopg.OperationalError("the session ended mid-batch: its jobs' locks ended with it")
            finish = self._call(session, locked, held[index + 1 :])
            failed = self._run(_protocol.send_finish(session, finish, self._sent))
            self._sent = [*(sent for sent in self._sent if sent not in failed), finish]
        return bool(held)

    def _backoff(self, failures: int, error: Exception) -> float:
        return backoff(failures, self.reconnect_max, error)

    def _idle(self, session: Session) -> None:
        """Wait until the wake interval ends, wake() or request_stop(), or (listening) a
        notification for this worker's queue. A notification that arrived while the worker
        was busy wakes it once more: one spare lock attempt, never a lost job."""
        if not self.listen:
            self._sleep(self.wake_interval)
            return
        assert self._conn is not None
        deadline = time.monotonic() + self.wake_interval
        while not self._wake.is_set() and (left := deadline - time.monotonic()) > 0:
            # Short slices keep request_stop() and wake() responsive while listening.
            if readable(self._conn.pgconn.socket, min(left, 0.05)) and listening.notified(session, self.queue):
                break
        self._wake.clear()

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def wake(self) -> None:
        """Look for jobs now rather than at the end of the current wait."""
        self._wake.set()

    def request_stop(self) -> None:
        """Ask the worker to stop after its current job, without waiting."""
        self._stop.set()
        self._wake.set()

    def _main(self) -> None:
        try:
            self.work()
        except BaseException as error:
            if self.fatal is None:
                self.fatal = error
                log.exception("worker_died", extra={"event": "worker_died"})

    def start(self) -> "Worker":
        """Run `work()` in a daemon thread, so a hung handler never keeps the process alive."""
        if self.is_alive():
            raise RuntimeError("worker already started")
        self._stop.clear()
        self.fatal = None
        self._thread = threading.Thread(target=self._main, name=f"que-worker-{id(self):x}", daemon=True)
        self._thread.start()
        return self

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop after the current job; True when the worker has stopped in time. When it
        returns False the handler is still running in its daemon thread (see the class)."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_alive()
