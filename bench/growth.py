"""Cost growth: the drain rate against the backlog already queued, and against the number of
jobs held locked by long-running handlers.

Que 0.x's lock_job walks the (queue, priority, run_at, job_id) index from its head and tries
each job's advisory lock in turn, so every job locked by someone else ahead of the first free
one costs the walk a step (que's claim stops trying them once it sees many: sql.CLAIM_JOBS).
The held jobs are put at the head (priority 1, before the backlog's 100) and locked by one
helper session, as long-running handlers would hold them.
"""

from collections.abc import Callable
from typing import Any

import psycopg

from bench.drain import reset, summarize, top_up, window_rate
from harness.testee import Testee

BACKLOGS = (10_000, 100_000, 1_000_000)
HELD = (0, 10, 100, 1000, 10_000)
HELD_BACKLOG = 20_000
WORKERS = 4
WINDOW_S = 2.0


def backlog_curve(
    testees: dict[str, Testee], url: str, runs: int, log: Callable[[str], None], backlogs: tuple[int, ...] = BACKLOGS
) -> dict[str, dict[str, Any]]:
    """impl -> backlog -> jobs/s over a window, starting from exactly that many queued jobs."""
    curve: dict[str, dict[str, Any]] = {name: {} for name in testees}
    for backlog in backlogs:
        for name, testee in testees.items():
            samples = []
            for _ in range(runs):
                reset(url)
                top_up(url, backlog)
                samples.append(window_rate(testee, url, WORKERS, WINDOW_S))
            curve[name][str(backlog)] = summarize(samples)
            log(f"growth {name}, backlog {backlog:,}: {curve[name][str(backlog)]['median']:.0f} jobs/s")
    reset(url)
    return curve


def held_curve(
    testees: dict[str, Testee], url: str, runs: int, log: Callable[[str], None], held: tuple[int, ...] = HELD
) -> dict[str, dict[str, Any]]:
    """impl -> jobs held locked at the head of the queue -> jobs/s over a window."""
    curve: dict[str, dict[str, Any]] = {name: {} for name in testees}
    with psycopg.connect(url, autocommit=True) as holder:
        for count in held:
            for name, testee in testees.items():
                samples = []
                for _ in range(runs):
                    reset(url)
                    hold(holder, count)
                    top_up(url, HELD_BACKLOG + count)
                    samples.append(window_rate(testee, url, WORKERS, WINDOW_S))
                    holder.execute("SELECT pg_advisory_unlock_all()")
                curve[name][str(count)] = summarize(samples)
                log(f"growth {name}, {count} jobs held locked: {curve[name][str(count)]['median']:.0f} jobs/s")
    reset(url)
    return curve


def hold(holder: psycopg.Connection[Any], count: int) -> None:
    """`count` jobs at the head of the queue, locked by the `holder` session."""
    rows = holder.execute(
        "INSERT INTO que_jobs (job_class, priority, args) "
        "SELECT %s, 1, '[]' FROM generate_series(1, %s) RETURNING job_id",
        ["QueConformance::Sleep", count],
    ).fetchall()
    holder.execute("SELECT count(pg_advisory_lock(id)) FROM unnest(%s::bigint[]) AS t(id)", [[r[0] for r in rows]])
    mine = holder.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    ).fetchone()
    if not mine or mine[0] != count:
        raise RuntimeError(f"the helper session holds {mine} locks, not the {count} held jobs")
