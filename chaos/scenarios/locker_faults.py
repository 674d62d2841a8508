"""The faults of issue 29's adversarial pass, as chaos rows: each runs que's own pools (the
thread pool and the asyncio pool) on a Que 0.x and a Que 2 table in a database of its own,
and reports jobs, completed, duplicates and lost from the database and the runs counted.

- notification flood: thousands of malformed and well-formed job_available messages while
  jobs are enqueued (Que 2: the messages are its wake-ups);
- connection pressure: more workers than the client's pool, each job enqueueing another
  through the pool's own client;
- idle cut: idle_session_timeout shorter than every job;
- buffered jobs cancelled: jobs deleted or rescheduled while they wait in the buffer;
- locker session lost while idle (jobs in the buffer) and while busy (jobs running), with a
  second pool draining meanwhile;
- SIGTERM during an outage: `que work` told to stop while its database refuses connections.

Duplicates are allowed only where the protocol forces them: a job running when its lock
died may be taken by another pool (never again by its own), and a job whose outcome could
not be written in an outage runs again."""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Set
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

import que
from chaos import pools
from chaos.lab import Row
from harness.lab import advisory_locks, wait_until
from harness.postgres import LocalCluster
from que.shells.common import FRESH_FOR
from tests.apps import outage

ROOT = Path(__file__).resolve().parents[2]
DATABASE = "que_chaos_faults"
TABLES = {3: "Que 0.x", 7: "Que 2"}


class Faults:
    """A database of its own on the chaos cluster, a que_jobs table per row, and the runs
    the rows' handlers count."""

    def __init__(self, cluster: LocalCluster) -> None:
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DATABASE}")
        self.admin = cluster.url
        self.url = re.sub(r"/[^/?]*(\?|$)", rf"/{DATABASE}\1", cluster.url, count=1)
        self.runs: Counter[int] = Counter()
        self._lock = threading.Lock()

    def table(self, version: int) -> None:
        with que.Client(self.url) as client:
            client.migrate(0)
            client.migrate(version)
        self.runs.clear()

    def ran(self) -> None:
        """Count a run of the current job (called from a handler)."""
        with self._lock:
            self.runs[que.current_job().job_id] += 1

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def left(self) -> set[int]:
        key = "job_id" if self.version() < 4 else "id"
        return {int(r[0]) for r in self.sql(f"SELECT {key} FROM que_jobs WHERE run_at <= now()")}

    def version(self) -> int:
        with que.Client(self.url) as client:
            return client.db_version()

    def locks(self) -> set[int]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return {lock.key for lock in advisory_locks(conn)}

    def account(self, row: Row, ids: set[int], allowed: Set[int] = frozenset(), never: Set[int] = frozenset()) -> None:
        """Fill the row from the runs and the table: each of `ids` must run once and be
        gone (`allowed` may run twice), each of `never` must not run."""
        left = self.left()
        row.jobs = len(ids)
        row.completed = len([j for j in ids if self.runs[j] >= 1 and j not in left])
        duplicated = {j for j in ids if self.runs[j] > 1}
        row.duplicates = len(duplicated)
        row.lost = len([j for j in ids if self.runs[j] == 0 or j in left])
        row.locks_left = len(self.locks())
        unexpected = duplicated - allowed
        if unexpected:
            row.notes.append(f"unexpected duplicate runs: {sorted(unexpected)[:10]}")
        ran_anyway = [j for j in never if self.runs[j]]
        if ran_anyway:
            row.notes.append(f"cancelled jobs that ran: {sorted(ran_anyway)}")
        row.ok = row.lost == 0 and row.locks_left == 0 and not unexpected and not ran_anyway


def _label(kind: str) -> str:
    return "python" if kind == "threads" else "python-async"


@contextmanager
def pool_of(kind: str, faults: Faults, handlers: dict[str, Any], count: int, **options: Any) -> Iterator[Any]:
    with que.Client(faults.url) as client:
        pool = pools.start(kind, faults.url, client, handlers, count, **options)
        try:
            yield pool
        finally:
            if not pool.shutdown(30):
                raise RuntimeError(f"the {kind} pool did not shut down within 30 s")


def _enqueue(faults: Faults, count: int, job_class: str = "J", **options: Any) -> set[int]:
    with que.Client(faults.url) as client:
        jobs = client.enqueue_many([que.NewJob(job_class, (n,), **options) for n in range(count)])
    return {job.job_id for job in jobs}


def notification_flood(faults: Faults, kind: str) -> Row:
    row = Row(f"notification flood (Que 2, {kind})", [_label(kind)])
    faults.table(7)

    def job(n: int) -> None:
        faults.ran()

    messages = [
        "[" * 3000 + "]" * 3000,
        "not json",
        '{"message_type":"job_available","queue":"default","priority":1,"id":99999999999999999999,"run_at":"x"}',
        '{"message_type":"job_available","queue":"default","priority":"1","id":1,"run_at":"2026-01-01T00:00:00Z"}',
        '{"message_type":"job_available","queue":"default","priority":1,"id":1,"run_at":"2026-01-01T00:00:00Z","x":1}',
        '{"message_type":"job_done"}',
    ]
    with pool_of(kind, faults, {"J": job}, 2, wake_interval=30) as pool:
        pid = wait_until(lambda: pool.locker.backend_pid, 20, "the locker's session")
        channel = f"que_listener_{pid}"
        ids: set[int] = set()
        sent = 0
        with psycopg.connect(faults.url, autocommit=True) as conn, que.Client(faults.url) as client:
            for batch in range(30):
                for n in range(100):
                    text = messages[n % len(messages)]
                    if n % 7 == 0:  # well-formed, naming a job that does not exist
                        text = json.dumps(
                            {
                                "message_type": "job_available",
                                "queue": "default",
                                "priority": 1,
                                "id": 10_000_000 + batch * 100 + n,
                                "run_at": "2026-01-01T00:00:00.000000Z",
                            },
                            separators=(",", ":"),
                        )
                    conn.execute("SELECT pg_notify(%s, %s)", [channel, text])
                    sent += 1
                ids |= {client.enqueue("J", n).job_id for n in range(10)}
        wait_until(lambda: faults.left() == set() and len(faults.runs) >= len(ids), 60, "the jobs")
    faults.account(row, ids)
    row.notes.append(f"{sent} messages (malformed, and well-formed naming no job) among {len(ids)} enqueues")
    return row


def connection_pressure(faults: Faults, kind: str, version: int) -> Row:
    """16 workers on a client of 10 connections; each parent job enqueues a child through
    the pool's client."""
    row = Row(f"connection pressure ({TABLES[version]}, {kind})", [_label(kind)])
    faults.table(version)
    running = [0, 0]  # now, peak
    guard = threading.Lock()
    holder: dict[str, Any] = {}

    def enter() -> None:
        with guard:
            running[0] += 1
            running[1] = max(running[1], running[0])

    def leave() -> None:
        with guard:
            running[0] -= 1

    def parent_sync(n: int) -> None:
        enter()
        try:
            faults.ran()
            time.sleep(0.05)  # a job's own work, so that the workers overlap
            holder["client"].enqueue("Child", n)
        finally:
            leave()

    async def parent_async(n: int) -> None:
        enter()
        try:
            faults.ran()
            await asyncio.sleep(0.05)
            await holder["client"].enqueue("Child", n)
        finally:
            leave()

    def child(n: int) -> None:
        faults.ran()

    handlers = {"Parent": parent_async if kind == "async" else parent_sync, "Child": child}
    with que.Client(faults.url) as client:
        pool = pools.start(kind, faults.url, client, handlers, 16, wake_interval=0.05)
        holder["client"] = client if kind == "threads" else pool.client  # type: ignore[attr-defined]
        try:
            parents = _enqueue(faults, 160, "Parent")
            wait_until(lambda: len(faults.runs) >= 320 and not faults.left(), 90, "parents and children")
        finally:
            pool.shutdown(30)
    ids = set(faults.runs)
    faults.account(row, ids)
    errors = faults.sql("SELECT count(*) FROM que_jobs")[0][0]
    row.notes.append(
        f"{len(parents)} parents and their children; peak {running[1]} running at once; rows left {errors}"
    )
    row.ok = row.ok and len(ids) == 320
    return row


def idle_cut(faults: Faults, kind: str, version: int) -> Row:
    row = Row(f"idle cut shorter than a job ({TABLES[version]}, {kind})", [_label(kind)])
    faults.table(version)

    def slow(n: int) -> None:
        faults.ran()
        time.sleep(1.0)  # the job's own work: longer than the cut

    faults.sql(f"ALTER DATABASE {DATABASE} SET idle_session_timeout = '400ms'")
    try:
        ids = _enqueue(faults, 12, "Slow")
        with pool_of(kind, faults, {"Slow": slow}, 4, wake_interval=60):
            wait_until(lambda: not faults.left() and len(faults.runs) >= 12, 90, "every outcome")
    finally:
        faults.sql(f"ALTER DATABASE {DATABASE} RESET idle_session_timeout")
    faults.account(row, ids)
    row.notes.append("idle_session_timeout 400 ms, jobs of 1 s, 4 workers")
    return row


def buffered_cancelled(faults: Faults, kind: str, version: int) -> Row:
    row = Row(f"buffered jobs cancelled ({TABLES[version]}, {kind})", [_label(kind)])
    faults.table(version)
    gate = threading.Event()

    def job(n: int) -> None:
        faults.ran()
        if n < 0:
            gate.wait(30)

    with que.Client(faults.url) as client:
        blocker = client.enqueue("J", -1, priority=1).job_id
    with pool_of(kind, faults, {"J": job}, 1, wake_interval=0.05, buffer=8):
        wait_until(lambda: faults.runs[blocker] == 1, 20, "the blocker to start")
        ids = _enqueue(faults, 12)
        buffered = wait_until(
            lambda: (faults.locks() - {blocker}) if len(faults.locks()) >= 7 else None, 20, "a buffer"
        )
        waiting = sorted(buffered)
        deleted, moved = set(waiting[:3]), set(waiting[3:5])
        key = "job_id" if version < 4 else "id"
        faults.sql(f"DELETE FROM que_jobs WHERE {key} = ANY(%s)", [list(deleted)])
        faults.sql(f"UPDATE que_jobs SET run_at = now() + interval '1 hour' WHERE {key} = ANY(%s)", [list(moved)])
        time.sleep(2 * FRESH_FOR)  # the documented bound: a check older than recheck_after is made again
        gate.set()
        rest = ids - deleted - moved
        wait_until(lambda: not faults.left() and all(faults.runs[j] for j in rest), 30, "the other jobs")
    if version < 4:
        # Que 0.x keys a job by (queue, priority, run_at, job_id): a rescheduled job is
        # another job, released and run when due.
        faults.account(row, rest | {blocker}, never=deleted | moved)
        rule = "the rescheduled ones wait for their new run_at"
    else:
        # Ruby Que 2's worker checks only that the row is still there (lib/que/worker.rb
        # check_job), then runs the job it locked: a rescheduled one runs now, once.
        faults.account(row, rest | moved | {blocker}, never=deleted)
        rule = "the rescheduled ones run now, once, as Ruby Que 2's worker runs them"
    row.notes.append(
        f"{len(buffered)} jobs in the buffer: {len(deleted)} deleted (none ran) and {len(moved)} rescheduled ({rule})"
    )
    return row


def session_lost(faults: Faults, kind: str, version: int, busy: bool) -> Row:
    """Pool A's locker session is terminated with jobs in its buffer (idle) or running
    (busy); pool B, started then, drains beside it."""
    state = "busy" if busy else "idle"
    row = Row(f"locker session lost while {state} ({TABLES[version]}, {kind})", [_label(kind), "python"])
    faults.table(version)
    gate = threading.Event()

    def job(n: int) -> None:
        faults.ran()
        if n < 0:
            gate.wait(30)

    running = 4 if busy else 1
    with que.Client(faults.url) as client:
        held = {client.enqueue("J", -1 - n, priority=1).job_id for n in range(running)}
    with pool_of(kind, faults, {"J": job}, running, wake_interval=0.05, buffer=8) as pool:
        wait_until(lambda: all(faults.runs[j] for j in held), 20, "the held jobs to start")
        ids = _enqueue(faults, 40)
        wait_until(lambda: len(faults.locks()) >= running + 5, 20, "a full buffer")
        pid = pool.locker.backend_pid
        faults.sql("SELECT pg_terminate_backend(%s, 10000)", [pid])
        with pool_of("threads", faults, {"J": job}, 2, wake_interval=0.05):
            # Pool A's new session fills its buffer again, for its busy workers: those jobs
            # wait for the gate, as Ruby's buffer does.
            wait_until(lambda: sum(1 for j in ids if faults.runs[j]) >= 20, 30, "the second pool to work")
            gate.set()
            wait_until(lambda: not faults.left() and all(faults.runs[j] for j in ids), 30, "the drain")
    faults.account(row, ids | held, allowed=held)
    row.notes.append(f"{running} running and a buffer when the session died; only those running may run again")
    return row


def sigterm_outage(faults: Faults, version: int, mode: list[str]) -> Row:
    row = Row(f"SIGTERM during an outage ({TABLES[version]}, que work {' '.join(mode) or 'threads'})", ["que work"])
    faults.table(version)
    with que.Client(faults.url) as client:
        job = client.enqueue("Waits").job_id
    folder = Path(tempfile.mkdtemp(prefix="que-chaos-outage-"))
    marker = folder / "go"  # tests/apps/outage.py: its job writes folder/started, then waits on this FIFO
    os.mkfifo(marker)
    env = {**os.environ, "QUE_DATABASE_URL": faults.url, "OUTAGE_MARKER": str(marker), "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "que.cli", "work", "--app", "tests.apps.outage", "--wake-interval", "0.1", *mode]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    exit_s = None
    try:
        wait_until(lambda: (folder / "started").exists(), 20, "the job to start")
        with psycopg.connect(faults.admin, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {DATABASE} ALLOW_CONNECTIONS false")
            conn.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = %s", [DATABASE])
        outage.go(marker)
        wait_until(lambda: (folder / "ended").exists(), 20, "the job to end during the outage")
        stopped = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        exit_s = round(time.monotonic() - stopped, 3)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(5)
        with psycopg.connect(faults.admin, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {DATABASE} ALLOW_CONNECTIONS true")
        shutil.rmtree(folder, ignore_errors=True)
    output = worker.stdout.read() if worker.stdout else ""
    faults.runs[job] += 1  # the run in `que work`, whose outcome the outage ate

    def waits() -> None:
        faults.ran()

    with pool_of("threads", faults, {"Waits": waits}, 1, wake_interval=0.05):
        wait_until(lambda: not faults.left(), 30, "the job, run again")
    faults.account(row, {job}, allowed={job})
    row.recovery_s = exit_s
    traceback = "Traceback" in output
    row.notes.append(f"exited {exit_s} s after SIGTERM with code {worker.returncode}; traceback printed: {traceback}")
    row.ok = row.ok and exit_s is not None and not traceback
    return row


def scenarios(cluster: LocalCluster) -> list[tuple[str, Callable[[], Row]]]:
    """The rows, for chaos/run.py."""
    faults = Faults(cluster)
    found: list[tuple[str, Callable[[], Row]]] = []
    for kind in pools.KINDS:
        found.append((f"notification flood ({kind})", lambda k=kind: notification_flood(faults, k)))
        for version in TABLES:
            found += [
                (
                    f"connection pressure ({version}, {kind})",
                    lambda k=kind, v=version: connection_pressure(faults, k, v),
                ),
                (f"idle cut ({version}, {kind})", lambda k=kind, v=version: idle_cut(faults, k, v)),
                (f"buffered cancelled ({version}, {kind})", lambda k=kind, v=version: buffered_cancelled(faults, k, v)),
                (f"lost idle ({version}, {kind})", lambda k=kind, v=version: session_lost(faults, k, v, False)),
                (f"lost busy ({version}, {kind})", lambda k=kind, v=version: session_lost(faults, k, v, True)),
            ]
    for version in TABLES:
        for mode in ([], ["--async"]):
            found.append((f"sigterm outage ({version} {mode})", lambda v=version, m=mode: sigterm_outage(faults, v, m)))
    return found
