"""The Que 2 dialect through que.aio and the `que` command: async enqueue and pool, expired
jobs as `que dead` shows them, `que stats` with Que 2's states."""

import asyncio
import json
import threading
from typing import Any

import psycopg
import pytest

import que
from harness.lab import wait_until
from que import aio
from tests.integration.test_cli import que_cmd
from tests.integration.test_que2_locker import v7 as v7
from tests.integration.test_que2_schema_and_enqueue import table


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_async_pool_works_que_2_jobs_with_kwargs(v7: que.Client, loop: str) -> None:
    seen: list[tuple[Any, Any]] = []
    done = threading.Event()

    async def echo(*args: Any, **kwargs: Any) -> None:
        seen.append((args, kwargs))
        if len(seen) == 10:
            done.set()

    def plain(*args: Any, **kwargs: Any) -> None:
        seen.append((args, kwargs))
        if len(seen) == 10:
            done.set()

    async def main() -> None:
        async with aio.AsyncClient(v7.conninfo) as client:
            assert (await client.dialect()).name == "2"
            for n in range(5):
                await client.enqueue("Echo", n, kwargs={"n": n})
            await client.enqueue_many([que.NewJob("Plain", [n], kwargs={"n": n}) for n in range(5, 10)])
            pool = await aio.AsyncWorkerPool(
                client, {"Echo": echo, "Plain": plain}, count=3, wake_interval=0.05
            ).start()
            try:
                assert await asyncio.to_thread(done.wait, 20)
            finally:
                assert await pool.shutdown(10)

    aio.run(main(), loop=loop)
    assert sorted(seen, key=lambda s: s[0][0]) == [((n,), {"n": n}) for n in range(10)]
    assert table(v7.conninfo) == []
    with v7.connection() as conn:
        assert conn.execute("SELECT count(*) FROM que_lockers").fetchone() == (0,)


def test_expired_jobs_are_que_deads_and_can_be_retried(v7: que.Client) -> None:
    job = v7.enqueue("Broken", 1)
    with v7.connection() as conn:
        conn.execute(
            "UPDATE que_jobs SET error_count = 16, expired_at = now(), last_error_message = 'RuntimeError: no' "
            "WHERE id = %s",
            [job.job_id],
        )
    [dead] = v7.dead_jobs()
    assert (dead.job_id, dead.last_error, dead.error_count) == (job.job_id, "RuntimeError: no", 16)
    listed = que_cmd(v7.conninfo, "dead", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["last_error"] == "RuntimeError: no"
    assert v7.retry_dead(job.job_id) == 1
    [row] = table(v7.conninfo)
    assert (row["expired_at"], row["error_count"]) == (None, 16)
    assert v7.dead_jobs() == []


def test_the_command_enqueues_kwargs_and_tags_and_shows_que_2_states(v7: que.Client) -> None:
    made = que_cmd(v7.conninfo, "enqueue", "Mailer", '["ann"]', "--kwargs", '{"template": "welcome"}', "--tag", "a")
    assert made.returncode == 0, made.stderr
    printed = json.loads(made.stdout)
    assert (printed["queue"], printed["kwargs"], printed["tags"]) == ("default", {"template": "welcome"}, ["a"])
    stats = que_cmd(v7.conninfo, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    shown = json.loads(stats.stdout)
    assert [(r["job_class"], r["count"]) for r in shown["jobs"]] == [("Mailer", 1)]
    assert [(r["queue"], r["state"], r["count"]) for r in shown["states"]] == [("default", "ready", 1)]
    bad = que_cmd(v7.conninfo, "enqueue", "Mailer", "--kwargs", "[1]")
    assert bad.returncode == 2 and "--kwargs must be a JSON object" in bad.stderr


def test_kwargs_are_refused_on_a_0x_table_by_the_command(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    refused = que_cmd(client.conninfo, "enqueue", "Mailer", "--kwargs", '{"a": 1}')
    assert refused.returncode != 0 and "needs a Que 1.x/2.x table" in refused.stderr
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


def test_the_one_at_a_time_api_is_refused_on_a_que_2_table(v7: que.Client) -> None:
    with pytest.raises(que.UnsupportedByDialect, match=r"dialect 2 .*one-at-a-time worker.*use WorkerPool"):
        que.Worker(v7, {})
    with pytest.raises(que.UnsupportedByDialect, match=r"one-at-a-time locking.*use WorkerPool or AsyncWorkerPool"):
        v7.lock_job()

    async def main() -> None:
        async with aio.AsyncClient(v7.conninfo) as client:
            with pytest.raises(que.UnsupportedByDialect, match=r"dialect 2 .*one-at-a-time locking"):
                await client.lock_job()
            with pytest.raises(que.UnsupportedByDialect, match=r"one-at-a-time worker"):
                await aio.AsyncWorker(client, {}).work_one()

    aio.run(main())


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_a_handler_may_finish_or_expire_its_job_instead_of_destroying_it(
    v7: que.Client,
    kind: str,
) -> None:
    """Ruby Que 2's job methods `finish` (keep the row, finished_at set) and `expire`."""
    seen: list[str] = []

    def keep(name: str) -> None:
        seen.append(name)
        que.finish()

    def give_up(name: str) -> None:
        seen.append(name)
        que.expire()

    kept = v7.enqueue("Keep", "kept")
    dropped = v7.enqueue("GiveUp", "dropped")
    handlers = {"Keep": keep, "GiveUp": give_up}
    if kind == "threads":
        pool = que.WorkerPool(v7, handlers, count=2, wake_interval=0.05).start()
        try:
            wait_until(lambda: len(seen) == 2, 10, "both jobs")
        finally:
            assert pool.shutdown(10)
    else:

        async def main() -> None:
            async with aio.AsyncClient(v7.conninfo) as client:
                pool = await aio.AsyncWorkerPool(client, handlers, count=2, wake_interval=0.05).start()
                try:
                    await asyncio.to_thread(wait_until, lambda: len(seen) == 2, 10, "both jobs")
                finally:
                    assert await pool.shutdown(10)

        aio.run(main())
    rows = {row["id"]: row for row in table(v7.conninfo)}
    assert rows[kept.job_id]["finished_at"] is not None and rows[kept.job_id]["expired_at"] is None
    assert rows[dropped.job_id]["expired_at"] is not None and rows[dropped.job_id]["error_count"] == 1
    assert v7.job_stats() == [], "finished and expired jobs are no longer counted"


def test_finish_and_expire_are_que_2s(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    """On a 0.x table a handler that calls them fails the job, with the reason recorded."""
    with pytest.raises(RuntimeError, match="outside a que job handler"):
        que.finish()
    client.enqueue("Keep")
    worker = que.Worker(client, {"Keep": que.finish})
    assert worker.work_one()
    [row] = conn.execute("SELECT error_count, last_error FROM que_jobs").fetchall()
    assert row[0] == 1 and "finish() is Ruby Que 1.x/2.x's" in row[1]
