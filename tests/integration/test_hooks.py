"""Hooks around every job (que.Hook), on a real PostgreSQL: Que 0.x (v3) and Que 2 (v7)
tables, the thread pool and the asyncio pool. Each end a dialect can choose reaches the
hooks with its outcome, duration and retry time; a context variable a hook sets is the
handler's; a hook that raises fails neither the job nor the worker."""

import asyncio
import contextvars
import logging
import threading
from typing import Any

import psycopg
import pytest

import que
from harness.lab import wait_until
from que.aio import AsyncClient, AsyncWorkerPool

QUEUE = "hooks"
SEEN: contextvars.ContextVar[int | None] = contextvars.ContextVar("seen", default=None)


@pytest.fixture
def url(table_url: str) -> str:
    return table_url


class Recorder(que.Hook):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()

    def _add(self, *call: Any) -> None:
        with self.lock:
            self.calls.append(call)

    def job_started(self, job: que.Job) -> None:
        SEEN.set(job.job_id)  # the handler's context: a span would be set here
        self._add("started", job.job_class)

    def job_ended(self, job: que.Job, end: que.JobEnd) -> None:
        self._add("ended", job.job_class, end.outcome, end.retry_in, type(end.error).__name__ if end.error else None)
        assert end.duration >= 0

    def job_errored(self, job: que.Job, error: BaseException, end: que.JobEnd) -> None:
        self._add("errored", job.job_class, str(error))

    def job_retry_scheduled(self, job: que.Job, end: que.JobEnd) -> None:
        self._add("retry", job.job_class, end.retry_in)

    def job_expired(self, job: que.Job, end: que.JobEnd) -> None:
        self._add("expired", job.job_class, end.outcome)


def handlers(v7: bool, contexts: list[Any]) -> dict[str, Any]:
    def ok() -> None:
        contexts.append(SEEN.get() == que.current_job().job_id)

    def boom() -> None:
        raise ValueError("boom")

    def finish() -> None:
        que.finish()

    def expire() -> None:
        que.expire()

    found = {"Ok": ok, "Boom": boom, "Spent": boom}
    if v7:
        found.update(Finish=finish, Expire=expire)
    return found


def drain(url: str, work: dict[str, Any], kind: str, left: int) -> None:
    """Work the queue until `left` rows remain (the others ended), in a pool of `kind`."""

    def ended() -> bool:
        # Every job ended once none is due: a retried job waits for its backoff, one set
        # aside or expired is never due again (a job enqueued with errors, as Spent is, counts
        # too: this once looked only at error_count = 0 and stopped the pool before Spent ran).
        with psycopg.connect(url) as conn:
            due = "SELECT count(*) FROM que_jobs WHERE run_at <= now()"
            if "finished_at" in {c.name for c in conn.execute("SELECT * FROM que_jobs LIMIT 0").description or []}:
                due += " AND finished_at IS NULL AND expired_at IS NULL"
            row = conn.execute(due).fetchone()
            return row is not None and row[0] == 0

    options = {"queue": QUEUE, "count": 1, "wake_interval": 0.05, "max_retries": 3}
    if kind == "threads":
        with que.Client(url) as client:
            pool = que.WorkerPool(client, work, **options).start()
            try:
                wait_until(ended, 20, "the jobs to end")
            finally:
                assert pool.shutdown(10)
        return

    async def main() -> None:
        async with AsyncClient(url) as client:
            pool = await AsyncWorkerPool(client, work, **options).start()
            try:
                await asyncio.to_thread(wait_until, ended, 20, "the jobs to end")
            finally:
                assert await pool.shutdown(10)

    asyncio.run(main())


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_every_end_reaches_the_hooks(url: str, kind: str) -> None:
    contexts: list[Any] = []
    with que.Client(url) as client:
        v7 = client.dialect().name == "2"
        for job_class in ["Ok", "Boom", *(["Finish", "Expire"] if v7 else [])]:
            client.enqueue(job_class, queue=QUEUE)
        client.enqueue("Spent", queue=QUEUE)
    with psycopg.connect(url, autocommit=True) as conn:
        # Past the retry limit on its next failure: Que 2's 15, the pool's max_retries=3 on 0.x.
        conn.execute("UPDATE que_jobs SET error_count = %s WHERE job_class = 'Spent'", [15 if v7 else 3])
    with que.hooked(Recorder()) as recorder:
        drain(url, handlers(v7, contexts), kind, 0)
    calls = sorted(recorder.calls, key=repr)
    expected = [
        ("ended", "Boom", "retry", 4.0, "ValueError"),
        ("ended", "Ok", "worked", None, None),
        ("ended", "Spent", "expired" if v7 else "dead", None, "ValueError"),
        ("errored", "Boom", "boom"),
        ("errored", "Spent", "boom"),
        ("expired", "Spent", "expired" if v7 else "dead"),
        ("retry", "Boom", 4.0),
        ("started", "Boom"),
        ("started", "Ok"),
        ("started", "Spent"),
    ]
    if v7:
        expected += [
            ("ended", "Expire", "expired", None, None),
            ("ended", "Finish", "finished", None, None),
            ("expired", "Expire", "expired"),
            ("started", "Expire"),
            ("started", "Finish"),
        ]
    assert calls == sorted(expected, key=repr)
    assert contexts == [True], "what job_started set is the handler's context"


class Broken(que.Hook):
    def job_started(self, job: que.Job) -> None:
        raise RuntimeError("hook broke")

    def job_ended(self, job: que.Job, end: que.JobEnd) -> None:
        raise RuntimeError("hook broke")


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_a_hook_that_raises_fails_neither_the_job_nor_the_worker(
    url: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    with que.Client(url) as client:
        for _ in range(3):
            client.enqueue("Ok", queue=QUEUE)
    caplog.set_level(logging.ERROR, logger="que")
    with que.hooked(Broken()):
        drain(url, handlers(False, []), kind, 0)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,), "every job ran and was deleted"
    failed = [r for r in caplog.records if getattr(r, "event", None) == "hook_failed"]
    assert len(failed) == 6, [r.getMessage() for r in failed]


def test_hooks_are_added_once_and_removed() -> None:
    hook = Recorder()
    que.add_hook(hook)
    with pytest.raises(ValueError, match="already added"):
        que.add_hook(hook)
    que.remove_hook(hook)
    with pytest.raises(ValueError, match="not added"):
        que.remove_hook(hook)
    with pytest.raises(TypeError, match=r"que\.Hook"):
        que.add_hook(print)  # type: ignore[arg-type]
