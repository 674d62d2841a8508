"""The `que` command, run as a user runs it: a subprocess with a real database."""

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

import psycopg
import pytest

from harness.lab import wait_until as wait_for
from tests.conftest import rows


def que_cmd(url: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QUE_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "que.cli", *args], capture_output=True, text=True, env=env, timeout=60, **kw
    )


def test_migrate_enqueue_stats(database_url: str, conn: psycopg.Connection[Any]) -> None:
    down = que_cmd(database_url, "migrate", "--version", "0")
    assert down.returncode == 0 and "version 0 (was 3)" in down.stdout
    up = que_cmd(database_url, "migrate")
    assert up.returncode == 0 and "version 3 (was 0)" in up.stdout
    out = que_cmd(database_url, "enqueue", "Mail", '[1, "x"]', "--queue", "q", "--priority", "5")
    assert out.returncode == 0, out.stderr
    job = json.loads(out.stdout)
    assert (job["job_class"], job["queue"], job["priority"], job["args"]) == ("Mail", "q", 5, [1, "x"])
    [row] = rows(conn)
    assert row["args_text"] == '[1,"x"]' and row["job_id"] == job["job_id"]
    stats = que_cmd(database_url, "stats", "--json")
    assert json.loads(stats.stdout)[0]["count"] == 1
    table = que_cmd(database_url, "stats")
    assert table.stdout.splitlines()[0].split() == [
        "queue",
        "job_class",
        "count",
        "count_working",
        "count_errored",
        "highest_error_count",
        "oldest_run_at",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "J", "[NaN]"], "not valid JSON"),
        (["enqueue", "J", "{}"], "must be a JSON array"),
        (["enqueue", "J", "[1]", "--priority", "99999"], "outside the smallint range"),
        (["enqueue", "J", "[1]", "--priority", "x"], "invalid int value"),
        (["enqueue", "", "[1]"], "job_class must not be empty"),
        (["enqueue", "J", "[1]", "--run-at", "2030-01-01T00:00:00"], "no UTC offset"),
        (["enqueue", "J", "[1]", "--run-at", "soon"], "not an ISO 8601"),
        (["migrate", "--version", "9"], "between 0 and 7"),
        (["work", "--app", "no.such.module"], "cannot import"),
        (["work", "--app", "tests.apps.sleepy:missing"], "has no attribute 'missing'"),
        (["work", "--app", "tests.apps.sleepy:not_a_mapping"], "must be a mapping"),
        (["work", "--app", "tests.apps.sleepy", "--workers", "0"], "--workers must be at least 1"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    database_url: str, conn: psycopg.Connection[Any], args: list[str], message: str
) -> None:
    result = que_cmd(database_url, *args)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3
    assert rows(conn) == []


def test_unreachable_database_is_exit_1_without_traceback() -> None:
    result = que_cmd("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1", "stats")
    assert result.returncode == 1
    assert result.stderr.startswith("que: database error:") and "Traceback" not in result.stderr


def marks(conn: psycopg.Connection[Any]) -> list[str]:
    if conn.execute("SELECT to_regclass('cli_marks')").fetchone() == (None,):
        return []
    return [r[0] for r in conn.execute("SELECT label FROM cli_marks").fetchall()]


def start_worker(database_url: str, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "QUE_DATABASE_URL": database_url}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "que.cli",
            "work",
            "--app",
            "tests.apps.sleepy",
            "--workers",
            "2",
            "--wake-interval",
            "0.05",
            *extra,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


POOLS = pytest.mark.parametrize(
    "pool",
    [[], ["--async"], ["--async", "--loop", "asyncio"], ["--batch", "5"]],
    ids=["threads", "async", "async-stdlib-loop", "batch"],
)


@POOLS
def test_sigterm_finishes_the_current_job_then_exits(
    database_url: str, conn: psycopg.Connection[Any], pool: list[str]
) -> None:
    conn.execute("DROP TABLE IF EXISTS cli_marks")
    conn.execute("INSERT INTO que_jobs (job_class, args) VALUES ('Sleepy', '[1.0]')")
    proc = start_worker(database_url, *pool)
    try:
        wait_for(lambda: marks(conn) == ["started"], what="the job to start")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert marks(conn) == ["started", "finished"]
        assert rows(conn) == []
    finally:
        proc.kill()


@POOLS
def test_second_signal_exits_at_once_and_job_stays(
    database_url: str, conn: psycopg.Connection[Any], pool: list[str]
) -> None:
    conn.execute("DROP TABLE IF EXISTS cli_marks")
    conn.execute("INSERT INTO que_jobs (job_class, args) VALUES ('Sleepy', '[30]')")
    proc = start_worker(database_url, *pool)
    try:
        wait_for(lambda: marks(conn) == ["started"], what="the job to start")
        lines: list[str] = []
        assert proc.stderr is not None
        # Keep reading stderr so the worker can never block on a full pipe.
        threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: any("finishing current jobs" in line for line in lines), what="first signal noted")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) != 0
        assert marks(conn) == ["started"]
        [row] = rows(conn)
        assert row["error_count"] == 0
        wait_for(lambda: conn.execute("SELECT count(*) FROM pg_locks WHERE locktype='advisory'").fetchone() == (0,))
    finally:
        proc.kill()
