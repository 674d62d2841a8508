"""The `que` command under bad input and troubled jobs: exit codes a supervisor can act on."""

import json
import os
import subprocess
import sys
from typing import Any

import psycopg
import pytest

import que
from harness import pgbouncer
from tests.conftest import rows
from tests.integration.test_cli import que_cmd


def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["work", "--app", "tests.apps.troubled", "--wake-interval", "nan"], "--wake-interval"),
        (["work", "--app", "tests.apps.troubled", "--wake-interval", "inf"], "--wake-interval"),
        (["work", "--app", "tests.apps.troubled", "--wake-interval", "1e20"], "--wake-interval"),
        (["work", "--app", "tests.apps.troubled", "--workers", "100000", "--no-locker"], "max_connections"),
        (["work", "--app", "tests.apps.troubled", "--workers", "100000"], "at most 10000 workers"),
        (["work", "--app", "tests.apps.troubled", "--buffer", "-1"], "--buffer: buffer must be between 0 and"),
        (["work", "--app", "tests.apps.troubled", "--max-retries", "-1"], "--max-retries must"),
        (["work", "--app", "tests.apps.troubled", "--batch", "0"], "--batch: batch must be between 1 and"),
        (["work", "--app", "tests.apps.troubled", "--batch", "2", "--async"], "--batch is for the thread pool"),
        (["work", "--app", "tests.apps.troubled", "--loop", "uvloop"], "--loop is for the asyncio pool: add --async"),
        (["work", "--app", "tests.apps.troubled", "--async", "--loop", "trio"], "invalid choice: 'trio'"),
        (["enqueue", "J", nested_json(5_000)], "JSON_ARGS"),
        (["enqueue", "J", nested_json(101)], "100"),
        (["enqueue", "J", "[1]", "--queue", "q" * 3000], "queue"),
        (["enqueue", "J", "[" + "9" * 5000 + "]"], "JSON_ARGS"),
    ],
    ids=[
        "nan",
        "inf",
        "1e20",
        "workers-sessions",
        "workers-threads",
        "buffer",
        "max-retries",
        "batch-0",
        "batch-async",
        "loop-without-async",
        "unknown-loop",
        "deep",
        "ruby-depth",
        "long-queue",
        "huge-int",
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    database_url: str, conn: psycopg.Connection[Any], args: list[str], message: str
) -> None:
    result = que_cmd(database_url, *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3, result.stderr[-2000:]
    assert rows(conn) == []


def test_a_handler_that_exits_stops_que_work_with_its_code(database_url: str, conn: psycopg.Connection[Any]) -> None:
    """SystemExit from a handler keeps its meaning: the row is untouched and the process exits
    with the code, so a supervisor with Restart=on-failure restarts it."""
    conn.execute("INSERT INTO que_jobs (job_class, args) VALUES ('Exits', '[3]')")
    result = que_cmd(database_url, "work", "--app", "tests.apps.troubled", "--workers", "2", "--wake-interval", "0.05")
    assert result.returncode == 3, result.stderr[-2000:]
    [row] = rows(conn)
    assert row["error_count"] == 0


@pytest.mark.parametrize("pool", [[], ["--async"]], ids=["threads", "async"])
def test_que_work_exits_non_zero_behind_a_transaction_pooler(database_url: str, pool: list[str]) -> None:
    """A permanent misconfiguration (workers behind pgbouncer in transaction mode, where
    session locks cannot work) must end `que work` with a non-zero status."""
    if pgbouncer.find() is None:
        pytest.fail("pgbouncer is not installed; make test installs it (harness/bootstrap.sh)")
    with pgbouncer.transaction_pooler(database_url) as pooled:
        result = que_cmd(pooled, "work", "--app", "tests.apps.troubled", "--wake-interval", "0.05", *pool)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "pooler" in result.stderr


def test_stats_table_keeps_one_line_per_row(database_url: str, conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO que_jobs (job_class) VALUES (E'Two\\nLines'), ('Plain')")
    table = que_cmd(database_url, "stats")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.strip().splitlines()
    assert len(lines) == 3, lines
    assert "Two\\nLines" in table.stdout
    stats = json.loads(que_cmd(database_url, "stats", "--json").stdout)
    assert {s["job_class"] for s in stats} == {"Two\nLines", "Plain"}


@pytest.mark.parametrize("command", [["stats"], ["stats", "--json"], ["dead", "--json"]])
def test_a_reader_that_stops_early_gets_no_traceback(client: que.Client, database_url: str, command: list[str]) -> None:
    """Fault 13 (issue 29): `que stats | head` printed a BrokenPipeError traceback and exited
    1. The reader here reads nothing and closes the pipe before que writes."""
    client.enqueue_many([que.NewJob(f"Class{n}", [n]) for n in range(2000)])
    read, write = os.pipe()
    os.close(read)  # the reader is gone before que writes
    try:
        done = subprocess.run(
            [sys.executable, "-m", "que.cli", "--database-url", database_url, *command],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 141


def test_work_help_says_each_dialects_retry_default() -> None:
    """Fault 14: --help said the default retries forever; on a Que 2 table it expires a job
    after 15 retries."""
    done = subprocess.run([sys.executable, "-m", "que.cli", "work", "--help"], capture_output=True, text=True)
    text = " ".join(done.stdout.split())
    assert "retry forever on Que 0.x, 15 on Que 1.x/2.x" in text
