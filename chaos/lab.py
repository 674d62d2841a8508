"""What every chaos scenario uses: the throwaway cluster, testees started on demand, the
database as witness (que_jobs, pg_locks, the results table) and the judgement of a row."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from harness import implementations, lab, results
from harness.postgres import LocalCluster
from harness.testee import Testee, TesteeFailure, Unavailable

ECHO = "QueConformance::Echo"
SLEEP = "QueConformance::Sleep"
FLAKY = "QueConformance::Flaky"
FAIL = "QueConformance::Fail"


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
    """The cluster, connections to it, and testees started on demand."""

    def __init__(self, cluster: LocalCluster, names: list[str]) -> None:
        self.cluster = cluster
        self.url = cluster.url
        self.impls = {i.name: i for i in implementations.resolve(names, build=False)}
        self.unavailable: dict[str, str] = {n: i.unavailable for n, i in self.impls.items() if i.unavailable}
        self.testees: list[Testee] = []
        # que_jobs' key column: job_id in Que 0.x, id in Que 2 (Que2Lab).
        self.id_column = "job_id"

    def conn(self) -> psycopg.Connection[Any]:
        """A connection, waiting for the server while it restarts."""
        return lab.wait_until(self._try_connect, 60, "the server to accept connections")

    def _try_connect(self) -> psycopg.Connection[Any] | None:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=2)
        except psycopg.OperationalError:
            return None

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with self.conn() as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def reset(self) -> None:
        with self.conn() as conn:
            lab.reset(conn)

    def fill(self, count: int, job_class: str, args_sql: str = "json_build_array(i)") -> set[int]:
        """Insert `count` jobs; their ids."""
        with self.conn() as conn:
            lab.fill(conn, count, job_class, args_sql)
        return {int(r[0]) for r in self.sql("SELECT job_id FROM que_jobs")}

    def start(self, name: str) -> Testee:
        testee = lab.start_testee(self.impls[name], self.url)
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

    def locks(self) -> int:
        with self.conn() as conn:
            return len(lab.advisory_locks(conn))

    def runs(self) -> dict[int, list[tuple[str, int]]]:
        found: dict[int, list[tuple[str, int]]] = {}
        for job_id, impl, pid in self.sql(f"SELECT job_id, impl, pid FROM {results.TABLE} ORDER BY id"):
            found.setdefault(int(job_id), []).append((impl, int(pid)))
        return found

    def stop_all(self) -> None:
        for testee in self.testees:
            testee.stop()
        self.testees.clear()


def timed(condition: Callable[[], Any], timeout: float, what: str) -> float:
    """Seconds until `condition` held."""
    started = time.monotonic()
    lab.wait_until(condition, timeout, what)
    return round(time.monotonic() - started, 3)


def attempt(fn: Callable[[], Any]) -> Any:
    """fn's result, or the TesteeFailure it raised."""
    try:
        return fn()
    except TesteeFailure as error:
        return error


def account(lab_: Lab, row: Row, job_ids: set[int], allowed_duplicates: set[int]) -> None:
    """Fill completed/duplicates/lost/locks from the database; judge the row."""
    runs = lab_.runs()
    remaining = {int(r[0]) for r in lab_.sql(f"SELECT {lab_.id_column} FROM que_jobs")}
    row.jobs = len(job_ids)
    row.completed = len([j for j in job_ids if runs.get(j) and j not in remaining])
    duplicated = {j for j in job_ids if len(runs.get(j, [])) > 1}
    row.duplicates = len(duplicated)
    row.lost = len([j for j in job_ids if not runs.get(j) and j not in remaining]) + len(remaining)
    row.locks_left = lab_.locks()
    unexpected = duplicated - allowed_duplicates
    if unexpected:
        row.notes.append(f"unexpected duplicate executions: {sorted(unexpected)[:10]}")
    row.ok = row.lost == 0 and row.locks_left == 0 and not unexpected and row.completed == row.jobs
