"""How que opens and checks the connections it owns, for the sync and the asyncio client.

Every connection que owns is opened the same way: autocommit, client_encoding UTF8, and no
prepared statements of psycopg's (que prepares its own, and psycopg's DEALLOCATE ALL after a
DROP or ROLLBACK would remove them). A pooled connection is checked without a round trip
before use, and an insert is tried again on another one only when it certainly never ran.
"""

import os
import select
from typing import Any, Final

import psycopg
from psycopg import pq

from que.engine.session import NotSent

# The server ended the session before it ran the statement: shutdown, crash, restart.
_SESSION_ENDED: Final = ("57P01", "57P02", "57P03")


def never_ran(failure: psycopg.OperationalError) -> bool:
    """Whether an insert that failed so certainly did not run: then, and only then, it may
    be tried again on another connection (never a second insert after a commit that may
    have happened)."""
    return isinstance(failure, NotSent) or failure.sqlstate in _SESSION_ENDED


def database_url(explicit: str | None = None) -> str:
    """The connection string: the argument, else QUE_DATABASE_URL, else DATABASE_URL."""
    url = explicit or os.environ.get("QUE_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if not url:
        raise ValueError("no database given: pass a connection string or set QUE_DATABASE_URL (or DATABASE_URL)")
    return url


def connection_options(application_name: str) -> dict[str, Any]:
    """How que opens the connections it owns (see the module docstring)."""
    return {
        "autocommit": True,
        "prepare_threshold": None,
        "client_encoding": "utf8",
        "application_name": application_name,
    }


def idle_and_quiet(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """A cheap check, with no round trip, that a pooled connection is still alive.

    An idle autocommit connection receives nothing unless the server is ending it (a
    restart, pg_terminate_backend, an idle timeout send a FATAL message and close): a
    socket with something to read means the connection is about to fail.
    """
    pg = conn.pgconn
    if pg.status != pq.ConnStatus.OK or pg.transaction_status != pq.TransactionStatus.IDLE:
        return False
    try:
        readable, _, _ = select.select([pg.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return False
    return not readable
