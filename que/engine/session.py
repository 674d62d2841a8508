"""A que-owned connection's session at the libpq level: prepared statements, pipelines,
results, in generators that never block (que.drivers.waiting drives them).

This is the I/O half of the engine; que.dialects.que0.protocol is the protocol half. Statements are
prepared once per connection under their protocol names; if something removed them
(DEALLOCATE ALL, DISCARD ALL), they are prepared again and, when nothing took effect,
the statements are sent once more.
"""

import contextlib
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import psycopg
from psycopg import pq

from que.core.errors import storable
from que.engine import wire as _wire
from que.engine.wire import Params

T = TypeVar("T")
READ: Final = 1
WRITE: Final = 2
READ_WRITE: Final = 3
# Yielded beside READ by a pipeline that may grow while it waits (pipeline(more=...)): the
# driver also watches the shell's Waker and sends WAKE back when it fired (and cleared it).
WAKE: Final = 4
PQGen = Generator[int, int, T]
# What a pipeline asks, when woken, for more segments to send before its results are read.
More = Callable[[], Sequence[Sequence["Call"]]]

OK: Final = frozenset({int(pq.ExecStatus.TUPLES_OK), int(pq.ExecStatus.COMMAND_OK)})
_STATEMENT_GONE = b"26000"  # invalid_sql_statement_name: prepared statement does not exist
_SQLSTATE = pq.DiagnosticField.SQLSTATE
_PIPELINE_SYNC = int(pq.ExecStatus.PIPELINE_SYNC)


@dataclass(frozen=True)
class Statement:
    """One protocol statement as the server sees it: $n placeholders and their types; and
    as que.dialects.que0.sql writes it (`source`, with named placeholders, and their `params`)."""

    name: bytes
    text: bytes
    types: tuple[int, ...]
    source: str = ""
    params: tuple[tuple[str, int], ...] = ()


def statement(name: str, query: str, params: Sequence[tuple[str, int]]) -> Statement:
    """A statement's named placeholders (psycopg's %(name)s) become $1, $2 ... in `params`
    order. A named statement is prepared on a session once (with its dialect's catalog); an
    unnamed one ("") is sent with its text."""
    source = query
    for index, (param, _) in enumerate(params, start=1):
        query = query.replace(f"%({param})s", f"${index}")
    if "%(" in query:
        raise ValueError(f"placeholders left unnamed in {name}: {query[:80]!r}")
    return Statement(name.encode(), query.encode(), tuple(oid for _, oid in params), source, tuple(params))


Call = tuple[Statement, Params]


class NotSent(psycopg.OperationalError):
    """The connection failed before the statement reached the server: safe to try again."""


class Session:
    """One connection's protocol state: its libpq connection and what is prepared on it.

    Only for connections que owns (opened with client_encoding UTF8), used by one caller
    at a time. `usable()` says whether the connection can go on after an error; when it
    cannot, its owner closes it, which also ends any lock the session held.
    """

    def __init__(self, pgconn: pq.abc.PGconn, catalog: Sequence[Statement] = ()) -> None:
        self.pgconn = pgconn
        # The named statements prepared together, all in one round trip, before the first
        # statement that needs any of them (the dialect's; see _prepare).
        self.catalog = catalog
        self.codec = "utf-8"
        self.prepared: set[bytes] = set()
        self.direct = False
        # Segments sent by send() whose results are not read yet: the statements in each.
        self.unread: list[int] = []
        # Whether the next claim skips the jobs other sessions hold without trying them
        # (que.dialects.que0.protocol.AVOID_AFTER).
        self.avoiding = False
        encoding = pgconn.parameter_status(b"server_encoding") or b"UTF8"
        self.server_encoding = encoding.decode("ascii", "replace")
        self.server_codec = _wire.server_codec(encoding)

    def usable(self) -> bool:
        pg = self.pgconn
        return (
            pg.status == pq.ConnStatus.OK
            and pg.pipeline_status == pq.PipelineStatus.OFF
            and pg.transaction_status == pq.TransactionStatus.IDLE
        )

    def text(self, value: str) -> bytes:
        return value.encode(self.codec)

    def message(self, value: str) -> bytes:
        """An error message made storable: PostgreSQL text and the database's encoding."""
        return storable(value, self.server_codec).encode(self.codec)


# -- I/O --------------------------------------------------------------------------------


def _flush(pg: pq.abc.PGconn) -> PQGen[None]:
    while pg.flush():
        ready = yield READ_WRITE
        if ready & READ:
            pg.consume_input()


def _fetch(pg: pq.abc.PGconn) -> PQGen[pq.abc.PGresult | None]:
    while pg.is_busy():
        yield READ
        pg.consume_input()
    return pg.get_result()


def error(session: Session, result: pq.abc.PGresult | None, action: str) -> psycopg.Error:
    """The psycopg exception for a failed result, as psycopg itself raises it (a server
    ending the session gives its SQLSTATE: 57P01 AdminShutdown and the like)."""
    if result is not None and result.status == pq.ExecStatus.PIPELINE_ABORTED:
        return psycopg.OperationalError(f"{action}: not run, an earlier statement in its pipeline failed")
    if result is not None and result.error_field(pq.DiagnosticField.SQLSTATE):
        return psycopg.errors.error_from_result(result, session.codec)
    reason = "" if result is None else result.get_error_message(session.codec)
    return psycopg.OperationalError(f"{action}: the connection to the server was lost {reason}".strip())


def _end_of_results(pg: pq.abc.PGconn) -> PQGen[None]:
    """Read to the end of a statement's results. A connection that breaks here already
    gave its result (the server's reason, when it ended the session): keep that."""
    try:
        while (yield from _fetch(pg)) is not None:
            pass
    except psycopg.OperationalError:
        if pg.status == pq.ConnStatus.OK:
            raise


def _send(session: Session, call: Call) -> None:
    statement, params = call
    try:
        if statement.name:
            session.pgconn.send_query_prepared(statement.name, params, [1] * len(params), 1)
        else:
            session.pgconn.send_query_params(statement.text, params, statement.types, [1] * len(params), 1)
    except psycopg.OperationalError as failure:
        raise NotSent(str(failure)) from failure


def _prepare(session: Session, needed: Iterable[Statement]) -> PQGen[None]:
    """Prepare every named statement not yet prepared on this session, in one round trip.

    All of them at once, not just `needed`: a DEALLOCATE ALL then removes them together,
    and a pipeline whose statements all failed that way had no effect and can be resent.
    Each is prepared in a segment of its own, so one the server already has (42P05: a
    session prepared it before this Session object knew it) does not stop the others.
    """
    needed = [s for s in needed if s.name]
    pg = session.pgconn
    missing = list({s.name: s for s in (*session.catalog, *needed) if s.name not in session.prepared}.values())
    pg.enter_pipeline_mode()
    try:
        for named in missing:
            try:
                pg.send_prepare(named.name, named.text, named.types)
                pg.pipeline_sync()
            except psycopg.OperationalError as failure:
                raise NotSent(str(failure)) from failure
        yield from _flush(pg)
        refused: psycopg.Error | None = None
        for named in missing:
            result = yield from _fetch(pg)
            if (yield from _fetch(pg)) is not None or result is None:
                raise error(session, None, f"prepare {named.name.decode()}")
            if result.status in OK:
                session.prepared.add(named.name)
            else:
                refusal = error(session, result, f"prepare {named.name.decode()}")
                if refusal.sqlstate == "42P05":  # already prepared on this session
                    session.prepared.add(named.name)
                elif refused is None:
                    refused = refusal
            sync = yield from _fetch(pg)
            if sync is None or sync.status != pq.ExecStatus.PIPELINE_SYNC:
                raise error(session, sync, "prepare")
        pg.exit_pipeline_mode()
        if refused is not None:
            raise refused
    finally:
        if pg.status == pq.ConnStatus.OK and pg.pipeline_status != pq.PipelineStatus.OFF:
            with contextlib.suppress(psycopg.OperationalError):
                pg.exit_pipeline_mode()


def pipeline(
    session: Session, segments: Sequence[Sequence[Call]], more: More | None = None
) -> PQGen[list[pq.abc.PGresult]]:
    """Send every segment in one round trip, each ending in a SYNC (so each commits on its
    own), and return one result per statement. Statement errors are in the results; a
    broken connection raises. If the server forgot the prepared statements and nothing took
    effect, they are prepared again and the segments sent once more.

    With `more`, the pipeline grows while it waits for the server: each time the driver
    reports WAKE, the segments `more()` returns are sent after the ones already sent, and
    their results follow theirs (a locker sends the outcomes that came in meanwhile without
    waiting for the round trip to end)."""
    sent = [list(segment) for segment in segments]
    for attempt in (1, 2):
        results = yield from _pipeline_once(session, sent, more if attempt == 1 else None)
        gone = [r for r in results if r.status not in OK and r.error_field(_SQLSTATE) == _STATEMENT_GONE]
        if not gone:
            return results
        session.prepared.clear()
        no_effect = all(r.status not in OK for r in results)
        if attempt == 2 or not no_effect:
            raise error(session, gone[0], "prepared statement")
    raise AssertionError("unreachable")


def _pipeline_once(session: Session, segments: list[list[Call]], more: More | None) -> PQGen[list[pq.abc.PGresult]]:
    # The hot path of every worker: a single statement is read inline (no pipeline mode).
    pg = session.pgconn
    if session.unread:
        raise RuntimeError("results sent earlier on this session are still unread: collect() them first")
    prepared = session.prepared
    for segment in segments:
        for statement, _ in segment:
            if statement.name and statement.name not in prepared:
                yield from _prepare(session, [call[0] for segment in segments for call in segment])
                break
    if len(segments) == 1 and len(segments[0]) == 1 and more is None:
        _send(session, segments[0][0])
        yield from _flush(pg)
        while pg.is_busy():
            yield READ
            pg.consume_input()
        result = pg.get_result()
        if result is None:
            raise error(session, None, segments[0][0][0].name.decode() or "statement")
        yield from _end_of_results(pg)
        return [result]
    pg.enter_pipeline_mode()
    try:
        for segment in segments:
            for call in segment:
                _send(session, call)
            pg.pipeline_sync()
        yield from _flush(pg)
        grow = None if more is None else _Growth(session, segments, more)
        results = yield from _read_segments(session, [len(segment) for segment in segments], grow)
        pg.exit_pipeline_mode()
        return results
    finally:
        _leave_pipeline(session)


class _Growth:
    """A pipeline that may grow while it waits: when woken, it sends what `more()` gives
    (statements the session has prepared already) and counts their results in."""

    def __init__(self, session: Session, sent: list[list[Call]], more: More) -> None:
        self.session, self.sent, self.more = session, sent, more

    def wait(self, counts: list[int]) -> PQGen[None]:
        """Until input arrives; meanwhile send the segments asked for when woken."""
        pg = self.session.pgconn
        while True:
            ready = yield READ | WAKE
            if ready & WAKE:
                extra = [list(segment) for segment in self.more() if segment]
                if extra:
                    counts += _send_prepared(self.session, extra, "a pipeline that grows")
                    self.sent += extra
                    yield from _flush(pg)
            if ready & READ:
                pg.consume_input()
                return


def _leave_pipeline(session: Session) -> None:
    pg = session.pgconn
    if pg.status == pq.ConnStatus.OK and pg.pipeline_status != pq.PipelineStatus.OFF and not session.unread:
        # With results still pending this fails: the session is not usable() then, and
        # its owner closes the connection.
        with contextlib.suppress(psycopg.OperationalError):
            pg.exit_pipeline_mode()


def _read_segments(session: Session, counts: list[int], grow: "_Growth | None" = None) -> PQGen[list[pq.abc.PGresult]]:
    """The results of pipeline segments of `counts` statements each (each ending in a SYNC);
    a pipeline that grows (`grow`) appends to `counts` while it waits."""
    pg = session.pgconn
    results: list[pq.abc.PGresult] = []

    def waiting() -> PQGen[None]:
        if grow is not None:
            yield from grow.wait(counts)
        else:
            yield READ
            pg.consume_input()

    for count in counts:  # counts may grow meanwhile: the loop reads those too
        for _ in range(count):
            while pg.is_busy():
                yield from waiting()
            result = pg.get_result()
            if result is None:
                raise error(session, None, "pipeline")
            results.append(result)
            while pg.is_busy():
                yield from waiting()
            if pg.get_result() is not None:
                raise psycopg.OperationalError("pipeline: unexpected extra result")
        while pg.is_busy():
            yield from waiting()
        sync = pg.get_result()
        if sync is None or sync.status != _PIPELINE_SYNC:
            raise error(session, sync, "pipeline sync")
    return results


def send(session: Session, segments: Sequence[Sequence[Call]]) -> PQGen[None]:
    """Send segments (each ending in a SYNC, so each commits on its own) and return without
    waiting for their results, which collect() reads later. Their statements must be
    prepared already (every named statement is, once a session ran any of them)."""
    pg = session.pgconn
    if pg.pipeline_status == pq.PipelineStatus.OFF:
        pg.enter_pipeline_mode()
    session.unread += _send_prepared(session, segments, "send()")
    yield from _flush(pg)


def _send_prepared(session: Session, segments: Sequence[Sequence[Call]], sender: str) -> list[int]:
    """Send segments of statements the session prepared already, each ending in a SYNC, on
    a session in pipeline mode (not flushed); their sizes, in order."""
    missing = [call[0].name for segment in segments for call in segment if call[0].name not in session.prepared]
    if missing:
        raise RuntimeError(f"{sender} needs prepared statements; {missing[0].decode()} is not prepared")
    for segment in segments:
        for call in segment:
            _send(session, call)
        session.pgconn.pipeline_sync()
    return [len(segment) for segment in segments]


def collect(session: Session) -> PQGen[list[pq.abc.PGresult]]:
    """The results of everything send() sent, one per statement, in order."""
    if not session.unread:
        return []
    counts, session.unread = session.unread, []
    try:
        results = yield from _read_segments(session, counts)
        session.pgconn.exit_pipeline_mode()
        return results
    finally:
        _leave_pipeline(session)


def execute(session: Session, call: Call) -> PQGen[pq.abc.PGresult]:
    """One statement; raises its error."""
    [result] = yield from pipeline(session, [[call]])
    if result.status not in OK:
        raise error(session, result, call[0].name.decode() or "statement")
    return result
