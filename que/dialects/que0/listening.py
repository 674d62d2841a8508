"""Que 0.x's wake-up (que-interop's addition: Ruby Que 0.x and que-go only poll): a worker
LISTENs on one channel, and an enqueue with notify=True sends the job's queue on it when
its insert commits."""

from typing import Final

from que.dialects.que0 import sql
from que.engine.session import PQGen, Session, execute, statement

LISTEN: Final = statement("", sql.LISTEN, [])


def listen(session: Session) -> PQGen[None]:
    yield from execute(session, (LISTEN, ()))


def notified(session: Session, queue: str) -> bool:
    """Read what arrived on the socket; True if a notification names `queue`."""
    session.pgconn.consume_input()
    found = False
    while (note := session.pgconn.notifies()) is not None:
        found = found or note.extra.decode(session.codec, "replace") == queue
    return found
