"""Driving que._session's generators: select() for threads, the event loop for asyncio.

A generator yields what it waits for on the connection's socket (READ, WRITE or both)
and is sent what became ready. Nothing else differs between the sync and async APIs.
"""

import asyncio
import select
from typing import TypeVar

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


async def wait_async(gen: PQGen[T], fileno: int) -> T:
    """Run `gen` to its end on the running event loop.

    If the awaiting task is cancelled mid-statement the connection is left in an unknown
    state: its owner must close it (which also ends the session's job locks).
    """
    loop = asyncio.get_running_loop()
    try:
        waiting = next(gen)
        while True:
            ready = loop.create_future()

            def wake(state: int, ready: asyncio.Future[int] = ready) -> None:
                if not ready.done():
                    ready.set_result(state)

            if waiting & READ:
                loop.add_reader(fileno, wake, READ)
            if waiting & WRITE:
                loop.add_writer(fileno, wake, WRITE)
            try:
                state = await ready
            finally:
                if waiting & READ:
                    loop.remove_reader(fileno)
                if waiting & WRITE:
                    loop.remove_writer(fileno)
            waiting = gen.send(state)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


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
