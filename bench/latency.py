"""Pickup latency: enqueue-to-handler-start while one worker polls (or listens)."""

import random
import threading
import time
from typing import Any

import psycopg

import que
from bench.drain import ECHO, reset
from harness import results
from harness.testee import Testee, TesteeFailure


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def latency(testee: Testee, url: str, samples: int, wake_ms: int, listen: bool, spread_s: float) -> dict[str, float]:
    """Enqueue `samples` jobs at random moments over `spread_s` seconds while one worker
    runs; latency = handler start (its results row) - run_at (the enqueue's now())."""
    reset(url)
    rng = random.Random(7)
    duration_ms = int((spread_s + wake_ms / 1000 + 1) * 1000)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = testee.request(
                "work",
                timeout=duration_ms / 1000 + 60,
                queue="",
                workers=1,
                deadline_ms=duration_ms + 30_000,
                min_duration_ms=duration_ms,
                wake_interval_ms=wake_ms,
                listen=listen,
            )
        except TesteeFailure as error:
            box["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.5)  # benchmark pacing: let the pool start before the first job
    enqueued = {}
    with que.Client(url, notify=listen) as client:
        for _ in range(samples):
            time.sleep(rng.uniform(0, 2 * spread_s / samples))
            job = client.enqueue(ECHO)
            enqueued[job.job_id] = job.run_at
    thread.join()
    if "error" in box:
        raise box["error"]
    with psycopg.connect(url) as conn:
        ran = dict(conn.execute(f"SELECT job_id, at FROM {results.TABLE}").fetchall())
    missing = set(enqueued) - set(ran)
    if missing:
        raise RuntimeError(f"{len(missing)} latency jobs never ran")
    values = [(ran[i] - at).total_seconds() * 1000 for i, at in enqueued.items()]
    return {
        "p50": round(percentile(values, 0.5), 2),
        "p99": round(percentile(values, 0.99), 2),
        "samples": len(values),
    }
