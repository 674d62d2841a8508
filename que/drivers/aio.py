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
import contextvars
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg

from que.core import handlers as _handlers
from que.core.handlers import INTERRUPTS, Handler, Run

# The loop's waiting (Channel, Waker) is in a module of its own; this one is the driver's face.
from que.drivers.aio_channel import Channel as Channel
from que.drivers.aio_channel import Waker as Waker
from que.drivers.daemon_threads import DaemonThreads
from que.engine.session import PQGen

T = TypeVar("T")


def now() -> float:
    """Monotonic seconds, the clock every deadline of the shells uses."""
    return time.monotonic()


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
