"""The opt-in retry limit: a job that keeps failing is set aside (its run_at becomes the last
day of year 9999, its last_error kept), never deleted, invisible to Ruby and Go workers,
readable by Ruby Que's own reports, and can be retried."""

import json
import os
import subprocess
from typing import Any

import psycopg
import pytest

import que
from harness import implementations, results
from harness.lab import advisory_locks
from harness.testee import Testee
from tests.conftest import rows
from tests.integration.test_cli import que_cmd


def always_fails(*args: Any) -> None:
    raise RuntimeError("still broken")


def make_due(conn: psycopg.Connection[Any]) -> None:
    conn.execute("UPDATE que_jobs SET run_at = now() WHERE run_at < '9999-01-01'")


def dead(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return rows(conn, "run_at >= '9999-01-01'")


def test_worker_sets_a_job_aside_after_max_retries(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    job = client.enqueue("Fail", 1)
    worker = que.Worker(client, {"Fail": always_fails}, wake_interval=0.05, max_retries=2)
    for failures in (1, 2):
        assert worker.work_one() is True
        [row] = rows(conn)
        assert row["error_count"] == failures and row["run_at"].year < 9999
        make_due(conn)
    assert worker.work_one() is True  # the third failure: no retries left
    [row] = dead(conn)
    assert row["job_id"] == job.job_id and row["error_count"] == 3
    assert row["last_error"].startswith("RuntimeError: still broken")
    assert worker.work_one() is False
    assert advisory_locks(conn) == []


def test_lock_job_applies_the_same_limit(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue("Fail")
    locked = client.lock_job(max_retries=0)
    assert locked is not None
    with pytest.raises(RuntimeError), locked:
        raise RuntimeError("first and last")
    [row] = dead(conn)
    assert row["error_count"] == 1


def test_no_limit_by_default(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO que_jobs (job_class, error_count) VALUES ('Fail', 100)")
    assert que.Worker(client, {"Fail": always_fails}).work_one() is True
    assert dead(conn) == [] and rows(conn)[0]["error_count"] == 101


def test_max_retries_must_be_a_non_negative_int(client: que.Client) -> None:
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises((TypeError, ValueError), match="max_retries"):
            que.Worker(client, {}, max_retries=bad)  # type: ignore[arg-type]


def test_dead_jobs_can_be_listed_and_retried(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    a = client.enqueue("Fail", "a").job_id
    b = client.enqueue("Fail", "b").job_id
    client.enqueue("Fine")
    worker = que.Worker(client, {"Fail": always_fails, "Fine": lambda: None}, max_retries=0)
    while worker.work_one():
        pass
    assert sorted(j.job_id for j in client.dead_jobs()) == [a, b]
    assert client.retry_dead(a) == 1
    [row] = rows(conn, f"job_id = {a}")
    assert row["error_count"] == 1 and row["run_at"].year < 9999 and row["last_error"]
    assert client.retry_dead() == 1
    assert client.dead_jobs() == []
    assert client.retry_dead(a) == 0


def test_cli_dead_and_retry(database_url: str, client: que.Client, conn: psycopg.Connection[Any]) -> None:
    ids = [client.enqueue("Fail", n).job_id for n in range(3)]
    worker = que.Worker(client, {"Fail": always_fails}, max_retries=0)
    while worker.work_one():
        pass
    listed = que_cmd(database_url, "dead", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(j["job_id"] for j in json.loads(listed.stdout)) == ids
    assert "still broken" in que_cmd(database_url, "dead").stdout
    one = que_cmd(database_url, "retry", str(ids[0]))
    assert one.returncode == 0 and "1 job" in one.stdout
    missing = que_cmd(database_url, "retry", "999999")
    assert missing.returncode == 1 and "999999" in missing.stderr
    rest = que_cmd(database_url, "retry", "--all")
    assert rest.returncode == 0 and "2 jobs" in rest.stdout
    assert dead(conn) == [] and len(rows(conn)) == 3
    worked = que_cmd(database_url, "work", "--help")
    assert "--max-retries" in worked.stdout


@pytest.mark.parametrize("name", ["go", "ruby"])
def test_ruby_and_go_workers_never_pick_up_a_dead_job(
    name: str, client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    impl = implementations.builtin("go", build=True) if name == "go" else implementations.builtin("ruby")
    if impl.unavailable:
        pytest.skip(f"unavailable: {impl.unavailable}")
    client.enqueue("QueConformance::Echo", 1)
    que.Worker(client, {"QueConformance::Echo": always_fails}, max_retries=0).work_one()
    [before] = dead(conn)
    results.create(conn)
    testee = Testee(impl.command, cwd=impl.cwd, env=impl.env)
    try:
        try:
            testee.start(database_url, results.TABLE)
        except Exception as error:  # Ruby without Que 0.14 answers Unavailable
            pytest.skip(f"unavailable: {error}")
        assert testee.work_one()["worked"] is False
    finally:
        testee.stop()
    assert dead(conn) == [before]


# What Ruby Que 0.14.3's readers do with every row: job_stats and worker_states cast run_at
# with Time.parse, and Job.work runs lock_job. A dead job held by some session shows up in
# worker_states too.
RUBY_READERS = """
require 'json'
require 'pg'
require 'que'
Que.connection = PG::Connection.new(ENV.fetch('QUE_TEST_DATABASE_URL'))
stats = Que.job_stats.map { |row| [row['job_class'], row['oldest_run_at'].year] }
states = Que.worker_states.map { |row| [row['job_id'], row['run_at'].year] }
event = Que::Job.work[:event]
puts JSON.generate({stats: stats, states: states, event: event})
"""


def ruby_readers(database_url: str) -> dict[str, Any]:
    impl = implementations.builtin("ruby")
    lib = os.environ.get("QUE_RUBY_LIB", "")
    if impl.unavailable:
        pytest.skip(f"unavailable: {impl.unavailable}")
    command = ["ruby", *(["-I", lib] if lib else []), "-e", RUBY_READERS]
    probe = subprocess.run(["ruby", *(["-I", lib] if lib else []), "-e", "require 'que'"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unavailable: Ruby Que cannot be loaded (set QUE_RUBY_LIB): {probe.stderr.decode()[-300:]}")
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "QUE_TEST_DATABASE_URL": database_url}, timeout=60
    )
    assert done.returncode == 0, f"Ruby Que failed on a job set aside:\n{done.stderr[-2000:]}"
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_ruby_que_reads_a_job_set_aside(client: que.Client, conn: psycopg.Connection[Any], database_url: str) -> None:
    """A dead job must not break Ruby Que 0.14.3's job_stats, worker_states or Job.work
    (Time.parse cannot read 'infinity'); que-web reads the same rows."""
    client.enqueue("Fail", 1)
    que.Worker(client, {"Fail": always_fails}, max_retries=0).work_one()
    [job] = dead(conn)
    with psycopg.connect(database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [job["job_id"]])  # someone holds it: worker_states lists it
        seen = ruby_readers(database_url)
    assert seen == {"stats": [["Fail", 9999]], "states": [[job["job_id"], 9999]], "event": "job_unavailable"}


def test_jobs_set_aside_as_infinity_are_listed_retried_and_repaired(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    """Rows set aside by que-interop 0.2 (run_at 'infinity') stay dead, and are listed and
    retried like the others; `que dead --repair` rewrites them so Ruby can read them."""
    conn.execute(
        "INSERT INTO que_jobs (job_class, run_at, error_count) VALUES ('Old', 'infinity', 3), ('Old', 'infinity', 4)"
    )
    assert [j.error_count for j in client.dead_jobs()] == [3, 4]
    assert client.retry_dead(1) == 1
    assert [j.error_count for j in client.dead_jobs()] == [4]
    repaired = que_cmd(database_url, "dead", "--repair")
    assert repaired.returncode == 0 and "1 job" in repaired.stdout, repaired.stderr
    assert conn.execute("SELECT count(*) FROM que_jobs WHERE run_at = 'infinity'").fetchone() == (0,)
    assert [j.error_count for j in client.dead_jobs()] == [4]
    assert dead(conn)[0]["run_at"].year == 9999
