"""The differential oracle: one scenario through Ruby Que 0.14.3 and through a port.

A scenario is a table of jobs written straight into que_jobs (edge values for queue,
priority, run_at around now() and error_count), then a list of steps a worker or an
application takes: enqueue, work one job, lock one and hold it, release a held one, or
crash (the process dies holding its locks). After every step the state is read back from
the database: the rows, the advisory locks held, and which job the step claimed. Two runs
of one scenario agree when these states agree step by step.

The oracle is the real Ruby Que (the `ruby` row) where it runs. Where it does not, `Model`
stands in: the catalogue's terms (fixtures/catalogue.json) written as plain Python, each
behaviour marked with the terms it follows. The Ruby row itself is compared with the model,
which is what makes the model a fair stand-in.

State is recorded so that two runs minutes apart compare equal: job ids restart at 1;
run_at is "written" while it is what the writer stored, and otherwise the whole seconds
from the server's now() at the step that changed it (a range: see Recorder); last_error
only as present or absent (its text has cells of its own, area last_error).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.rows import dict_row

from conformance.model import retry_delay
from conformance.support import ECHO, FAIL
from harness.lab import advisory_locks, wait_until
from harness.testee import Testee

# Edge values (the catalogue's boundaries): queue names that differ only in case or
# whitespace; the ends of smallint and Ruby's default; run_at from an hour ago to a
# microsecond either side of the writer's now() (a microsecond ahead is due by the first
# step: the step's now() is later) and an hour ahead; error counts up to where the delay is
# 31,000 years.
QUEUES = ("", "default", "Default", " default")
PRIORITIES = (-32768, 0, 1, 100, 32767)
OFFSETS_S = (-3600.0, -1.0, -0.000001, 0.0, 0.000001, 3600.0)
ERROR_COUNTS = (0, 1, 236, 999)
CLASSES = (ECHO, FAIL)


@dataclass(frozen=True)
class Job:
    """A row the scenario writes before its first step."""

    job_class: str
    queue: str
    priority: int
    offset_s: float
    error_count: int


@dataclass(frozen=True)
class Step:
    """`op` is enqueue, work, lock, release or crash. `queue` for all but release and crash;
    `job_class` and `priority` for enqueue; `index` for release (which held job, modulo how
    many are held)."""

    op: str
    queue: str = ""
    job_class: str = ECHO
    priority: int = 100
    index: int = 0

    def describe(self) -> str:
        if self.op == "enqueue":
            return f"enqueue {self.job_class.rsplit('::', 1)[-1]} queue={self.queue!r} priority={self.priority}"
        if self.op in ("work", "lock"):
            return f"{self.op} queue={self.queue!r}"
        if self.op == "release":
            return f"release held #{self.index}"
        return self.op


@dataclass(frozen=True)
class Scenario:
    jobs: tuple[Job, ...]
    steps: tuple[Step, ...]

    def needs(self) -> set[str]:
        """The testee capabilities the steps need."""
        return {"lock"} if any(s.op in ("lock", "release") for s in self.steps) else set()

    def describe(self) -> str:
        rows = [
            f"  job {i}: {j.job_class.rsplit('::', 1)[-1]} queue={j.queue!r} priority={j.priority} "
            f"run_at=now{j.offset_s:+}s error_count={j.error_count}"
            for i, j in enumerate(self.jobs, start=1)
        ]
        steps = [f"  step {i}: {s.describe()}" for i, s in enumerate(self.steps, start=1)]
        return "\n".join(["table:", *rows, "steps:", *steps])


# A state after one step: what the step claimed, the rows and the locks held.
State = dict[str, Any]


def write_table(db: psycopg.Connection[Any], scenario: Scenario) -> None:
    """The scenario's rows, in one statement so that they share one now()."""
    if not scenario.jobs:
        return
    values = ", ".join(["(%s, %s::json, %s, %s, now() + %s * interval '1 second', %s)"] * len(scenario.jobs))
    params: list[Any] = []
    for index, job in enumerate(scenario.jobs, start=1):
        params += [job.job_class, json.dumps([index]), job.priority, job.queue, job.offset_s, job.error_count]
    db.execute(f"INSERT INTO que_jobs (job_class, args, priority, queue, run_at, error_count) VALUES {values}", params)


class Recorder:
    """Reads the state after each step; remembers each row's run_at to label it.

    A run_at that changed in a step is labelled with the whole seconds from the server's
    now() at the statement that wrote it, which lies between the clock read before the step
    (`before`) and the now() of the read after it: so the label is the range of whole
    seconds that fits, [ceil(run_at - after), floor(run_at - before)]. A run's own pace
    (a loaded machine, a slow testee) widens the range; it never moves the true delay out of
    it. Two runs agree on a label when their ranges share a second."""

    def __init__(self, db: psycopg.Connection[Any]) -> None:
        self.db = db
        self.seen: dict[int, tuple[str, Any]] = {}
        self.first = True
        self.before = self.clock()

    def clock(self) -> Any:
        row = self.db.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        return row[0]

    def rows(self) -> list[dict[str, Any]]:
        with self.db.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT job_id, queue, priority, job_class, args::text AS args, error_count, "
                "last_error IS NOT NULL AS errored, run_at::text AS run_at, "
                "ceil(extract(epoch FROM run_at - now()))::bigint AS low, "
                "floor(extract(epoch FROM run_at - %s::timestamptz))::bigint AS high "
                "FROM que_jobs ORDER BY job_id",
                [self.before],
            )
            return cur.fetchall()

    def state(self, claimed: Any) -> State:
        rows = []
        for row in self.rows():
            run_at, low, high = row.pop("run_at"), row.pop("low"), row.pop("high")
            before = self.seen.get(row["job_id"])
            if before is not None and before[0] == run_at:
                label = before[1]
            elif before is None and self.first:
                label = "written"
            else:
                label = [low, high]
            self.seen[row["job_id"]] = (run_at, label)
            rows.append({**row, "run_at": label})
        self.first = False
        held = sorted(lock.objid for lock in advisory_locks(self.db) if lock.classid == 0)
        self.before = self.clock()
        return {"claimed": claimed, "rows": rows, "locked": held}


def run_testee(db: psycopg.Connection[Any], scenario: Scenario, get: Callable[[], Testee]) -> list[State]:
    """The scenario through a testee: `get` gives it (started again after a crash)."""
    recorder = Recorder(db)
    write_table(db, scenario)
    states = [recorder.state(None)]
    held: list[int] = []
    for step in scenario.steps:
        claimed: Any = None
        if step.op == "enqueue":
            get().enqueue(step.job_class, json.dumps([len(states)]), queue=step.queue, priority=step.priority)
        elif step.op == "work":
            before = {row["job_id"]: row for row in states[-1]["rows"]}
            worked = get().work_one(queue=step.queue)["worked"]
            after = {row["job_id"]: row for row in recorder.rows()}
            changed = [i for i in before if i not in after or after[i]["error_count"] != before[i]["error_count"]]
            claimed = {"worked": bool(worked), "jobs": changed}
        elif step.op == "lock":
            job = get().lock(queue=step.queue)
            claimed = job["job_id"] if job else None
            if claimed is not None:
                held.append(int(claimed))
        elif step.op == "release":
            if held:
                claimed = held.pop(step.index % len(held))
                get().release(claimed)
        elif step.op == "crash":
            testee = get()
            pid = testee.pid
            testee.kill()
            wait_until(
                lambda: not [lock for lock in advisory_locks(db) if lock.classid == 0],
                30,
                f"the locks of the killed testee (pid {pid}) to end with its sessions",
            )
            held.clear()
        states.append(recorder.state(claimed))
    for job_id in held:
        get().release(job_id)
    return states


# -- the model: the catalogue's terms as plain Python ---------------------------------------


@dataclass
class _Row:
    job_id: int
    queue: str
    priority: int
    job_class: str
    args: str
    error_count: int
    errored: bool
    run_at: float  # seconds from the scenario's start
    label: Any  # "written", or [low, high]: whole seconds from the now() that wrote it


@dataclass
class Model:
    """Ruby Que 0.14.3 as the catalogue states it. Time: the table is written at 0; step k
    happens at k milliseconds (only the order of instants matters: every step comes later
    than the writer's now() plus a microsecond, and sooner than any retry delay)."""

    rows: dict[int, _Row] = field(default_factory=dict)
    held: list[int] = field(default_factory=list)
    next_id: int = 1
    now: float = 0.0

    def _insert(self, job: Job, args: int, run_at: float, label: Any) -> None:
        # insert_job.*: job_id from the sequence, the columns as the writer gave them.
        text = json.dumps([args])
        row = _Row(self.next_id, job.queue, job.priority, job.job_class, text, job.error_count, False, run_at, label)
        self.rows[row.job_id] = row
        self.next_id += 1

    def _next(self, queue: str) -> _Row | None:
        # lock_job.queue, lock_job.due, lock_job.order.*, lock_job.lock (skip the locked).
        due = [
            row
            for row in self.rows.values()
            if row.queue == queue and row.run_at <= self.now and row.job_id not in self.held
        ]
        return min(due, key=lambda r: (r.priority, r.run_at, r.job_id), default=None)

    def _work(self, row: _Row) -> None:
        if row.job_class == FAIL:
            # set_error.count, backoff.formula, set_error.run_at (from now(), whole seconds).
            row.error_count += 1
            delay = retry_delay(row.error_count)
            row.run_at = self.now + delay
            row.errored = True
            row.label = [delay, delay]
        else:
            # work.run_then_destroy: the handler ran, then destroy_job.
            del self.rows[row.job_id]

    def state(self, claimed: Any) -> State:
        rows = [
            {
                "job_id": r.job_id,
                "queue": r.queue,
                "priority": r.priority,
                "job_class": r.job_class,
                "args": r.args,
                "error_count": r.error_count,
                "errored": r.errored,
                "run_at": r.label,
            }
            for r in sorted(self.rows.values(), key=lambda r: r.job_id)
        ]
        return {"claimed": claimed, "rows": rows, "locked": sorted(self.held)}

    def run(self, scenario: Scenario) -> list[State]:
        for job in scenario.jobs:
            self._insert(job, self.next_id, job.offset_s, "written")
        states = [self.state(None)]
        for step in scenario.steps:
            self.now += 0.001
            claimed: Any = None
            if step.op == "enqueue":
                new = Job(step.job_class, step.queue, step.priority, 0.0, 0)
                self._insert(new, len(states), self.now, [0, 0])
            elif step.op == "work":
                row = self._next(step.queue)
                changed = [row.job_id] if row else []
                if row is not None:
                    self._work(row)  # work.unlock_always: the lock ends with the job
                claimed = {"worked": row is not None, "jobs": changed}
            elif step.op == "lock":
                row = self._next(step.queue)
                claimed = row.job_id if row else None
                if row is not None:
                    self.held.append(row.job_id)
            elif step.op == "release":
                if self.held:
                    claimed = self.held.pop(step.index % len(self.held))
            elif step.op == "crash":
                self.held.clear()  # the session's locks end with it; the rows stay as they were
            states.append(self.state(claimed))
        return states


def _same(want: Any, got: Any) -> bool:
    """Equal, but run_at labels agree when their ranges of seconds share one."""
    if isinstance(want, dict) and isinstance(got, dict):
        if want.keys() != got.keys():
            return False
        return all(_overlap(want[k], got[k]) if k == "run_at" else _same(want[k], got[k]) for k in want)
    if isinstance(want, list) and isinstance(got, list):
        return len(want) == len(got) and all(_same(w, g) for w, g in zip(want, got, strict=True))
    return bool(want == got)


def _overlap(want: Any, got: Any) -> bool:
    if isinstance(want, list) and isinstance(got, list):
        return max(want[0], got[0]) <= min(want[1], got[1])
    return bool(want == got)


def first_difference(expected: list[State], seen: list[State]) -> tuple[int, State, State] | None:
    """The first step (0 = the written table) whose states differ."""
    for index, (want, got) in enumerate(zip(expected, seen, strict=True)):
        if not _same(want, got):
            return index, want, got
    return None
