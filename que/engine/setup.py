"""A que-owned session's first steps, before a dialect's protocol runs on it: ISO dates,
READ COMMITTED, and the refusal of a connection through a transaction pooler (every
dialect's job locks are session-level advisory locks)."""

from typing import Final

from que.core.errors import TransactionPoolingError
from que.engine import wire
from que.engine.session import PQGen, Session, execute, statement

# Settings que makes on each session it owns, once: ISO dates make a noted run_at exact;
# READ COMMITTED gives each statement its own snapshot (a check after a lock must see the
# present).
SESSION_SETUP: Final = statement(
    "",
    "SELECT set_config('DateStyle', 'ISO, MDY', false), "
    "set_config('default_transaction_isolation', 'read committed', false)",
    [],
)
# How many connections the server gives ordinary users, at most.
CONNECTION_LIMIT: Final = (
    "SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int"
)
# The backend a statement runs in, to tell a direct connection from a pooler's.
BACKEND_PID: Final = statement("", "SELECT pg_backend_pid()", [])


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
    server_pid = wire.read_int(value) if value is not None else -1
    if server_pid != session.pgconn.backend_pid:
        raise TransactionPoolingError(
            f"this connection goes through a connection pooler (it announced backend pid "
            f"{session.pgconn.backend_pid}, but statements run in backend {server_pid}): Que's job "
            "locks are session-level advisory locks, which a transaction-pooling proxy cannot "
            "keep. Connect workers (and lock_job) directly to PostgreSQL; enqueueing through "
            "the pooler is fine."
        )
    session.direct = True
