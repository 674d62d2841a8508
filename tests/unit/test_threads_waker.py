"""The thread driver's Waker, without a database: a wake is one byte on a pipe that a
locker's select() watches beside its socket. Every worker wakes the locker at each job's
end, so a wake that finds the waker already woken must cost no system call and take no
lock the locker's clear() holds (the locker drains the byte and reads the books after)."""

import os
import select

from que.drivers.threads import Waker


def _pending(waker: Waker) -> bytes:
    readable, _, _ = select.select([waker.fileno()], [], [], 0)
    return os.read(waker.fileno(), 4096) if readable else b""


def test_wakes_before_a_clear_leave_one_byte() -> None:
    waker = Waker()
    try:
        for _ in range(5):
            waker.wake()
        assert waker.is_set()
        assert _pending(waker) == b"."
    finally:
        waker.close()


def test_a_wake_after_a_clear_is_seen_again() -> None:
    waker = Waker()
    try:
        waker.wake()
        waker.clear()
        assert not waker.is_set()
        assert _pending(waker) == b""
        waker.wake()
        assert waker.is_set()
        assert _pending(waker) == b"."
    finally:
        waker.close()
