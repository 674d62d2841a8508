"""que.aio against a real PostgreSQL: the same jobs, bytes and guarantees as the sync API."""

import asyncio
import threading
import time
from typing import Any

import psycopg
import pytest

import que
from harness.lab import advisory_locks, wait_until
from que import aio
from que.aio import AsyncClient, AsyncWorker, AsyncWorkerPool
from tests.conftest import rows


def run(coro: Any, loop: str = "asyncio") -> Any:
    return aio.run(coro, loop=loop)


# The tests that drive workers through the loop's I/O run on both loops que.aio.run offers.
LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


def test_async_and_sync_clients_store_the_same_bytes(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    args = (1, "two", {"three": 3.0, "é": [None, True]}, 2**70)

    async def main() -> Any:
        async with AsyncClient(database_url) as aclient:
            job = await aclient.enqueue("A", *args, queue="q", priority=5)
            many = await aclient.enqueue_many([que.NewJob("B", args), ("C", [1])])
            return job, many

    job, many = run(main())
    mine = client.enqueue("A", *args, queue="q", priority=5)
    stored = rows(conn)
    assert stored[0]["args_text"] == stored[3]["args_text"] == que.encode_args(args)
    assert (job.job_class, job.queue, job.priority, job.args) == (mine.job_class, mine.queue, mine.priority, mine.args)
    assert [j.job_class for j in many] == ["B", "C"]


def test_bad_input_is_refused_before_any_sql(conn: psycopg.Connection[Any], database_url: str) -> None:
    async def main() -> None:
        async with AsyncClient(database_url) as aclient:
            with pytest.raises(TypeError, match="priority"):
                await aclient.enqueue("A", priority="high")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match=r"args\[0\]"):
                await aclient.enqueue("A", float("nan"))
            with pytest.raises(TypeError, match=r"jobs\[0\]"):
                await aclient.enqueue_many([{"job_class": "A"}])  # type: ignore[list-item]

    run(main())
    assert rows(conn) == []


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_enqueue_on_a_callers_async_connection_joins_its_transaction(
    conn: psycopg.Connection[Any], database_url: str, outcome: str
) -> None:
    async def main() -> None:
        async with AsyncClient(database_url) as aclient, await psycopg.AsyncConnection.connect(database_url) as caller:
            await aclient.enqueue("A", 1, conn=caller)
            await aclient.enqueue_many([("B", [2])], conn=caller)
            assert caller.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
            await (caller.commit() if outcome == "commit" else caller.rollback())

    run(main())
    assert [r["job_class"] for r in rows(conn)] == (["A", "B"] if outcome == "commit" else [])


def test_enqueue_in_an_async_transaction_block_rolls_back_with_it(
    conn: psycopg.Connection[Any], database_url: str
) -> None:
    async def main() -> None:
        async with (
            AsyncClient(database_url) as aclient,
            await psycopg.AsyncConnection.connect(database_url, autocommit=True) as caller,
        ):
            with pytest.raises(RuntimeError):
                async with caller.transaction() as tx:
                    await aclient.enqueue("A", conn=tx)
                    raise RuntimeError("abort")

    run(main())
    assert rows(conn) == []


def test_lock_job_delete_error_release(conn: psycopg.Connection[Any], database_url: str) -> None:
    async def main() -> None:
        async with AsyncClient(database_url) as aclient:
            await aclient.enqueue("A", priority=1)
            await aclient.enqueue("B", priority=2)
            first = await aclient.lock_job()
            assert first is not None and first.job.job_class == "A"
            async with first:
                await first.delete()
            with pytest.raises(KeyError):
                async with await aclient.lock_job():  # type: ignore[union-attr]
                    raise KeyError("recorded")
            assert await aclient.lock_job() is None
            stats = await aclient.job_stats()
            assert stats[0]["job_class"] == "B" and stats[0]["count_errored"] == 1

    run(main())
    [row] = rows(conn)
    assert row["job_class"] == "B" and row["error_count"] == 1 and row["last_error"].startswith("KeyError")
    assert advisory_locks(conn) == []


def test_migrate_and_db_version(database_url: str, conn: psycopg.Connection[Any]) -> None:
    async def main() -> list[int]:
        async with AsyncClient(database_url) as aclient:
            seen = [await aclient.db_version()]
            await aclient.migrate(0)
            seen.append(await aclient.db_version())
            await aclient.migrate()
            seen.append(await aclient.db_version())
            return seen

    assert run(main()) == [3, 0, 3]


def test_async_and_plain_handlers_both_run(conn: psycopg.Connection[Any], database_url: str) -> None:
    seen: list[Any] = []

    async def shout(word: str) -> None:
        await asyncio.sleep(0)
        seen.append(("async", word, que.current_job().job_class))

    def whisper(word: str) -> None:
        seen.append(
            ("thread", word, que.current_job().job_class, threading.current_thread() is threading.main_thread())
        )

    async def main() -> None:
        async with AsyncClient(database_url) as aclient:
            await aclient.enqueue("Shout", "hi")
            await aclient.enqueue("Whisper", "psst")
            worker = AsyncWorker(aclient, {"Shout": shout, "Whisper": whisper}, wake_interval=0.05)
            while await worker.work_one():
                pass

    run(main())
    assert seen == [("async", "hi", "Shout"), ("thread", "psst", "Whisper", False)]
    assert rows(conn) == [] and advisory_locks(conn) == []


def test_a_blocking_plain_handler_does_not_stall_other_workers(
    conn: psycopg.Connection[Any], database_url: str
) -> None:
    """Job A's plain handler blocks until job B (async) is done: if A blocked the loop, B
    could never run and the pool would hang."""
    gate = threading.Event()
    done: list[str] = []

    def blocking() -> None:
        assert gate.wait(20), "job B never ran while job A blocked its thread"
        done.append("A")

    async def quick() -> None:
        done.append("B")
        gate.set()

    async def main() -> None:
        async with AsyncClient(database_url) as aclient:
            await aclient.enqueue("A", priority=1)
            await aclient.enqueue("B", priority=2)
            async with AsyncWorkerPool(aclient, {"A": blocking, "B": quick}, count=2, wake_interval=0.05):
                while len(done) < 2:
                    await asyncio.sleep(0.01)

    run(main())
    assert done == ["B", "A"]
    assert rows(conn) == []


@LOOPS
def test_cancellation_mid_job_loses_no_job_and_leaves_no_lock(
    conn: psycopg.Connection[Any], database_url: str, loop: str
) -> None:
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(60)

    async def main() -> None:
        async with AsyncClient(database_url) as aclient:
            job = await aclient.enqueue("Slow")
            worker = AsyncWorker(aclient, {"Slow": slow}, wake_interval=0.05).start()
            await asyncio.wait_for(started.wait(), 20)
            assert worker._handle is not None
            worker._handle.cancel()
            with pytest.raises(asyncio.CancelledError):
                await worker._handle.task
            assert job.job_id in [r["job_id"] for r in rows(conn)]

    run(main(), loop)
    [row] = rows(conn)
    assert row["error_count"] == 0 and row["last_error"] is None, "the row is left as it was"
    wait_until(lambda: advisory_locks(conn) == [], 10, "the cancelled job's lock to end with its session")


def test_a_handler_raising_cancelled_error_itself_is_a_failure(
    conn: psycopg.Connection[Any], database_url: str
) -> None:
    async def poison() -> None:
        raise asyncio.CancelledError("not my task's cancellation")

    async def main() -> None:
        async with AsyncClient(database_url) as aclient:
            await aclient.enqueue("Poison")
            assert await AsyncWorker(aclient, {"Poison": poison}).work_one() is True

    run(main())
    [row] = rows(conn)
    assert row["error_count"] == 1 and "CancelledError" in row["last_error"]


@LOOPS
def test_listen_notify_wakes_an_idle_async_worker(conn: psycopg.Connection[Any], database_url: str, loop: str) -> None:
    async def main() -> float:
        done = asyncio.Event()

        async def note() -> None:
            done.set()

        async with AsyncClient(database_url, notify=True) as aclient:
            worker = AsyncWorker(aclient, {"Note": note}, wake_interval=60, listen=True).start()
            while worker.backend_pid is None:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # pacing: let the worker reach its idle wait before the notification
            started = time.monotonic()
            await aclient.enqueue("Note")
            await asyncio.wait_for(done.wait(), 10)
            assert await worker.shutdown(10)
            return time.monotonic() - started

    assert run(main(), loop) < 10, "a notification must wake the worker long before its 60 s poll"


@LOOPS
def test_pool_drains_exactly_once_and_shuts_down(conn: psycopg.Connection[Any], database_url: str, loop: str) -> None:
    seen: list[int] = []

    async def note(n: int) -> None:
        seen.append(n)

    async def main() -> None:
        async with AsyncClient(database_url) as aclient:
            await aclient.enqueue_many([("Note", [n]) for n in range(300)])
            pool = await AsyncWorkerPool(aclient, {"Note": note}, count=4, wake_interval=0.05).start()
            while len(seen) < 300:
                await asyncio.sleep(0.01)
            assert await pool.shutdown(10)
            assert all(not w.is_alive() for w in pool.workers)

    run(main(), loop)
    assert sorted(seen) == list(range(300))
    assert rows(conn) == [] and advisory_locks(conn) == []


@pytest.mark.parametrize("plain", [True, False], ids=["plain", "async"])
def test_poison_handlers_are_recorded_by_the_async_worker(
    conn: psycopg.Connection[Any], database_url: str, plain: bool
) -> None:
    """Whatever a handler raises (GeneratorExit, CancelledError, any BaseException), plain
    handler in a thread or async def, is the job's failure, and the worker goes on."""

    class Custom(BaseException):
        pass

    poisons = {"G": GeneratorExit(), "C": asyncio.CancelledError(), "X": Custom("x")}

    def make(error: BaseException) -> Any:
        if plain:

            def raiser() -> None:
                raise error

            return raiser

        async def araiser() -> None:
            raise error

        return araiser

    async def main() -> None:
        async with AsyncClient(database_url) as aclient:
            for name in poisons:
                await aclient.enqueue(name)
            worker = AsyncWorker(aclient, {name: make(error) for name, error in poisons.items()})
            for _ in poisons:
                assert await worker.work_one() is True

    run(main())
    recorded = {r["job_class"]: (r["error_count"], r["last_error"].split("\n")[0]) for r in rows(conn)}
    assert recorded == {
        "G": (1, "GeneratorExit"),
        "C": (1, "asyncio.exceptions.CancelledError"),
        "X": (
            1,
            "tests.integration.test_asyncio.test_poison_handlers_are_recorded_by_the_async_worker.<locals>.Custom: x",
        ),
    }
    assert advisory_locks(conn) == []


@LOOPS
@pytest.mark.parametrize("listen", [False, True], ids=["polling", "listening"])
def test_an_async_worker_whose_idle_session_the_server_ends_reconnects(
    conn: psycopg.Connection[Any], database_url: str, listen: bool, loop: str
) -> None:
    """Its socket stays registered with the loop between statements: the server's goodbye
    arrives there, and the worker must neither spin on it nor lose the next job."""

    async def main() -> list[int]:
        worked: list[int] = []
        second = asyncio.Event()

        async def job(n: int) -> None:
            worked.append(n)
            if n == 2:
                second.set()

        async with AsyncClient(database_url, notify=True) as aclient:
            await aclient.enqueue("J", 1)
            worker = AsyncWorker(aclient, {"J": job}, wake_interval=0.05, listen=listen).start()
            while worked != [1]:
                await asyncio.sleep(0.01)
            pid = worker.backend_pid
            assert pid is not None
            await asyncio.to_thread(conn.execute, "SELECT pg_terminate_backend(%s, 10000)", [pid])
            await aclient.enqueue("J", 2)
            await asyncio.wait_for(second.wait(), 10)
            assert worker.backend_pid not in (None, pid)
            assert await worker.shutdown(10)
            return worked

    assert run(main(), loop) == [1, 2]
    assert rows(conn) == [] and advisory_locks(conn) == []


@pytest.mark.parametrize(("choice", "module"), [("asyncio", "asyncio"), ("uvloop", "uvloop"), ("auto", "uvloop")])
def test_run_starts_the_loop_asked_for(choice: str, module: str) -> None:
    async def main() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    assert aio.run(main(), loop=choice) == module
    assert aio.loop_name(choice).split()[0] == module


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from que.drivers import loops as _loop

    monkeypatch.setattr(_loop, "_uvloop", lambda: None)  # as in an environment without the package

    async def main() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    assert aio.run(main(), loop="auto") == "asyncio" and aio.loop_name() == "asyncio"
    pending = main()
    with pytest.raises(RuntimeError, match=r"uvloop is not installed: pip install 'que-interop\[uvloop\]'"):
        aio.run(pending, loop="uvloop")
    assert pending.cr_frame is None, "the refused coroutine is closed, not left never awaited"
    with pytest.raises(ValueError, match="loop must be one of auto, asyncio, uvloop, got 'trio'"):
        aio.loop_name("trio")
