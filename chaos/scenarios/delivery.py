"""Delivery under faults, per pool kind: how many jobs run twice when the server keeps
ending the pool's sessions, and what a delete that fails does.

- sessions killed: 1,500 short jobs drained while a killer ends one of the pool's sessions
  (a worker's, or the locker's) every KILL_EVERY_S seconds. A lost session re-runs only the
  jobs in flight on it (in_flight): one per killed worker session (its running job), two
  for a batched worker (and the job whose finish it was sending), and at most `workers` per
  killed locker session (the jobs its threads were running; the outcomes it had not written
  are written once their locks are taken again). Before round 3 a batched worker re-ran
  every job of its batch that had already succeeded (K-1 per kill).
- failing delete: a trigger refuses the delete of some jobs. Each such job runs once, its
  refusal is recorded as its error (error_count 1, the 4 s backoff), and the healthy jobs
  beside it (batch-mates included) run once each.
"""

import threading
import time
from typing import Any

import que
from chaos import pools
from chaos.lab import Lab, Row
from harness.lab import wait_until

JOBS = 1_500
WORKERS = 4
KILL_EVERY_S = 0.05
# (label, pool kind, WorkerPool options): the pools a user can pick.
POOLS = [
    ("threads, locker", "threads", {}),
    ("threads, a session per worker", "threads", {"locker": False}),
    ("threads, a session per worker, batch 5", "threads", {"locker": False, "batch": 5}),
    ("threads, a session per worker, batch 20", "threads", {"locker": False, "batch": 20}),
    ("async, locker", "async", {}),
    ("async, a session per worker", "async", {"locker": False}),
]


def in_flight(options: dict[str, Any]) -> int:
    """The jobs in flight on one session of a pool, whose outcome a lost session may lose: a
    locker's running jobs (one per thread); a worker's running job, and for a batched worker
    at most one more whose finish it was sending (que.dialects.que0.protocol.send_finish)."""
    if options.get("locker", True):
        return WORKERS
    return 2 if options.get("batch", 1) > 1 else 1


def sessions_killed(lab: Lab, label: str, kind: str, options: dict[str, Any]) -> Row:
    name = "python" if kind == "threads" else "python-async"
    row = Row(f"sessions killed ({label})", [name])
    lab.reset()
    runs: dict[int, int] = {}
    lock = threading.Lock()

    def short(n: int) -> None:
        job_id = que.current_job().job_id
        with lock:
            runs[job_id] = runs.get(job_id, 0) + 1
        time.sleep(0.001)

    ids = lab.fill(JOBS, "Short")
    stop = threading.Event()
    kills = 0

    def killer() -> None:
        nonlocal kills
        while not stop.wait(KILL_EVERY_S):
            ended = lab.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE 'que worker%' OR application_name LIKE 'que locker%' "
                "ORDER BY random() LIMIT 1"
            )
            kills += sum(1 for (done,) in ended if done)

    started = time.monotonic()
    with que.Client(lab.url) as client:
        pool = pools.start(kind, lab.url, client, {"Short": short}, WORKERS, wake_interval=0.05, **options)
        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        try:
            wait_until(lambda: not lab.sql("SELECT 1 FROM que_jobs LIMIT 1"), 120, "the drain under session kills")
        finally:
            stop.set()
            thread.join(10)
            pool.shutdown(10)
    row.recovery_s = round(time.monotonic() - started, 3)
    row.jobs = len(ids)
    row.completed = len([j for j in ids if runs.get(j)])
    row.duplicates = sum(count - 1 for count in runs.values() if count > 1)
    row.lost = row.jobs - row.completed
    row.locks_left = lab.locks()
    bound = kills * in_flight(options)
    row.notes.append(
        f"{kills} sessions ended during the drain; {row.duplicates} extra runs, at most {bound} allowed "
        f"({in_flight(options)} per killed session); drain took {row.recovery_s}s"
    )
    row.ok = row.lost == 0 and row.locks_left == 0 and row.duplicates <= bound
    return row


REFUSE = """
CREATE OR REPLACE FUNCTION que_chaos_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'deleting job % is refused', OLD.job_id;
END $$;
DROP TRIGGER IF EXISTS que_chaos_refuse_delete ON que_jobs;
CREATE TRIGGER que_chaos_refuse_delete BEFORE DELETE ON que_jobs
FOR EACH ROW WHEN (OLD.job_class = 'Undeletable') EXECUTE FUNCTION que_chaos_refuse_delete()
"""


def failing_delete(lab: Lab, label: str, kind: str, options: dict[str, Any]) -> Row:
    name = "python" if kind == "threads" else "python-async"
    row = Row(f"failing delete ({label})", [name])
    lab.reset()
    lab.sql(REFUSE)
    runs: dict[int, int] = {}
    lock = threading.Lock()

    def note(*args: Any) -> None:
        job_id = que.current_job().job_id
        with lock:
            runs[job_id] = runs.get(job_id, 0) + 1

    bad = lab.fill(10, "Undeletable")
    good = lab.fill(200, "Good") - bad
    started = time.monotonic()
    try:
        with que.Client(lab.url) as client:
            pool = pools.start(
                kind, lab.url, client, {"Undeletable": note, "Good": note}, WORKERS, wake_interval=0.05, **options
            )
            try:
                wait_until(
                    lambda: (
                        lab.sql("SELECT count(*) FROM que_jobs")[0][0] == len(bad) and all(runs.get(j) for j in bad)
                    ),
                    60,
                    "the healthy jobs to be deleted and the undeletable ones run",
                )
                time.sleep(1.0)  # pacing: a job whose failed delete were not recorded would run again by now
            finally:
                pool.shutdown(10)
        row.recovery_s = round(time.monotonic() - started, 3)
        errors = dict(lab.sql("SELECT job_id, error_count FROM que_jobs"))
    finally:
        lab.sql("DROP TRIGGER IF EXISTS que_chaos_refuse_delete ON que_jobs")
    row.jobs = len(bad) + len(good)
    row.completed = len([j for j in good | bad if runs.get(j)])
    row.duplicates = sum(count - 1 for count in runs.values() if count > 1)
    row.lost = row.jobs - row.completed
    row.locks_left = lab.locks()
    recorded = all(errors.get(j) == 1 for j in bad)
    row.notes.append(
        f"{len(bad)} jobs whose delete a trigger refuses among {len(good)} healthy ones: each ran "
        f"{sorted({runs.get(j, 0) for j in bad})} time(s), refusal recorded as error_count 1: {recorded}"
    )
    row.ok = row.lost == 0 and row.locks_left == 0 and row.duplicates == 0 and recorded
    return row
