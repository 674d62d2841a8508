"""What the Que 1.x/2.x cells read from the database: que_jobs rows, registered lockers, the
catalogue, and a `work` request run beside the cell; and the job_available messages they send.

The cells serve two dialects that differ in three facts, kept here: Ruby Que 1.x works a v5
table and writes and polls job_schema_version 1; Ruby Que 2.x works a v7 table (with its
kwargs column) and writes and polls job_schema_version 2."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

import psycopg
from psycopg.rows import dict_row

from conformance.checks import check, within
from conformance.fleet import DIALECT
from conformance.support import SLEEP, advisory_locks
from harness.testee import WORK_GRACE, Testee

QUEUE = "default"
# The job_schema_version this run's dialect writes and polls, and one its lockers must skip.
VERSION = 1 if DIALECT == "1" else 2
OTHER_VERSION = 2 if VERSION == 1 else 1
# The table version its migrations build, and whether rows have a kwargs column (Que 2 only).
TABLE_VERSION = 5 if DIALECT == "1" else 7
HAS_KWARGS = TABLE_VERSION >= 7


def jobs(conn: psycopg.Connection[Any], where: str = "true") -> list[dict[str, Any]]:
    """que_jobs rows, args/kwargs/data as jsonb writes them (kwargs None on a v5 table), run_at
    in UTC."""
    kwargs = "kwargs::text" if HAS_KWARGS else "NULL::text"
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT id, queue, priority, run_at, job_class, args::text AS args, {kwargs} AS kwargs, "
            "data::text AS data, error_count, last_error_message, last_error_backtrace, finished_at, expired_at, "
            "job_schema_version, extract(epoch FROM run_at - now())::float8 AS due_in_s "
            f"FROM que_jobs WHERE {where} ORDER BY id"
        )
        found = cur.fetchall()
    for row in found:
        row["run_at"] = row["run_at"].astimezone(UTC)
    return found


def insert(conn: psycopg.Connection[Any], job_class: str, args: str = "[]", **columns: Any) -> int:
    """A job written straight with SQL (of this dialect's job_schema_version unless given)."""
    values = {"job_class": job_class, "args": args, "job_schema_version": VERSION, **columns}
    names = ", ".join(values)
    marks = ", ".join(f"%({name})s" for name in values)
    row = conn.execute(f"INSERT INTO que_jobs ({names}) VALUES ({marks}) RETURNING id", values).fetchone()
    assert row is not None
    return int(row[0])


def sleep_job(conn: psycopg.Connection[Any], job_id: int, priority: int, milliseconds: int) -> None:
    """A Sleep job with this id and priority, due 20 s ago (ids give the order within a
    priority), written before any locker runs."""
    conn.execute(
        "INSERT INTO que_jobs (id, priority, queue, job_class, args, job_schema_version, run_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, now() - interval '20 seconds')",
        [job_id, priority, QUEUE, SLEEP, f"[{milliseconds}]", VERSION],
    )


def locked_ids(conn: psycopg.Connection[Any]) -> set[int]:
    """The job ids whose advisory locks are held."""
    return {lock.key for lock in advisory_locks(conn)}


def quiet_insert(conn: psycopg.Connection[Any], job_class: str, args: str = "[]", **columns: Any) -> int:
    """As insert, without the NOTIFY of the table's trigger: Que 2's trigger honours
    que.skip_notify; Que 1.x's (v5) has no such setting, so its triggers are kept from
    firing for the transaction (session_replication_role, which needs a superuser)."""
    with conn.transaction():
        if HAS_KWARGS:
            conn.execute("SET LOCAL que.skip_notify TO true")
        else:
            conn.execute("SET LOCAL session_replication_role TO replica")
        return insert(conn, job_class, args, **columns)


def lockers(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT * FROM que_lockers ORDER BY pid")
        return cur.fetchall()


def registered(conn: psycopg.Connection[Any], impl: str) -> int:
    """The backend pid of the one locker registered in que_lockers, once there is one; the
    cell fails (que2-locker-registration) if none registers within 15 s."""
    check(within(15, lambda: lockers(conn)), "que2-locker-registration", impl=impl, detail="no locker registered")
    return int(lockers(conn)[0]["pid"])


def run_at_text(row: dict[str, Any]) -> str:
    """A job's run_at as Que 2's trigger writes it into job_available (UTC, microseconds, Z)."""
    return str(row["run_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def job_available(row: dict[str, Any]) -> dict[str, Any]:
    """The job_available message Que 2's trigger sends for the que_jobs row `row`."""
    keys = {"queue": row["queue"], "priority": row["priority"], "id": row["id"], "run_at": run_at_text(row)}
    return {"message_type": "job_available", **keys}


def announce(conn: psycopg.Connection[Any], pid: int, message: dict[str, Any]) -> None:
    """Send `message` (compact JSON, as the trigger writes it) to the locker of backend `pid`."""
    conn.execute("SELECT pg_notify(%s, %s)", [f"que_listener_{pid}", json.dumps(message, separators=(",", ":"))])


# The catalogue a migration builds, as the server describes it (bodies of functions left
# out: each implementation writes its own; what they do is checked by the locker cells).
CATALOGUE = {
    "columns": """
        SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relname IN ('que_jobs', 'que_lockers', 'que_values') AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY 1, 2""",
    "tables": """
        SELECT relname, relkind, relpersistence, reloptions, obj_description(oid, 'pg_class')
        FROM pg_class WHERE relname LIKE 'que\\_%' AND relkind IN ('r', 'S') ORDER BY 1""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint WHERE conrelid::regclass::text IN ('que_jobs', 'que_lockers', 'que_values') ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE tablename IN ('que_jobs', 'que_lockers', 'que_values') ORDER BY 1, 2""",
    "triggers": """
        SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE tgrelid = 'que_jobs'::regclass AND NOT tgisinternal ORDER BY 1""",
    "functions": """
        SELECT proname, pg_get_function_identity_arguments(oid), pg_get_function_result(oid),
               (SELECT lanname FROM pg_language WHERE oid = prolang)
        FROM pg_proc WHERE proname LIKE 'que\\_%' AND pronamespace = 'public'::regnamespace ORDER BY 1, 2""",
}


def catalogue(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[Any, ...]]]:
    return {name: [tuple(row) for row in conn.execute(query).fetchall()] for name, query in CATALOGUE.items()}


@contextmanager
def working(testee: Testee, **request: Any) -> Iterator[dict[str, Any]]:
    """A `work` request running in a thread for the block; its result (or error) is in the
    dict yielded once the block ends."""
    box: dict[str, Any] = {}
    timeout = request.get("deadline_ms", 60_000) / 1000 + WORK_GRACE

    def run() -> None:
        try:
            box["result"] = testee.request("work", timeout=timeout, **request)
        except Exception as error:  # reported by the cell
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        thread.join(timeout + 5)
