"""The server restarts while every implementation drains one queue: all reconnect, every
job runs, and only the jobs running at the restart may run twice. The jobs sleep 10 ms, so
the drain lasts seconds and the restart lands in it (3,000 instant jobs could all be done
before the restart took effect, and then no progress could follow it)."""

import threading
from typing import Any

from chaos.lab import SLEEP, Lab, Row, account, attempt, timed
from harness.lab import wait_until


def run(lab: Lab, names: list[str]) -> Row:
    row = Row("server restart during a mixed drain", names)
    lab.reset()
    job_ids = lab.fill(3000, SLEEP, "json_build_array(10)")
    boxes: dict[str, Any] = {}
    testees = {name: lab.start(name) for name in names}
    threads = [
        threading.Thread(
            target=lambda n=n, t=t: boxes.update({n: attempt(lambda: t.work(workers=2, deadline_ms=120_000))})
        )
        for n, t in testees.items()
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(lab.runs()) >= 500, 60, "500 jobs before the restart")
    before = len(lab.runs())
    lab.cluster.restart()
    row.recovery_s = timed(lambda: len(lab.runs()) > before + 50, 60, "progress after the restart")
    for thread in threads:
        thread.join(150)
    # Jobs whose handlers failed during the restart (their results write met a dead
    # connection) were errored and rescheduled: record them, make them due, finish them.
    leftover = lab.sql("SELECT job_id, error_count, split_part(last_error, E'\\n', 1) FROM que_jobs")
    if leftover:
        row.notes.append(f"left after the drain (errored during the restart, rescheduled): {leftover[:5]}")
        lab.sql("UPDATE que_jobs SET run_at = now()")
        lab.start("python").work(workers=2, deadline_ms=60_000)
    for name, outcome in boxes.items():
        row.notes.append(f"{name}: {'error ' + str(outcome)[:120] if isinstance(outcome, Exception) else outcome}")
    row.notes.append(f"{before} jobs done before the restart; progress resumed {row.recovery_s}s after it")
    # Jobs running at the restart may run twice (their deletes died with the sessions).
    allowed = {j for j, r in lab.runs().items() if len(r) == 2}
    if len(allowed) > 2 * 2 * len(names):
        row.notes.append(f"more duplicates ({len(allowed)}) than workers in flight")
        allowed = set()
    account(lab, row, job_ids, allowed_duplicates=allowed)
    return row
