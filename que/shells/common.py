"""What every shell checks and does the same way, whatever its I/O style: the arguments of
workers and pools, and the backoff after a failure."""

import logging
import math
import random
from typing import Final

import psycopg

from que.core.errors import short_message

log = logging.getLogger("que")

# A locker pool's workers need no session each; their number is bounded by what a process
# should run, not by the server.
MAX_THREADS: Final = 10_000


MAX_WAKE_INTERVAL: Final = 24 * 3600.0


# How long a job checked by a round trip stays fresh enough to run without a new check: a
# job the locker's buffer (que.engine.books) or a worker's batch held longer is checked
# again first, and not run if it was deleted or rescheduled meanwhile.
FRESH_FOR = 0.05


def check_wake_interval(value: object, name: str = "wake_interval") -> float:
    """Seconds between looks for jobs: finite, positive, at most a day."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or not 0 < value <= MAX_WAKE_INTERVAL:
        raise ValueError(
            f"{name} must be a finite number of seconds above 0 and at most {MAX_WAKE_INTERVAL:g} (a day), "
            f"got {value!r}"
        )
    return float(value)


def connection_lost(error: psycopg.Error) -> bool:
    """Whether the connection itself failed (no server answer, SQLSTATE class 08, or the
    server ending the session), as opposed to a statement failing on a live connection (a
    statement timeout is an OperationalError too)."""
    state = error.sqlstate
    return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")


def backoff(failures: int, cap: float, error: Exception) -> float:
    """How long a worker waits after its `failures`-th failure in a row (exponential with
    jitter, at most `cap`), logged with the error that caused it."""
    delay = min(cap, 0.1 * 2 ** min(failures - 1, 20)) * (0.5 + random.random() / 2)
    if not isinstance(error, psycopg.Error):
        event = "worker_error"
    elif connection_lost(error):
        event = "connection_lost"
    else:
        event = "database_error"
    log.log(
        logging.WARNING if event == "connection_lost" else logging.ERROR,
        "%s error=%s retry_in=%.2f",
        event,
        short_message(error),
        delay,
        exc_info=event == "worker_error",
        extra={"event": event, "retry_in": delay},
    )
    return float(delay)


MAX_BATCH: Final = 1000


def check_batch(value: object) -> int:
    """A batch size: how many jobs a worker claims at once (1: one at a time)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"batch must be an int, got {value!r}")
    if not 1 <= value <= MAX_BATCH:
        raise ValueError(f"batch must be between 1 and {MAX_BATCH} jobs, got {value}")
    return value


def check_pool_size(count: object, limit: int) -> int:
    """A pool's worker count: a positive int the server can give a connection each."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    if count > limit:
        raise ValueError(
            f"a pool of {count} workers needs {count} connections, more than this server's "
            f"max_connections allows ordinary users ({limit}): each worker holds one connection"
        )
    return count


def check_buffer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"buffer must be an int, got {value!r}")
    if not 0 <= value <= 1000:
        raise ValueError(f"buffer must be between 0 and 1000 jobs, got {value}")
    return value
