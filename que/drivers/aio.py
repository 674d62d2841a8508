"""The asyncio driver: how que's asyncio shells wait, on the running event loop.

This module and que.drivers.threads are the one seam of the I/O axis: they offer the same
names (run, Channel, Waker, Gate, spawn, Handlers, caller_connection, now), and the sync
shells are generated from the asyncio ones by renaming this module to that one
(tools/async_to_sync.py). Everything above them is written once.

The engine's generators (que.engine.session) yield what they wait for on a connection's
socket and are sent what became ready; here the loop's reader and writer callbacks advance
them.
"""

import asyncio
import concurrent.futures
import contextlib
import contextvars
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg

from que.core import handlers as _handlers
from que.core.handlers import INTERRUPTS, Handler, Run
from que.drivers.daemon_threads import DaemonThreads
from que.engine.session import READ, WRITE, PQGen

T = TypeVar("T")


def now() -> float:
    """Monotonic seconds, the clock every deadline of the shells uses."""
    return time.monotonic()


class Channel:
    """One que-owned connection's socket on the event loop, for a worker or a locker that
    runs statement after statement on it: its reader callback stays registered from one
    statement to the next (registering costs two syscalls and asyncio's bookkeeping, once per
    job otherwise), and each readiness advances the running generator right in the callback;
    the awaiting task is woken once, when the generator is done.

    Between statements, what arrives (a notification, a server's goodbye) is read into libpq
    (`attach`), or, while idle() waits, wakes it. `close()` must be called before the
    connection closes.
    """

    def __init__(self, fileno: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.fileno = fileno
        self._on_idle: Callable[[], None] | None = None
        self._consume: Callable[[], None] | None = None
        self._gen: PQGen[Any] | None = None
        self._done: asyncio.Future[Any] | None = None
        self._waiting = 0
        self._reading = False
        self._writing = False

    def attach(self, consume: Callable[[], None]) -> None:
        """Start listening; `consume` reads what arrived between statements."""
        self._consume = consume
        self.loop.add_reader(self.fileno, self._on_read)
        self._reading = True

    async def run(self, gen: PQGen[T]) -> T:
        """Run `gen` to its end; cancelled mid-statement, the connection is left in an
        unknown state and its owner must close it."""
        if self._gen is not None:
            raise RuntimeError("a statement is already running on this connection")
        done: asyncio.Future[T] = self.loop.create_future()
        self._gen, self._done = gen, done
        try:
            self._advance(next(gen))
        except StopIteration as finished:
            self._end()
            return finished.value  # type: ignore[no-any-return]
        except BaseException:
            self._end(failed=True)
            raise
        try:
            return await done
        finally:
            if self._gen is gen:  # cancelled mid-statement
                self._end(failed=True)

    async def idle(self, waker: "Waker", timeout: float | None, watch: bool) -> bool:
        """Wait until woken, `timeout` seconds pass, or (`watch`) something arrives on the
        socket (a notification, the server's goodbye); True in that last case."""
        if waker.is_set():
            return False
        arrived = self.loop.create_future()

        def on_arrival() -> None:
            if not arrived.done():
                arrived.set_result(True)

        if watch:
            if not self._reading:
                self.loop.add_reader(self.fileno, self._on_read)
                self._reading = True
            self._on_idle = on_arrival
        woken = asyncio.ensure_future(waker.wait())
        try:
            await asyncio.wait({woken, arrived}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            self._on_idle = None
        return arrived.done() and not arrived.cancelled()

    def _advance(self, waiting: int) -> None:
        self._waiting = waiting
        if waiting & READ and not self._reading:
            self.loop.add_reader(self.fileno, self._on_read)
            self._reading = True
        if bool(waiting & WRITE) != self._writing:
            self._writing = not self._writing
            if self._writing:
                self.loop.add_writer(self.fileno, self._on_write)
            else:
                self.loop.remove_writer(self.fileno)

    def _on_read(self) -> None:
        if self._gen is None:
            self._idle_read()
        elif self._waiting & READ:
            self._step(READ)

    def _on_write(self) -> None:
        if self._gen is not None and self._waiting & WRITE:
            self._step(WRITE)

    def _step(self, ready: int) -> None:
        gen, done = self._gen, self._done
        assert gen is not None and done is not None
        if done.done():  # cancelled: the generator is abandoned with its connection
            self._end(failed=True)
            return
        try:
            self._advance(gen.send(ready))
        except StopIteration as finished:
            self._end()
            done.set_result(finished.value)
        except BaseException as failure:
            self._end(failed=True)
            done.set_exception(failure)

    def _end(self, failed: bool = False) -> None:
        """The statement is over. After a failure the connection may be gone, and libpq
        closes its socket when it finds the connection broken: the loop lets go of the file
        number right away, before another task may open a socket that gets it."""
        self._gen = self._done = None
        self._waiting = 0
        if self._writing:
            self.loop.remove_writer(self.fileno)
            self._writing = False
        if failed:
            self._stop_reading()

    def _idle_read(self) -> None:
        if self._on_idle is not None:
            self._on_idle()
            self._stop_reading_unless_attached()
            return
        try:
            if self._consume is not None:
                self._consume()
            else:
                self._stop_reading()
        except Exception:  # a broken connection: the next statement finds out
            self._stop_reading()

    def _stop_reading_unless_attached(self) -> None:
        if self._consume is None:
            self._stop_reading()

    def _stop_reading(self) -> None:
        if self._reading:
            self.loop.remove_reader(self.fileno)
            self._reading = False

    def close(self) -> None:
        """Forget the socket (before its connection closes: the loop must not watch a file
        number the system may give to another socket)."""
        self._stop_reading()
        if self._writing:
            self.loop.remove_writer(self.fileno)
            self._writing = False
        if self._done is not None and not self._done.done():
            self._done.cancel()
        self._gen = self._done = None


async def run(gen: PQGen[T], fileno: int) -> T:
    """Run `gen` to its end on the running event loop, for a connection that is not a
    worker's (the socket is watched for this call only). Cancelled mid-statement, the
    connection is left in an unknown state: its owner must close it (which also ends the
    session's job locks)."""
    channel = Channel(fileno)
    try:
        return await channel.run(gen)
    finally:
        channel.close()


class Waker:
    """Wakes a task waiting in Channel.idle() or Waker.sleep(): an asyncio.Event, set from
    the loop's thread or (call_soon_threadsafe) from any other."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def wake(self) -> None:
        if self._event.is_set():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._event.set)

    def is_set(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()

    @property
    def closed(self) -> bool:
        return False

    async def wait(self) -> None:
        await self._event.wait()

    async def sleep(self, seconds: float) -> None:
        """Up to `seconds`, or until woken."""
        if not self._event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), max(0.0, seconds))
        self._event.clear()

    def close(self) -> None:
        """Nothing to free."""


class Gate:
    """A locker's books need no lock on one loop (`with gate:` does nothing); a task waits
    for a change (wait_for) that ring() announces."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    def ring(self) -> None:
        self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until `predicate()` holds or `timeout` passes; the predicate's last value."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not predicate():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return predicate()
        return True


class Handle:
    """A member's task on the running loop."""

    def __init__(self, target: Callable[[], Any], name: str) -> None:
        self.task: asyncio.Task[None] = asyncio.get_running_loop().create_task(target(), name=name)

    def is_alive(self) -> bool:
        return not self.task.done()

    async def join(self, timeout: float | None = None) -> bool:
        """Wait for the task to end; whether it did within `timeout`."""
        if self.task is asyncio.current_task():
            return False
        done, _ = await asyncio.wait({self.task}, timeout=timeout)
        return bool(done)

    def cancel(self) -> None:
        self.task.cancel()


def spawn(target: Callable[[], Any], name: str) -> Handle:
    return Handle(target, name)


def being_cancelled() -> bool:
    """Whether the running task itself was asked to stop (not just a CancelledError raised
    by the code it ran)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _in_thread(handler: Handler, args: tuple[Any, ...], kwargs: dict[str, Any]) -> BaseException | None:
    """A plain handler's run in a thread; what it raised comes back as a value, because some
    BaseExceptions (GeneratorExit) cannot be caught once raised through a future."""
    try:
        handler(*args, **kwargs)
    except BaseException as failure:
        return failure
    return None


class Handlers:
    """Calling handlers from the loop: `async def` ones awaited on it, plain ones run in a
    thread of `executor` (daemon threads: que.drivers.daemon_threads), so a blocking handler
    never stalls the loop. Whether a handler is async is asked once per handler."""

    def __init__(self, handlers: Mapping[str, Handler], executor: concurrent.futures.Executor | None = None) -> None:
        self.handlers = handlers
        self.executor = executor
        # is_async() of each handler seen (by id: a handler need not be hashable)
        self._awaitable: dict[int, tuple[Handler, bool]] = {}

    async def call(
        self,
        run: Run,
        cut_short: Callable[[concurrent.futures.Future[BaseException | None]], None] | None = None,
    ) -> BaseException | None:
        """Run the job's handler; its failure, or None. Interrupts and this task's own
        cancellation propagate; a CancelledError the handler raised itself is a failure. When
        the task is cancelled while a plain handler runs on in its thread, that thread's
        future goes to `cut_short` (the job must keep its lock till it ends)."""
        job = run.job
        with run:
            try:
                handler = _handlers.find(self.handlers, job)
                args = _handlers.arguments(job)
                kwargs = _handlers.keywords(job)
                seen = self._awaitable.get(id(handler))
                if seen is None or seen[0] is not handler:
                    seen = self._awaitable[id(handler)] = (handler, _handlers.is_async(handler))
                if seen[1]:
                    await handler(*args, **kwargs)
                else:
                    if self.executor is None:
                        self.executor = DaemonThreads(1)
                    context = contextvars.copy_context()  # current_job() works in the thread too
                    running = self.executor.submit(context.run, _in_thread, handler, args, kwargs)
                    try:
                        outcome = await asyncio.wrap_future(running)
                    except asyncio.CancelledError:
                        if not running.done() and cut_short is not None:
                            cut_short(running)
                        raise
                    if outcome is not None:
                        raise outcome
            except INTERRUPTS:
                raise
            except asyncio.CancelledError as failure:
                if being_cancelled():
                    raise
                return failure
            except BaseException as failure:
                return failure
        return None


async def caller_connection(conn: object) -> psycopg.AsyncConnection[Any]:
    """The psycopg connection under what a caller passed as `conn=`: a psycopg
    AsyncConnection or AsyncTransaction, or a SQLAlchemy AsyncSession or AsyncConnection
    (psycopg dialect)."""
    if isinstance(conn, psycopg.AsyncTransaction):
        return conn.connection
    if isinstance(conn, psycopg.AsyncConnection):
        return conn
    if type(conn).__module__.startswith("sqlalchemy"):
        sa_connection: Any = await conn.connection() if callable(getattr(conn, "connection", None)) else conn  # type: ignore[attr-defined]
        raw = (await sa_connection.get_raw_connection()).driver_connection
        if isinstance(raw, psycopg.AsyncConnection):
            return raw
    raise TypeError(
        "conn must be a psycopg AsyncConnection or AsyncTransaction, or a SQLAlchemy AsyncSession or "
        f"AsyncConnection on psycopg 3, got {conn!r}"
    )


async def readable(fileno: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for something to read on `fileno`."""
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(True)

    loop.add_reader(fileno, wake)
    try:
        return await asyncio.wait_for(asyncio.shield(ready), timeout)
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fileno)
