"""The words of a locker's round trip, shared by the books (que.engine.books) and the
dialects that turn a plan into statements (que.dialects): a job held (Held) and its outcome
(Finished), a job a notification named (Announced), what one round trip is to do (Round)
and what it did (Settled), and a worker priority's threshold."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from que.core.job import Job
from que.core.outcome import Outcome

# Ruby's Que::MAXIMUM_PRIORITY: the threshold of a worker that takes any job.
ANY_PRIORITY: Final = 32767


def threshold(priority: int | None) -> int:
    return ANY_PRIORITY if priority is None else priority


@dataclass(eq=False)
class Held:
    """A job the locker's session holds the lock of. `key` is what the dialect's statements
    match the row by, as the server sent it; `checked` is when (the monotonic start of the
    round trip whose statement found it there) the row was last seen unchanged."""

    job: Job
    key: tuple[bytes | None, ...]
    checked: float = 0.0

    @property
    def job_id(self) -> int:
        return self.job.job_id

    def sort_key(self) -> tuple[int, int, int]:
        return (self.job.priority, self.job.run_at_us, self.job.job_id)


@dataclass(frozen=True)
class Finished:
    """A job's outcome, to be written while its lock is held."""

    held: Held
    outcome: Outcome


@dataclass(frozen=True)
class Announced:
    """A job a notification named (Que 2's job_available): its sort key, before its lock."""

    priority: int
    run_at_us: int
    job_id: int

    def sort_key(self) -> tuple[int, int, int]:
        return (self.priority, self.run_at_us, self.job_id)


@dataclass
class Round:
    """What one round trip does, in this order: take again the locks of `relock` (jobs this
    pool runs whose locks died with an earlier session) and of the `orphans`' jobs; write the
    outcomes `finished` (each its own transaction in Que 0.x; together in Que 1.x/2.x, each
    alone if that fails) and those of the orphans whose locks it took; release the
    `abandoned` jobs untouched; release the finished jobs whose outcome committed; lock the
    `announced` jobs; lock jobs for the places `wanted` (threshold -> count), skipping
    `skip`; check the new jobs and the `recheck` ones in a new snapshot.
    While it waits for the server, a dialect whose locker bounds the outcomes at risk (Que
    1.x/2.x) also writes the outcomes `express()` gives it (que.engine.books.Books.express);
    one whose buffer grows (Que 0.x) leaves them to the next round trip."""

    started: float
    finished: list[Finished] = field(default_factory=list)
    orphans: list[Finished] = field(default_factory=list)
    relock: list[Held] = field(default_factory=list)
    abandoned: list[Held] = field(default_factory=list)
    announced: list[int] = field(default_factory=list)
    wanted: dict[int, int] = field(default_factory=dict)
    skip: set[int] = field(default_factory=set)
    recheck: list[Held] = field(default_factory=list)
    express: Callable[[], list[Finished]] | None = None

    def idle(self) -> bool:
        return not (
            self.finished
            or self.orphans
            or self.relock
            or self.abandoned
            or self.announced
            or self.wanted
            or self.recheck
        )

    @property
    def want(self) -> int:
        """How many jobs the places want in all."""
        return sum(self.wanted.values())


@dataclass
class Settled:
    """What a round trip did: the outcomes written and their jobs released (`written`), the
    jobs whose locks it took again (`relocked`, by id), the new jobs locked and found there
    (`locked`, in the dialect's order), the ids of the new ones locked but gone (released
    already), and the ids of the rechecked jobs still there."""

    written: list[Finished] = field(default_factory=list)
    relocked: set[int] = field(default_factory=set)
    locked: list[Held] = field(default_factory=list)
    still_there: set[int] = field(default_factory=set)
