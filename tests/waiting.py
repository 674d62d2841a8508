"""Waiting on a condition, never on the clock alone."""

import time
from collections.abc import Callable
from typing import TypeVar

POLL_SECONDS = 0.01  # how often a condition is re-checked

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_SECONDS)
