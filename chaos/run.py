"""`make chaos`: faults, hostile rows and mixed fleets, with nothing lost.

Each scenario runs against one throwaway PostgreSQL cluster with every available
implementation and writes a row: scenario, implementations, jobs, completed, duplicates,
lost, locks left, recovery time, and whether its checks held. The database is the
witness: `que_jobs`, `pg_locks` and the results table the testees write to. Results go to
chaos/results/latest.json and latest.md; the run exits non-zero when any row fails.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

import que
from harness import implementations, results
from harness.postgres import LocalCluster, free_port
from harness.testee import Testee, TesteeFailure, Unavailable

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "chaos" / "results"
ECHO = "QueConformance::Echo"
SLEEP = "QueConformance::Sleep"
FLAKY = "QueConformance::Flaky"


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Row:
    scenario: str
    implementations: list[str]
    jobs: int = 0
    completed: int = 0
    duplicates: int = 0
    lost: int = 0
    locks_left: int = 0
    recovery_s: float | None = None
    ok: bool = False
    notes: list[str] = field(default_factory=list)


class Lab:
    """The cluster, a connection to it, and testees started on demand."""

    def __init__(self, cluster: LocalCluster, names: list[str]) -> None:
        self.cluster = cluster
        self.url = cluster.url
        self.impls = {i.name: i for i in implementations.resolve(names, build=False)}
        self.unavailable: dict[str, str] = {n: i.unavailable for n, i in self.impls.items() if i.unavailable}
        self.testees: list[Testee] = []

    def conn(self) -> psycopg.Connection[Any]:
        deadline = time.monotonic() + 60
        while True:
            try:
                return psycopg.connect(self.url, autocommit=True, connect_timeout=2)
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.conn() as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def reset(self) -> None:
        with self.conn() as conn:
            if que.db_version(conn) != 3:
                conn.execute("DROP TABLE IF EXISTS que_jobs")
                que.migrate(conn)
            conn.execute("TRUNCATE que_jobs")
            conn.execute("ALTER SEQUENCE que_jobs_job_id_seq RESTART WITH 1")
            results.create(conn)
            conn.execute(f"TRUNCATE {results.TABLE}")

    def start(self, name: str) -> Testee:
        impl = self.impls[name]
        testee = Testee(impl.command, cwd=impl.cwd, env=impl.env, label=name)
        testee.start(self.url, results.TABLE)
        self.testees.append(testee)
        return testee

    def available(self) -> list[str]:
        self.reset()  # que-go prepares its statements at connect: the table must exist
        found = []
        for name in self.impls:
            if name in self.unavailable:
                continue
            try:
                self.start(name).stop()
                found.append(name)
            except (Unavailable, TesteeFailure) as error:
                self.unavailable[name] = str(error)
        return found

    def fill(self, n: int, job_class: str, args: str = "json_build_array(i)") -> None:
        self.sql(
            f"INSERT INTO que_jobs (job_class, args) SELECT %s, {args} FROM generate_series(1, %s) i", [job_class, n]
        )

    def locks(self) -> int:
        return int(self.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")[0][0])

    def runs(self) -> dict[int, list[tuple[str, int]]]:
        found: dict[int, list[tuple[str, int]]] = {}
        for job_id, impl, pid in self.sql(f"SELECT job_id, impl, pid FROM {results.TABLE} ORDER BY id"):
            found.setdefault(int(job_id), []).append((impl, int(pid)))
        return found

    def stop_all(self) -> None:
        for testee in self.testees:
            testee.stop()
        self.testees.clear()


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> float:
    """Seconds until `condition` held; raises after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)
    return time.monotonic() - started


def account(lab: Lab, row: Row, job_ids: set[int], allowed_duplicates: set[int]) -> None:
    """Fill completed/duplicates/lost/locks from the database; judge the row."""
    runs = lab.runs()
    remaining = {int(r[0]) for r in lab.sql("SELECT job_id FROM que_jobs")}
    row.jobs = len(job_ids)
    row.completed = len([j for j in job_ids if runs.get(j) and j not in remaining])
    duplicated = {j for j in job_ids if len(runs.get(j, [])) > 1}
    row.duplicates = len(duplicated)
    row.lost = len([j for j in job_ids if not runs.get(j) and j not in remaining]) + len(remaining)
    row.locks_left = lab.locks()
    unexpected = duplicated - allowed_duplicates
    if unexpected:
        row.notes.append(f"unexpected duplicate executions: {sorted(unexpected)[:10]}")
    row.ok = row.lost == 0 and row.locks_left == 0 and not unexpected and row.completed == row.jobs


# -- 1. worker killed mid-job ---------------------------------------------------------


def killed_mid_job(lab: Lab, name: str, rescuer: str) -> Row:
    row = Row(f"worker killed mid-job ({name})", [name, rescuer])
    lab.reset()
    lab.fill(300, SLEEP, "json_build_array(20)")
    job_ids = {int(r[0]) for r in lab.sql("SELECT job_id FROM que_jobs")}
    victim = lab.start(name)
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(r=_try(lambda: victim.work(workers=2, deadline_ms=60_000))))
    thread.start()
    wait_until(lambda: len(lab.runs()) >= 40, 30, "40 jobs done before the kill")
    in_flight = {int(r[0]) for r in lab.sql("SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted")}
    victim.kill()
    thread.join(30)
    row.recovery_s = round(wait_until(lambda: lab.locks() == 0, 30, "the killed worker's locks to go"), 3)
    row.notes.append(
        f"killed {name} (pid {victim.pid}) holding {len(in_flight)} job locks; locks gone after {row.recovery_s}s"
    )
    other = lab.start(rescuer)
    other.work(workers=2, deadline_ms=60_000)
    other.stop()
    account(lab, row, job_ids, allowed_duplicates=in_flight)
    return row


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except TesteeFailure as error:
        return error


# -- 2. connection terminated under a Python worker ------------------------------------


def terminated_connection(lab: Lab) -> Row:
    row = Row("connection terminated (mid-poll and mid-job)", ["python"])
    lab.reset()
    done: list[int] = []
    gate = threading.Event()
    entered = threading.Event()

    def hold(n: int) -> None:
        if n == 0 and not gate.is_set():
            entered.set()
            gate.wait(20)
        done.append(que.current_job().job_id)

    with que.Client(lab.url) as client:
        worker = que.Worker(client, {"Hold": hold}, wake_interval=0.05, reconnect_max=2.0).start()
        try:
            wait_until(lambda: worker._conn is not None, 10, "the worker to connect")
            assert worker._conn is not None
            # mid-poll: the idle worker's session is terminated
            first_pid = worker._conn.info.backend_pid
            lab.sql("SELECT pg_terminate_backend(%s)", [first_pid])
            started = time.monotonic()
            ids = {client.enqueue("Hold", 1).job_id for _ in range(20)}
            wait_until(lambda: set(done) >= ids, 30, "jobs after the mid-poll termination")
            row.recovery_s = round(time.monotonic() - started, 3)
            # mid-job: terminated while the handler runs; the job must run again
            held = client.enqueue("Hold", 0).job_id
            ids.add(held)
            wait_until(entered.is_set, 10, "the held job to start")
            assert worker._conn is not None
            second_pid = worker._conn.info.backend_pid
            lab.sql("SELECT pg_terminate_backend(%s)", [second_pid])
            gate.set()
            more = {client.enqueue("Hold", 1).job_id for _ in range(20)}
            ids |= more
            wait_until(lambda: set(done) >= ids and not lab.sql("SELECT 1 FROM que_jobs"), 30, "all jobs after mid-job")
            runs = {j: done.count(j) for j in ids}
            row.jobs = len(ids)
            row.completed = len([j for j in ids if runs[j] >= 1])
            row.duplicates = len([j for j in ids if runs[j] > 1])
            row.lost = row.jobs - row.completed
            row.locks_left = lab.locks()
            reconnected = worker._conn is not None and worker._conn.info.backend_pid not in (first_pid, second_pid)
            row.notes.append(
                f"reconnected without restart: {reconnected}; the interrupted job ran {runs[held]} times "
                "(at-least-once: its delete was lost with the session)"
            )
            row.ok = (
                row.lost == 0
                and row.locks_left == 0
                and reconnected
                and all(runs[j] == 1 for j in ids if j != held)
                and runs[held] in (1, 2)
            )
        finally:
            worker.shutdown(10)
    return row


# -- 3. server restart during a mixed drain -------------------------------------------


def server_restart(lab: Lab, names: list[str]) -> Row:
    row = Row("server restart during a mixed drain", names)
    lab.reset()
    lab.fill(3000, ECHO)
    job_ids = set(range(1, 3001))
    boxes: dict[str, Any] = {}
    testees = {name: lab.start(name) for name in names}
    threads = [
        threading.Thread(
            target=lambda n=n, t=t: boxes.update({n: _try(lambda: t.work(workers=2, deadline_ms=120_000))})
        )
        for n, t in testees.items()
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(lab.runs()) >= 500, 60, "500 jobs before the restart")
    before = len(lab.runs())
    lab.cluster.restart()
    restarted = time.monotonic()
    row.recovery_s = round(wait_until(lambda: len(lab.runs()) > before + 50, 60, "progress after the restart"), 3)
    for thread in threads:
        thread.join(150)
    # Jobs whose handlers failed during the restart (their results write met a dead
    # connection) were errored and rescheduled: record them, make them due, finish them.
    leftover = lab.sql("SELECT job_id, error_count, split_part(last_error, E'\\n', 1) FROM que_jobs")
    if leftover:
        row.notes.append(f"left after the drain (errored during the restart, rescheduled): {leftover[:5]}")
        lab.sql("UPDATE que_jobs SET run_at = now()")
        rescuer = lab.start("python")
        rescuer.work(workers=2, deadline_ms=60_000)
    for name, outcome in boxes.items():
        row.notes.append(f"{name}: {'error ' + str(outcome)[:120] if isinstance(outcome, Exception) else outcome}")
    row.notes.append(f"{before} jobs done before the restart; progress resumed {row.recovery_s}s after it")
    del restarted
    # Jobs running at the restart may run twice (their deletes died with the sessions).
    runs = lab.runs()
    allowed = {j for j, r in runs.items() if len(r) == 2}
    if len(allowed) > 2 * 2 * len(names):
        row.notes.append(f"more duplicates ({len(allowed)}) than workers in flight")
        allowed = set()
    account(lab, row, job_ids, allowed_duplicates=allowed)
    return row


# -- 4. soak ----------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def soak(lab: Lab, names: list[str], jobs: int) -> Row:
    row = Row(f"soak ({jobs} jobs, failures and long jobs)", names)
    lab.reset()
    flaky_every, sleep_every = 12, 50
    lab.sql(
        "INSERT INTO que_jobs (job_class, args) SELECT "
        f"CASE WHEN i %% {flaky_every} = 0 THEN %s WHEN i %% {sleep_every} = 0 THEN %s ELSE %s END, "
        f"CASE WHEN i %% {flaky_every} = 0 THEN json_build_array(1 + i %% 2) "
        f"WHEN i %% {sleep_every} = 0 THEN json_build_array(100) ELSE json_build_array(i) END "
        "FROM generate_series(1, %s) i",
        [FLAKY, SLEEP, ECHO, jobs],
    )
    kinds = dict(lab.sql("SELECT job_id, job_class FROM que_jobs"))
    injected = {int(j): 1 + int(j) % 2 for j, c in kinds.items() if c == FLAKY}
    testees = {name: lab.start(name) for name in names}
    python_pid = testees["python"].pid if "python" in testees else None
    memory: list[int] = []
    stop = threading.Event()

    def make_due() -> None:
        while not stop.wait(0.2):
            lab.sql("UPDATE que_jobs SET run_at = now() WHERE error_count > 0 AND run_at > now()")

    helper = threading.Thread(target=make_due)
    helper.start()
    started = time.monotonic()
    try:
        for _round in range(20):
            threads = [
                threading.Thread(target=lambda t=t: _try(lambda: t.work(workers=3, deadline_ms=300_000)))
                for t in testees.values()
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if python_pid:
                memory.append(rss_kb(python_pid))
            if not lab.sql("SELECT 1 FROM que_jobs LIMIT 1"):
                break
            time.sleep(0.25)
    finally:
        stop.set()
        helper.join()
    elapsed = time.monotonic() - started
    account(lab, row, set(int(j) for j in kinds), allowed_duplicates=set())
    counts = dict(lab.sql(f"SELECT job_id, received FROM {results.TABLE} WHERE job_class = %s", [FLAKY]))
    wrong = [j for j, n in injected.items() if counts.get(j) != f"[{n}]"]
    if wrong:
        row.ok = False
        row.notes.append(f"error counts differ from the failures injected for jobs {wrong[:10]}")
    per_impl = dict(lab.sql(f"SELECT impl, count(*) FROM {results.TABLE} GROUP BY impl ORDER BY impl"))
    row.notes.append(f"{elapsed:.1f}s; runs per implementation {per_impl}; {sum(injected.values())} failures injected")
    if memory:
        growth = memory[-1] - memory[0]
        row.notes.append(
            f"python testee RSS {memory[0] // 1024} MiB -> {memory[-1] // 1024} MiB over {len(memory)} rounds"
        )
        if growth > 50 * 1024:
            row.ok = False
            row.notes.append(f"python memory grew by {growth // 1024} MiB")
    return row


# -- 5. hostile and foreign rows --------------------------------------------------------


HOSTILE = [
    ("object args", "Probe", "'{\"a\":1}'", 100, "now()", 0),
    ("scalar args", "Probe", "'5'", 100, "now()", 0),
    ("null args", "Probe", "'null'", 100, "now()", 0),
    ("string args", "Probe", "'\"s\"'", 100, "now()", 0),
    ("huge args (4 MB)", "Probe", "json_build_array(repeat('x', 4000000))", 100, "now()", 0),
    ("deep args", "Probe", "(repeat('[', 3000) || repeat(']', 3000))::json", 100, "now()", 0),
    ("empty job class", "", "'[]'", 100, "now()", 0),
    ("unknown job class", "No::Such::Class", "'[]'", 100, "now()", 0),
    ("job class with spaces", "lower case thing", "'[]'", 100, "now()", 0),
    ("min priority", "Probe", "'[]'", -32768, "now()", 0),
    ("max priority", "Probe", "'[]'", 32767, "now()", 0),
    ("run_at -infinity", "Probe", "'[]'", 100, "'-infinity'", 0),
    ("run_at infinity (never due)", "Probe", "'[]'", 100, "'infinity'", 0),
    ("run_at year 1", "Probe", "'[]'", 100, "'0001-01-01 00:00:00+00'", 0),
    ("run_at BC", "Probe", "'[]'", 100, "'0044-03-15 00:00:00+00 BC'", 0),
    ("error_count at integer max", "Failing", "'[]'", 100, "now()", 2147483647),
    ("failing job", "Failing", "'[]'", 100, "now()", 0),
]


def hostile_rows(lab: Lab) -> Row:
    row = Row("hostile and foreign rows (Python worker)", ["python"])
    lab.reset()
    ids: dict[int, str] = {}
    for label, job_class, args, priority, run_at, errors in HOSTILE:
        job_id = lab.sql(
            f"INSERT INTO que_jobs (job_class, args, priority, run_at, error_count, last_error) "
            f"VALUES (%s, {args}, %s, {run_at}, %s, repeat('e', 2000000)) RETURNING job_id",
            [job_class, priority, errors],
        )[0][0]
        ids[int(job_id)] = label
    calls: dict[int, int] = {}

    def probe(*args: Any) -> None:
        job_id = que.current_job().job_id
        calls[job_id] = calls.get(job_id, 0) + 1

    def failing(*args: Any) -> None:
        probe()
        raise RuntimeError("hostile failure")

    with que.Client(lab.url) as client:
        worker = que.Worker(client, {"Probe": probe, "Failing": failing}, wake_interval=0.05, reconnect_max=1.0).start()
        time.sleep(4.0)  # a fixed observation window: the worker must neither crash nor spin in it
        alive = worker._thread is not None and worker._thread.is_alive()
        worker.shutdown(10)
    state = {int(r[0]): r[1:] for r in lab.sql("SELECT job_id, error_count, run_at > now() FROM que_jobs")}
    outcomes = []
    for job_id, label in ids.items():
        if job_id not in state:
            outcomes.append(f"{label}: worked")
        else:
            errors, future = state[job_id]
            outcomes.append(f"{label}: error_count {errors}, {'rescheduled' if future else 'due'}")
    spinning = {ids[j]: n for j, n in calls.items() if n > 8}
    untouched_due = [ids[j] for j, (errors, future) in state.items() if not future]
    row.jobs = len(ids)
    row.completed = len([j for j in ids if j not in state or state[j][1]])
    row.locks_left = lab.locks()
    row.notes += [f"worker alive after the window: {alive}", *outcomes]
    if spinning:
        row.notes.append(f"retried too often (spinning): {spinning}")
    overflow = [j for j, label in ids.items() if label == "error_count at integer max"]
    row.notes.append(
        f"error_count overflow row: handler ran {calls.get(overflow[0], 0)} time(s) in 4 s (set_error overflows "
        "the integer; the job is rescheduled without counting, so it neither spins nor blocks the rows behind it)"
    )
    row.lost = len(untouched_due)
    row.ok = alive and not spinning and not untouched_due and row.locks_left == 0
    return row


# -- 6. lock hygiene --------------------------------------------------------------------


def lock_hygiene(lab: Lab, names: list[str]) -> Row:
    row = Row("lock hygiene", ["python", *[n for n in names if n != "python"]])
    lab.reset()
    notes = row.notes
    checks = []
    with que.Client(lab.url) as client, lab.conn() as app:
        # a. an application advisory lock on the same key blocks the job, job_stats shows it
        blocked = client.enqueue("Echo").job_id
        app.execute("SELECT pg_advisory_lock(%s)", [blocked])
        stats = {s["job_class"]: s for s in client.job_stats()}
        ran: list[int] = []
        worker = que.Worker(client, {"Echo": lambda *a: ran.append(que.current_job().job_id)})
        worker.work_one()
        checks.append(blocked not in ran and stats["Echo"]["count_working"] == 1)
        notes.append(
            f"app lock on key {blocked}: job skipped {blocked not in ran}, job_stats count_working "
            f"{stats['Echo']['count_working']}"
        )
        app.execute("SELECT pg_advisory_unlock(%s)", [blocked])
        worker.work_one()
        checks.append(ran == [blocked])
        # b. a row changed while locked is not run by anyone else meanwhile
        lab.reset()
        held = client.enqueue("Echo", 1).job_id
        locked = client.lock_job()
        assert locked is not None
        app.execute("UPDATE que_jobs SET priority = 5, run_at = now() - interval '1 minute' WHERE job_id = %s", [held])
        others = []
        for name in names:
            testee = lab.start(name)
            others.append((name, testee.work_one()["worked"]))
            testee.stop()
        locked.delete()
        locked.release()
        remaining = lab.sql("SELECT job_id FROM que_jobs")
        checks.append(not any(w for _, w in others))
        notes.append(
            f"row changed while locked: other workers ran it meanwhile: {dict(others)}; after release the row "
            f"{'stays' if remaining else 'is gone'} (delete matches the full key read at lock time, as upstream)"
        )
        # c. no code path leaves a job lock on a pooled connection
        lab.reset()
        for i in range(30):
            client.enqueue("Echo", i)
        for i in range(30):
            job = client.lock_job()
            assert job is not None
            if i % 3 == 0:
                try:
                    with job:
                        raise RuntimeError("handler failed")
                except RuntimeError:
                    pass
            elif i % 3 == 1:
                assert job._conn is not None
                lab.sql("SELECT pg_terminate_backend(%s)", [job._conn.info.backend_pid])
                with contextlib.suppress(psycopg.Error):
                    job.delete()
                job.release()
            else:
                with job:
                    job.delete()
        pool_locks = lab.locks()
        checks.append(pool_locks == 0)
        notes.append(f"30 lock_job cycles with exceptions and killed connections: advisory locks left {pool_locks}")
    row.jobs = 32
    row.completed = 32 if all(checks) else 0
    row.locks_left = lab.locks()
    row.ok = all(checks) and row.locks_left == 0
    return row


# -- 7. transaction pooling -----------------------------------------------------------


def transaction_pooling(lab: Lab) -> Row:
    row = Row("transaction pooling is refused", ["python"])
    pgbouncer = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(pgbouncer).exists():
        row.notes.append("pgbouncer is not installed; scenario not run")
        return row
    lab.reset()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="que-pgbouncer-"))
    (work / "users.txt").write_text('"postgres" ""\n')
    (work / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"postgres = host=127.0.0.1 port={lab.cluster.port} dbname=postgres\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
        f"auth_file = {work / 'users.txt'}\npool_mode = transaction\nunix_socket_dir =\n"
        f"logfile = {work / 'pgbouncer.log'}\npidfile = {work / 'pgbouncer.pid'}\n"
        "ignore_startup_parameters = extra_float_digits,application_name\n"
    )
    user = lab.cluster.user
    if user is not None:
        os.chown(work, user.pw_uid, user.pw_gid)
        for child in work.iterdir():
            os.chown(child, user.pw_uid, user.pw_gid)
    kwargs: dict[str, Any] = {"user": user.pw_uid, "group": user.pw_gid} if user else {}
    proc = subprocess.Popen(
        [pgbouncer, str(work / "pgbouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        wait_until(lambda: _can_connect(url), 15, "pgbouncer")
        with que.Client(url) as client:
            client.enqueue("Echo", 1)  # enqueueing through the pooler is fine
            errors = []
            try:
                que.Worker(client, {"Echo": lambda *a: None}).work_one()
            except que.TransactionPoolingError as error:
                errors.append(("worker", str(error)))
            try:
                client.lock_job()
            except que.TransactionPoolingError as error:
                errors.append(("lock_job", str(error)))
        row.jobs = 1
        row.completed = 0
        row.locks_left = lab.locks()
        remaining = lab.sql("SELECT error_count FROM que_jobs")
        row.notes.append(f"refused by: {[w for w, _ in errors]}; message: {errors[0][1][:160] if errors else '-'}")
        row.ok = len(errors) == 2 and remaining == [(0,)] and row.locks_left == 0
        row.completed = 1 if row.ok else 0  # the job is left untouched for a direct worker
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return row


def _can_connect(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=1).close()
        return True
    except psycopg.OperationalError:
        return False


# -- the run ----------------------------------------------------------------------------


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        f"# Reliability report {meta['date']}",
        "",
        f"PostgreSQL {meta['postgres']}; implementations: {', '.join(meta['implementations'])}"
        + (f"; unavailable: {meta['unavailable']}" if meta["unavailable"] else ""),
        "",
        "| scenario | implementations | jobs | completed | duplicates | lost | locks left | recovery (s) | ok |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        recovery = "-" if r.recovery_s is None else f"{r.recovery_s:.2f}"
        lines.append(
            f"| {r.scenario} | {', '.join(r.implementations)} | {r.jobs} | {r.completed} | {r.duplicates} | "
            f"{r.lost} | {r.locks_left} | {recovery} | {'yes' if r.ok else '**NO**'} |"
        )
    lines.append("")
    for r in rows:
        lines.append(f"**{r.scenario}**: " + "; ".join(r.notes))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos", description="Fault scenarios across implementations.")
    parser.add_argument("--impl", default="python,go,ruby")
    parser.add_argument("--soak-jobs", type=int, default=20_000)
    parser.add_argument("--out", default=str(OUT))
    options = parser.parse_args(argv)
    # A timeout's SIGTERM unwinds normally, so the throwaway cluster is always removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    names = [n for n in options.impl.split(",") if n]
    if "go" in names:
        reason = implementations.build_go()
        if reason:
            log(f"go: unavailable: {reason}")
    rows: list[Row] = []
    with LocalCluster() as cluster:
        lab = Lab(cluster, names)
        available = lab.available()
        version = lab.sql("SHOW server_version")[0][0]
        log(f"PostgreSQL {version}; available: {available}; unavailable: {lab.unavailable}")
        scenarios: list[tuple[str, Callable[[], Row]]] = []
        for name in available:
            scenarios.append((f"killed {name}", lambda n=name: killed_mid_job(lab, n, "python")))
        scenarios += [
            ("terminated", lambda: terminated_connection(lab)),
            ("restart", lambda: server_restart(lab, available)),
            ("soak", lambda: soak(lab, available, options.soak_jobs)),
            ("hostile", lambda: hostile_rows(lab)),
            ("hygiene", lambda: lock_hygiene(lab, available)),
            ("pooling", lambda: transaction_pooling(lab)),
        ]
        for label, scenario in scenarios:
            log(f"scenario: {label} ...")
            try:
                row = scenario()
            except Exception as error:
                row = Row(label, available, notes=[f"scenario crashed: {error!r}", traceback.format_exc()[-800:]])
            finally:
                lab.stop_all()
            rows.append(row)
            log(
                f"  {'ok' if row.ok else 'FAILED'}: jobs {row.jobs}, completed {row.completed}, duplicates "
                f"{row.duplicates}, lost {row.lost}, locks left {row.locks_left}, recovery {row.recovery_s}"
            )
        meta = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "postgres": version,
            "implementations": available,
            "unavailable": lab.unavailable,
            "cpu_count": os.cpu_count(),
        }
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    text = markdown(rows, meta)
    (out / "latest.md").write_text(text)
    print(text)
    failed = [r.scenario for r in rows if not r.ok]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
