"""PgQueuer (asyncpg, batch_size 10, N QueueManagers in one process, drain mode):
`python -m bench.peers.pgqueuer_drain URL JOBS CONCURRENCY [--enqueue N]`."""

import asyncio
import json
import sys
import time

import asyncpg
from pgqueuer import AsyncpgDriver, Queries, QueueManager
from pgqueuer.domain.types import QueueExecutionMode

BATCH = 10


async def main(url: str, jobs: int, concurrency: int, enqueue: int) -> dict[str, float]:
    conn = await asyncpg.connect(url)
    queries = Queries(AsyncpgDriver(conn))
    if not await queries.has_table("pgqueuer"):
        await queries.install()
    await conn.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")
    report: dict[str, float] = {}
    if enqueue:
        started = time.perf_counter()
        for i in range(enqueue):
            await queries.enqueue("noop", str(i).encode())
        report["enqueue_single_per_s"] = enqueue / (time.perf_counter() - started)
        await conn.execute("TRUNCATE pgqueuer")
        started = time.perf_counter()
        await queries.enqueue(["noop"] * jobs, [str(i).encode() for i in range(jobs)], [0] * jobs)
        report["enqueue_batch_per_s"] = jobs / (time.perf_counter() - started)
    else:
        await queries.enqueue(["noop"] * jobs, [str(i).encode() for i in range(jobs)], [0] * jobs)
    await conn.execute("VACUUM ANALYZE pgqueuer")
    managers = []
    for _ in range(concurrency):
        manager = QueueManager(Queries(AsyncpgDriver(await asyncpg.connect(url))))

        @manager.entrypoint("noop")
        async def noop(job: object) -> None:
            pass

        managers.append(manager)
    started = time.perf_counter()
    await asyncio.gather(*(m.run(batch_size=BATCH, mode=QueueExecutionMode.drain) for m in managers))
    elapsed = time.perf_counter() - started
    left = await conn.fetchval("SELECT count(*) FROM pgqueuer WHERE status = 'queued'")
    report.update({"drain_per_s": jobs / elapsed, "left": float(left)})
    return report


if __name__ == "__main__":
    url, jobs, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    enqueue = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--enqueue" else 0
    print(json.dumps(asyncio.run(main(url, jobs, concurrency, enqueue))))
