"""The two Python worker kinds behind one interface, so each in-process scenario runs for
the thread pool (que.WorkerPool) and for the asyncio pool (que.aio.AsyncWorkerPool, on an
event loop in a thread of its own)."""

import asyncio
import threading
from collections.abc import Mapping
from typing import Any, Protocol

import que
from que.aio import AsyncClient, AsyncWorkerPool

KINDS = ("threads", "async")


class Pool(Protocol):
    workers: list[Any]
    locker: Any

    def shutdown(self, timeout: float | None = None) -> bool: ...


class AsyncPoolThread:
    """An AsyncWorkerPool running on its own loop in a daemon thread."""

    def __init__(self, url: str, handlers: Mapping[str, Any], count: int, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._url, self._handlers, self._count, self._options = url, handlers, count, options
        self.workers: list[Any] = []
        self.locker: Any = None
        self.client: Any = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(30)

    async def _start(self) -> None:
        self._client = await AsyncClient(self._url).open()
        self._pool = await AsyncWorkerPool(self._client, self._handlers, count=self._count, **self._options).start()
        self.workers = self._pool.workers
        self.locker = self._pool.locker
        self.client = self._client

    def shutdown(self, timeout: float | None = None) -> bool:
        async def stop() -> bool:
            stopped = await self._pool.shutdown(timeout)
            await self._client.close()
            return stopped

        try:
            return asyncio.run_coroutine_threadsafe(stop(), self._loop).result()
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


def start(kind: str, url: str, client: que.Client, handlers: Mapping[str, Any], count: int, **options: Any) -> Pool:
    """A started pool of `kind`; `client` serves the thread pool (the async one opens its own)."""
    if kind == "async":
        return AsyncPoolThread(url, handlers, count, **options)
    return que.WorkerPool(client, handlers, count=count, **options).start()
