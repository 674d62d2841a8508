"""Draining measurements through the testee protocol: a whole backlog, or a fixed window."""

import statistics
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from harness import lab
from harness.testee import Testee

NOOP = "QueConformance::Noop"
ECHO = "QueConformance::Echo"
SLEEP = "QueConformance::Sleep"


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        lab.reset(conn)


def queued(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
        return int(row[0]) if row else -1


def top_up(url: str, count: int, job_class: str = NOOP) -> None:
    """Make que_jobs hold exactly `count` jobs (adding due ones), then VACUUM ANALYZE it, so
    every run starts from the same table whatever the previous run deleted."""
    with psycopg.connect(url, autocommit=True) as conn:
        have = queued(url)
        if have > count:
            raise ValueError(f"que_jobs holds {have} jobs, more than the {count} wanted")
        lab.fill(conn, count - have, job_class)
        conn.execute("VACUUM ANALYZE que_jobs")


def drain_once(testee: Testee, url: str, n: int, workers: int, listen: bool = False) -> float:
    """jobs/s draining `n` pre-inserted no-op jobs with `workers` workers."""
    reset(url)
    top_up(url, n)
    result = testee.request("work", timeout=660, queue="", workers=workers, deadline_ms=600_000, listen=listen)
    left = queued(url)
    if not result.get("drained") or left:
        raise RuntimeError(f"{testee.label}: drain did not finish: {result}, {left} jobs left")
    return n / (float(result["elapsed_ms"]) / 1000)


def _count_at(conn: psycopg.Connection[Any]) -> tuple[float, int]:
    """(moment, jobs queued), the moment being the middle of the count."""
    before = time.monotonic()
    row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    return (before + time.monotonic()) / 2, int(row[0]) if row else -1


def window_rate(testee: Testee, url: str, workers: int, window_s: float) -> float:
    """jobs/s worked from the jobs already queued, measured by the harness over `window_s`
    seconds once the pool has started working. Then the queue is emptied, which ends the
    run whatever the library does at shutdown (que-go's workers finish the whole queue
    before they stop, so a deadline alone would not end it)."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = testee.request("work", timeout=900, queue="", workers=workers, deadline_ms=600_000)
        except Exception as error:  # reported below, after the queue is emptied
            box["error"] = error

    with psycopg.connect(url, autocommit=True) as conn:
        _, start = _count_at(conn)
        thread = threading.Thread(target=work)
        thread.start()
        first = lab.wait_until(lambda: (c := _count_at(conn))[1] < start and c, 60, "the pool to start working")
        time.sleep(window_s)  # the measured window
        last = _count_at(conn)
        conn.execute("DELETE FROM que_jobs")
        thread.join()
    if "error" in box:
        raise box["error"]
    return (first[1] - last[1]) / (last[0] - first[0])


def summarize(samples: list[float]) -> dict[str, Any]:
    """Median, min, max and the spread (max-min)/median of a cell's runs, and the runs
    themselves in the order taken (run i of interleaved cells pairs with run i of the others)."""
    median = statistics.median(samples)
    return {
        "median": round(median, 1),
        "min": round(min(samples), 1),
        "max": round(max(samples), 1),
        "runs": len(samples),
        "spread": round((max(samples) - min(samples)) / median, 3) if median else None,
        "samples": [round(sample, 1) for sample in samples],
    }


def interleaved(runs: int, onces: Mapping[str, Callable[[], float]], group: str) -> dict[str, dict[str, Any]]:
    """Each implementation's cell from `runs` runs taken in rounds: one run of every
    implementation per round, each round starting one implementation later. A change in
    the machine's load (it is shared) then falls on all of them alike, and their ratios,
    which are what the report compares, do not drift with it. The cells name their `group`:
    run i of one pairs with run i of another of the same group."""
    names = list(onces)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(runs):
        for offset in range(len(names)):
            name = names[(round_ + offset) % len(names)]
            samples[name].append(onces[name]())
    return {name: summarize(values) | {"group": group} for name, values in samples.items()}
