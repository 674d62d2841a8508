"""An asyncio pool cut short while a plain (thread) handler still runs: run() returns, the
handler runs on in its thread and its job keeps its lock, so no other worker runs it
meanwhile; when the handler ends, its outcome is written and the lock released. Per pool
(the locker's session, or the worker's own)."""

import asyncio
import threading
import time
from typing import Any

import psycopg

from chaos.lab import Lab, Row
from harness.lab import wait_until
from que.aio import AsyncClient, AsyncWorkerPool


def run(lab: Lab, locker: bool) -> Row:
    label = "locker" if locker else "a session per worker"
    row = Row(f"asyncio pool cut short, plain handler running ({label})", ["python-async"])
    lab.reset()
    running = threading.Event()
    gate = threading.Event()
    runs: list[int] = []

    def slow() -> None:
        runs.append(1)
        running.set()
        gate.wait(30)

    async def main() -> bool:
        async with AsyncClient(lab.url) as client:
            await client.enqueue("Slow")
            pool = AsyncWorkerPool(client, {"Slow": slow}, count=2, wake_interval=0.05, locker=locker)
            task = asyncio.create_task(pool.run(shutdown_timeout=0.3))
            while not running.is_set():
                await asyncio.sleep(0.01)
            await pool.shutdown(0)
            return await asyncio.wait_for(task, 20)

    started = time.monotonic()
    finished: Any = asyncio.run(main())
    held_after_return = lab.locks()
    with psycopg.connect(lab.url, autocommit=True) as other:
        [(taken,)] = other.execute("SELECT pg_try_advisory_lock(job_id) FROM que_jobs").fetchall()
        if taken:
            other.execute("SELECT pg_advisory_unlock_all()")
    gate.set()
    wait_until(lambda: lab.locks() == 0 and not lab.sql("SELECT 1 FROM que_jobs"), 20, "the handler's job to finish")
    row.recovery_s = round(time.monotonic() - started, 3)
    row.jobs = 1
    row.completed = 1 if runs else 0
    row.duplicates = max(0, len(runs) - 1)
    row.lost = row.jobs - row.completed
    row.locks_left = lab.locks()
    row.notes.append(
        f"run() returned {finished} (cut short); the job's lock was still held after it returned: "
        f"{held_after_return == 1}; another session could lock it meanwhile: {taken}; the handler's outcome was "
        "written when it ended"
    )
    row.ok = finished is False and held_after_return == 1 and not taken and row.lost == 0 and row.locks_left == 0
    return row
