"""The asyncio driver's waiting, re-exported by que.drivers.aio (the driver's one face):
Channel, a que-owned connection's socket kept on the event loop across statements, and
Waker, which ends a wait in Channel.idle() or Waker.sleep()."""

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from que.engine.session import READ, WAKE, WRITE, PQGen

T = TypeVar("T")


class Waker:
    """Wakes a task waiting in Channel.idle() or Waker.sleep(): an asyncio.Event, set from
    the loop's thread or (call_soon_threadsafe) from any other."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        # A Channel running a statement that waits for WAKE: told, on the loop, when woken.
        self.hook: Callable[[], None] | None = None

    def wake(self) -> None:
        if self._event.is_set():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._set)

    def _set(self) -> None:
        self._event.set()
        if self.hook is not None:
            self._loop.call_soon(self.hook)

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
        self._waker: Waker | None = None

    def attach(self, consume: Callable[[], None]) -> None:
        """Start listening; `consume` reads what arrived between statements."""
        self._consume = consume
        self.loop.add_reader(self.fileno, self._on_read)
        self._reading = True

    async def run(self, gen: PQGen[T], waker: "Waker | None" = None) -> T:
        """Run `gen` to its end; cancelled mid-statement, the connection is left in an
        unknown state and its owner must close it. With a `waker`, a wait for WAKE also
        ends when it is woken (and clears it)."""
        if self._gen is not None:
            raise RuntimeError("a statement is already running on this connection")
        done: asyncio.Future[T] = self.loop.create_future()
        self._gen, self._done = gen, done
        self._waker = waker
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
        waker = self._waker
        if waker is not None:
            waker.hook = self._on_wake if waiting & WAKE else None
            if waiting & WAKE and waker.is_set():
                self.loop.call_soon(self._on_wake)
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

    def _on_wake(self) -> None:
        waker = self._waker
        if self._gen is not None and self._waiting & WAKE and waker is not None and waker.is_set():
            waker.clear()
            self._step(WAKE)

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
        if self._waker is not None:
            self._waker.hook = None
            self._waker = None
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
        if self._waker is not None:
            self._waker.hook = None
            self._waker = None
