"""que for asyncio: AsyncClient, AsyncLockedJob, AsyncWorker and AsyncWorkerPool.

The same shells as the sync API (que.shells: these asyncio forms are their source), on the
event loop; only the waiting differs (que.drivers.aio). Handlers may be `async def`
(awaited on the loop) or plain functions (run in a thread, so they cannot block the loop).
`run` starts a program's own loop: uvloop's when installed, as `que work --async` does.
"""

from que.drivers.loops import LOOPS, loop_factory, loop_name, run
from que.shells.client_async import AsyncClient
from que.shells.lock_async import AsyncLockedJob
from que.shells.pool_async import AsyncWorkerPool
from que.shells.worker_async import AsyncWorker

__all__ = [
    "LOOPS",
    "AsyncClient",
    "AsyncLockedJob",
    "AsyncWorker",
    "AsyncWorkerPool",
    "loop_factory",
    "loop_name",
    "run",
]
