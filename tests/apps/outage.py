"""Handlers for the outage test: a job that waits for a file to appear, then ends (the test
stops the server while it waits, so its outcome cannot be written)."""

import os
import time
from pathlib import Path


def waits() -> None:
    marker = Path(os.environ["OUTAGE_MARKER"])
    (marker.parent / "started").touch()
    while not marker.exists():
        time.sleep(0.02)


handlers = {"Waits": waits}
