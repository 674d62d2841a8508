"""Migrations reproduce Ruby Que's 1 -> 2 -> 3 and back, with the version as table comment."""

from typing import Any

import psycopg
import pytest

import que
from tests.conftest import reset_schema


def columns(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str | None, str]]:
    return [
        tuple(r)  # type: ignore[misc]
        for r in conn.execute(
            "SELECT column_name, data_type, column_default, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'que_jobs' ORDER BY ordinal_position"
        ).fetchall()
    ]


def primary_key(conn: psycopg.Connection[Any]) -> list[str]:
    row = conn.execute(
        "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i "
        "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = 'que_jobs'::regclass AND i.indisprimary"
    ).fetchone()
    assert row is not None
    return list(row[0])


V3 = [
    ("priority", "smallint", "100", "NO"),
    ("run_at", "timestamp with time zone", "now()", "NO"),
    ("job_id", "bigint", "nextval('que_jobs_job_id_seq'::regclass)", "NO"),
    ("job_class", "text", None, "NO"),
    ("args", "json", "'[]'::json", "NO"),
    ("error_count", "integer", "0", "NO"),
    ("last_error", "text", None, "YES"),
    ("queue", "text", "''::text", "NO"),
]


@pytest.fixture
def empty(database_url: str) -> Any:
    reset_schema(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE que_jobs")
        yield conn


def test_version_3_has_ruby_ques_shape(conn: psycopg.Connection[Any]) -> None:
    assert columns(conn) == V3
    assert primary_key(conn) == ["queue", "priority", "run_at", "job_id"]
    assert que.db_version(conn) == 3
    comment = conn.execute("SELECT obj_description('que_jobs'::regclass, 'pg_class')").fetchone()
    assert comment == ("3",)


def test_each_step_up_and_down(empty: psycopg.Connection[Any]) -> None:
    conn = empty
    assert que.db_version(conn) == 0
    que.migrate(conn, 1)
    assert que.db_version(conn) == 1
    assert columns(conn)[0] == ("priority", "integer", "1", "NO")
    assert primary_key(conn) == ["priority", "run_at", "job_id"]
    que.migrate(conn, 2)
    assert que.db_version(conn) == 2
    assert columns(conn)[0] == ("priority", "integer", "100", "NO")
    que.migrate(conn, 3)
    assert columns(conn) == V3
    que.migrate(conn, 2)
    assert que.db_version(conn) == 2
    assert [c[0] for c in columns(conn)] == [c[0] for c in V3[:-1]]
    assert primary_key(conn) == ["priority", "run_at", "job_id"]
    que.migrate(conn, 1)
    assert columns(conn)[0] == ("priority", "integer", "1", "NO")
    que.migrate(conn, 0)
    assert que.db_version(conn) == 0
    assert conn.execute("SELECT to_regclass('que_jobs')").fetchone() == (None,)
    que.migrate(conn, 1)
    que.migrate(conn)
    assert columns(conn) == V3 and que.db_version(conn) == 3


def test_jumps_record_only_the_final_version(empty: psycopg.Connection[Any]) -> None:
    que.migrate(empty, 3)
    assert que.db_version(empty) == 3
    que.migrate(empty, 0)
    assert que.db_version(empty) == 0


def test_table_without_comment_reads_as_version_1(conn: psycopg.Connection[Any]) -> None:
    conn.execute("COMMENT ON TABLE que_jobs IS NULL")
    assert que.db_version(conn) == 1


def test_failed_migration_rolls_back_entirely(conn: psycopg.Connection[Any]) -> None:
    # As in Ruby: a v3 table without its comment reads as 1, and migrating it up fails
    # on "column queue already exists"; nothing of the attempt may remain.
    conn.execute("COMMENT ON TABLE que_jobs IS NULL")
    with pytest.raises(psycopg.errors.DuplicateColumn):
        que.migrate(conn, 3)
    assert columns(conn) == V3
    assert que.db_version(conn) == 1


def test_migrate_inside_callers_transaction_rolls_back_with_it(empty: psycopg.Connection[Any]) -> None:
    with pytest.raises(RuntimeError), empty.transaction():
        que.migrate(empty, 3)
        assert que.db_version(empty) == 3
        raise RuntimeError("caller gives up")
    assert que.db_version(empty) == 0


@pytest.mark.parametrize("bad", [-1, 8, "3", 2.0, True])
def test_bad_versions_are_refused(conn: psycopg.Connection[Any], bad: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="version"):
        que.migrate(conn, bad)
    assert que.db_version(conn) == 3
