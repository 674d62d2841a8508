"""The Que 2 dialect (schema version 7): migrations, enqueue and the real Ruby Que 2.4.1.

Each test gets a database of its own dialect (a Que 0.x and a Que 2.x table cannot share
one: both are public.que_jobs). Tests that need Ruby Que 2.4.1 (the gem, or QUE2_RUBY_LIB)
are skipped with the reason where it cannot be loaded.
"""

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

import que
from harness import implementations, lab, postgres, results
from harness.testee import Testee, Unavailable
from tests.conftest import fresh_database


@pytest.fixture
def que2_url(database_url: str) -> str:
    return fresh_database(database_url, "que2_tests")


@pytest.fixture
def v7(que2_url: str) -> Iterator[que.Client]:
    with que.Client(que2_url) as client:
        client.migrate(7)
        with psycopg.connect(que2_url, autocommit=True) as conn:
            results.create(conn)
        yield client


def ruby2(url: str) -> Testee:
    impl = implementations.builtin("ruby-2.4.1")
    if impl.unavailable:
        pytest.skip(f"unavailable: {impl.unavailable}")
    try:
        return lab.start_testee(impl, url, dialect="2")
    except Unavailable as error:
        pytest.skip(f"unavailable: {error}")


def dump(url: str) -> str:
    """The schema as pg_dump writes it, without function bodies (Ruby's and que's are each
    their own text; what they do is checked by the tests below) or pg_dump's random token."""
    bindir = postgres.find_bindir()
    assert bindir is not None
    text = subprocess.run(
        [str(Path(bindir, "pg_dump")), "--schema-only", "--no-owner", "-d", url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    text = re.sub(r"^\\(un)?restrict .*$", "", text, flags=re.M)
    return re.sub(r"\$\$.*?\$\$", "$$ body $$", text, flags=re.S)


def table(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT *, args::text AS args_text, kwargs::text AS kwargs_text FROM que_jobs ORDER BY id")
        return cur.fetchall()


# -- migrations ------------------------------------------------------------------------


def test_version_7_and_back_leaves_the_same_catalogue(que2_url: str) -> None:
    with que.Client(que2_url) as client:
        client.migrate(7)
        assert client.db_version() == 7 and client.dialect().name == "2"
        first = dump(que2_url)
        client.migrate(3)
        assert client.dialect().name == "0.14"
        client.migrate(0)
        client.migrate(7)
        assert dump(que2_url) == first


def test_migrate_7_builds_the_catalogue_ruby_que_2_builds(database_url: str) -> None:
    ours = fresh_database(database_url, "que2_ours")
    theirs = fresh_database(database_url, "que2_theirs")
    with que.Client(ours) as client:
        client.migrate(7)
    testee = ruby2(theirs)
    try:
        testee.request("migrate", version=7)
    finally:
        testee.stop()
    assert dump(ours) == dump(theirs)


V3_ROWS = [
    # queue, args (json text), last_error
    ("", "[1, 2]", None),
    ("mail", '{"to": "ann"}', "RuntimeError: boom\n/app/a.rb:1\n/app/b.rb:2"),
    ("", '"text"', "x" * 600),
    ("", "7", "ArgumentError: no newline here"),
]


def _v3_table(url: str, client: que.Client) -> None:
    client.migrate(3)
    with psycopg.connect(url, autocommit=True) as conn:
        for queue, args, last_error in V3_ROWS:
            conn.execute(
                "INSERT INTO que_jobs (queue, job_class, args, last_error, run_at) "
                "VALUES (%s, 'J', %s::json, %s, '2030-01-01T00:00:00Z')",
                [queue, args, last_error],
            )


def test_a_0x_table_with_live_rows_upgrades_as_rubys_migration_does(que2_url: str) -> None:
    with que.Client(que2_url) as client:
        _v3_table(que2_url, client)
        client.migrate(7)
    found = table(que2_url)
    assert [r["queue"] for r in found] == ["default", "mail", "default", "default"]
    assert [json.loads(r["args_text"]) for r in found] == [[1, 2], [{"to": "ann"}], ["text"], [7]]
    messages = [None, "RuntimeError: boom", "x" * 500, "ArgumentError: no newline here"]
    assert [r["last_error_message"] for r in found] == messages
    assert [r["last_error_backtrace"] for r in found] == [None, "/app/a.rb:1\n/app/b.rb:2", None, None]
    assert {r["job_schema_version"] for r in found} == {1}, "rows from Que 0.x are version 1: Que 2 leaves them"
    assert {r["kwargs_text"] for r in found} == {"{}"}


def test_the_upgrade_of_live_rows_matches_ruby_que_2s_own(database_url: str) -> None:
    ours = fresh_database(database_url, "que2_ours")
    theirs = fresh_database(database_url, "que2_theirs")
    with que.Client(ours) as client:
        _v3_table(ours, client)
        client.migrate(7)
    with que.Client(theirs) as client:
        _v3_table(theirs, client)
    testee = ruby2(theirs)
    try:
        testee.request("migrate", version=7)
    finally:
        testee.stop()
    assert table(ours) == table(theirs)


def test_going_down_joins_last_error_again_and_drops_what_0x_cannot_hold(que2_url: str) -> None:
    with que.Client(que2_url) as client:
        _v3_table(que2_url, client)
        client.migrate(7)
        with psycopg.connect(que2_url, autocommit=True) as conn:
            conn.execute("UPDATE que_jobs SET finished_at = now() WHERE queue = 'mail'")
        client.migrate(3)
    with psycopg.connect(que2_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT queue, args::text AS args, last_error FROM que_jobs ORDER BY job_id")
        down = cur.fetchall()
    assert down == [
        {"queue": "", "args": "[1, 2]", "last_error": None},
        {"queue": "", "args": '["text"]', "last_error": "x" * 500},
        {"queue": "", "args": "[7]", "last_error": "ArgumentError: no newline here"},
    ]


def test_a_version_newer_than_que_knows_is_refused(que2_url: str) -> None:
    with que.Client(que2_url) as client:
        client.migrate(7)
        with psycopg.connect(que2_url, autocommit=True) as conn:
            conn.execute("COMMENT ON TABLE que_jobs IS '8'")
        assert client.refresh_dialect().name == "2", "version 8 (Que's master) is read as the Que 2 dialect"
        with pytest.raises(ValueError, match="newer than this library migrates"):
            client.migrate(3)
        with psycopg.connect(que2_url, autocommit=True) as conn:
            conn.execute("COMMENT ON TABLE que_jobs IS '9'")
        with pytest.raises(ValueError, match="schema version 9, newer than any Que"):
            client.refresh_dialect()


# -- enqueue ---------------------------------------------------------------------------


def test_enqueue_writes_rubys_defaults(v7: que.Client, que2_url: str) -> None:
    job = v7.enqueue("SendEmail", "ann@example.com", kwargs={"template": "welcome"})
    [row] = table(que2_url)
    assert row["id"] == job.job_id
    assert (row["queue"], row["priority"], row["job_schema_version"]) == ("default", 100, 2)
    assert (row["args_text"], row["kwargs_text"], row["data"]) == ('["ann@example.com"]', '{"template": "welcome"}', {})
    assert job.args == ["ann@example.com"] and job.kwargs == {"template": "welcome"}
    assert row["finished_at"] is None and row["expired_at"] is None


def test_enqueue_matches_ruby_que_2s_row_for_the_same_job(v7: que.Client, que2_url: str) -> None:
    args = [1, 2.5, "é✓", None, {"nested": [True, {"k": -0.0}]}, 10**20]
    kwargs = {"to": "ann", "opts": {"retry": 3, "at": [1.5e300]}}
    at = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    options: dict[str, Any] = {"queue": "mail", "priority": 7, "run_at": at}
    v7.enqueue("Mailer", *args, kwargs=kwargs, tags=["a", "b"], **options)
    testee = ruby2(que2_url)
    try:
        testee.request(
            "enqueue",
            job_class="Mailer",
            args_json=json.dumps(args),
            kwargs_json=json.dumps(kwargs),
            tags=["a", "b"],
            queue="mail",
            priority=7,
            run_at="2031-05-06T07:08:09.123456Z",
        )
    finally:
        testee.stop()
    ours, theirs = table(que2_url)
    differ = {"id"}
    assert {k: v for k, v in ours.items() if k not in differ} == {k: v for k, v in theirs.items() if k not in differ}


def test_kwargs_and_tags_are_refused_on_a_0x_table(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ValueError, match=r"kwargs=\{'a': 1\} needs a Que 1.x/2.x table"):
        client.enqueue("J", kwargs={"a": 1})
    with pytest.raises(ValueError, match=r"jobs\[1\]: tags=\['t'\] needs a Que 1.x/2.x table"):
        client.enqueue_many([que.NewJob("J"), que.NewJob("J", tags=["t"])])
    assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.enqueue("J", queue="q" * 101), "que_jobs' queue constraint allows at most 100"),
        (lambda c: c.enqueue("J" * 201), "job_class constraint allows at most 200"),
        (lambda c: c.enqueue("J", tags=["t"] * 6), "at most 5 tags"),
        (lambda c: c.enqueue("J", tags=["t" * 99]), "valid_data constraint allows at most 100, so 98 plain"),
        (lambda c: c.enqueue("J", tags=['"' * 50]), "is 102 characters"),
        (lambda c: c.enqueue("J", kwargs={1: "x"}), "kwargs keys must be str"),
        (lambda c: c.enqueue("J", kwargs=[1]), "kwargs must be a dict"),
        (lambda c: c.enqueue("J", "a\x00b"), r"args contains a NUL character"),
        (lambda c: c.enqueue_many([que.NewJob("J"), que.NewJob("J", priority=40000)]), r"jobs\[1\]: priority 40000"),
    ],
)
def test_a_rejected_job_inserts_nothing(v7: que.Client, que2_url: str, call: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        call(v7)
    assert table(que2_url) == []


def test_enqueue_many_keeps_order_and_skips_the_notify_unless_asked(v7: que.Client, que2_url: str) -> None:
    with psycopg.connect(que2_url, autocommit=True) as listener:
        listener.execute("LISTEN que_state")
        jobs = v7.enqueue_many([que.NewJob("J", [n], kwargs={"n": n}) for n in range(5)])
        assert [job.args for job in jobs] == [[n] for n in range(5)]
        assert [job.kwargs for job in jobs] == [{"n": n} for n in range(5)]
        assert list(listener.notifies(timeout=0.5, stop_after=1)) == [], "a bulk insert skips the triggers' NOTIFY"
        v7.enqueue("J")
        [state] = list(listener.notifies(timeout=5, stop_after=1))
        assert json.loads(state.payload)["current_state"] == "ready"
    assert [r["args_text"] for r in table(que2_url)] == [f"[{n}]" for n in range(5)] + ["[]"]


def test_enqueue_joins_the_callers_transaction(v7: que.Client, que2_url: str) -> None:
    with psycopg.connect(que2_url) as caller:
        v7.enqueue("J", 1, kwargs={"k": 1}, conn=caller)
        caller.rollback()
        v7.enqueue("J", 2, conn=caller)
        caller.commit()
    assert [r["args_text"] for r in table(que2_url)] == ["[2]"]


# -- Ruby Que 2.4.1 works what Python enqueued ----------------------------------------


def test_ruby_que_2s_locker_works_a_python_job_with_args_and_kwargs_intact(v7: que.Client, que2_url: str) -> None:
    args = [1, "two", {"three": [4.5, None, True]}, "é✓"]
    kwargs = {"template": "welcome", "options": {"retry": 3, "tags": ["x"]}}
    job = v7.enqueue("QueConformance::Echo", *args, kwargs=kwargs)
    testee = ruby2(que2_url)
    try:
        result = testee.request("work", timeout=90, queue="default", workers=2, deadline_ms=60_000)
    finally:
        testee.stop()
    assert result["drained"] is True
    with psycopg.connect(que2_url) as conn:
        recorded = conn.execute(f"SELECT impl, job_id, received FROM {results.TABLE}").fetchall()
    assert len(recorded) == 1
    impl, job_id, received = recorded[0]
    assert (impl, job_id) == ("ruby-2.4.1", job.job_id)
    assert json.loads(received) == {"args": args, "kwargs": kwargs}
    assert table(que2_url) == [], "Ruby destroys a job that ran"
