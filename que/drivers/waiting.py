"""Driving que.engine.session's generators: select() for threads, the event loop for asyncio.

A generator yields what it waits for on the connection's socket (READ, WRITE or both)
and is sent what became ready. Nothing else differs between the sync and async APIs.
"""

import asyncio
import select
from collections.abc import Callable
from typing import Any, TypeVar

from que.engine.session import READ, WRITE, PQGen

T = TypeVar("T")


def wait(gen: PQGen[T], fileno: int) -> T:
    """Run `gen` to its end, blocking the calling thread (the GIL is released in select)."""
    try:
        waiting = next(gen)
        while True:
            readable, writable, _ = select.select(
                [fileno] if waiting & READ else [], [fileno] if waiting & WRITE else [], []
            )
            waiting = gen.send((READ if readable else 0) | (WRITE if writable else 0))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def readable(fileno: int, timeout: float) -> bool:
    """Wait up to `timeout` seconds for something to read."""
    found, _, _ = select.select([fileno], [], [], timeout)
    return bool(found)


class Channel:
    """One que-owned connection's socket on the event loop, for a worker that runs
    statement after statement on it: its reader callback stays registered from one
    statement to the next (registering costs two syscalls and asyncio's bookkeeping, once
    per job otherwise), and each readiness advances the running generator right in the
    callback; the awaiting task is woken once, when the generator is done.

    Between statements, what arrives (a notification, a server's goodbye) is read into
    libpq, or handed to `on_idle` when set, so a level-triggered readiness cannot spin.
    `close()` must be called before the connection closes.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fileno: int) -> None:
        self.loop = loop
        self.fileno = fileno
        self.on_idle: Callable[[], None] | None = None
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
        closes its socket when it finds the connection broken: the loop lets go of the
        file number right away, before another task may open a socket that gets it."""
        self._gen = self._done = None
        self._waiting = 0
        if self._writing:
            self.loop.remove_writer(self.fileno)
            self._writing = False
        if failed:
            self._stop_reading()

    def _idle_read(self) -> None:
        if self.on_idle is not None:
            self.on_idle()
            return
        try:
            if self._consume is not None:
                self._consume()
        except Exception:  # a broken connection: the next statement finds out
            self._stop_reading()

    def _stop_reading(self) -> None:
        if self._reading:
            self.loop.remove_reader(self.fileno)
            self._reading = False

    def close(self) -> None:
        """Forget the socket (before its connection closes: the loop must not watch a
        file number the system may give to another socket)."""
        self._stop_reading()
        if self._writing:
            self.loop.remove_writer(self.fileno)
            self._writing = False
        if self._done is not None and not self._done.done():
            self._done.cancel()
        self._gen = self._done = None


async def wait_async(gen: PQGen[T], fileno: int) -> T:
    """Run `gen` to its end on the running event loop, for a connection that is not a
    worker's (the socket is watched for this call only).

    If the awaiting task is cancelled mid-statement the connection is left in an unknown
    state: its owner must close it (which also ends the session's job locks).
    """
    channel = Channel(asyncio.get_running_loop(), fileno)
    try:
        return await channel.run(gen)
    finally:
        channel.close()


async def readable_async(fileno: int, timeout: float) -> bool:
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
