"""Hostile and foreign rows written straight into que_jobs (object/scalar/null args, 4 MB
and 3000-deep args, odd job classes, extreme priorities, infinite and BC run_at values,
error_count at the integer maximum) under a Python worker: it neither crashes nor spins,
and every due row is worked or rescheduled."""

import time
from typing import Any

import que
from chaos import pools
from chaos.lab import Lab, Row

HOSTILE = [
    ("object args", "Probe", "'{\"a\":1}'", 100, "now()", 0),
    ("scalar args", "Probe", "'5'", 100, "now()", 0),
    ("null args", "Probe", "'null'", 100, "now()", 0),
    ("string args", "Probe", "'\"s\"'", 100, "now()", 0),
    ("huge args (4 MB)", "Probe", "json_build_array(repeat('x', 4000000))", 100, "now()", 0),
    ("deep args", "Probe", "(repeat('[', 3000) || repeat(']', 3000))::json", 100, "now()", 0),
    ("empty job class", "", "'[]'", 100, "now()", 0),
    ("unknown job class", "No::Such::Class", "'[]'", 100, "now()", 0),
    ("job class with spaces", "lower case thing", "'[]'", 100, "now()", 0),
    ("min priority", "Probe", "'[]'", -32768, "now()", 0),
    ("max priority", "Probe", "'[]'", 32767, "now()", 0),
    ("run_at -infinity", "Probe", "'[]'", 100, "'-infinity'", 0),
    ("run_at infinity (never due)", "Probe", "'[]'", 100, "'infinity'", 0),
    ("run_at year 1", "Probe", "'[]'", 100, "'0001-01-01 00:00:00+00'", 0),
    ("run_at BC", "Probe", "'[]'", 100, "'0044-03-15 00:00:00+00 BC'", 0),
    ("error_count at integer max", "Failing", "'[]'", 100, "now()", 2147483647),
    ("failing job", "Failing", "'[]'", 100, "now()", 0),
]


def run(lab: Lab, kind: str = "threads") -> Row:
    row = Row(f"hostile and foreign rows ({kind} worker)", ["python" if kind == "threads" else "python-async"])
    lab.reset()
    ids: dict[int, str] = {}
    initial: dict[int, int] = {}  # error_count as written: a row still at it was never worked
    for label, job_class, args, priority, run_at, errors in HOSTILE:
        job_id = lab.sql(
            f"INSERT INTO que_jobs (job_class, args, priority, run_at, error_count, last_error) "
            f"VALUES (%s, {args}, %s, {run_at}, %s, repeat('e', 2000000)) RETURNING job_id",
            [job_class, priority, errors],
        )[0][0]
        ids[int(job_id)] = label
        initial[int(job_id)] = errors
    calls: dict[int, int] = {}

    def probe(*args: Any) -> None:
        job_id = que.current_job().job_id
        calls[job_id] = calls.get(job_id, 0) + 1

    def failing(*args: Any) -> None:
        probe()
        raise RuntimeError("hostile failure")

    with que.Client(lab.url) as client:
        pool = pools.start(kind, lab.url, client, {"Probe": probe, "Failing": failing}, 1, wake_interval=0.05)
        time.sleep(4.0)  # a fixed observation window: the worker must neither crash nor spin in it
        alive = all(w.is_alive() for w in pool.workers)
        pool.shutdown(10)
    state = {int(r[0]): r[1:] for r in lab.sql("SELECT job_id, error_count, run_at > now() FROM que_jobs")}
    outcomes = []
    for job_id, label in ids.items():
        if job_id not in state:
            outcomes.append(f"{label}: worked")
        else:
            errors, future = state[job_id]
            when = "rescheduled" if future else "due" if errors == initial[job_id] else "due again (retry delay passed)"
            outcomes.append(f"{label}: error_count {errors}, {when}")
    spinning = {ids[j]: n for j, n in calls.items() if n > 8}
    # A due row still at its first error_count was never worked; one whose failure was
    # recorded may be due again when its retry delay (4 s after a first failure) has passed.
    untouched_due = [ids[j] for j, (errors, future) in state.items() if not future and errors == initial[j]]
    row.jobs = len(ids)
    row.completed = len([j for j in ids if j not in state or state[j][1] or state[j][0] != initial[j]])
    row.locks_left = lab.locks()
    row.notes += [f"worker alive after the window: {alive}", *outcomes]
    if spinning:
        row.notes.append(f"retried too often (spinning): {spinning}")
    overflow = [j for j, label in ids.items() if label == "error_count at integer max"]
    row.notes.append(
        f"error_count overflow row: handler ran {calls.get(overflow[0], 0)} time(s) in 4 s (set_error overflows "
        "the integer; the job is parked without counting, so it neither spins nor blocks the rows behind it)"
    )
    row.lost = len(untouched_due)
    row.ok = alive and not spinning and not untouched_due and row.locks_left == 0
    return row
