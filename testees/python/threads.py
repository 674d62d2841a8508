"""The Python testee: conformance/PROTOCOL.md over the `que` library.

Run as `python -m testees.python.threads`. Like every testee it registers the shared
job classes (QueConformance::Echo, ::Fail, ::Sleep, ::Noop, ::Flaky) and writes what its
handlers received into the harness's results table.
"""

import argparse
import json
import sys
import threading
import time
from typing import Any

import psycopg

import que
import que.dialects.que0.protocol
import que.engine.setup
from que import activejob
from que.dialects.que0.protocol import Locked
from que.dialects.que0.statements import catalog as que0_catalog
from que.drivers.threads import run as wait
from que.engine.session import Session
from testees.python import broken
from testees.python.common import (
    RECORD,
    Unavailable,
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


class Testee:
    def __init__(self, broken_rule: str | None = None, batch: int = 1, locker: bool = True) -> None:
        self.broken_rule = broken_rule
        # The rows: python (WorkerPool with its locker, the default), python-sessions (a
        # session per worker, WorkerPool(locker=False)) and python-batch (a session per
        # worker claiming in batches, WorkerPool(locker=False, batch=...); `lock` with
        # `count` holds a batch).
        self.batch = batch
        self.locker = locker and batch == 1
        self.name = "python-batch" if batch > 1 else "python" if self.locker else "python-sessions"
        self.batches: dict[int, tuple[psycopg.Connection[Any], Session, list[Locked]]] = {}
        self.client: que.Client | None = None
        self.results_table = "que_conformance_results"
        self.worker: que.Worker | None = None
        self.held: dict[int, que.LockedJob] = {}
        self.results_conn: psycopg.Connection[Any] | None = None
        self.results_lock = threading.Lock()
        self.handlers = registry(self)
        self.dialect = "0.14"

    # -- job classes ------------------------------------------------------------------

    def record(self, received: str | None) -> None:
        with self.results_lock:
            if self.results_conn is None or self.results_conn.closed or self.results_conn.broken:
                assert self.client is not None
                self.results_conn = psycopg.connect(self.client.conninfo, autocommit=True)
            self.results_conn.execute(RECORD.format(table=self.results_table), record_params(self.name, received))

    def echo(self, *args: Any, **kwargs: Any) -> None:
        if self.dialect in ("1", "2"):  # what a Que 1.x/2.x handler receives: both halves
            self.record(json.dumps({"args": list(args), "kwargs": kwargs}, ensure_ascii=False))
        else:
            self.record(json.dumps(list(args), ensure_ascii=False))

    def fail(self, message: str = "failed", *rest: Any) -> None:
        raise RuntimeError(message)

    def sleep(self, milliseconds: float = 0, *rest: Any) -> None:
        time.sleep(float(milliseconds) / 1000)
        self.record(None)

    def noop(self, *args: Any) -> None:
        pass

    def finishes(self, *args: Any, **kwargs: Any) -> None:
        """Que 2: marks its job finished (kept, with finished_at) instead of destroyed."""
        self.record(None)
        que.finish()

    def expires(self, *args: Any, **kwargs: Any) -> None:
        """Que 2: expires its job (kept, with expired_at) instead of destroying it."""
        self.record(None)
        que.expire()

    def flaky(self, failures: int = 1, *rest: Any) -> None:
        """Fail until the job has failed `failures` times, then record the count."""
        count = que.current_job().error_count
        if count < int(failures):
            raise RuntimeError(f"flaky failure {count + 1} of {failures}")
        self.record(json.dumps([count]))

    def aj_echo(self, *args: Any, **kwargs: Any) -> None:
        """QueConformance::AjEcho, an ActiveJob job: records what it received as SPECs."""
        self.record(aj_received(args, kwargs))

    def aj_fail(self, message: str = "failed", *rest: Any) -> None:
        raise RuntimeError(message)

    # -- ops ----------------------------------------------------------------------------

    def op_start(self, req: dict[str, Any]) -> dict[str, Any]:
        self.dialect = dialect_of(req)
        if self.dialect in ("1", "2") and self.name != "python":
            raise Unavailable(f"{self.name} is a Que 0.x mode (a session per worker); Que 2 works through its locker")
        self.client = que.Client(req["database_url"], max_connections=60)
        broken.DATABASE_URL[:] = [req["database_url"]]
        self.results_table = req.get("results_table", self.results_table)
        if self.dialect in ("1", "2"):
            return carries_active_job(started2(self.name, self.dialect), self.name, self.broken_rule)
        info = started(self.name)
        if self.batch > 1:
            info["capabilities"]["lock_batch"] = True
        return carries_active_job(info, self.name, self.broken_rule)

    def op_migrate(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        self.client.migrate(int(req["version"]))
        return {}

    def op_enqueue(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        args, options = enqueue_call(req, self.broken_rule)
        return {"job_id": self.client.enqueue(*args, **options).job_id}

    def op_aj_enqueue(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        args, options = aj_enqueue_call(req)
        return {"job_id": activejob.enqueue(self.client, *args, **options).args[0]["job_id"]}

    def op_bench_enqueue(self, req: dict[str, Any]) -> dict[str, Any]:
        """Enqueue `count` jobs one at a time (or in one batch) and time it."""
        assert self.client is not None
        count, job_class = int(req["count"]), req["job_class"]
        started = time.perf_counter()
        if req.get("batch"):
            self.client.enqueue_many([que.NewJob(job_class, [i]) for i in range(count)])
        else:
            for i in range(count):
                self.client.enqueue(job_class, i)
        return {"elapsed_ms": round((time.perf_counter() - started) * 1000, 2)}

    def _worker(self, queue: str) -> que.Worker:
        assert self.client is not None
        if self.worker is None or self.worker.queue != queue:
            self.worker = que.Worker(self.client, self.handlers, queue=queue)
        return self.worker

    def op_work_one(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"worked": self._worker(req.get("queue", "")).work_one()}

    def op_work(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        plan = work_plan(req, self.broken_rule)
        pool = que.WorkerPool(self.client, self.handlers, locker=self.locker, batch=self.batch, **plan.pool).start()
        query = drained_query(self.dialect)
        drained, elapsed = drained_by(self.client.conninfo, plan.queue, plan.deadline, plan.minimum, query)
        elapsed -= plan.started
        pool.shutdown()
        return {"drained": drained, "elapsed_ms": round(elapsed * 1000, 1)}

    def op_job_stats(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        return stats_rows(self.client.job_stats())

    def op_worker_states(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        return states_rows(self.client.worker_states())

    def op_lock(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.client is not None
        if "count" in req:
            return self._lock_batch(req.get("queue", ""), int(req["count"]))
        locked = self.client.lock_job(req.get("queue", ""))
        if locked is None:
            return {"job": None}
        self.held[locked.job.job_id] = locked
        return held(locked.job)

    def _lock_batch(self, queue: str, count: int) -> dict[str, Any]:
        """Hold a batch, claimed as WorkerPool(batch=...) claims it (que has no public API
        to hold a batch across calls, so this drives que's engine on a connection of its own)."""
        assert self.client is not None
        conn = self.client.connect("que batch testee")
        session = Session(conn.pgconn, que0_catalog())
        wait(que.engine.setup.set_up(session), conn.pgconn.socket)
        locked = wait(que.dialects.que0.protocol.claim(session, queue, count), conn.pgconn.socket)
        for job in locked:
            self.batches[job.job.job_id] = (conn, session, locked)
        if not locked:
            conn.close()
        return {"jobs": [held(job.job)["job"] for job in locked]}

    def op_release(self, req: dict[str, Any]) -> dict[str, Any]:
        job_id = int(req["job_id"])
        if job_id in self.batches:
            conn, session, locked = self.batches.pop(job_id)
            job = next(job for job in locked if job.job.job_id == job_id)
            wait(que.dialects.que0.protocol.unlock(session, job), conn.pgconn.socket)
            if not any(other is conn for other, _, _ in self.batches.values()):
                conn.close()
            return {}
        locked = self.held.pop(job_id, None)
        if locked is None:
            raise KeyError(f"job {req['job_id']} is not held by this testee")
        locked.release()
        return {}

    def op_stop(self, req: dict[str, Any]) -> dict[str, Any]:
        for locked in self.held.values():
            locked.release()
        self.held.clear()
        for conn, _, _ in self.batches.values():
            conn.close()
        self.batches.clear()
        if self.client is not None:
            self.client.close()
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testees.python.threads", description="The Python testee (PROTOCOL.md).")
    parser.add_argument("--break", dest="rule", help="become a port that breaks RULE (testees.python.broken)")
    parser.add_argument(
        "--batch", type=int, default=1, help="a session per worker, claiming in batches of N (the python-batch row)"
    )
    parser.add_argument(
        "--sessions", action="store_true", help="a session per worker instead of the locker (the python-sessions row)"
    )
    options = parser.parse_args(argv)
    if options.rule:
        broken.apply(options.rule)
    testee = Testee(options.rule, options.batch, locker=not options.sessions)

    def dispatch(op: str, req: dict[str, Any]) -> dict[str, Any]:
        handler = getattr(testee, f"op_{op}", None)
        if handler is None:
            raise NotImplementedError(f"unknown op {op!r}")
        return handler(req)  # type: ignore[no-any-return]

    return serve(dispatch)


if __name__ == "__main__":
    sys.exit(main())
