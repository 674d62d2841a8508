"""Helpers for your own tests of code that enqueues and works que jobs, and a pytest plugin
(loaded by pytest on its own once que-interop is installed; fixtures que_database_url,
que_client and que_drain):

    def test_signup_sends_a_welcome_mail(que_client, que_drain):
        signup(que_client, "ann@example.com")                  # your code, which enqueues
        assert_enqueued(que_client, "SendEmail", args=["ann@example.com"], queue="mail")
        assert que_drain(app.handlers, queue="mail") == 1       # work every due job, here

The database is `--que-database-url` (or QUE_TEST_DATABASE_URL), else a throwaway
PostgreSQL started for the session (que.testing.server). que_jobs is migrated to
`--que-schema-version` (default 3, Que 0.x; 7 for Que 2) and emptied before each test.
"""

import threading
import time
from collections.abc import Mapping
from typing import Any

from que.core.hooks import Hook, JobEnd, hooked
from que.core.job import Job
from que.shells.client import Client
from que.shells.pool import WorkerPool

ANY: Any = object()  # any value of this field


def enqueued(client: Client, job_class: str | None = None) -> list[Job]:
    """The jobs in que_jobs (of `job_class`), in the order they were enqueued."""
    return client.jobs(job_class)


def assert_enqueued(
    client: Client,
    job_class: str,
    *,
    args: Any = ANY,
    kwargs: Any = ANY,
    queue: Any = ANY,
    priority: Any = ANY,
    count: int | None = None,
) -> list[Job]:
    """Assert that jobs of `job_class` with these fields are enqueued (exactly `count` of
    them, if given, else at least one); the matching jobs. The failure lists what is there."""
    wanted = {"args": args, "kwargs": kwargs, "queue": queue, "priority": priority}
    every = client.jobs()
    found = [
        job
        for job in every
        if job.job_class == job_class and all(v is ANY or getattr(job, k) == v for k, v in wanted.items())
    ]
    if (count is None and not found) or (count is not None and len(found) != count):
        shown = {k: v for k, v in wanted.items() if v is not ANY}
        there = "\n  ".join(f"{j.job_class} args={j.args!r} queue={j.queue!r} priority={j.priority}" for j in every)
        expected = "at least one" if count is None else str(count)
        raise AssertionError(
            f"expected {expected} {job_class} job(s) with {shown}, found {len(found)}; que_jobs holds:\n  "
            + (there or "(nothing)")
        )
    return found


class _Counter(Hook):
    def __init__(self) -> None:
        self.ended = 0
        self.lock = threading.Lock()

    def job_ended(self, job: Job, end: JobEnd) -> None:
        with self.lock:
            self.ended += 1


def drain(client: Client, handlers: Mapping[str, Any], queue: str | None = None, timeout: float = 30.0) -> int:
    """Work every job of `queue` (the table's default queue unless given) that is due, in
    this process, until none is due and none runs; how many runs ended. A job that fails
    is retried later (the backoff), so it is not worked twice here."""
    with hooked(_Counter()) as counter:
        pool = WorkerPool(client, handlers, queue=queue, count=1, wake_interval=0.02).start()
        try:
            deadline = time.monotonic() + timeout
            while True:
                rows = [r for r in client.overview() if queue is None or r["queue"] == queue]
                if queue is None:
                    rows = [r for r in rows if r["queue"] == client.dialect().default_queue]
                if not any(r["ready"] or r["working"] for r in rows):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"jobs of queue {queue!r} were still due or running after {timeout} s")
                time.sleep(0.02)
        finally:
            pool.shutdown(timeout)
        return counter.ended
