"""What becomes of a job whose plain handler an asyncio worker cut short (shutdown,
cancellation): the handler runs on in its thread, holding the job's lock on the worker's
session, and when it ends its thread finishes the job on that session, without the event
loop (which may be gone), and closes it. Asyncio only: a thread worker never cuts a
handler short. (The locker's pool does the same for its runners: que.shells.locker_async.)"""

import concurrent.futures
import logging
from typing import Any

import psycopg

from que.core import hooks as _hooks
from que.core.errors import last_error_text
from que.core.handlers import INTERRUPTS
from que.dialects import Dialect
from que.drivers.threads import run as run_in_thread
from que.engine.rounds import Held
from que.engine.session import Session

log = logging.getLogger("que")


def finish_orphan(
    dialect: Dialect | None,
    max_retries: int | None,
    conn: psycopg.AsyncConnection[Any],
    session: Session,
    held: Held,
    done: concurrent.futures.Future[BaseException | None],
) -> None:
    """In the handler's thread, once the handler cut short has ended: write the job's end
    as the worker would have, then end the session (and with it the job's lock)."""
    protocol = dialect.one_at_a_time if dialect is not None else None
    try:
        failure = done.exception() or done.result()
        if protocol is not None and dialect is not None and not isinstance(failure, INTERRUPTS):
            finish = (
                protocol.Finish(held, max_retries=max_retries)
                if failure is None
                else protocol.Finish.failure(held, last_error_text(failure), max_retries)
            )
            _hooks.ended(held.job, dialect.outcome(held.job, failure, None, max_retries), 0.0, failure)
            run_in_thread(protocol.finish(session, finish), conn.pgconn.socket)
    except Exception:
        log.exception("orphan_not_finished job_id=%s", held.job.job_id, extra={"event": "orphan_not_finished"})
    finally:
        conn.pgconn.finish()  # ends the session, and with it the job's lock if still held
