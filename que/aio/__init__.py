"""que for asyncio: AsyncClient, AsyncLockedJob, AsyncWorker and AsyncWorkerPool.

The same protocol engine as the sync API (que._protocol), driven by the event loop; only
the I/O differs. Handlers may be `async def` (awaited on the loop) or plain functions (run
in a thread, so they cannot block the loop).
"""

from que.aio._client import AsyncClient
from que.aio._lock import AsyncLockedJob
from que.aio._pool import AsyncWorkerPool
from que.aio._worker import AsyncWorker

__all__ = ["AsyncClient", "AsyncLockedJob", "AsyncWorker", "AsyncWorkerPool"]
