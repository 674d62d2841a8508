"""Stopping a run cleanly when it is told to stop.

CI timeouts send SIGTERM, a closed terminal SIGHUP, Ctrl-C SIGINT. Each becomes a
KeyboardInterrupt in the main thread, so context managers and pytest fixtures unwind and
the throwaway PostgreSQL cluster is stopped and removed. Further signals are ignored while
that happens: a second Ctrl-C must not cut the cleanup short.
"""

import contextlib
import signal
import subprocess
import threading
from collections.abc import Iterator
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def unwind_on_signals() -> None:
    """Turn the stop signals into one KeyboardInterrupt (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for number in STOP_SIGNALS:
            signal.signal(number, _interrupt)


@contextlib.contextmanager
def unwinding() -> Iterator[None]:
    """unwind_on_signals() for the block only; the handlers before it come back after."""
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}
    unwind_on_signals()
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run_forwarding(command: list[str], **kwargs: object) -> int:
    """Run `command`, passing the stop signals on to it, and return its exit status (or
    128 + the signal number when it was stopped that way)."""
    proc = subprocess.Popen(command, **kwargs)  # type: ignore[call-overload]
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        proc.send_signal(signum)

    previous = {number: signal.signal(number, forward) for number in STOP_SIGNALS}
    try:
        code = int(proc.wait())
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    if received:
        return 128 + received[0]
    return code
