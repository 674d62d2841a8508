"""procrastinate (psycopg 3, one worker with concurrency N, wait=False to stop when empty):
`python -m bench.peers.procrastinate_drain URL JOBS CONCURRENCY [--enqueue N]`."""

import asyncio
import json
import logging
import sys
import time

import procrastinate
import psycopg

logging.disable(logging.WARNING)


async def main(url: str, jobs: int, concurrency: int, enqueue: int) -> dict[str, float]:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop")
    async def noop(n: int) -> None:
        pass

    report: dict[str, float] = {}
    async with app.open_async():
        with psycopg.connect(url, autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if not exists or exists[0] is None:
                await app.schema_manager.apply_schema_async()
            conn.execute("DELETE FROM procrastinate_jobs")
        if enqueue:
            started = time.perf_counter()
            for i in range(enqueue):
                await noop.defer_async(n=i)
            report["enqueue_single_per_s"] = enqueue / (time.perf_counter() - started)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("DELETE FROM procrastinate_jobs")
            started = time.perf_counter()
            await noop.batch_defer_async(*({"n": i} for i in range(jobs)))
            report["enqueue_batch_per_s"] = jobs / (time.perf_counter() - started)
        else:
            await noop.batch_defer_async(*({"n": i} for i in range(jobs)))
        started = time.perf_counter()
        await app.run_worker_async(concurrency=concurrency, wait=False)
        elapsed = time.perf_counter() - started
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'todo'").fetchone()
    report.update({"drain_per_s": jobs / elapsed, "left": float(row[0] if row else -1)})
    return report


if __name__ == "__main__":
    url, jobs, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    enqueue = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[4] == "--enqueue" else 0
    print(json.dumps(asyncio.run(main(url, jobs, concurrency, enqueue))))
