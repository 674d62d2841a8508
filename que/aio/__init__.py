"""que for asyncio: AsyncClient, AsyncLockedJob, AsyncWorker and AsyncWorkerPool.

The same protocol engine as the sync API (que.dialects.que0.protocol), driven by the event loop; only
the I/O differs. Handlers may be `async def` (awaited on the loop) or plain functions (run
in a thread, so they cannot block the loop). `run` starts a program's own loop: uvloop's
when installed, as `que work --async` does.
"""

from que.aio._client import AsyncClient
from que.aio._lock import AsyncLockedJob
from que.aio._pool import AsyncWorkerPool
from que.aio._worker import AsyncWorker
from que.drivers.loops import LOOPS, loop_factory, loop_name, run

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
