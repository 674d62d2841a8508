"""The asyncio API's lifecycle: a pool cut short keeps a plain handler's lock until the
handler ends and lets the process exit at once; a pool can start again; a release
cancelled mid-way stays cancelled; a client opened on one loop refuses another at once."""

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.lab import advisory_locks, wait_until
from que.aio import AsyncClient, AsyncWorkerPool
from tests.conftest import rows


def test_a_pool_cut_short_keeps_a_plain_handlers_lock_until_it_ends(
    conn: psycopg.Connection[Any], database_url: str
) -> None:
    running = threading.Event()
    gate = threading.Event()
    runs: list[int] = []

    def slow() -> None:
        runs.append(1)
        running.set()
        gate.wait(30)

    async def main() -> bool:
        async with AsyncClient(database_url) as aclient:
            await aclient.enqueue("Slow")
            pool = AsyncWorkerPool(aclient, {"Slow": slow}, count=2, wake_interval=0.05)
            task = asyncio.create_task(pool.run(shutdown_timeout=0.3))
            while not running.is_set():
                await asyncio.sleep(0.01)
            await pool.shutdown(0)  # asks run() to stop; it waits 0.3 s, then cuts the job short
            return await asyncio.wait_for(task, 20)

    finished_in_time = asyncio.run(main())
    assert finished_in_time is False, "run() reports that a job was cut short"
    try:
        # run() has returned while the handler still runs: its job must stay locked, by one session.
        assert len(advisory_locks(conn)) == 1
        with psycopg.connect(database_url, autocommit=True) as other:
            [(taken,)] = other.execute("SELECT pg_try_advisory_lock(job_id) FROM que_jobs").fetchall()
            assert taken is False, "another worker could lock a job whose handler is still running"
    finally:
        gate.set()
    wait_until(lambda: advisory_locks(conn) == [], 20, "the lock to go when the handler ends")
    assert runs == [1]
    assert rows(conn) == [], "the job the handler finished after the pool returned is deleted"


def test_a_process_whose_pool_was_cut_short_exits_at_once(database_url: str, tmp_path: Path) -> None:
    """A plain handler still sleeping must not hold the interpreter's exit (threads of a
    ThreadPoolExecutor are joined at exit)."""
    script = tmp_path / "cut_short.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys, threading
            from que.aio import AsyncClient, AsyncWorkerPool

            def slow():
                print("running", flush=True)
                threading.Event().wait()  # a handler that never ends on its own

            async def main():
                async with AsyncClient({database_url!r}) as client:
                    await client.enqueue("Slow")
                    pool = AsyncWorkerPool(client, {{"Slow": slow}}, count=1, wake_interval=0.05)
                    return await pool.run(shutdown_timeout=0.2)

            print("returned", asyncio.run(main()), flush=True)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline().strip() == "returned False"
        started = time.monotonic()
        proc.wait(30)
        assert time.monotonic() - started < 10, "the process waited for the sleeping handler thread"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_pool_runs_plain_handlers_after_a_restart(conn: psycopg.Connection[Any], database_url: str) -> None:
    ran: list[int] = []

    def plain(n: int) -> None:
        ran.append(n)

    async def main() -> None:
        async with AsyncClient(database_url) as aclient:
            pool = AsyncWorkerPool(aclient, {"Plain": plain}, count=1, wake_interval=0.05)
            for n in (1, 2):
                async with pool:
                    await aclient.enqueue("Plain", n)
                    while len(ran) < n:
                        failed = [row["last_error"] for row in rows(conn) if row["error_count"]]
                        assert not failed, f"the job was recorded as failed without running: {failed}"
                        await asyncio.sleep(0.01)

    asyncio.run(asyncio.wait_for(main(), 30))
    assert ran == [1, 2]
    assert rows(conn) == []


def test_a_cancelled_release_stays_cancelled(conn: psycopg.Connection[Any], database_url: str) -> None:
    async def main() -> None:
        async with AsyncClient(database_url) as aclient:
            await aclient.enqueue("J")
            job = await aclient.lock_job()
            assert job is not None
            releasing = asyncio.create_task(job.release())
            await asyncio.sleep(0)  # the unlock is sent; release awaits its result
            releasing.cancel()
            with pytest.raises(asyncio.CancelledError):
                await releasing
            assert releasing.cancelled()
            assert job.released

    asyncio.run(main())
    wait_until(lambda: advisory_locks(conn) == [], 10, "the lock to end with the closed connection")
    assert len(rows(conn)) == 1


def test_a_client_opened_on_one_loop_refuses_another_at_once(database_url: str) -> None:
    client = AsyncClient(database_url, connect_timeout=10)
    asyncio.run(client.open())
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="event loop"):
        asyncio.run(client.enqueue("J"))
    assert time.monotonic() - started < 5, "the refusal must not wait for the pool's timeout"
