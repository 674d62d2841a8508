"""que.drivers.aio.Channel against a real PostgreSQL: a worker's socket stays registered with
the event loop between statements, so it must let go of it the moment the connection
ends, or the loop ends up watching a file number the system has given to another socket."""

import asyncio
from typing import Any

import psycopg
import pytest

from que.dialects.que0.statements import catalog as que0_catalog
from que.drivers.aio import Channel
from que.engine import setup as _setup
from que.engine.session import Session, execute, statement


async def _channel(url: str) -> tuple[psycopg.AsyncConnection[Any], Session, Channel]:
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
    session = Session(conn.pgconn, que0_catalog())
    channel = Channel(conn.pgconn.socket)
    channel.attach(conn.pgconn.consume_input)
    return conn, session, channel


_SLEEP = statement("", "SELECT pg_sleep(30)", [])


def _terminate_when_sleeping(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as other:
        query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event = 'PgSleep'"
        while not other.execute(query, [pid]).fetchone():
            pass
    _terminate(url, pid)


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
        while other.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
            pass


async def _usable_new_connection(url: str) -> None:
    """A connection opened now works, whatever number its socket gets (often the one the
    ended connection had)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as fresh:
        cursor = await asyncio.wait_for(fresh.execute("SELECT 1"), 10)
        assert await cursor.fetchone() == (1,)


@pytest.mark.parametrize("when", ["mid-statement", "idle"])
def test_a_channel_lets_go_of_a_socket_whose_session_ended(
    conn: psycopg.Connection[Any], database_url: str, when: str
) -> None:
    async def main() -> None:
        aconn, session, channel = await _channel(database_url)
        await channel.run(_setup.set_up(session))
        pid = aconn.pgconn.backend_pid
        if when == "idle":
            await asyncio.to_thread(_terminate, database_url, pid)
            # The server's goodbye arrives between statements: the channel reads it.
            while aconn.pgconn.status == psycopg.pq.ConnStatus.OK:
                await asyncio.sleep(0.01)
        else:
            sleeping = asyncio.ensure_future(channel.run(execute(session, (_SLEEP, ()))))
            await asyncio.to_thread(_terminate_when_sleeping, database_url, pid)
            with pytest.raises(psycopg.OperationalError):
                await sleeping
        # The owner has not closed the channel yet (another task may run first).
        await _usable_new_connection(database_url)
        channel.close()
        await aconn.close()

    asyncio.run(main())
