"""The contract every dialect keeps: the one seam between que's shells and a Que protocol.

A dialect is one object (que.dialects.QUE_0, QUE_1, QUE_2) that knows everything one
protocol does differently: its statements and how to read their rows, how a job is
checked before it is written, what a locker registers, polls and writes, and which admin
calls exist. Clients and pools hold the dialect of their table and ask it; nothing outside
que.dialects compares dialect names. The statements run on que's engine (que.engine:
prepared, binary, pipelined) or, for admin calls and enqueues inside a caller's
transaction, through a psycopg cursor (a Query).
"""

import abc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from psycopg import pq

from que.core.errors import UnsupportedByDialect
from que.core.job import Job
from que.core.outcome import Outcome
from que.engine.rounds import Round, Settled
from que.engine.session import PQGen, Session, Statement


@dataclass(frozen=True)
class Query:
    """A statement run through a psycopg cursor (psycopg's named placeholders), with its
    parameters and how its result becomes the call's value: `read_rows` gets the rows as
    dicts (on que's own connections, whose loaders keep que's rules: que.engine.loaders),
    `read_result` the binary result and the connection's codec (on a caller's connection,
    whatever its adapters), or, with `rowcount`, the value is the number of rows changed."""

    text: str
    params: Mapping[str, Any] = field(default_factory=dict)
    read_rows: Callable[[list[dict[str, Any]]], Any] | None = None
    read_result: Callable[[pq.abc.PGresult, str], Any] | None = None
    rowcount: bool = False
    # Statements run first, in the same transaction (a caller's bulk enqueue sets
    # que.skip_notify, as Ruby's does).
    prelude: Sequence[str] = ()


@dataclass(frozen=True)
class Copy:
    """A big batch written with COPY: draw the ids (`reserve`), write the rows (`copy`, with
    COPY's column `types`; `rows(reserved result)` gives the jobs and their rows), then
    `after` (notifications), all on one connection."""

    reserve: Query
    copy: str
    types: Sequence[str]
    rows: Callable[[pq.abc.PGresult], tuple[list[Job], list[tuple[Any, ...]]]]
    after: Query | None = None


class Dialect(abc.ABC):
    """One Que protocol. Subclasses fill in the class attributes and the methods."""

    name: str
    # For messages: who speaks it, and which schema versions.
    title: str
    # The table versions (Ruby's Que.db_version) of this dialect.
    versions: range
    # Where a job goes that names no queue.
    default_queue: ClassVar[str]
    # A pool's retry limit when none is given (None: retried forever).
    default_max_retries: ClassVar[int | None]
    # Locking and running one job at a time on a session of its own (que.Worker,
    # Client.lock_job) is Que 0.x's API: its protocol module (que.dialects.que0.protocol:
    # lock, claim, finish, release ...), or None where the dialect works through a
    # registered locker only.
    one_at_a_time: ClassVar[Any]
    # Whether workers may be given priority thresholds (Que 1.x/2.x's worker_priorities).
    priorities: ClassVar[bool]
    # Whether a job's row may be kept finished or expired (que.finish(), que.expire()).
    keeps_rows: ClassVar[bool]
    # Whether a pool's locker LISTENs by default (Que 1.x/2.x's lockers are told of new jobs
    # by the table's trigger; Que 0.x's only hear que's own notify=True enqueues).
    default_listen: ClassVar[bool]
    # How far a locker's buffer may grow under load, as a multiple of the one asked for
    # (1: it never grows, as Ruby Que 2's job buffer).
    growth: ClassVar[int]
    # The job buffer's size when none is given.
    default_buffer: ClassVar[int]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<que dialect {self.name}: {self.title}>"

    def refuse(self, what: str, instead: str) -> UnsupportedByDialect:
        """The error for a call this dialect has no such thing for."""
        return UnsupportedByDialect(self.name, self.title, what, instead)

    # -- sessions -------------------------------------------------------------------------

    @abc.abstractmethod
    def catalog(self) -> Sequence[Statement]:
        """The named statements a session of this dialect prepares, all in one round trip."""

    def session(self, pgconn: pq.abc.PGconn) -> Session:
        """A que-owned connection's session, preparing this dialect's statements."""
        return Session(pgconn, self.catalog())

    # -- enqueue --------------------------------------------------------------------------

    @abc.abstractmethod
    def check(
        self,
        job_class: object,
        args: object,
        kwargs: object,
        tags: object,
        queue: object,
        priority: object,
        run_at: object,
    ) -> Any:
        """One job's fields checked (an error naming the value and the rule, before anything
        is written), in the form insert() takes."""

    @abc.abstractmethod
    def check_many(self, jobs: Iterable[Any]) -> list[Any]:
        """Every job of a batch checked; one bad job rejects the batch, naming its index."""

    @abc.abstractmethod
    def insert(self, session: Session, job: Any, notify: bool) -> PQGen[Job]:
        """Insert one checked job on a que-owned session; the job as stored."""

    @abc.abstractmethod
    def insert_many(self, session: Session, jobs: Sequence[Any], notify: bool) -> PQGen[list[Job]]:
        """Insert a checked batch in one statement, all or none, in order."""

    @abc.abstractmethod
    def caller_insert(self, codec: str, encoding: str, jobs: Sequence[Any], notify: bool, many: bool) -> Query:
        """The insert of checked jobs on a caller's connection (inside their transaction),
        whose client encoding is `encoding` (Python codec `codec`)."""

    def copy(self, jobs: Sequence[Any], notify: bool) -> Copy | None:
        """How a big batch is written with COPY, or None when this dialect inserts it."""
        return None

    # Batches of at least this many jobs are written with copy() where the dialect has it.
    copy_from: ClassVar[int] = 1000

    # -- a locker -------------------------------------------------------------------------

    @abc.abstractmethod
    def start_locker(self, session: Session, queue: str, priorities: Sequence[int | None], listen: bool) -> PQGen[None]:
        """A locker's first statements on its session: set up, register, LISTEN."""

    @abc.abstractmethod
    def stop_locker(self, session: Session) -> PQGen[None]:
        """A locker's last statements, as it stops."""

    @abc.abstractmethod
    def round_trip(self, session: Session, queue: str, planned: Round, max_retries: int | None) -> PQGen[Settled]:
        """One round trip of a locker (que.engine.books): write the outcomes, release, lock
        what the plan wants, check what it asks; its results for the books."""

    @abc.abstractmethod
    def notified(self, session: Session, queue: str) -> tuple[bool, list[Any]]:
        """Read the notifications that arrived: whether one asks for a poll of `queue`, and
        the jobs announced (que.engine.books.Announced, from a job_available message)."""

    @abc.abstractmethod
    def outcome(self, job: Job, failure: BaseException | None, asked: str | None, max_retries: int | None) -> Outcome:
        """How a job ends, as this dialect's Ruby ends it: destroyed (or finished or expired,
        when the handler `asked`), retried with the backoff, or set aside past `max_retries`."""

    # -- admin ----------------------------------------------------------------------------

    @abc.abstractmethod
    def job_stats(self) -> Query: ...

    @abc.abstractmethod
    def job_states(self) -> Query: ...

    @abc.abstractmethod
    def overview(self) -> Query:
        """Per queue: ready, scheduled, working, failing, dead (Que 0.x's set aside, Que
        1.x/2.x's expired), finished, and oldest_due_age (seconds, or None)."""

    @abc.abstractmethod
    def worker_states(self) -> Query: ...

    @abc.abstractmethod
    def jobs(self, job_class: str | None) -> Query:
        """Every job (of `job_class`), oldest first."""

    @abc.abstractmethod
    def lockers(self) -> Query:
        """Who works jobs: Que 1.x/2.x's que_lockers rows; Que 0.x's sessions holding locks."""

    @abc.abstractmethod
    def job_page(self, filters: dict[str, Any]) -> Query:
        """A page of jobs, newest first: filters state (ready, scheduled, failing, dead or
        None), queue, job_class, text (in the last error), before (a job id), limit."""

    @abc.abstractmethod
    def job_action(self, action: str, job_id: int) -> Query:
        """retry (due now), delete, or expire (Que 1.x/2.x) one job no session holds."""

    @abc.abstractmethod
    def dead_jobs(self, queue: str | None) -> Query: ...

    @abc.abstractmethod
    def retry_dead(self, job_id: int | None, queue: str | None) -> Query: ...

    @abc.abstractmethod
    def repair_dead(self) -> Query: ...

    def clear(self) -> Query:
        return Query("DELETE FROM public.que_jobs", rowcount=True)
