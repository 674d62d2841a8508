"""Driving que._session's generators: select() for threads, the event loop for asyncio.

A generator yields what it waits for on the connection's socket (READ, WRITE or both)
and is sent what became ready. Nothing else differs between the sync and async APIs.
"""

import asyncio
import select
from typing import Any, TypeVar

from que._session import READ, WRITE, PQGen

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


class _Driver:
    """Runs a generator from the socket's reader and writer callbacks: each readiness
    advances it right there, and the awaiting task is woken once, when it is done. (Waking
    the task for every step costs a second loop iteration per step.) The callbacks stay
    registered from one step to the next; registering costs syscalls and, in asyncio, a
    raised and caught KeyError."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fileno: int, gen: PQGen[T], done: asyncio.Future[T]) -> None:
        self.loop = loop
        self.fileno = fileno
        self.gen = gen
        self.done = done
        self.waiting = 0
        self.reading = False
        self.writing = False

    def start(self) -> None:
        try:
            self._want(next(self.gen))
        except StopIteration as finished:
            self._finish(finished.value)
        except Exception as failure:
            self._fail(failure)

    def step(self, ready: int) -> None:
        if self.done.done():  # cancelled: the generator is abandoned with its connection
            self.close()
            return
        if not ready & self.waiting:
            return
        try:
            self._want(self.gen.send(ready))
        except StopIteration as finished:
            self._finish(finished.value)
        except Exception as failure:
            self._fail(failure)

    def _want(self, waiting: int) -> None:
        self.waiting = waiting
        if bool(waiting & READ) != self.reading:
            self.reading = not self.reading
            if self.reading:
                self.loop.add_reader(self.fileno, self.step, READ)
            else:
                self.loop.remove_reader(self.fileno)
        if bool(waiting & WRITE) != self.writing:
            self.writing = not self.writing
            if self.writing:
                self.loop.add_writer(self.fileno, self.step, WRITE)
            else:
                self.loop.remove_writer(self.fileno)

    def _finish(self, value: Any) -> None:
        self.close()
        if not self.done.done():
            self.done.set_result(value)

    def _fail(self, failure: Exception) -> None:
        self.close()
        if not self.done.done():
            self.done.set_exception(failure)

    def close(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.fileno)
        if self.writing:
            self.loop.remove_writer(self.fileno)
        self.reading = self.writing = False


async def wait_async(gen: PQGen[T], fileno: int) -> T:
    """Run `gen` to its end on the running event loop.

    If the awaiting task is cancelled mid-statement the connection is left in an unknown
    state: its owner must close it (which also ends the session's job locks).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    driver = _Driver(loop, fileno, gen, done)
    driver.start()
    try:
        return await done
    finally:
        driver.close()


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
