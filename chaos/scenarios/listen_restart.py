"""The server restarts under LISTEN workers: they reconnect, LISTEN again, and pick up jobs
enqueued after the restart through NOTIFY, long before their (60 s) poll would."""

import time

import que
from chaos import pools
from chaos.lab import Lab, Row
from harness.lab import wait_until

WAKE_INTERVAL = 60.0  # far longer than the scenario: only a notification can wake them


def run(lab: Lab, kind: str = "threads") -> Row:
    row = Row(f"server restart under LISTEN workers ({kind})", ["python" if kind == "threads" else "python-async"])
    lab.reset()
    done: list[int] = []
    with que.Client(lab.url, notify=True) as client:
        note = {"Note": lambda: done.append(que.current_job().job_id)}
        pool = pools.start(kind, lab.url, client, note, 2, wake_interval=WAKE_INTERVAL, listen=True)
        try:
            before = {client.enqueue("Note").job_id for _ in range(100)}
            wait_until(lambda: set(done) >= before, 30, "the jobs before the restart")
            pids = {w.backend_pid for w in pool.workers}
            lab.cluster.restart()
            restarted = time.monotonic()
            wait_until(
                lambda: all(w.backend_pid not in (None, *pids) for w in pool.workers), 30, "the workers to reconnect"
            )
            after = {client.enqueue("Note").job_id for _ in range(100)}
            wait_until(lambda: set(done) >= after, 20, "the jobs after the restart, woken by NOTIFY")
            row.recovery_s = round(time.monotonic() - restarted, 3)
            ids = before | after
            row.jobs = len(ids)
            row.completed = len(ids & set(done))
            row.duplicates = len(done) - len(set(done))
            row.lost = len(ids - set(done)) + len(lab.sql("SELECT 1 FROM que_jobs"))
            row.locks_left = lab.locks()
            alive = all(w.is_alive() for w in pool.workers)
            row.notes.append(
                f"workers alive: {alive}; the jobs enqueued after the restart ran {row.recovery_s}s after it, "
                f"with a {WAKE_INTERVAL:g} s poll: woken by NOTIFY on their new sessions"
            )
            row.ok = alive and row.lost == 0 and row.duplicates == 0 and row.locks_left == 0
        finally:
            pool.shutdown(10)
    return row
