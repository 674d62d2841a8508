"""AsyncLocker: one session that locks jobs for a pool's workers and holds their locks, in
every dialect; the tasks that run those jobs are que.shells.runner_async's AsyncRunner.
This asyncio form is the source: que.shells.locker (Locker, threads) is generated from it.

Ruby Que 1.x and 2.x work this way (one locker per process, registered in que_lockers); Que
0.14 and que-go give every worker a session of its own, so a pool of 64 workers is 64 server
sessions there, and one here. The locker keeps the books (que.engine.books) and turns each
plan into one pipelined round trip of its dialect's statements (que.dialects): outcomes
written, then their jobs released, then places filled and waiting jobs checked again:

    plan -> the dialect's round trip (one exchange with the server) -> settle
Ruby and Go workers on the same table see what they always see: the same statements, locks
and order. Handlers hold no connection: the locker's session writes each outcome, while it
still holds the job's lock, before it releases the job. Cut short (its task cancelled
while plain handlers still run in their threads), the locker hands its connection to a
daemon thread that waits for those handlers, writes their outcomes and the ones already
known, releases every other job untouched and closes the session, so no job a handler
still runs loses its lock. If the process exits first, those jobs run again later.
"""
# sync-doc: Locker: one session that locks jobs for a pool's workers and holds their locks, in
# sync-doc: every dialect; the threads that run those jobs are que.shells.runner's Runner.
# sync-doc:
# sync-doc: Generated from que.shells.locker_async (AsyncLocker).
# sync-doc:
# sync-doc: Ruby Que 1.x and 2.x work this way (one locker per process, registered in que_lockers); Que
# sync-doc: 0.14 and que-go give every worker a session of its own, so a pool of 64 workers is 64 server
# sync-doc: sessions there, and one here. The locker keeps the books (que.engine.books) and turns each
# sync-doc: plan into one pipelined round trip of its dialect's statements (que.dialects): outcomes
# sync-doc: written, then their jobs released, then places filled and waiting jobs checked again:
# sync-doc:
# sync-doc:     plan -> the dialect's round trip (one exchange with the server) -> settle
# sync-doc:
# sync-doc: Ruby and Go workers on the same table see what they always see: the same statements, locks
# sync-doc: and order. Handlers hold no connection: the locker's session writes each outcome, while it
# sync-doc: still holds the job's lock, before it releases the job.

import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any, Self

import psycopg

from que.core import hooks as _hooks
from que.core.errors import TransactionPoolingError
from que.core.handlers import INTERRUPTS
from que.core.outcome import Outcome
from que.dialects import Dialect
from que.drivers import aio as io
from que.engine.books import Books
from que.engine.rounds import Finished, Held
from que.engine.session import Session
from que.shells import sessions_async
from que.shells.client_async import AsyncClient
from que.shells.common import FRESH_FOR, backoff, check_buffer

if True:  # ASYNC
    import asyncio
    import threading

    from que.drivers.threads import run as run_in_thread

log = logging.getLogger("que")


class AsyncLocker:
    """Locks the jobs of one queue on one session for the workers whose priorities it is
    given (None: any job), which take them with `take()` and report with `done()`."""

    def __init__(
        self,
        client: AsyncClient,
        dialect: Dialect,
        queue: str,
        priorities: Sequence[int | None],
        *,
        buffer: int | None = None,
        wake_interval: float = 5.0,
        listen: bool | None = None,
        max_retries: int | None = None,
        reconnect_max: float = 30.0,
        fresh_for: float = FRESH_FOR,
    ) -> None:
        self.client = client
        self.dialect = dialect
        self.queue = queue
        self.wake_interval = wake_interval
        self.listen = dialect.default_listen if listen is None else listen
        self.max_retries = dialect.default_max_retries if max_retries is None else max_retries
        self.reconnect_max = reconnect_max
        size = dialect.default_buffer if buffer is None else check_buffer(buffer)
        self.books = Books(priorities, size, growth=dialect.growth, fresh_for=fresh_for)
        self.fatal: BaseException | None = None
        self.claims = 0
        self.stopping = False
        self._poll_now = True
        self._rounds = 0
        self._woken = False  # a round trip took the waker's signal (_express)
        self._gate = io.Gate()
        self._waker: io.Waker | None = None
        self._handle: io.Handle | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._session: Session | None = None
        self._channel: io.Channel | None = None
        # asyncio: plain handlers whose task was cancelled while their thread ran, by job id.
        self._threads: dict[int, tuple[Held, int | None, concurrent.futures.Future[BaseException | None]]] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.dialect.name} queue={self.queue!r} workers={len(self.books.priorities)}>"

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else int(conn.pgconn.backend_pid)

    # -- the workers' side ------------------------------------------------------------

    async def take(self, priority: int | None, timeout: float = 1.0) -> Held | None:
        """The next job a worker of `priority` may run, waiting up to `timeout` seconds for
        one; None when there is none, or the locker stops."""
        asked = io.now()
        deadline = asked + timeout
        while True:
            with self._gate:
                if self.stopping:
                    return None
                held = self.books.take(priority, asked)
                stale = self.books.stale_wanted
                seen = self._rounds
            if held is not None:
                return held
            if stale:
                self._wake()  # a job waits for its check
            left = deadline - io.now()
            if left <= 0:
                return None

            def changed(seen: int = seen) -> bool:
                return self._rounds != seen or self.stopping

            await self._gate.wait_for(changed, left)

    def done(self, held: Held, priority: int | None, outcome: Outcome) -> None:
        """A worker's outcome for the job it ran: the locker writes it and releases the job."""
        with self._gate:
            self.books.done(held, priority, outcome)
        self._wake()

    def interrupted(self, held: Held, priority: int | None) -> None:
        """A handler raised KeyboardInterrupt or SystemExit: the row is left as it is."""
        with self._gate:
            self.books.interrupted(held, priority)
        self._wake()

    def still_running(
        self, held: Held, priority: int | None, thread: concurrent.futures.Future[BaseException | None]
    ) -> None:
        """A task was cancelled while its plain handler runs on in `thread` (asyncio): the job
        keeps its lock until the handler ends (see the module)."""
        self._threads[held.job_id] = (held, priority, thread)

    def wake(self) -> None:
        """Look for jobs now rather than at the next poll."""
        with self._gate:
            self._poll_now = True
        self._wake()

    def _wake(self) -> None:
        waker = self._waker
        if waker is not None:
            waker.wake()

    # -- the locker's own work ------------------------------------------------------------

    def start(self) -> Self:
        if self.is_alive():
            raise RuntimeError("locker already started")
        self.fatal = None
        self.stopping = False
        self._poll_now = True
        self._waker = io.Waker()
        self._handle = io.spawn(self._main, f"que-locker-{id(self):x}")
        return self

    def is_alive(self) -> bool:
        return self._handle is not None and self._handle.is_alive()

    def request_stop(self) -> None:
        """Lock no more; release the jobs no worker started, write the running ones' outcomes
        as they end, then close the session."""
        with self._gate:
            self.stopping = True
        self._gate.ring()
        self._wake()

    async def join(self, timeout: float | None = None) -> bool:
        if self._handle is None:
            return True
        return await self._handle.join(timeout)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()

    async def _main(self) -> None:
        try:
            await self._loop()
        except BaseException as error:
            if True:  # ASYNC
                if isinstance(error, asyncio.CancelledError):
                    self._hand_over()
                    raise
            self.fatal = error
            if not isinstance(error, TransactionPoolingError):
                log.exception("locker_died", extra={"event": "locker_died"})
        finally:
            await self._drop_connection()
            with self._gate:
                self.stopping = True
                self._rounds += 1
            self._gate.ring()
            if self._waker is not None:
                self._waker.close()

    async def _open(self) -> Session:
        if self._conn is not None and not self._conn.closed and self._session is not None:
            return self._session
        await self._drop_connection()
        conn = await self.client.connect(application_name=f"que locker {self.queue!r}")
        channel = io.Channel(conn.pgconn.socket)
        try:
            session = self.dialect.session(conn.pgconn)
            await channel.run(self.dialect.start_locker(session, self.queue, self.books.priorities, self.listen))
        except BaseException:
            await sessions_async.close(conn, channel)
            raise
        self._conn, self._session, self._channel = conn, session, channel
        return session

    async def _drop_connection(self) -> None:
        conn, self._conn, self._session = self._conn, None, None
        channel, self._channel = self._channel, None
        await sessions_async.close(conn, channel)

    async def _loop(self) -> None:
        waker = self._waker
        assert waker is not None
        failures = 0
        next_poll = 0.0
        while True:
            with self._gate:
                if self.books.settled(self.stopping):
                    break
            try:
                session = await self._open()
                next_poll = await self._round(session, next_poll)
                failures = 0
                # A notification the server sent during the round trip was read, and queued
                # by libpq, with its results: the socket will not announce it again.
                if self._take_notified(session):
                    continue
                with self._gate:
                    if self.books.settled(self.stopping):
                        break
                    # Polls are due only while there are places to fill.
                    room = bool(self.books.wanted(self.stopping))
                    # Work the round trip left (jobs its push released) is done at once.
                    at_once = self.books.stale_wanted or self.books.pending() or self._woken
                    self._woken = False
                timeout = 0.0 if at_once else (max(0.0, next_poll - io.now()) if room else None)
                assert self._channel is not None
                # The socket is watched even when not listening: a session the server ended
                # is noticed at once, before a worker takes a job whose lock died with it.
                arrived = await self._channel.idle(waker, timeout, watch=True)
                waker.clear()
                if arrived:
                    self._take_notified(session)
            except TransactionPoolingError:
                raise
            except Exception as error:
                await self._drop_connection()
                lost: list[int] | None = None
                with self._gate:
                    self.books.session_lost()
                    self._rounds += 1
                    if self.stopping:
                        # Asked to stop while the server cannot be reached: the outcomes not
                        # written yet are given up (their locks died with the session; the
                        # jobs run again later), so a stop never waits for the server.
                        lost = self.books.give_up()
                self._gate.ring()
                if lost is not None:
                    event = {"event": "outcomes_not_written", "job_ids": lost}
                    log.warning("outcomes_not_written job_ids=%s error=%s", lost, error, extra=event)
                    return
                failures += 1
                await waker.sleep(backoff(failures, self.reconnect_max, error))
        if self._session is not None and self._channel is not None:
            with contextlib.suppress(psycopg.Error):
                await self._channel.run(self.dialect.stop_locker(self._session))

    def _take_notified(self, session: Session) -> bool:
        """Book what the session's notifications ask for (a poll, announced jobs); whether
        any did. Raises when reading them found the session ended."""
        poll, announced = self.dialect.notified(session, self.queue)
        if session.pgconn.status != psycopg.pq.ConnStatus.OK:
            raise psycopg.OperationalError("the locker's session ended")
        with self._gate:
            self.books.announce(announced)
            self._poll_now = self._poll_now or poll
        return poll or bool(announced)

    async def _round(self, session: Session, next_poll: float) -> float:
        """One round trip, if there is anything to do; when the next poll is due."""
        with self._gate:
            due = self._poll_now or io.now() >= next_poll
            self._poll_now = False
            planned = self.books.plan(io.now(), self.stopping, due)
        if planned.idle():
            return next_poll
        assert self._channel is not None
        try:
            planned.express = self._express
            trip = self.dialect.round_trip(session, self.queue, planned, self.max_retries)
            settled = await self._channel.run(trip, self._waker)
        except BaseException:
            with self._gate:
                self.books.unsent(planned)
            raise
        self.claims += 1
        with self._gate:
            filled = self.books.settle(planned, settled, self.stopping)
            self._rounds += 1
        self._gate.ring()
        if not planned.wanted:
            return next_poll
        # A poll that got all it asked for is followed by another as soon as there is room
        # (more may be due); one that did not waits the interval, as Ruby's poller does.
        return io.now() if filled else io.now() + self.wake_interval

    def _express(self) -> list[Finished]:
        """The round trip in flight was woken: the outcomes to send on it (Books.express);
        the loop then looks at the books again at once."""
        with self._gate:
            self._woken = True
            return self.books.express()

    if True:  # ASYNC

        def _hand_over(self) -> None:
            """The locker's task is cancelled: its connection goes to a daemon thread that
            waits for the plain handlers still running, writes every known outcome, releases
            the rest untouched and closes the session (see the module)."""
            conn, session, channel = self._conn, self._session, self._channel
            self._conn = self._session = self._channel = None
            if channel is not None:
                channel.close()
            if conn is None or conn.closed or session is None or not session.usable():
                return
            threads = dict(self._threads)
            self._threads.clear()
            books = self.books
            finished = list(books.finished)
            untouched = [
                *books.waiting_jobs(),
                *books.abandoned,
                *(held for job_id, held in books.running.items() if job_id not in threads),
            ]
            books.finished, books.abandoned = [], []
            books.clear_waiting()
            books.running.clear()
            dialect, queue, max_retries = self.dialect, self.queue, self.max_retries

            def finish_in_thread() -> None:
                try:
                    outcomes = list(finished)
                    for held, _, future in threads.values():
                        failure = future.exception() or future.result()
                        if isinstance(failure, INTERRUPTS):
                            untouched.append(held)
                            continue
                        ended = dialect.outcome(held.job, failure, None, max_retries)
                        outcomes.append(Finished(held, ended))
                        _hooks.ended(held.job, ended, 0.0, failure)
                    planned = books.plan(time.monotonic(), True, False)
                    planned.finished, planned.abandoned = outcomes, untouched
                    planned.relock, planned.recheck, planned.wanted = [], [], {}
                    if not planned.idle():
                        run_in_thread(dialect.round_trip(session, queue, planned, max_retries), conn.pgconn.socket)
                except Exception:
                    log.exception("handover_failed", extra={"event": "handover_failed"})
                finally:
                    conn.pgconn.finish()

            threading.Thread(target=finish_in_thread, name="que-locker-handover", daemon=True).start()
