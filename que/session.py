"""A worker's job session: the protocol's statements on one connection, in few round trips.

The worker's hot path talks to libpq through psycopg's `pq` layer: the statements are
prepared once per connection under Ruby Que's names, parameters and results stay in
PostgreSQL's text format (so run_at goes back to the server byte for byte), and finishing
one job is pipelined with locking the next:

    round trip 1:  destroy_job(prev) | SYNC | unlock(prev), lock_job | SYNC
    round trip 2:  check_job(next)

The SYNC after the destroy is what keeps it safe: it commits the delete before the unlock
runs, so no other worker can lock the job while its delete is uncommitted (unlocking in
the same transaction as the delete would let the job run twice). The statements, the lock
key and the order lock -> check -> run -> delete/set_error -> unlock are the protocol's; only
the round trips are fewer.
"""

import contextlib
import select
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg
from psycopg import pq

from que import sql
from que.errors import TransactionPoolingError
from que.job import Job

_NAMES: Final = {
    "lock": (b"que_lock_job", sql.LOCK_JOB, ("queue",)),
    "check": (b"que_check_job", sql.CHECK_JOB, ("queue", "priority", "run_at", "job_id")),
    "destroy": (b"que_destroy_job", sql.DESTROY_JOB, ("queue", "priority", "run_at", "job_id")),
    "error": (b"que_set_error", sql.SET_ERROR, ("delay", "message", "queue", "priority", "run_at", "job_id")),
    "error_uncounted": (
        b"que_interop_set_error_uncounted",
        sql.SET_ERROR_UNCOUNTED,
        ("delay", "message", "queue", "priority", "run_at", "job_id"),
    ),
    "unlock": (b"que_unlock_job", sql.UNLOCK_JOB, ("job_id",)),
}

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


def positional(statement: str, names: Sequence[str]) -> bytes:
    """The statement with $1, $2 ... for its named placeholders, in `names` order."""
    for index, name in enumerate(names, start=1):
        statement = statement.replace(f"%({name})s", f"${index}")
    if "%(" in statement:
        raise ValueError(f"placeholders left unnamed in {statement[:60]!r}")
    return statement.encode()


@dataclass(frozen=True)
class Locked:
    """A job this session holds, with its key as the server wrote it (text format)."""

    job: Job
    key: tuple[bytes, bytes, bytes, bytes]  # queue, priority, run_at, job_id


@dataclass(frozen=True)
class Finish:
    """How to finish a locked job: delete it, or record `message` with `delay` seconds."""

    locked: Locked
    message: str | None = None
    delay: int = 0


_INSERT_NAMES: Final = ("queue", "priority", "run_at", "job_class", "args")
_INSERTS: Final = {
    False: (b"que_insert_job", positional(sql.INSERT_JOB, _INSERT_NAMES)),
    True: (b"que_interop_insert_job_notify", positional(sql.INSERT_JOB_NOTIFY, _INSERT_NAMES)),
}


def result_error(result: pq.abc.PGresult, action: str = "") -> psycopg.Error:
    """The psycopg exception for a failed libpq result, by SQLSTATE (as psycopg raises)."""
    message = (result.error_message or b"").decode(errors="replace").strip()
    sqlstate = result.error_field(pq.DiagnosticField.SQLSTATE)
    cls: type[psycopg.Error] = psycopg.DatabaseError
    if sqlstate:
        with contextlib.suppress(KeyError):
            cls = psycopg.errors.lookup(sqlstate.decode())
    return cls(f"{action}: {message}" if action else message)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def insert_prepared(conn: psycopg.Connection[Any], params: dict[str, Any], notify: bool, prepared: set[bool]) -> Job:
    """insert_job as a prepared statement on a connection que owns (text format, one
    round trip); `prepared` remembers which of the two inserts this connection has."""
    pg = conn.pgconn
    name, statement = _INSERTS[notify]
    if notify not in prepared:
        result = pg.prepare(name, statement)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.DatabaseError((result.error_message or b"").decode(errors="replace"))
        prepared.add(notify)
    run_at = params["run_at"]
    result = pg.exec_prepared(
        name,
        [
            params["queue"].encode(),
            str(params["priority"]).encode(),
            None if run_at is None else run_at.isoformat().encode(),  # type: ignore[list-item]
            params["job_class"].encode(),
            params["args"].encode(),
        ],
    )
    if result.status != pq.ExecStatus.TUPLES_OK:
        if pg.status == pq.ConnStatus.BAD:
            raise psycopg.OperationalError("insert_job: the connection is broken")
        raise result_error(result)
    row = {(result.fname(i) or b"").decode(): result.get_value(0, i) for i in range(result.nfields)}
    run_at_text = _text(row["run_at"]) or ""
    try:
        run_at_value: Any = datetime.fromisoformat(run_at_text)
    except ValueError:
        run_at_value = run_at_text
    return Job.from_row(
        queue=_text(row["queue"]) or "",
        priority=int(row["priority"] or 0),
        run_at=run_at_value,
        job_id=int(row["job_id"] or 0),
        job_class=_text(row["job_class"]) or "",
        args=_text(row["args"]) or "[]",
        error_count=int(row["error_count"] or 0),
        last_error=_text(row["last_error"]),
    )


def ensure_direct(conn: psycopg.Connection[Any]) -> None:
    """Refuse a connection that goes through a pooler, where session locks cannot work.

    The backend pid a server announces at connect and `pg_backend_pid()` are the same on
    a direct connection; a pooler (pgbouncer and the like) announces its own. Behind a
    transaction pooler each transaction may run in a different server session, so a job
    lock taken by one statement is not held by the next and jobs run twice.
    """
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    server_pid = int(row[0]) if row else -1
    if server_pid != conn.pgconn.backend_pid:
        raise TransactionPoolingError(
            f"this connection goes through a connection pooler (it announced backend pid "
            f"{conn.pgconn.backend_pid}, but statements run in backend {server_pid}): Que's job "
            "locks are session-level advisory locks, which a transaction-pooling proxy cannot "
            "keep. Connect workers (and lock_job) directly to PostgreSQL; enqueueing through "
            "the pooler is fine."
        )


class JobSession:
    """The protocol on one dedicated connection. Not thread-safe: one per worker."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        ensure_direct(conn)
        self.conn = conn
        self.pg = conn.pgconn
        # run_at is parsed with datetime.fromisoformat, so the session's output is ISO.
        self._check(self.pg.exec_(b"SET DateStyle = 'ISO, MDY'"), "set DateStyle")
        for name, statement, names in _NAMES.values():
            self._check(self.pg.prepare(name, positional(statement, names)), "prepare")

    # -- low level ----------------------------------------------------------------------

    def _error(self, result: pq.abc.PGresult, action: str) -> psycopg.Error:
        return result_error(result, action)

    def _check(self, result: pq.abc.PGresult | None, action: str) -> pq.abc.PGresult:
        if result is None:
            raise psycopg.OperationalError(f"{action}: no result (connection lost?)")
        if result.status not in _OK:
            if self.pg.status == pq.ConnStatus.BAD:
                raise psycopg.OperationalError(f"{action}: the connection is broken")
            raise self._error(result, action)
        return result

    def _wait(self) -> None:
        """Block until a result can be read without blocking, with the GIL released."""
        while self.pg.is_busy():
            select.select([self.pg.socket], [], [])
            self.pg.consume_input()

    def _get(self) -> pq.abc.PGresult | None:
        self._wait()
        return self.pg.get_result()

    def _exec(self, key: str, params: Sequence[bytes | None], action: str) -> pq.abc.PGresult:
        if self.pg.status == pq.ConnStatus.BAD:
            raise psycopg.OperationalError(f"{action}: the connection is broken")
        return self._check(self.pg.exec_prepared(_NAMES[key][0], params), action)  # type: ignore[arg-type]

    def _pipeline(
        self, segments: list[list[tuple[str, Sequence[bytes | None]]]]
    ) -> tuple[list[pq.abc.PGresult], psycopg.Error | None]:
        """Send every segment (each ends in a SYNC, so each commits on its own) in one
        round trip; return the results in order and the first statement error, if any.
        A broken connection raises."""
        if self.pg.status == pq.ConnStatus.BAD:
            raise psycopg.OperationalError("the connection is broken")
        self.pg.enter_pipeline_mode()
        try:
            for segment in segments:
                for key, params in segment:
                    self.pg.send_query_prepared(_NAMES[key][0], params)
                self.pg.pipeline_sync()
            while self.pg.flush():
                select.select([], [self.pg.socket], [])
            results: list[pq.abc.PGresult] = []
            first_error: psycopg.Error | None = None
            for segment in segments:
                for key, _ in segment:
                    result = self._get()
                    if result is None:
                        raise psycopg.OperationalError(f"{key}: no result (connection lost?)")
                    if result.status not in _OK and first_error is None:
                        if result.status == pq.ExecStatus.PIPELINE_ABORTED:
                            first_error = psycopg.OperationalError(f"{key}: pipeline aborted")
                        else:
                            first_error = self._error(result, key)
                    results.append(result)
                    if self._get() is not None:
                        raise psycopg.OperationalError(f"{key}: unexpected extra result")
                sync = self._get()
                if sync is None or sync.status != pq.ExecStatus.PIPELINE_SYNC:
                    raise psycopg.OperationalError("pipeline out of step")
            return results, first_error
        finally:
            if self.pg.status != pq.ConnStatus.BAD and self.pg.pipeline_status != pq.PipelineStatus.OFF:
                with contextlib.suppress(psycopg.Error):
                    self.pg.exit_pipeline_mode()

    # -- the protocol -------------------------------------------------------------------

    def _job(self, result: pq.abc.PGresult) -> Locked:
        def text(col: int) -> bytes:
            value = result.get_value(0, col)
            assert value is not None
            return value

        queue, priority, run_at, job_id = text(0), text(1), text(2), text(3)
        run_at_text = run_at.decode()
        try:
            run_at_value: Any = datetime.fromisoformat(run_at_text)
        except ValueError:  # 'infinity', BC dates, years past 9999
            run_at_value = run_at_text
        job = Job.from_row(
            queue=queue.decode(),
            priority=int(priority),
            run_at=run_at_value,
            job_id=int(job_id),
            job_class=text(4).decode(),
            args=text(5).decode(),
            error_count=int(text(6)),
        )
        return Locked(job, (queue, priority, run_at, job_id))

    def _finish_statement(self, finish: Finish) -> tuple[str, Sequence[bytes | None]]:
        if finish.message is None:
            return ("destroy", finish.locked.key)
        return ("error", (str(finish.delay).encode(), finish.message.encode(), *finish.locked.key))

    def lock(self, queue: str, finish: Finish | None = None) -> Locked | None:
        """Finish the previous job (if any), release it, and lock the next due job of
        `queue`, checking it is still there; None when there is none."""
        queue_param = queue.encode()
        segments: list[list[tuple[str, Sequence[bytes | None]]]] = []
        if finish is not None:
            segments.append([self._finish_statement(finish)])
            segments.append([("unlock", (finish.locked.key[3],)), ("lock", (queue_param,))])
        else:
            segments.append([("lock", (queue_param,))])
        while True:
            results, error = self._pipeline(segments)
            found = results[-1]
            if error is not None and finish is not None and self._rescheduled(finish, error):
                error = None
            if error is not None:
                # The finish failed but the lock may have succeeded: let go of the new
                # job before reporting, so no lock outlives the error.
                if found.status == pq.ExecStatus.TUPLES_OK and found.ntuples == 1:
                    self._exec("unlock", (found.get_value(0, 3),), "unlock")
                raise error
            if found.ntuples == 0:
                return None
            locked = self._job(found)
            if self._exec("check", locked.key, "check_job").ntuples == 1:
                return locked
            # Lost a race: someone finished the job after lock_job's snapshot.
            segments = [[("unlock", (locked.key[3],)), ("lock", (queue_param,))]]

    def _rescheduled(self, finish: Finish, error: psycopg.Error) -> bool:
        """When set_error fails on the row's own data (SQLSTATE class 22, e.g. an
        error_count at the integer maximum), reschedule the job without counting."""
        if finish.message is None or not (error.sqlstate or "").startswith("22"):
            return False
        params = (str(finish.delay).encode(), finish.message.encode(), *finish.locked.key)
        self._exec("error_uncounted", params, "set_error (uncounted)")
        return True

    def finish(self, finish: Finish) -> None:
        """Finish a job and release it: the delete or error commits before the unlock.
        The unlock runs even when the finish statement fails."""
        _, error = self._pipeline([[self._finish_statement(finish)], [("unlock", (finish.locked.key[3],))]])
        if error is not None and not self._rescheduled(finish, error):
            raise error

    def release(self, locked: Locked) -> None:
        """Release a job's lock without touching its row."""
        self._exec("unlock", (locked.key[3],), "unlock")
