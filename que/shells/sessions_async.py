"""Ending a shell's own server session, the one way every shell does it.

This asyncio form is the source: que.shells.sessions is generated from it.
"""
# sync-doc: Ending a shell's own server session, the one way every shell does it.
# sync-doc:
# sync-doc: Generated from que.shells.sessions_async.

import contextlib
from typing import Any

import psycopg

from que.drivers import aio as io


async def close(conn: psycopg.AsyncConnection[Any] | None, channel: io.Channel | None) -> None:
    """Stop watching the session's socket, end the server session at once (which ends every
    advisory lock it held, so the jobs run again elsewhere) and close the connection; an
    error from a connection the server already ended is of no interest here."""
    if channel is not None:
        channel.close()
    if conn is not None and not conn.closed:
        conn.pgconn.finish()
        with contextlib.suppress(psycopg.Error):
            await conn.close()
