"""The smoke test's steps in the Que 1.x and 2.x dialects: enqueue, work and one retry, each
judged from a v7 (Que 1.x: v5) table, each failure one plain sentence with what to fix.

Que 2 has no way to lock or work one job from outside (conformance/PROTOCOL.md), so the
steps use `work`: a pool of one worker that drains the queue. conformance.smoke runs them
after `start` in that dialect."""

import json
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from conformance.model import retry_delay
from conformance.support import ECHO, FAIL, executions, server_now
from harness import lab
from harness.testee import Testee

# The smoke test's values, in every dialect (conformance.smoke uses them too).
ARGS = [1, "two", {"three": 3.5}, None, True]
KWARGS = {"four": [4]}
TAGS = ["smoke"]
PRIORITY = 42
FAIL_MESSAGE = "smoke test failure"
QUEUE = "default"


class Facts:
    """What the dialect decides: the job_schema_version rows carry, and whether keyword
    arguments have their own column (Que 2) or arrive as one last hash in args (Que 1.x)."""

    def __init__(self, dialect: str) -> None:
        self.version = 1 if dialect == "1" else 2
        self.kwargs_column = dialect != "1"

    def rows(self, conn: psycopg.Connection[Any], where: str = "true") -> list[dict[str, Any]]:
        kwargs = "kwargs::text" if self.kwargs_column else "NULL::text"
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"SELECT id, queue, priority, run_at, job_class, args::text AS args, {kwargs} AS kwargs, "
                "data::text AS data, error_count, last_error_message, finished_at, expired_at, job_schema_version, "
                f"extract(epoch FROM run_at - now())::float8 AS due_in_s FROM que_jobs WHERE {where} ORDER BY id"
            )
            return cur.fetchall()

    def insert(self, conn: psycopg.Connection[Any], job_class: str, args: Any) -> int:
        row = conn.execute(
            "INSERT INTO que_jobs (job_class, args, job_schema_version) VALUES (%s, %s, %s) RETURNING id",
            [job_class, json.dumps(args), self.version],
        ).fetchone()
        assert row is not None
        return int(row[0])


class StepFailed(Exception):
    """One step went wrong; the message is the sentence shown to the port's author."""


def failed_once(job_id: int, row: dict[str, Any] | None, column: str, before: datetime, after: datetime) -> float:
    """The checks of a job that failed once, in either dialect: kept, error_count 1, the
    error text (`column`) naming the message, due again 1**4 + 3 seconds after the server's
    now() at the failure. Returns that delay."""
    if row is None:
        raise StepFailed(f"job {job_id} failed, but it was deleted: a failed job stays, with error_count + 1")
    if row["error_count"] != 1:
        raise StepFailed(f"job {job_id} failed once, but its error_count is {row['error_count']}; expected 1")
    if not row[column] or FAIL_MESSAGE not in row[column]:
        raise StepFailed(f"job {job_id} failed with {FAIL_MESSAGE!r}, but {column} is {row[column]!r}")
    delay = timedelta(seconds=retry_delay(1))
    slack = timedelta(seconds=1)
    if not before + delay - slack <= row["run_at"] <= after + delay + slack:
        seen = (row["run_at"] - before).total_seconds()
        raise StepFailed(
            f"job {job_id} failed once and runs again in {seen:.1f}s; expected {delay.total_seconds():g}s "
            "(error_count**4 + 3 seconds, from the server's now())"
        )
    return delay.total_seconds()


def _work(testee: Testee) -> None:
    testee.request("work", timeout=60, queue=QUEUE, workers=1, deadline_ms=20_000)


def _left(conn: psycopg.Connection[Any], after: str) -> None:
    locks = lab.advisory_locks(conn)
    if locks:
        raise StepFailed(
            f"advisory lock on job {', '.join(str(lock.key) for lock in locks)} still held after {after}: the "
            "locker unlocks a job once its outcome has committed, and every lock when its pool stops"
        )
    lockers = conn.execute("SELECT count(*) FROM que_lockers").fetchone()
    if lockers and lockers[0]:
        raise StepFailed(
            f"{lockers[0]} row(s) left in que_lockers after {after}: a locker deletes its row when it stops"
        )


def enqueue(testee: Testee, conn: psycopg.Connection[Any], facts: Facts) -> str:
    job_id = testee.enqueue(ECHO, json.dumps(ARGS), priority=PRIORITY, kwargs_json=json.dumps(KWARGS), tags=TAGS)
    rows = facts.rows(conn)
    if len(rows) != 1:
        raise StepFailed(f"enqueue of one job left {len(rows)} rows in que_jobs; expected exactly 1")
    row = rows[0]
    args = ARGS if facts.kwargs_column else [*ARGS, KWARGS]
    wanted: list[tuple[str, Any, Any]] = [
        ("job_class", row["job_class"], ECHO),
        ("args", json.loads(row["args"]), args),
        ("priority", row["priority"], PRIORITY),
        ("queue", row["queue"], QUEUE),
        ("job_schema_version", row["job_schema_version"], facts.version),
        ("data", json.loads(row["data"]), {"tags": TAGS}),
        ("error_count", row["error_count"], 0),
    ]
    if facts.kwargs_column:
        wanted.append(("kwargs", json.loads(row["kwargs"]), KWARGS))
    wrong = [f"{name} {seen!r} (expected {expected!r})" for name, seen, expected in wanted if seen != expected]
    if wrong:
        raise StepFailed("enqueue stored " + "; ".join(wrong))
    if job_id is not None and job_id != row["id"]:
        raise StepFailed(f"enqueue answered job_id {job_id}, but the row it stored has id {row['id']}")
    if row["due_in_s"] > 1:
        raise StepFailed(f"a job enqueued without run_at is due in {row['due_in_s']:.1f}s: the default run_at is now()")
    return f"job {row['id']} stored as asked (job_schema_version {facts.version}, tags in data)"


def work(testee: Testee, conn: psycopg.Connection[Any], facts: Facts) -> str:
    conn.execute("DELETE FROM que_jobs")
    job_id = facts.insert(conn, ECHO, ARGS)
    _work(testee)
    ran = [e for e in executions(conn) if e["job_id"] == job_id]
    if not ran:
        raise StepFailed(f"work drained the queue, but the Echo handler of job {job_id} never wrote its results row")
    if len(ran) > 1:
        raise StepFailed(f"job {job_id} ran {len(ran)} times in one drain")
    received = json.loads(ran[0]["received"]) if ran[0]["received"] is not None else None
    if received != {"args": ARGS, "kwargs": {}}:
        raise StepFailed(
            f"the handler of job {job_id} recorded {received!r}; expected {{'args': {ARGS!r}, 'kwargs': {{}}}}"
        )
    if facts.rows(conn, f"id = {job_id}"):
        raise StepFailed(f"job {job_id} ran but is still in que_jobs: a job that succeeds is destroyed")
    _left(conn, "work")
    return f"job {job_id} ran once with its arguments, was destroyed and unlocked; the locker unregistered"


def retry(testee: Testee, conn: psycopg.Connection[Any], facts: Facts) -> str:
    conn.execute("DELETE FROM que_jobs")
    job_id = facts.insert(conn, FAIL, [FAIL_MESSAGE])
    before = server_now(conn)
    _work(testee)
    after = server_now(conn)
    rows = facts.rows(conn, f"id = {job_id}")
    if rows and (rows[0]["finished_at"] is not None or rows[0]["expired_at"] is not None):
        raise StepFailed(f"job {job_id} failed once and was marked finished or expired; it is only rescheduled")
    delay = failed_once(job_id, rows[0] if rows else None, "last_error_message", before, after)
    _left(conn, "a failed job")
    return f"job {job_id} kept with error_count 1, last_error_message set, run again in {delay:g}s"
