"""The server ends a Python worker's session (pg_terminate_backend) while it waits for jobs
and while it runs one: the worker reconnects by itself, nothing is lost, and only the
interrupted job runs twice (at-least-once: its delete died with the session)."""

import threading
import time

import que
from chaos import pools
from chaos.lab import Lab, Row
from harness.lab import wait_until


def run(lab: Lab, kind: str = "threads") -> Row:
    row = Row(
        f"connection terminated (mid-poll and mid-job, {kind})", ["python" if kind == "threads" else "python-async"]
    )
    lab.reset()
    done: list[int] = []
    gate = threading.Event()
    entered = threading.Event()

    def hold(n: int) -> None:
        if n == 0 and not gate.is_set():
            entered.set()
            gate.wait(20)
        done.append(que.current_job().job_id)

    with que.Client(lab.url) as client:
        pool = pools.start(kind, lab.url, client, {"Hold": hold}, 1, wake_interval=0.05)
        [worker] = pool.workers
        try:
            first_pid = wait_until(lambda: worker.backend_pid, 10, "the worker to connect")
            lab.sql("SELECT pg_terminate_backend(%s)", [first_pid])  # mid-poll
            started = time.monotonic()
            ids = {client.enqueue("Hold", 1).job_id for _ in range(20)}
            wait_until(lambda: set(done) >= ids, 30, "jobs after the mid-poll termination")
            row.recovery_s = round(time.monotonic() - started, 3)
            held = client.enqueue("Hold", 0).job_id  # mid-job: the job must run again
            ids.add(held)
            wait_until(entered.is_set, 10, "the held job to start")
            second_pid = worker.backend_pid
            lab.sql("SELECT pg_terminate_backend(%s)", [second_pid])
            gate.set()
            ids |= {client.enqueue("Hold", 1).job_id for _ in range(20)}
            wait_until(lambda: set(done) >= ids and not lab.sql("SELECT 1 FROM que_jobs"), 30, "all jobs after mid-job")
            runs = {j: done.count(j) for j in ids}
            row.jobs = len(ids)
            row.completed = len([j for j in ids if runs[j] >= 1])
            row.duplicates = len([j for j in ids if runs[j] > 1])
            row.lost = row.jobs - row.completed
            row.locks_left = lab.locks()
            reconnected = worker.is_alive() and worker.backend_pid not in (None, first_pid, second_pid)
            row.notes.append(
                f"reconnected without restart: {reconnected}; the interrupted job ran {runs[held]} times "
                "(at-least-once: its delete was lost with the session)"
            )
            row.ok = (
                row.lost == 0
                and row.locks_left == 0
                and reconnected
                and all(runs[j] == 1 for j in ids if j != held)
                and runs[held] in (1, 2)
            )
        finally:
            pool.shutdown(10)
    return row
