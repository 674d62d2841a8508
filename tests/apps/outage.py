"""Handlers for the outage test and chaos row: a job that opens the marker (a FIFO the test
made), writes `started` beside it, blocks until the test writes to the FIFO, then writes
`ended` (the server is made unreachable while it waits, so its outcome cannot be written).
go(marker) is the test's side."""

import os
from pathlib import Path


def waits() -> None:
    marker = Path(os.environ["OUTAGE_MARKER"])
    # O_RDWR: the open does not wait for a writer; the read blocks until the test writes.
    fd = os.open(marker, os.O_RDWR)
    try:
        (marker.parent / "started").touch()
        os.read(fd, 1)
    finally:
        os.close(fd)
    (marker.parent / "ended").touch()


def go(marker: Path) -> None:
    """Let the waiting job end (it holds the FIFO open since it wrote `started`)."""
    fd = os.open(marker, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, b"g")
    finally:
        os.close(fd)


handlers = {"Waits": waits}
