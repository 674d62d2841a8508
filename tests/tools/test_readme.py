"""The README's Python examples run as written: only the server's URL is swapped in.

Blocks in order: the quickstart, asyncio, Django, SQLAlchemy, enqueue for Rails, work Rails'
jobs, operating a queue (the `conn` fixture gives each an empty que_jobs). The Django block is a
function an app would call, so the test calls it (in a committed and in a rolled-back
atomic block) after configuring Django the way an app's settings would.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from tests.conftest import fresh_database, rows
from tests.integration.test_frameworks import sqlalchemy_url

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
EXAMPLE_SQLALCHEMY_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def run(source: str, database_url: str) -> subprocess.CompletedProcess[str]:
    source = source.replace(repr(EXAMPLE_SQLALCHEMY_URL).replace("'", '"'), repr(sqlalchemy_url(database_url)))
    source = source.replace(repr(EXAMPLE_URL).replace("'", '"'), repr(database_url))
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": ""}
    return subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def accounts(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    conn.execute("DROP TABLE IF EXISTS accounts")
    conn.execute("CREATE TABLE accounts (email text PRIMARY KEY)")
    return conn


def emails(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute("SELECT email FROM accounts ORDER BY email").fetchall()]


def test_there_are_eight_examples() -> None:
    assert len(blocks()) == 8


def test_operating_example_runs(database_url: str, conn: psycopg.Connection[Any]) -> None:
    result = run(blocks()[7], database_url)
    assert result.returncode == 0, result.stderr
    assert "sending to ann@example.com" in result.stdout
    assert "SendEmail worked in" in result.stdout
    assert 'que_jobs_worked_total{job_class="SendEmail",queue=""} 1.0' in result.stdout
    assert rows(conn) == []


def test_quickstart_runs(database_url: str, conn: psycopg.Connection[Any]) -> None:
    result = run(blocks()[0], database_url)
    assert result.returncode == 0, result.stderr
    assert "sending welcome to ann@example.com" in result.stdout
    assert rows(conn) == []


def test_que_2_example_runs(database_url: str) -> None:
    """On a database of its own: the example builds Ruby Que 2's schema there."""
    url = fresh_database(database_url, "readme_que2")
    result = run(blocks()[1].replace(repr(EXAMPLE_URL).replace("'", '"'), repr(url)), url)
    assert result.returncode == 0, result.stderr
    assert "sending welcome to ann@example.com" in result.stdout
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM que_lockers").fetchone() == (0,)


def test_asyncio_quickstart_runs(database_url: str, conn: psycopg.Connection[Any]) -> None:
    result = run(blocks()[2], database_url)
    assert result.returncode == 0, result.stderr
    assert "sending welcome to bob@example.com" in result.stdout
    assert rows(conn) == []


def test_django_example_enqueues_exactly_when_the_atomic_block_commits(
    accounts: psycopg.Connection[Any], database_url: str
) -> None:
    parts = conninfo_to_dict(database_url)
    setup = f"""
        import django
        from django.conf import settings
        settings.configure(DATABASES={{"default": {{
            "ENGINE": "django.db.backends.postgresql", "NAME": {parts["dbname"]!r},
            "USER": {parts.get("user", "postgres")!r}, "HOST": {parts["host"]!r}, "PORT": {parts["port"]!r},
        }}}})
        django.setup()
    """
    calls = """
        sign_up("dan@example.com")
        try:
            with transaction.atomic():
                sign_up("eve@example.com")
                raise RuntimeError("the caller's work failed")
        except RuntimeError:
            pass
    """
    result = run(textwrap.dedent(setup) + blocks()[3] + textwrap.dedent(calls), database_url)
    assert result.returncode == 0, result.stderr[-3000:]
    assert emails(accounts) == ["dan@example.com"]
    assert [(r["job_class"], r["args_text"]) for r in rows(accounts)] == [("SendWelcome", '["dan@example.com"]')]


def test_sqlalchemy_example_enqueues_with_the_session(accounts: psycopg.Connection[Any], database_url: str) -> None:
    result = run(blocks()[4], database_url)
    assert result.returncode == 0, result.stderr[-3000:]
    assert emails(accounts) == ["cyd@example.com"]
    assert [(r["job_class"], r["args_text"]) for r in rows(accounts)] == [("SendWelcome", '["cyd@example.com"]')]


def test_enqueue_for_rails_writes_the_activejob_row(database_url: str, conn: psycopg.Connection[Any]) -> None:
    result = run(blocks()[5], database_url)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["ActiveJob::QueueAdapters::QueAdapter::JobWrapper", "mail", "SendEmailJob"]
    [row] = rows(conn)
    assert (row["queue"], row["priority"]) == ("mail", 10)


def test_work_rails_jobs_runs_them(database_url: str, conn: psycopg.Connection[Any]) -> None:
    result = run(blocks()[6], database_url)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sending welcome to bob@example.com at None" in result.stdout
    assert rows(conn) == []
