"""What the Python testees share: the protocol loop, the capabilities they declare, how a
request becomes an enqueue, and how a held job is reported (conformance/PROTOCOL.md)."""

import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

import que
from que import activejob
from testees.python.activejob_spec import build_call, describe_call

PROTOCOL_VERSION = 2
DRAINED = "SELECT NOT EXISTS (SELECT 1 FROM que_jobs WHERE queue = %s AND run_at <= now())"
# On a Que 1.x/2.x table, finished and expired rows stay, and rows of another job schema
# version are nobody's (1: Que 1.x's, 2: Que 2.x's).
JOB_SCHEMA_VERSIONS = {"1": 1, "2": 2}


def drained_query(dialect: str) -> str:
    """When the `work` op's queue counts as drained, on a table of `dialect`."""
    if dialect not in JOB_SCHEMA_VERSIONS:
        return DRAINED
    return (
        "SELECT NOT EXISTS (SELECT 1 FROM que_jobs WHERE queue = %s AND run_at <= now() "
        f"AND finished_at IS NULL AND expired_at IS NULL AND job_schema_version = {JOB_SCHEMA_VERSIONS[dialect]})"
    )


class Unavailable(Exception):
    """Answered to `start` as error type "Unavailable": the row cannot run here."""


def dialect_of(req: dict[str, Any]) -> str:
    dialect = str(req.get("dialect", "0.14"))
    if dialect not in ("0.14", "1", "2"):
        raise Unavailable(f"no Que dialect {dialect!r} here: 0.14, 1 and 2 are known")
    return dialect


def started2(name: str, dialect: str = "2") -> dict[str, Any]:
    """The start result of a Python testee on a Que 1.x/2.x table: Ruby Que 1.x/2.x have
    no work_one and no lock API, so neither has que on those dialects."""
    return {
        **{k: v for k, v in started(name).items() if k != "capabilities"},
        "dialect": dialect,
        "capabilities": {
            "enqueue_returns_job_id": True,
            "enqueue_run_at": True,
            "migrate": True,
            "work_pool": True,
            "active_job": ACTIVE_JOB,
        },
    }


def drained_by(conninfo: str, queue: str, deadline: float, minimum: float, query: str = DRAINED) -> tuple[bool, float]:
    """The `work` op's wait: poll until `queue` holds no due job (and the `minimum` moment,
    time.monotonic(), has passed) or the deadline passes. Returns (drained, the moment it
    was found drained or gave up). Survives a server restart, like the workers themselves."""
    conn: psycopg.Connection[Any] | None = None
    try:
        while time.monotonic() < deadline:
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=2)
                row = conn.execute(query, [queue]).fetchone()
            except psycopg.OperationalError:
                conn = None
                time.sleep(0.1)
                continue
            if row is not None and row[0] and time.monotonic() >= minimum:
                return True, time.monotonic()
            time.sleep(0.005)
        return False, time.monotonic()
    finally:
        if conn is not None:
            conn.close()


RECORD = "INSERT INTO {table} (impl, pid, job_id, job_class, received, raw) VALUES (%s, %s, %s, %s, %s, %s)"


def started(name: str, on: str | None = None) -> dict[str, Any]:
    """The start result of a Python testee (`on`: the event loop of an asyncio one)."""
    return {
        "name": name,
        "version": que.__version__,
        "language": f"Python {sys.version.split()[0]}" + (f" on {on}" if on else ""),
        "protocol": PROTOCOL_VERSION,
        "capabilities": {
            "enqueue_returns_job_id": True,
            "enqueue_run_at": True,
            "migrate": True,
            "work_pool": True,
            "lock": True,
            "race_retry": True,
            "number_model": "exact",
            "args_encoding": "ruby-json-dump",
            "last_error_format": "python",
            "enqueue_batch": True,
            "listen": True,
            "stats": True,
            "default_wake_interval_ms": 5000,
            "active_job": ACTIVE_JOB,
        },
    }


# The job classes every testee registers (conformance/PROTOCOL.md), and the method of a
# Python testee that handles each.
JOB_CLASSES = {
    "QueConformance::Echo": "echo",
    "QueConformance::Fail": "fail",
    "QueConformance::Sleep": "sleep",
    "QueConformance::Noop": "noop",
    "QueConformance::Flaky": "flaky",
    "QueConformance::Finish": "finishes",  # the Que 2 dialect only
    "QueConformance::Expire": "expires",  # the Que 2 dialect only
}


# The ActiveJob envelope the Python testees write and read (capability active_job), and the
# ActiveJob job classes every testee that declares it registers.
ACTIVE_JOB = "6.1"
ACTIVE_JOB_CLASSES = {"QueConformance::AjEcho": "aj_echo", "QueConformance::AjFail": "aj_fail"}


def carries_active_job(info: dict[str, Any], name: str, broken_rule: str | None) -> dict[str, Any]:
    """The start result, with active_job declared by the rows that carry it: python and
    python-async (threads' and asyncio's handlers). python-sessions and python-batch run
    the same envelope code as python, and a port broken on purpose breaks a Que rule; the
    ActiveJob cells would only run them again."""
    if name not in ("python", "python-async") or broken_rule is not None:
        info["capabilities"].pop("active_job", None)
    return info


def registry(testee: object) -> que.Registry:
    """The testee's handlers, sync or async, under the shared job class names, and the
    ActiveJob wrapper dispatching to its ActiveJob job classes."""
    handlers = {name: getattr(testee, method) for name, method in JOB_CLASSES.items()}
    handlers.update(activejob.handlers({name: getattr(testee, m) for name, m in ACTIVE_JOB_CLASSES.items()}))
    return que.Registry(handlers)


def aj_enqueue_call(req: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """(positional, keyword) arguments of que.activejob.enqueue for an `aj_enqueue` request,
    the client first left to the caller."""
    args, kwargs = build_call(req["arguments"])
    options: dict[str, Any] = {"rails": ACTIVE_JOB, "job_kwargs": kwargs}
    options.update({key: req[key] for key in ("queue", "priority") if key in req})
    if "wait_s" in req:
        options["wait"] = req["wait_s"]
    return [req["job_class"], *args], options


def aj_received(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """What QueConformance::AjEcho records: its arguments as SPECs and the ActiveJob
    attributes it ran with."""
    data = activejob.current()
    assert data is not None, "an ActiveJob handler runs with its envelope"
    keep = ("job_id", "executions", "exception_executions", "queue_name", "priority", "locale")
    return json.dumps(
        {"arguments": describe_call(list(args), kwargs), **{key: data.get(key) for key in keep}}, ensure_ascii=False
    )


def record_params(impl: str, received: str | None) -> list[Any]:
    """A results row: an ActiveJob job records its own class, not the wrapper's."""
    job = que.current_job()
    running = activejob.current()
    job_class = running["job_class"] if running is not None else job.job_class
    return [impl, os.getpid(), job.job_id, job_class, received, job.args_json]


def enqueue_call(req: dict[str, Any], broken_rule: str | None) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments of the enqueue a request asks for."""
    args = que.loads(req["args_json"]) if "args_json" in req else []
    if broken_rule == "arguments" and isinstance(args, list):
        args = args[:-1]
    if not isinstance(args, list):
        raise TypeError(f"args_json must be a JSON array for this implementation, got {req['args_json']!r}")
    options: dict[str, Any] = {k: req[k] for k in ("queue", "priority", "tags") if k in req}
    if "kwargs_json" in req:
        options["kwargs"] = que.loads(req["kwargs_json"])
    if "run_at" in req:
        options["run_at"] = datetime.fromisoformat(req["run_at"].replace("Z", "+00:00"))
    return [req["job_class"], *args], options


class WorkPlan(NamedTuple):
    """A `work` request read once for both Python testees: when to stop, and the pool."""

    queue: str
    started: float
    deadline: float
    minimum: float
    pool: dict[str, Any]  # keyword arguments of WorkerPool and AsyncWorkerPool


def work_plan(req: dict[str, Any], broken_rule: str | None) -> WorkPlan:
    queue = req.get("queue", "")
    started = time.monotonic()
    pool = {
        "count": 1 if broken_rule == "pool-size" else int(req.get("workers", 1)),
        "queue": queue,
        "wake_interval": req.get("wake_interval_ms", 10) / 1000,
    }
    if "listen" in req:  # else the library's default: off for Que 0.x, on for Que 2
        pool["listen"] = bool(req["listen"])
    if "priorities" in req:  # Que 2 dialect only
        pool["priorities"] = req["priorities"]
    return WorkPlan(
        queue,
        started,
        started + req.get("deadline_ms", 60_000) / 1000,
        started + req.get("min_duration_ms", 0) / 1000,
        pool,
    )


def stats_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """job_stats rows as the protocol gives them (oldest_run_at as RFC 3339)."""
    return {"rows": [{**row, "oldest_run_at": row["oldest_run_at"].isoformat()} for row in rows]}


def states_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keep = ("job_id", "job_class", "pg_backend_pid")
    return {"rows": [{key: row[key] for key in keep} for row in rows]}


def held(job: que.Job) -> dict[str, Any]:
    return {
        "job": {
            "job_id": job.job_id,
            "queue": job.queue,
            "priority": job.priority,
            "run_at": job.run_at.isoformat(),
            "job_class": job.job_class,
            "error_count": job.error_count,
        }
    }


def serve(dispatch: Callable[[str, dict[str, Any]], dict[str, Any]]) -> int:
    """Answer requests from stdin until `stop`; every failure is a response, never a crash."""
    for line in sys.stdin:
        if not line.strip():
            continue
        request_id = None
        req: dict[str, Any] = {}
        try:
            req = json.loads(line)
            request_id = req.get("id")
            response = {"id": request_id, "ok": True, "result": dispatch(str(req.get("op")), req)}
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            response = {"id": request_id, "ok": False, "error": {"type": type(error).__name__, "message": str(error)}}
        sys.stdout.write(json.dumps(response, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        if req.get("op") == "stop":
            return 0
    return 0
