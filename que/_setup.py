"""A que-owned session's first steps, before the protocol (que._protocol) runs on it:
ISO dates, the refusal of a connection through a transaction pooler, LISTEN, and reading
the notifications that wake a waiting worker."""

from typing import Final

from que import _wire, sql
from que._session import PQGen, Session, execute, statement
from que.errors import TransactionPoolingError

BACKEND_PID: Final = statement("", sql.BACKEND_PID, [])
SESSION_SETUP: Final = statement("", sql.SESSION_SETUP, [])
LISTEN: Final = statement("", sql.LISTEN, [])


def set_up(session: Session) -> PQGen[None]:
    """Set up a que-owned session once (ISO dates), and refuse a connection that goes
    through a pooler, where session locks cannot work.

    The backend pid a server announces at connect and `pg_backend_pid()` are the same on a
    direct connection; a pooler (pgbouncer and the like) announces its own. Behind a
    transaction pooler each transaction may run in another server session, so a job lock
    taken by one statement is not held by the next and jobs run twice.
    """
    if session.direct:
        return
    yield from execute(session, (SESSION_SETUP, ()))
    result = yield from execute(session, (BACKEND_PID, ()))
    value = result.get_value(0, 0)
    server_pid = _wire.read_int(value) if value is not None else -1
    if server_pid != session.pgconn.backend_pid:
        raise TransactionPoolingError(
            f"this connection goes through a connection pooler (it announced backend pid "
            f"{session.pgconn.backend_pid}, but statements run in backend {server_pid}): Que's job "
            "locks are session-level advisory locks, which a transaction-pooling proxy cannot "
            "keep. Connect workers (and lock_job) directly to PostgreSQL; enqueueing through "
            "the pooler is fine."
        )
    session.direct = True


def listen(session: Session) -> PQGen[None]:
    yield from execute(session, (LISTEN, ()))


def notified(session: Session, queue: str) -> bool:
    """Read what arrived on the socket; True if a notification names `queue`."""
    session.pgconn.consume_input()
    found = False
    while (note := session.pgconn.notifies()) is not None:
        found = found or note.extra.decode(session.codec, "replace") == queue
    return found
