"""A Que 2 outcome that fails, beside others written in the same round trip, against a real
PostgreSQL in both I/O styles: the locker writes the outcomes of a round trip together, so
one that fails must not take the others down with it. Ruby Que 2 destroys each job in a
transaction of its own and rescues a failed destroy as the job's error."""

import threading
from typing import Any

import psycopg
import pytest

import que
from harness.lab import wait_until
from tests.support.lockers import KINDS, count, run_pool

# A delete of a job of class 'Undeletable' fails (as a foreign trigger or a constraint can
# make it fail); updates (set_error) still work.
REFUSE_DELETE = """
CREATE FUNCTION que_test_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'deleting % is refused', OLD.id;
END $$;
CREATE TRIGGER que_test_refuse_delete BEFORE DELETE ON que_jobs
FOR EACH ROW WHEN (OLD.job_class = 'Undeletable') EXECUTE FUNCTION que_test_refuse_delete()
"""
WORKERS = 4


@pytest.mark.parametrize("kind", KINDS)
def test_a_destroy_that_fails_beside_others_is_the_jobs_error_and_the_others_are_destroyed(
    v7_url: str, kind: str
) -> None:
    with psycopg.connect(v7_url, autocommit=True) as conn:
        conn.execute(REFUSE_DELETE)
    with que.Client(v7_url) as client:
        ids = [client.enqueue("J", i).job_id for i in range(WORKERS - 1)]
        refused = client.enqueue("Undeletable").job_id
        ids += [client.enqueue("J", i).job_id for i in range(WORKERS - 1, 12)]
    runs: list[int] = []
    lock = threading.Lock()
    # The first jobs (one per worker, the refused one among them) end together, so their
    # outcomes reach the locker at once.
    together = threading.Barrier(WORKERS, timeout=10)

    def handler(*args: Any) -> None:
        with lock:
            runs.append(que.current_job().job_id)
            first = len(runs) <= WORKERS
        if first:
            together.wait()

    def body(pool: Any) -> None:
        wait_until(lambda: count(v7_url, "job_class = 'J'") == 0, 20, "every J job destroyed")
        wait_until(lambda: count(v7_url, "error_count = 1") == 1, 20, "the refused destroy recorded")

    work = {"J": handler, "Undeletable": handler}
    run_pool(kind, v7_url, work, body, count=WORKERS, wake_interval=0.05)
    assert sorted(runs) == sorted([*ids, refused])
    with psycopg.connect(v7_url) as conn:
        row = conn.execute("SELECT id, error_count, last_error_message, run_at > now() FROM que_jobs").fetchall()
    assert len(row) == 1
    job_id, error_count, message, later = row[0]
    assert (job_id, error_count, later) == (refused, 1, True)
    assert message.startswith(f"psycopg.errors.RaiseException: deleting {refused} is refused"), message
