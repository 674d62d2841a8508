"""When finishing a job fails: a lost session re-runs at most the job in flight, and a
delete that fails is recorded as the job's error (Ruby Que 0.14.3 rescues a failed
`destroy` in `_run` like a failed `run`: set_error with the count**4 + 3 backoff), so the
job neither re-runs in a loop nor takes a healthy job down with it."""

import threading
from typing import Any

import psycopg
import pytest

import que
from harness.lab import advisory_locks, wait_until
from tests.conftest import rows

# A delete of a job of class 'Undeletable' fails, as a foreign trigger or a constraint can
# make it fail; updates (set_error) still work.
UNDELETABLE = """
CREATE OR REPLACE FUNCTION que_test_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'deleting % is refused', OLD.job_id;
END $$;
CREATE TRIGGER que_test_refuse_delete BEFORE DELETE ON que_jobs
FOR EACH ROW WHEN (OLD.job_class = 'Undeletable') EXECUTE FUNCTION que_test_refuse_delete()
"""


def runs_of(seen: list[int], job_id: int) -> int:
    return sum(1 for ran in seen if ran == job_id)


def recorder(seen: list[int]) -> Any:
    def handler(*args: Any) -> None:
        seen.append(que.current_job().job_id)

    return handler


def check_recorded(row: dict[str, Any]) -> None:
    """The failed delete is the job's error: counted, backed off 4 s, its message kept."""
    assert row["error_count"] == 1
    assert row["last_error"].split("\n")[0].startswith("psycopg.errors.RaiseException: deleting")
    assert 3 <= row["due_in"] <= 4


def with_due_in(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    found = rows(conn)
    for row in found:
        value = conn.execute(
            "SELECT extract(epoch FROM run_at - now())::float8 FROM que_jobs WHERE job_id = %s", [row["job_id"]]
        ).fetchone()
        row["due_in"] = value[0] if value else None
    return found


@pytest.mark.parametrize("batch", [1, 3])
def test_a_failing_delete_is_recorded_and_the_next_job_runs(
    client: que.Client, conn: psycopg.Connection[Any], batch: int
) -> None:
    conn.execute(UNDELETABLE)
    bad = client.enqueue("Undeletable", priority=1).job_id
    good = [client.enqueue("Good", n, priority=2).job_id for n in range(3)]
    seen: list[int] = []
    handlers = {"Undeletable": recorder(seen), "Good": recorder(seen)}
    worker = que.Worker(client, handlers, wake_interval=0.05, batch=batch).start()
    try:
        wait_until(lambda: all(job_id in seen for job_id in good), 20, "the healthy jobs to run")
        wait_until(lambda: len(rows(conn)) == 1, 20, "the healthy jobs' deletes")
    finally:
        assert worker.shutdown(10)
    assert runs_of(seen, bad) == 1, f"the undeletable job ran {runs_of(seen, bad)} times"
    assert [runs_of(seen, job_id) for job_id in good] == [1, 1, 1]
    [row] = with_due_in(conn)
    assert row["job_id"] == bad
    check_recorded(row)
    assert advisory_locks(conn) == []


def test_work_one_records_a_failing_delete(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    conn.execute(UNDELETABLE)
    client.enqueue("Undeletable")
    seen: list[int] = []
    assert que.Worker(client, {"Undeletable": recorder(seen)}).work_one() is True
    [row] = with_due_in(conn)
    check_recorded(row)
    assert advisory_locks(conn) == []


def test_a_batch_deletes_each_job_as_soon_as_it_ran(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    """While the third job of a batch runs, the first two are already deleted: a session
    lost then re-runs only the job in flight."""
    ids = [client.enqueue("J", n).job_id for n in range(3)]
    seen: list[int] = []
    third_running = threading.Event()
    gate = threading.Event()

    def handler(n: int) -> None:
        seen.append(que.current_job().job_id)
        if n == 2:
            third_running.set()
            gate.wait(20)

    worker = que.Worker(client, {"J": handler}, wake_interval=0.05, batch=3).start()
    try:
        assert third_running.wait(20)
        wait_until(lambda: [r["job_id"] for r in rows(conn)] == [ids[2]], 10, "the first two jobs' deletes")
        pid = worker.backend_pid
        assert pid is not None
        conn.execute("SELECT pg_terminate_backend(%s, 10000)", [pid])
        gate.set()
        wait_until(lambda: rows(conn) == [], 30, "the drain after the lost session")
    finally:
        gate.set()
        assert worker.shutdown(10)
    assert [runs_of(seen, job_id) for job_id in ids[:2]] == [1, 1], "a job that ran and was deleted ran again"
    assert runs_of(seen, ids[2]) in (1, 2), "the job in flight runs once more at most"
    assert advisory_locks(conn) == []
