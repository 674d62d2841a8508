"""What the locker fault tests share: the I/O styles, a pool run around a body, and a count
of que_jobs rows (their fresh v7 database is tests/conftest.py's `v7_url` fixture)."""

import asyncio
from collections.abc import Callable
from typing import Any

import psycopg

import que
from que.aio import AsyncClient, AsyncWorkerPool

KINDS = ["threads", "asyncio"]


def run_pool(
    kind: str, url: str, handlers: dict[str, Callable[..., Any]], body: Callable[[Any], None], **options: Any
) -> None:
    """Start a pool of `kind` on `url`, call body(pool) in a thread, then shut the pool down."""
    if kind == "threads":
        with que.Client(url) as client:
            pool = que.WorkerPool(client, handlers, **options).start()
            try:
                body(pool)
            finally:
                assert pool.shutdown(20)
        return

    async def main() -> None:
        async with AsyncClient(url) as client:
            pool = await AsyncWorkerPool(client, handlers, **options).start()
            try:
                await asyncio.to_thread(body, pool)
            finally:
                assert await pool.shutdown(20)

    asyncio.run(main())


def count(url: str, where: str = "true") -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM que_jobs WHERE {where}").fetchone()
        return int(row[0]) if row else -1
