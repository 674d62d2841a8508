# This file is generated from que/shells/sessions_async.py by tools/async_to_sync.py: do not edit it.
# Edit the asyncio source and run `make generate` (make lint checks that the two agree).
"""Ending a shell's own server session, the one way every shell does it.

Generated from que.shells.sessions_async.
"""

import contextlib
from typing import Any

import psycopg

from que.drivers import threads as io


def close(conn: psycopg.Connection[Any] | None, channel: io.Channel | None) -> None:
    """Stop watching the session's socket, end the server session at once (which ends every
    advisory lock it held, so the jobs run again elsewhere) and close the connection; an
    error from a connection the server already ended is of no interest here."""
    if channel is not None:
        channel.close()
    if conn is not None and not conn.closed:
        conn.pgconn.finish()
        with contextlib.suppress(psycopg.Error):
            conn.close()
