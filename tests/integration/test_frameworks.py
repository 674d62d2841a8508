"""Enqueue inside the transactions of Django and SQLAlchemy, against the real libraries: the
job exists exactly when the framework's transaction commits."""

import asyncio
import os
import subprocess
import sys
import textwrap
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

import que
from que.aio import AsyncClient
from tests.conftest import rows


def sqlalchemy_url(database_url: str, driver: str = "psycopg") -> str:
    parts = conninfo_to_dict(database_url)
    return f"postgresql+{driver}://{parts.get('user', 'postgres')}@{parts['host']}:{parts['port']}/{parts['dbname']}"


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_sqlalchemy_session(client: que.Client, conn: psycopg.Connection[Any], database_url: str, outcome: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with Session(engine) as session:
            session.execute(text("SELECT 1"))
            job = client.enqueue("Welcome", 7, conn=session)
            assert job.job_class == "Welcome" and job.args == [7]
            assert rows(conn) == [], "visible before the session commits"
            session.commit() if outcome == "commit" else session.rollback()
        with engine.connect() as connection:  # a SQLAlchemy Connection works too
            client.enqueue_many([("Batch", [1])], conn=connection)
            connection.rollback()
    finally:
        engine.dispose()
    assert [r["job_class"] for r in rows(conn)] == (["Welcome"] if outcome == "commit" else [])


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_sqlalchemy_async_session(conn: psycopg.Connection[Any], database_url: str, outcome: str) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    async def main() -> None:
        engine = create_async_engine(sqlalchemy_url(database_url))
        try:
            async with AsyncClient(database_url) as aclient, AsyncSession(engine) as session:
                await aclient.enqueue("Welcome", 7, conn=session)
                await aclient.enqueue_many([("Batch", [1])], conn=session)
                assert rows(conn) == []
                await (session.commit() if outcome == "commit" else session.rollback())
        finally:
            await engine.dispose()

    asyncio.run(main())
    assert [r["job_class"] for r in rows(conn)] == (["Welcome", "Batch"] if outcome == "commit" else [])


DJANGO = """
import django, json, sys
from django.conf import settings
from django.db import connection, transaction
import que

settings.configure(DATABASES={"default": {
    "ENGINE": "django.db.backends.postgresql", "NAME": %(name)r, "USER": %(user)r,
    "HOST": %(host)r, "PORT": %(port)r,
}})
django.setup()
client = que.Client(%(url)r)
try:
    with transaction.atomic():
        client.enqueue("Welcome", 1, conn=connection)
        raise RuntimeError("roll back")
except RuntimeError:
    pass
with transaction.atomic():
    job = client.enqueue("Welcome", 2, conn=connection)
    client.enqueue_many([("Batch", [3])], conn=connection)
print(json.dumps({"job_id": job.job_id, "autocommit": connection.get_autocommit()}))
"""


def test_django_atomic_commit_and_rollback(conn: psycopg.Connection[Any], database_url: str) -> None:
    parts = conninfo_to_dict(database_url)
    script = DJANGO % {
        "name": parts["dbname"],
        "user": parts.get("user", "postgres"),
        "host": parts["host"],
        "port": parts["port"],
        "url": database_url,
    }
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert [(r["job_class"], r["args_text"]) for r in rows(conn)] == [("Welcome", "[2]"), ("Batch", "[3]")]
