"""A pipeline that grows while it waits (que.engine.session.pipeline's `more`), on both
drivers against a real PostgreSQL: a locker sends the outcomes workers report during a round
trip on that round trip, instead of holding them for the next one."""

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import psycopg

from que.drivers import aio, threads
from que.engine.session import Call, Session, pipeline, statement

_SLEEP = statement("que_test_sleep", "SELECT pg_sleep(0.5)", [])
_PID = statement("que_test_pid", "SELECT pg_backend_pid()", [])


def _session(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> Session:
    return Session(conn.pgconn, [_SLEEP, _PID])


def _sleeping(url: str, pid: int) -> bool:
    with psycopg.connect(url, autocommit=True) as other:
        query = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event = 'PgSleep'"
        return other.execute(query, [pid]).fetchone() is not None


def _wake_when_sleeping(url: str, pid: int, wake: Any) -> None:
    while not _sleeping(url, pid):
        pass
    wake()


class _More:
    """Gives one extra segment the first time it is asked, and notes whether the server was
    still running the first statement then (the pipeline grew while it waited)."""

    def __init__(self, url: str, pid: int) -> None:
        self.url, self.pid = url, pid
        self.asked: list[bool] = []

    def __call__(self) -> Sequence[Sequence[Call]]:
        self.asked.append(_sleeping(self.url, self.pid))
        return [[(_PID, ())]] if len(self.asked) == 1 else []


def test_a_woken_pipeline_sends_more_while_it_waits_threads(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        session, pid = _session(conn), conn.pgconn.backend_pid
        threads.run(pipeline(session, [[(_PID, ())]]), conn.pgconn.socket)  # prepares both
        waker = threads.Waker()
        more = _More(database_url, pid)
        helper = threading.Thread(target=_wake_when_sleeping, args=(database_url, pid, waker.wake))
        helper.start()
        results = threads.Channel(conn.pgconn.socket).run(pipeline(session, [[(_SLEEP, ())]], more), waker)
        helper.join()
        waker.close()
    assert more.asked[:1] == [True]
    assert len(results) == 2 and results[1].get_value(0, 0) is not None


def test_a_pipeline_not_woken_sends_only_its_own_segments_threads(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        session = _session(conn)
        threads.run(pipeline(session, [[(_PID, ())]]), conn.pgconn.socket)
        waker = threads.Waker()
        more = _More(database_url, conn.pgconn.backend_pid)
        results = threads.Channel(conn.pgconn.socket).run(pipeline(session, [[(_PID, ())], [(_PID, ())]], more), waker)
        waker.close()
    assert more.asked == [] and len(results) == 2


def test_a_woken_pipeline_sends_more_while_it_waits_asyncio(database_url: str) -> None:
    async def main() -> tuple[list[bool], int]:
        conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
        try:
            session, pid = _session(conn), conn.pgconn.backend_pid
            await aio.run(pipeline(session, [[(_PID, ())]]), conn.pgconn.socket)
            waker = aio.Waker()
            more = _More(database_url, pid)
            channel = aio.Channel(conn.pgconn.socket)
            helper = asyncio.create_task(asyncio.to_thread(_wake_when_sleeping, database_url, pid, waker.wake))
            results = await channel.run(pipeline(session, [[(_SLEEP, ())]], more), waker)
            await helper
            channel.close()
            return more.asked, len(results)
        finally:
            await conn.close()

    asked, count = asyncio.run(main())
    assert asked[:1] == [True] and count == 2
