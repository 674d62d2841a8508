"""The locker: one session that claims jobs for a pool of threads and holds their locks.

Que 0.x's lock is a session-level advisory lock, so Ruby Que 0.14 and que-go give every
worker a session of its own. Que 1.x showed the way out: one connection per process (the
locker) takes the locks of all the process's jobs, and the workers run them. Here the
locker keeps Que 0.14.3's statements, order and lock exactly (que.dialects.que0.protocol.claim): one
`pg_try_advisory_lock(job_id)` per job, taken in Que's walk order, check_job in a new
snapshot, the delete or error committed before the unlock, by the whole key. Ruby and Go
workers on the same table see nothing new; the server sees one session per pool.

Its round trip, whenever a worker finished a job or a poll is due:

    finish(each finished job) | SYNC | release(finished) + claim(free slots), check | SYNC

so a job's delete commits the moment its round trip runs, and a lost locker session
re-runs only the jobs that were running. It claims one job per idle thread plus a small
buffer (as Que 1.x does), so threads rarely wait for it; the buffer's jobs stay locked,
unstarted, meanwhile.
"""

import contextlib
import logging
import os
import select
import threading
import time
from typing import Any, Final

import psycopg

from que.client import Client
from que.core.errors import TransactionPoolingError
from que.dialects.que0 import listening as que0_listening
from que.dialects.que0.protocol import Finish, Locked
from que.drivers.waiting import wait
from que.engine import books as _ledger
from que.engine.books import Ledger
from que.engine.session import PQGen, Session
from que.worker import backoff, open_session

log = logging.getLogger("que")

DEFAULT_BUFFER: Final = 8


def check_buffer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"buffer must be an int, got {value!r}")
    if not 0 <= value <= 1000:
        raise ValueError(f"buffer must be between 0 and 1000 jobs, got {value}")
    return value


class Locker:
    """Claims jobs of one queue on one session for `workers` threads, which take them with
    `take()` and report with `done()`. Runs in a daemon thread of its own (`start()`)."""

    def __init__(
        self,
        client: Client,
        queue: str,
        workers: int,
        *,
        buffer: int = DEFAULT_BUFFER,
        wake_interval: float = 5.0,
        listen: bool = False,
        reconnect_max: float = 30.0,
    ) -> None:
        self.client = client
        self.queue = queue
        self.wake_interval = wake_interval
        self.listen = listen
        self.reconnect_max = reconnect_max
        self.ledger = Ledger(workers, check_buffer(buffer))
        self.fatal: BaseException | None = None
        self.claims = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._poll_now = True
        self._conn: psycopg.Connection[Any] | None = None
        self._session: Session | None = None
        self._thread: threading.Thread | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def __repr__(self) -> str:
        return f"<que.Locker queue={self.queue!r} workers={self.ledger.workers}>"

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.pgconn.backend_pid)

    # -- the threads' side ------------------------------------------------------------

    def take(self, timeout: float) -> Locked | None:
        """The next job to run, waiting up to `timeout` seconds; None when there is none,
        or the locker stops (its ready jobs then go back untouched)."""
        with self._cond:
            if not self.ledger.ready and not self._stopping:
                self._cond.wait(timeout)
            return None if self._stopping else self.ledger.take()

    def done(self, finish: Finish) -> None:
        """A thread's outcome for the job it ran: the locker finishes and releases it."""
        with self._cond:
            self.ledger.done(finish)
        self._poke()

    def interrupted(self, locked: Locked) -> None:
        """A handler raised KeyboardInterrupt or SystemExit: the row is left as it is."""
        with self._cond:
            self.ledger.interrupted(locked)
        self._poke()

    def wake(self) -> None:
        """Look for jobs now rather than at the next poll."""
        with self._cond:
            self._poll_now = True
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b".")

    # -- the locker's thread ----------------------------------------------------------

    def start(self) -> "Locker":
        if self.is_alive():
            raise RuntimeError("locker already started")
        self.fatal = None
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name=f"que-locker-{id(self):x}", daemon=True)
        self._thread.start()
        return self

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request_stop(self) -> None:
        """Claim no more; release the jobs no thread started, finish the running ones as
        they end, then close the session."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._poke()

    @property
    def stopping(self) -> bool:
        return self._stopping

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.is_alive()

    def _main(self) -> None:
        try:
            self._loop()
        except BaseException as error:
            self.fatal = error
            if not isinstance(error, TransactionPoolingError):
                log.exception("locker_died", extra={"event": "locker_died"})
        finally:
            self._drop_connection()
            with self._cond:
                self._stopping = True
                self._cond.notify_all()

    def _open(self) -> Session:
        if self._conn is None or self._session is None or self._conn.closed:
            self._conn, self._session = open_session(self.client, f"que locker {self.queue!r}", self.listen)
        return self._session

    def _drop_connection(self) -> None:
        conn, self._conn, self._session = self._conn, None, None
        if conn is not None and not conn.closed:
            conn.close()

    def _run(self, gen: PQGen[Any]) -> Any:
        assert self._conn is not None
        return wait(gen, self._conn.pgconn.socket)

    def _loop(self) -> None:
        failures = 0
        next_poll = 0.0
        while True:
            with self._cond:
                if self._stopping and not self.ledger.busy():
                    return
            try:
                session = self._open()
                next_poll = self._round(session, next_poll)
                failures = 0
                with self._cond:
                    if self._stopping and not self.ledger.busy():
                        return
                    # Polls are due only while there is room for jobs and the locker still claims.
                    room = self.ledger.want(self._stopping)
                self._idle(max(0.0, next_poll - time.monotonic()) if room else None, session)
            except TransactionPoolingError:
                raise
            except Exception as error:
                self._drop_connection()
                with self._cond:
                    self.ledger.session_lost()
                    self._cond.notify_all()
                failures += 1
                self._idle(backoff(failures, self.reconnect_max, error), None)

    def _round(self, session: Session, next_poll: float) -> float:
        """One round trip, if there is anything to do: finish, release, claim. Returns when
        the next poll is due."""
        with self._cond:
            due = self._poll_now or time.monotonic() >= next_poll
            self._poll_now = False
            planned = self.ledger.plan(self._stopping, due)
        if planned.idle():
            return next_poll
        try:
            claimed, written = self._run(_ledger.round_trip(session, self.queue, planned))
        except BaseException:
            with self._cond:
                self.ledger.unsent(planned)
            raise
        self.claims += 1
        with self._cond:
            drained = self.ledger.settle(planned, claimed, written, self._stopping)
            self._cond.notify_all()
        if drained:
            return time.monotonic() + self.wake_interval  # poll again later
        return time.monotonic()  # more may be due: claim as soon as there is room

    def _idle(self, timeout: float | None, session: Session | None) -> None:
        """Wait for a worker's outcome, a stop, the next poll, or (listening) a notification
        for the queue."""
        watched = [self._wake_r]
        listening = self.listen and session is not None and self._conn is not None
        if listening:
            assert self._conn is not None
            watched.append(self._conn.pgconn.socket)
        readable, _, _ = select.select(watched, [], [], timeout)
        if self._wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 4096):
                    pass
        if listening and len(readable) > (self._wake_r in readable):
            assert session is not None
            if que0_listening.notified(session, self.queue):
                with self._cond:
                    self._poll_now = True

    def close(self) -> None:
        """Free the wake-up pipe (after the locker's thread ended)."""
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
