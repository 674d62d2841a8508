"""The Que 2 dialect under faults, on a database of its own on the chaos cluster: a locker
process killed with SIGKILL mid-job (its locks end with its session, the next locker
removes its stale que_lockers row, another row finishes the queue), and a server restart
during a drain by every Que 2 row. 0 jobs lost; only jobs in flight may run twice."""

import re
import threading
from typing import Any

import psycopg

from chaos.lab import ECHO, SLEEP, Lab, Row, account, attempt, timed
from harness import implementations, lab
from harness.lab import advisory_locks, wait_until
from harness.postgres import LocalCluster
from harness.testee import Testee

DATABASE = "que_chaos_que2"


class Que2Lab(Lab):
    """The chaos Lab on a v7 table in a database of its own, with the Que 2 rows."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(cluster, list(implementations.BUILTINS2))
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {DATABASE}")
        self.url = re.sub(r"/[^/?]*(\?|$)", rf"/{DATABASE}\1", cluster.url, count=1)
        self.id_column = "id"

    def reset(self) -> None:
        with self.conn() as conn:
            lab.reset(conn, "2")

    def fill(self, count: int, job_class: str, args_sql: str = "jsonb_build_array(i)") -> set[int]:
        self.sql(
            f"INSERT INTO que_jobs (job_class, args, job_schema_version) "
            f"SELECT %s, {args_sql}, 2 FROM generate_series(1, %s) AS i",
            [job_class, count],
        )
        return {int(r[0]) for r in self.sql("SELECT id FROM que_jobs")}

    def start(self, name: str) -> Testee:
        testee = lab.start_testee(self.impls[name], self.url, dialect="2")
        self.testees.append(testee)
        return testee

    def lockers(self) -> list[int]:
        return [int(r[0]) for r in self.sql("SELECT pid FROM que_lockers")]


def killed(lab_: Que2Lab, name: str, rescuer: str) -> Row:
    row = Row(f"Que 2: locker killed mid-job ({name})", [name, rescuer])
    lab_.reset()
    job_ids = lab_.fill(300, SLEEP, "jsonb_build_array(20)")
    victim = lab_.start(name)
    box: dict[str, Any] = {}
    request = {"queue": "default", "workers": 2, "deadline_ms": 60_000}
    thread = threading.Thread(
        target=lambda: box.update(r=attempt(lambda: victim.request("work", timeout=90, **request)))
    )
    thread.start()
    wait_until(lambda: len(lab_.runs()) >= 40, 30, "40 jobs done before the kill")
    with lab_.conn() as conn:
        in_flight = {lock.key for lock in advisory_locks(conn)}
    stale = lab_.lockers()
    victim.kill()
    thread.join(30)
    row.recovery_s = timed(lambda: lab_.locks() == 0, 30, "the killed locker's locks to go")
    other = lab_.start(rescuer)
    other.request("work", timeout=90, **request)
    left = set(lab_.lockers()) & set(stale)
    row.notes.append(
        f"killed {name} (pid {victim.pid}) holding {len(in_flight)} job locks; locks gone after {row.recovery_s}s; "
        f"its que_lockers row {'still there' if left else 'removed by the next locker'}"
    )
    other.stop()
    account(lab_, row, job_ids, allowed_duplicates=in_flight)
    if left:
        row.ok = False
    return row


def restart(lab_: Que2Lab, names: list[str]) -> Row:
    row = Row("Que 2: server restart during a mixed drain", names)
    lab_.reset()
    job_ids = lab_.fill(2000, ECHO)
    testees = {name: lab_.start(name) for name in names}
    boxes: dict[str, Any] = {}
    request = {"queue": "default", "workers": 2, "deadline_ms": 120_000}
    threads = [
        threading.Thread(
            target=lambda n=n, t=t: boxes.update({n: attempt(lambda: t.request("work", timeout=150, **request))})
        )
        for n, t in testees.items()
    ]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(lab_.runs()) >= 300, 60, "300 jobs before the restart")
    before = len(lab_.runs())
    lab_.cluster.restart()
    row.recovery_s = timed(lambda: len(lab_.runs()) > before + 50, 60, "progress after the restart")
    for thread in threads:
        thread.join(160)
    for name, outcome in boxes.items():
        row.notes.append(f"{name}: {'error ' + str(outcome)[:160] if isinstance(outcome, Exception) else outcome}")
    # Ruby Que 2's Locker thread aborts its process when its connection dies, and jobs whose
    # handlers met the restart were rescheduled: a fresh python locker finishes the queue.
    lab_.sql("UPDATE que_jobs SET run_at = now()")
    lab_.start("python").request("work", timeout=90, **request)
    row.notes.append(f"{before} jobs done before the restart; progress resumed {row.recovery_s}s after it")
    allowed = {j for j, r in lab_.runs().items() if len(r) == 2}
    if len(allowed) > 2 * 2 * len(names):
        row.notes.append(f"more duplicates ({len(allowed)}) than workers in flight")
        allowed = set()
    account(lab_, row, job_ids, allowed_duplicates=allowed)
    return row
