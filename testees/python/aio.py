"""The asyncio Python testee: conformance/PROTOCOL.md over `que.aio`.

Run as `python -m testees.python.aio`. Its job classes are `async def` handlers,
so the cells check the asyncio worker and its event-loop I/O, not the thread pool.
"""

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import psycopg

import que
from que import activejob
from que.aio import LOOPS, AsyncClient, AsyncLockedJob, AsyncWorker, AsyncWorkerPool, loop_factory, loop_name
from testees.python import broken
from testees.python.common import (
    RECORD,
    aj_enqueue_call,
    aj_received,
    carries_active_job,
    dialect_of,
    drained_by,
    drained_query,
    enqueue_call,
    held,
    record_params,
    registry,
    serve,
    started,
    started2,
    states_rows,
    stats_rows,
    work_plan,
)

NAME = "python-async"


class AsyncTestee:
    def __init__(self, broken_rule: str | None = None, loop: str = "asyncio") -> None:
        self.broken_rule = broken_rule
        self.loop = loop
        self.client: AsyncClient | None = None
        self.results_table = "que_conformance_results"
        self.held: dict[int, AsyncLockedJob] = {}
        self.results_conn: psycopg.AsyncConnection[Any] | None = None
        self.results_lock = asyncio.Lock()
        self.handlers = registry(self)
        self.dialect = "0.14"

    # -- job classes ------------------------------------------------------------------

    async def record(self, received: str | None) -> None:
        params = record_params(NAME, received)
        async with self.results_lock:
            if self.results_conn is None or self.results_conn.closed or self.results_conn.broken:
                assert self.client is not None
                self.results_conn = await psycopg.AsyncConnection.connect(self.client.conninfo, autocommit=True)
            await self.results_conn.execute(RECORD.format(table=self.results_table), params)

    async def echo(self, *args: Any, **kwargs: Any) -> None:
        if self.dialect in ("1", "2"):  # what a Que 1.x/2.x handler receives: both halves
            await self.record(json.dumps({"args": list(args), "kwargs": kwargs}, ensure_ascii=False))
        else:
            await self.record(json.dumps(list(args), ensure_ascii=False))

    async def fail(self, message: str = "failed", *rest: Any) -> None:
        raise RuntimeError(message)

    async def sleep(self, milliseconds: float = 0, *rest: Any) -> None:
        await asyncio.sleep(float(milliseconds) / 1000)
        await self.record(None)

    async def noop(self, *args: Any) -> None:
        pass

    async def finishes(self, *args: Any, **kwargs: Any) -> None:
        await self.record(None)
        que.finish()

    async def expires(self, *args: Any, **kwargs: Any) -> None:
        await self.record(None)
        que.expire()

    async def flaky(self, failures: int = 1, *rest: Any) -> None:
        count = que.current_job().error_count
        if count < int(failures):
            raise RuntimeError(f"flaky failure {count + 1} of {failures}")
        await self.record(json.dumps([count]))

    async def aj_echo(self, *args: Any, **kwargs: Any) -> None:
        """QueConformance::AjEcho, an ActiveJob job: records what it received as SPECs."""
        await self.record(aj_received(args, kwargs))

    async def aj_fail(self, message: str = "failed", *rest: Any) -> None:
        raise RuntimeError(message)

    # -- ops ----------------------------------------------------------------------------

    async def op_start(self, req: dict[str, Any]) -> dict[str, Any]:
        self.dialect = dialect_of(req)
        self.client = await AsyncClient(req["database_url"], max_connections=60).open()
        broken.DATABASE_URL[:] = [req["database_url"]]
        self.results_table = req.get("results_table", self.results_table)
        if self.dialect in ("1", "2"):
            return carries_active_job(started2(NAME, self.dialect), NAME, self.broken_rule)
        return carries_active_job(started(NAME, on=self.loop), NAME, self.broken_rule)

    async def op_migrate(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        await self.client.migrate(int(req["version"]))
        return {}

    async def op_enqueue(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        args, options = enqueue_call(req, self.broken_rule)
        return {"job_id": (await self.client.enqueue(*args, **options)).job_id}

    async def op_aj_enqueue(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        args, options = aj_enqueue_call(req)
        return {"job_id": (await activejob.aenqueue(self.client, *args, **options)).args[0]["job_id"]}

    async def op_bench_enqueue(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        count, job_class = int(req["count"]), req["job_class"]
        begun = time.perf_counter()
        if req.get("batch"):
            await self.client.enqueue_many([que.NewJob(job_class, [i]) for i in range(count)])
        else:
            for i in range(count):
                await self.client.enqueue(job_class, i)
        return {"elapsed_ms": round((time.perf_counter() - begun) * 1000, 2)}

    async def op_work_one(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        worker = AsyncWorker(self.client, self.handlers, queue=req.get("queue", ""))
        try:
            return {"worked": await worker.work_one()}
        finally:
            await worker._drop_connection()

    async def op_work(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        plan = work_plan(req, self.broken_rule)
        pool = await AsyncWorkerPool(self.client, self.handlers, **plan.pool).start()
        # The drained check runs in a thread of its own, as in the thread testee, so that
        # its polling does not take the event loop's time from the pool being measured.
        query = drained_query(self.dialect)
        drained, elapsed = await asyncio.to_thread(
            drained_by, self.client.conninfo, plan.queue, plan.deadline, plan.minimum, query
        )
        elapsed -= plan.started
        await pool.shutdown()
        return {"drained": drained, "elapsed_ms": round(elapsed * 1000, 1)}

    async def op_job_stats(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        return stats_rows(await self.client.job_stats())

    async def op_worker_states(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        return states_rows(await self.client.worker_states())

    async def op_lock(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        locked = await self.client.lock_job(req.get("queue", ""))
        if locked is None:
            return {"job": None}
        self.held[locked.job.job_id] = locked
        return held(locked.job)

    async def op_release(self, req: dict[str, Any]) -> dict[str, Any]:
        locked = self.held.pop(int(req["job_id"]), None)
        if locked is None:
            raise KeyError(f"job {req['job_id']} is not held by this testee")
        await locked.release()
        return {}

    async def op_stop(self, req: dict[str, Any]) -> dict[str, Any]:
        for locked in self.held.values():
            await locked.release()
        self.held.clear()
        if self.client is not None:
            await self.client.close()
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testees.python.aio", description="The asyncio Python testee.")
    parser.add_argument("--break", dest="rule", help="become a port that breaks RULE (testees.python.broken)")
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default=os.environ.get("QUE_ASYNC_LOOP", "auto"),
        help="the event loop, as `que work --async --loop` (default: $QUE_ASYNC_LOOP, else auto)",
    )
    options = parser.parse_args(argv)
    if options.rule:
        broken.apply(options.rule)
    testee = AsyncTestee(options.rule, loop_name(options.loop))
    # One loop for every request, so connections outlive them.
    with asyncio.Runner(loop_factory=loop_factory(options.loop)) as runner:

        def dispatch(op: str, req: dict[str, Any]) -> dict[str, Any]:
            handler = getattr(testee, f"op_{op}", None)
            if handler is None:
                raise NotImplementedError(f"unknown op {op!r}")
            return runner.run(handler(req))  # type: ignore[no-any-return]

        return serve(dispatch)


if __name__ == "__main__":
    sys.exit(main())
