"""Every invalid enqueue is refused with a clear error and inserts nothing (Hypothesis)."""

import json
import os
import subprocess
import sys
from datetime import datetime
from typing import Any

import psycopg
from hypothesis import given, settings
from hypothesis import strategies as st

import que
from tests.conftest import rows

not_text = st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.integers(), max_size=2))
bad_job_class = st.one_of(not_text, st.just(""), st.text(min_size=1).map(lambda s: s + "\x00"))
bad_queue = st.one_of(st.integers(), st.binary(), st.text().map(lambda s: "\x00" + s))
bad_run_at = st.one_of(st.text(), st.integers(), st.datetimes(timezones=st.none()), st.dates())
bad_leaf = st.one_of(
    st.just(float("nan")),
    st.just(float("inf")),
    st.just(float("-inf")),
    st.binary(),
    st.sets(st.integers(), max_size=2),
    st.datetimes(),
    st.builds(object),
    st.dictionaries(st.one_of(st.floats(), st.none(), st.booleans()), st.integers(), min_size=1, max_size=1),
)
bad_args = st.recursive(bad_leaf, lambda inner: st.lists(inner, min_size=1, max_size=3), max_leaves=4)


def refused(client: que.Client, conn: psycopg.Connection[Any], call: Any) -> str:
    try:
        call()
    except (TypeError, ValueError) as error:
        message = str(error)
    else:
        raise AssertionError("the enqueue was accepted")
    assert rows(conn) == [], "a refused enqueue inserted a row"
    assert message and "\n" not in message
    return message


@given(job_class=bad_job_class)
def test_bad_job_class(client: que.Client, conn: psycopg.Connection[Any], job_class: Any) -> None:
    assert "job_class" in refused(client, conn, lambda: client.enqueue(job_class))


@given(queue=bad_queue)
def test_bad_queue(client: que.Client, conn: psycopg.Connection[Any], queue: Any) -> None:
    assert "queue" in refused(client, conn, lambda: client.enqueue("J", queue=queue))


@given(run_at=bad_run_at)
def test_bad_run_at(client: que.Client, conn: psycopg.Connection[Any], run_at: Any) -> None:
    assert "run_at" in refused(client, conn, lambda: client.enqueue("J", run_at=run_at))


@given(args=bad_args, good=st.lists(st.integers(), max_size=2))
def test_unserializable_args_name_their_path(
    client: que.Client, conn: psycopg.Connection[Any], args: Any, good: list[int]
) -> None:
    message = refused(client, conn, lambda: client.enqueue("J", *good, args))
    assert message.startswith(f"args[{len(good)}]")


@given(batch=st.lists(st.sampled_from(["ok", "bad"]), min_size=1, max_size=6).filter(lambda b: "bad" in b))
def test_one_bad_job_rejects_the_batch(client: que.Client, conn: psycopg.Connection[Any], batch: list[str]) -> None:
    jobs = [que.NewJob("J", [1]) if kind == "ok" else que.NewJob("J", [float("nan")]) for kind in batch]
    message = refused(client, conn, lambda: client.enqueue_many(jobs))
    assert message.startswith(f"jobs[{batch.index('bad')}]: args[0]")


cli_args = st.one_of(
    st.text(max_size=30).filter(lambda t: not _is_json_array(t)),
    st.just("[NaN]"),
    st.just("{}"),
    st.just("[1e999]"),
)


def _is_json_array(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, list)


@settings(max_examples=15)
@given(
    args=cli_args,
    priority=st.one_of(
        st.just("100"), st.integers().filter(lambda p: not -32768 <= p <= 32767).map(str), st.text(max_size=5)
    ),
    run_at=st.one_of(st.none(), st.text(max_size=20), st.just(datetime(2030, 1, 1).isoformat())),
)
def test_cli_bad_input_is_one_line_exit_2(
    database_url: str, conn: psycopg.Connection[Any], args: str, priority: str, run_at: str | None
) -> None:
    argv = [sys.executable, "-m", "que.cli", "enqueue", "J", args, "--priority", priority]
    if run_at is not None:
        argv += ["--run-at", run_at]
    result = subprocess.run(
        argv, capture_output=True, text=True, env={**os.environ, "QUE_DATABASE_URL": database_url}, timeout=60
    )
    if result.returncode == 0:  # e.g. "[1e999]" is refused; anything accepted must be a valid job
        raise AssertionError(f"accepted {args!r}: {result.stdout}")
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3
    assert rows(conn) == []
