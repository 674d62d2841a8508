"""The thread driver: how que's sync shells wait, with select() and threads.

This module and que.drivers.aio are the one seam of the I/O axis: they offer the same
names (run, Channel, Waker, Gate, spawn, call_handler, caller_connection, now), and the sync
shells are generated from the asyncio ones by renaming one module to the other
(tools/async_to_sync.py). Everything above them is written once.

The engine's generators (que.engine.session) yield what they wait for on a connection's
socket (READ, WRITE or both) and are sent what became ready; here select() waits, in the
calling thread, with the GIL released.
"""

import contextlib
import os
import select
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg

from que.core import handlers as _handlers
from que.core.handlers import Handler, Run
from que.engine.session import READ, WAKE, WRITE, PQGen

T = TypeVar("T")


def now() -> float:
    """Monotonic seconds, the clock every deadline of the shells uses."""
    return time.monotonic()


def run(gen: PQGen[T], fileno: int, waker: "Waker | None" = None) -> T:
    """Run `gen` to its end, blocking the calling thread. With a `waker`, a wait for WAKE
    also ends when it is woken (and clears it)."""
    try:
        waiting = next(gen)
        while True:
            woken = waker if waker is not None and waiting & WAKE and not waker.closed else None
            watched = ([fileno] if waiting & READ else []) + ([woken.fileno()] if woken else [])
            readable, writable, _ = select.select(watched, [fileno] if waiting & WRITE else [], [])
            ready = (READ if fileno in readable else 0) | (WRITE if writable else 0)
            if woken is not None and woken.fileno() in readable:
                woken.clear()
                ready |= WAKE
            waiting = gen.send(ready)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class Waker:
    """Wakes a thread waiting in Channel.idle() or Waker.sleep(), from any thread: one byte
    on a pipe (which select() watches beside the socket). close() frees the pipe; a wake()
    after it does nothing (it never writes to a file number the system may have reused)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._woken = False
        self._closed = False
        # Re-entrant: a signal handler may wake() while the same thread is inside clear().
        self._lock = threading.RLock()

    def wake(self) -> None:
        # Already woken: the byte is in the pipe, and the waiting thread reads what it was
        # woken for only after its clear() (which drains, then resets the flag), so this
        # wake's news is seen. No system call, and no wait for the lock clear() holds: each
        # worker wakes its locker at every job's end.
        if self._woken:
            return
        with self._lock:
            if self._closed or self._woken:
                return
            self._woken = True
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._write, b".")

    def is_set(self) -> bool:
        return self._woken

    def clear(self) -> None:
        with self._lock:
            if not self._closed:
                with contextlib.suppress(BlockingIOError, OSError):
                    while os.read(self._read, 4096):
                        pass
            # After the drain: a wake() meanwhile saw the flag set and wrote nothing.
            self._woken = False

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        return self._read

    def sleep(self, seconds: float) -> None:
        """Up to `seconds`, or until woken."""
        if not self._woken and not self._closed:
            with contextlib.suppress(OSError, ValueError):
                select.select([self._read], [], [], max(0.0, seconds))
        self.clear()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._read, self._write):
                with contextlib.suppress(OSError):
                    os.close(fd)


class Channel:
    """One que-owned connection's socket, for a worker or a locker that runs statement after
    statement on it and waits on it between them."""

    def __init__(self, fileno: int) -> None:
        self.fileno = fileno

    def attach(self, consume: Callable[[], None]) -> None:
        """Nothing to do: between statements select() is not watching the socket."""

    def run(self, gen: PQGen[T], waker: "Waker | None" = None) -> T:
        return run(gen, self.fileno, waker)

    def idle(self, waker: Waker, timeout: float | None, watch: bool) -> bool:
        """Wait until woken, `timeout` seconds pass, or (`watch`) something arrives on the
        socket (a notification, the server's goodbye); True in that last case."""
        if waker.is_set():
            return False
        watched = [waker.fileno(), self.fileno] if watch else [waker.fileno()]
        try:
            readable, _, _ = select.select(watched, [], [], None if timeout is None else max(0.0, timeout))
        except (OSError, ValueError):  # the socket closed under us: the next statement finds out
            return False
        return watch and self.fileno in readable

    def close(self) -> None:
        """Nothing to let go of."""


class Gate:
    """Guards a locker's books between its thread and its workers' threads (`with gate:`),
    and lets a worker wait for a change under it (wait_for) that ring() announces."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())

    def __enter__(self) -> None:
        self._cond.acquire()

    def __exit__(self, *exc: object) -> None:
        self._cond.release()

    def ring(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait (the gate released meanwhile) until `predicate()` holds or `timeout` passes;
        the predicate's last value."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)


class Handle:
    """A member's thread: a daemon, so a handler still running never keeps the process alive."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; whether it did within `timeout`."""
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def cancel(self) -> None:
        """A thread cannot be cancelled: it stops when its member sees the stop request."""


def spawn(target: Callable[[], None], name: str) -> Handle:
    return Handle(target, name)


class Handlers:
    """Calling handlers in the calling thread (the asyncio driver's Handlers awaits `async
    def` ones and runs plain ones in threads)."""

    def __init__(self, handlers: Mapping[str, Handler], executor: Any = None) -> None:
        self.handlers = handlers
        # Unused: a thread runs its handlers itself (the asyncio driver's runs plain ones here).
        self.executor = executor

    def call(self, run: Run, cut_short: Callable[[Any], None] | None = None) -> BaseException | None:
        """The handler's failure, or None; KeyboardInterrupt and SystemExit propagate."""
        return _handlers.call(self.handlers, run)


def caller_connection(conn: object) -> psycopg.Connection[Any]:
    """The psycopg connection under what a caller passed as `conn=`: a psycopg Connection or
    Transaction, a Django database connection (psycopg 3 backend), or a SQLAlchemy Session
    or Connection (psycopg dialect). A Session's connection joins (or begins) its
    transaction; Django connects lazily."""
    if isinstance(conn, psycopg.Transaction):
        return conn.connection
    if isinstance(conn, psycopg.Connection):
        return conn
    module = type(conn).__module__
    raw: Any = None
    if module.startswith("django."):
        conn.ensure_connection()  # type: ignore[attr-defined]
        raw = conn.connection  # type: ignore[attr-defined]
    elif module.startswith("sqlalchemy"):
        sa_connection: Any = conn.connection() if callable(conn.connection) else conn  # type: ignore[attr-defined]
        raw = sa_connection.connection.driver_connection
    if isinstance(raw, psycopg.Connection):
        return raw
    raise TypeError(
        "conn must be a psycopg Connection or Transaction, a Django database connection or a SQLAlchemy "
        f"Session or Connection on psycopg 3, got {conn!r}"
    )
