"""Handlers for the outage test and chaos row: a job that writes `started` beside the marker
file, waits for the marker to appear, then writes `ended` (the server is made unreachable
while it waits, so its outcome cannot be written)."""

import os
import time
from pathlib import Path


def waits() -> None:
    marker = Path(os.environ["OUTAGE_MARKER"])
    (marker.parent / "started").touch()
    while not marker.exists():
        time.sleep(0.02)
    (marker.parent / "ended").touch()


handlers = {"Waits": waits}
