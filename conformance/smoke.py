"""`que-conformance --smoke`: the steps a new port must get right before the suite is worth running.

In the 0.14 dialect: start, enqueue, work_one, lock/release and one retry; in the Que 1.x and
2.x dialects start, enqueue, work and one retry (conformance.smoke_que2). Each is judged
from the database and each failure said as one plain sentence with what to fix. Jobs for
the later steps are written with SQL, so one broken step does not drag the others down with
it. It takes seconds, not minutes. A testee that says it does not speak the dialect asked
(conformance/PROTOCOL.md, `dialects`) is not applicable there, not failed.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from conformance import smoke_que2
from conformance.smoke_que2 import ARGS, FAIL_MESSAGE, PRIORITY, StepFailed, failed_once
from conformance.support import ECHO, FAIL, executions, insert, jobs, server_now
from harness import lab, results
from harness.implementations import Implementation
from harness.testee import NotSpoken, Testee, TesteeFailure, Unavailable

# Each dialect's steps, in order.
STEPS = {
    "0.14": ("start", "enqueue", "work_one", "lock/release", "retry"),
    "1": ("start", "enqueue", "work", "retry"),
    "2": ("start", "enqueue", "work", "retry"),
}


@dataclass
class Step:
    name: str
    outcome: str  # ok, FAIL, skip, n/a (the testee does not speak the dialect)
    sentence: str
    seconds: float = 0.0


@dataclass
class Smoke:
    impl: str
    command: str
    dialect: str = "0.14"
    steps: list[Step] = field(default_factory=list)
    # Why the testee takes no part in this dialect (it said it does not speak it), if so.
    not_spoken: str | None = None

    @property
    def passed(self) -> bool:
        return all(step.outcome != "FAIL" for step in self.steps)

    def lines(self) -> list[str]:
        out = [f"smoke test of {self.impl} in the Que {self.dialect} dialect ({self.command})"]
        out += [f"  {s.outcome:<5} {s.name:<13} {s.sentence}" for s in self.steps]
        failed = sum(step.outcome == "FAIL" for step in self.steps)
        if self.not_spoken:
            verdict = "not applicable"
        else:
            verdict = "passed" if not failed else f"FAILED {failed} of {len(self.steps)} steps"
        out.append(f"smoke: {self.impl} {verdict} (dialect {self.dialect})")
        return out

    def as_dict(self) -> dict[str, Any]:
        steps = [asdict(step) for step in self.steps]
        return {
            "impl": self.impl,
            "command": self.command,
            "dialect": self.dialect,
            "passed": self.passed,
            "not_spoken": self.not_spoken,
            "steps": steps,
        }


def _locks_left(conn: psycopg.Connection[Any], after: str) -> None:
    left = lab.advisory_locks(conn)
    if left:
        keys = ", ".join(str(lock.key) for lock in left)
        raise StepFailed(
            f"advisory lock on job {keys} still held after {after}: unlock every job once its delete or "
            "error update has committed"
        )


def _start(testee: Testee, url: str, dialect: str) -> str:
    try:
        info = testee.start(url, results.TABLE, timeout=30, dialect=dialect)
    except NotSpoken:
        raise
    except Unavailable as error:
        raise StepFailed(f"the testee did not start: {error}") from None
    declared = ", ".join(sorted(k for k, v in info.capabilities.items() if v)) or "none"
    return f"{info.name} {info.version} ({info.language}); capabilities: {declared}"


def _enqueue(testee: Testee, conn: psycopg.Connection[Any]) -> str:
    job_id = testee.enqueue(ECHO, json.dumps(ARGS), priority=PRIORITY)
    rows = jobs(conn)
    if len(rows) != 1:
        raise StepFailed(f"enqueue of one job left {len(rows)} rows in que_jobs; expected exactly 1")
    row = rows[0]
    stored = json.loads(row["args"])
    wrong = [
        f"{name} {seen!r} (asked for {wanted!r})"
        for name, seen, wanted in (
            ("job_class", row["job_class"], ECHO),
            ("args", stored, ARGS),
            ("priority", row["priority"], PRIORITY),
            ("queue", row["queue"], ""),
            ("error_count", row["error_count"], 0),
        )
        if seen != wanted
    ]
    if wrong:
        raise StepFailed("enqueue stored " + "; ".join(wrong))
    if job_id is not None and job_id != row["job_id"]:
        raise StepFailed(f"enqueue answered job_id {job_id}, but the row it stored has job_id {row['job_id']}")
    if row["due_in_s"] > 1:
        raise StepFailed(f"a job enqueued without run_at is due in {row['due_in_s']:.1f}s: the default run_at is now()")
    return f"job {row['job_id']} stored as asked"


def _work_one(testee: Testee, conn: psycopg.Connection[Any]) -> str:
    waiting = jobs(conn)
    if not waiting:
        waiting = [{"job_id": insert(conn, ECHO, json.dumps(ARGS))}]
    job_id = waiting[0]["job_id"]
    worked = testee.work_one().get("worked")
    left = jobs(conn, f"job_id = {int(job_id)}")
    ran = [e for e in executions(conn) if e["job_id"] == job_id]
    if not ran:
        raise StepFailed(
            f"work_one answered worked={worked!r}, but the Echo handler of job {job_id} never wrote its results row"
        )
    received = json.loads(ran[0]["received"]) if ran[0]["received"] is not None else None
    if received != ARGS:
        raise StepFailed(f"the handler of job {job_id} received {received!r}; it was enqueued with {ARGS!r}")
    if left:
        raise StepFailed(f"job {job_id} ran but is still in que_jobs: a job that succeeds must be deleted")
    if worked is not True:
        raise StepFailed(f"work_one worked job {job_id} but answered worked={worked!r}")
    _locks_left(conn, "work_one")
    return f"job {job_id} ran once with the arguments it was given, then was deleted and unlocked"


def _lock_release(testee: Testee, conn: psycopg.Connection[Any]) -> str:
    job_id = insert(conn, ECHO, "[]")
    held = testee.lock()
    if held is None:
        raise StepFailed(f"lock answered no job although job {job_id} was due")
    if held.get("job_id") != job_id:
        raise StepFailed(f"lock answered job {held.get('job_id')}, but the only due job is {job_id}")
    keys = [lock.key for lock in lab.advisory_locks(conn)]
    if keys != [job_id]:
        raise StepFailed(
            f"while job {job_id} is held the advisory locks are {keys or 'none'}; expected exactly "
            f"pg_try_advisory_lock({job_id}) on the job_id"
        )
    testee.release(job_id)
    try:
        lab.wait_until(lambda: not lab.advisory_locks(conn), 5, "the release")
    except AssertionError:
        raise StepFailed(
            f"release of job {job_id} answered, but its advisory lock was still held 5s later: release must "
            f"pg_advisory_unlock({job_id}) on the session that locked it"
        ) from None
    if not jobs(conn, f"job_id = {job_id}"):
        raise StepFailed(f"release of job {job_id} deleted it: release only unlocks")
    conn.execute("DELETE FROM que_jobs")
    return f"job {job_id} locked on its job_id, then released without being deleted"


def _retry(testee: Testee, conn: psycopg.Connection[Any]) -> str:
    conn.execute("DELETE FROM que_jobs")
    job_id = insert(conn, FAIL, json.dumps([FAIL_MESSAGE]))
    before = server_now(conn)
    testee.work_one()
    after = server_now(conn)
    rows = jobs(conn, f"job_id = {job_id}")
    delay = failed_once(job_id, rows[0] if rows else None, "last_error", before, after)
    _locks_left(conn, "a failed job")
    return f"job {job_id} kept with error_count 1, last_error set, run again in {delay:g}s"


def _checks(conn: psycopg.Connection[Any], url: str, dialect: str) -> dict[str, Callable[[Testee], str]]:
    """The dialect's steps, in order."""
    checks: dict[str, Callable[[Testee], str]] = {"start": lambda t: _start(t, url, dialect)}
    if dialect == "0.14":
        checks["enqueue"] = lambda t: _enqueue(t, conn)
        checks["work_one"] = lambda t: _work_one(t, conn)
        checks["lock/release"] = lambda t: _lock_release(t, conn)
        checks["retry"] = lambda t: _retry(t, conn)
    else:
        facts = smoke_que2.Facts(dialect)
        checks["enqueue"] = lambda t: smoke_que2.enqueue(t, conn, facts)
        checks["work"] = lambda t: smoke_que2.work(t, conn, facts)
        checks["retry"] = lambda t: smoke_que2.retry(t, conn, facts)
    assert tuple(checks) == STEPS[dialect]
    return checks


def run(impl: Implementation, url: str, dialect: str = "0.14") -> Smoke:
    """The dialect's steps against one implementation, on a server whose que_jobs may be
    reset. After a failed step the testee is killed, its sessions ended and a new one
    started, so the next step starts clean."""
    smoke = Smoke(impl.name, impl.describe(), dialect)
    if impl.unavailable is not None:
        smoke.steps.append(Step("start", "FAIL", f"unavailable: {impl.unavailable}"))
        return smoke
    with psycopg.connect(url, autocommit=True) as conn:
        lab.reset(conn, dialect)
        testee = Testee(impl.command, cwd=impl.cwd, env=impl.env, label=impl.name)
        try:
            checks = _checks(conn, url, dialect)
            for name, check in checks.items():
                began = time.monotonic()
                if name != "start" and testee.info is None:
                    smoke.steps.append(Step(name, "skip", "not run: the testee did not start"))
                    continue
                if name == "lock/release" and testee.info is not None and not testee.info.can("lock"):
                    smoke.steps.append(Step(name, "skip", "the testee does not declare capability lock"))
                    continue
                try:
                    smoke.steps.append(Step(name, "ok", check(testee), round(time.monotonic() - began, 2)))
                except NotSpoken as error:
                    smoke.not_spoken = f"{error} (its start said so)"
                    smoke.steps.append(Step(name, "n/a", smoke.not_spoken))
                    break
                except (StepFailed, TesteeFailure, AssertionError) as error:
                    smoke.steps.append(Step(name, "FAIL", str(error).strip(), round(time.monotonic() - began, 2)))
                    if name != "start":
                        testee = _restart(testee, impl, conn, url, dialect)
                lab.reset(conn, dialect)
        finally:
            testee.stop()
    return smoke


def _restart(testee: Testee, impl: Implementation, conn: psycopg.Connection[Any], url: str, dialect: str) -> Testee:
    testee.kill()
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS t(pid)",
        [sorted({lock.pid for lock in lab.advisory_locks(conn)})],
    )
    lab.wait_until(lambda: not lab.advisory_locks(conn), 10, "the failed testee's locks to end with its sessions")
    fresh = Testee(impl.command, cwd=impl.cwd, env=impl.env, label=impl.name)
    try:
        fresh.start(url, results.TABLE, timeout=30, dialect=dialect)
    except TesteeFailure:
        fresh.kill()
    return fresh
