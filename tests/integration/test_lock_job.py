"""lock_job order and exclusivity, the race check, and finishing a locked job."""

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

import que
from conformance.support import race_gate
from harness.lab import advisory_locks
from harness.lab import wait_until as wait_for
from tests.conftest import rows


def lock_all(client: que.Client, queue: str = "") -> list[str]:
    order = []
    while (job := client.lock_job(queue)) is not None:
        with job:
            order.append(job.job.job_class)
            job.delete()
    return order


def test_order_is_priority_then_run_at_then_job_id(client: que.Client) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    client.enqueue("p100-late", run_at=past + timedelta(minutes=2))
    client.enqueue("p100-early-first", run_at=past)
    client.enqueue("p100-early-second", run_at=past)
    client.enqueue("p5", priority=5)
    client.enqueue("p-5", priority=-5, run_at=past + timedelta(minutes=30))
    assert lock_all(client) == ["p-5", "p5", "p100-early-first", "p100-early-second", "p100-late"]


def test_only_the_exact_queue_and_never_before_run_at(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue("default")
    client.enqueue("other", queue="other")
    client.enqueue("Other", queue="Other")
    client.enqueue("future", run_at=datetime.now(UTC) + timedelta(minutes=5))
    assert lock_all(client, "other") == ["other"]
    assert lock_all(client) == ["default"]
    assert [r["job_class"] for r in rows(conn)] == ["Other", "future"]


def test_jobs_locked_by_other_sessions_are_skipped(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    first = client.enqueue("first", priority=1)
    second = client.enqueue("second", priority=2)
    client.enqueue("third", priority=3)
    holder = client.lock_job()
    assert holder is not None and holder.job.job_id == first.job_id
    # An unrelated advisory lock on the same key blocks a job too (shared key space).
    with psycopg.connect(database_url, autocommit=True) as app:
        app.execute("SELECT pg_advisory_lock(%s)", [second.job_id])
        assert lock_all(client) == ["third"]
        app.execute("SELECT pg_advisory_unlock(%s)", [second.job_id])
    assert lock_all(client) == ["second"]
    holder.release()
    assert lock_all(client) == ["first"]


def test_lock_is_the_single_bigint_key_of_the_job_id(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT setval('que_jobs_job_id_seq', %s, false)", [2**33 + 5])
    job = client.enqueue("big")
    assert job.job_id == 2**33 + 5
    locked = client.lock_job()
    assert locked is not None
    pid = locked.backend_pid
    assert advisory_locks(conn) == [(pid, 2, 5, 1)]
    locked.release()
    locked.release()
    assert advisory_locks(conn) == []
    assert [r["job_id"] for r in rows(conn)] == [2**33 + 5]


def test_delete_is_idempotent_and_matches_the_full_key(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue("a")
    client.enqueue("b")
    with client.lock_job() as locked:  # type: ignore[union-attr]
        locked.delete()
        locked.delete()
    assert [r["job_class"] for r in rows(conn)] == ["b"]
    with client.lock_job() as locked:  # type: ignore[union-attr]
        # Someone moves the job while it is locked: the delete matches no row.
        conn.execute("UPDATE que_jobs SET priority = 7")
        locked.delete()
    assert [(r["job_class"], r["priority"]) for r in rows(conn)] == [("b", 7)]


@pytest.mark.parametrize(("count", "delay"), [(1, 4), (2, 19), (3, 84), (4, 259), (5, 628), (6, 1299)])
def test_error_increments_count_and_backs_off(
    client: que.Client, conn: psycopg.Connection[Any], count: int, delay: int
) -> None:
    client.enqueue("failing")
    conn.execute("UPDATE que_jobs SET error_count = %s", [count - 1])
    locked = client.lock_job()
    assert locked is not None
    locked.error("boom")
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    locked.release()
    [row] = rows(conn)
    assert row["error_count"] == count and row["last_error"] == "boom"
    assert que.retry_delay(count) == delay
    # set_error's now() is its own statement's; ours came a moment later.
    assert timedelta(seconds=delay - 2) < row["run_at"] - now <= timedelta(seconds=delay)
    assert advisory_locks(conn) == []


def test_exception_in_block_is_recorded_and_lock_released(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    client.enqueue("x")
    with pytest.raises(KeyError), client.lock_job() as locked:  # type: ignore[union-attr]
        raise KeyError("missing")
    [row] = rows(conn)
    assert row["error_count"] == 1 and row["last_error"].startswith("KeyError: 'missing'\n")
    assert advisory_locks(conn) == []
    with pytest.raises(que.JobFinishedError):
        locked.delete()


def test_race_check_releases_the_lock_and_moves_on(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    """Between lock_job's snapshot and its lock, another worker finishes the job: the check
    (sent in the same round trip, in a new snapshot) sees it gone; the lock is released and
    the walk goes on. Made deterministic with the conformance suite's race gate."""
    first = client.enqueue("first", priority=1).job_id
    gone = client.enqueue("gone", priority=2).job_id
    client.enqueue("next", priority=3)
    got: list[que.LockedJob | None] = []
    with race_gate(conn, database_url, first=first, finished=gone) as gate:
        locker = threading.Thread(target=lambda: got.append(client.lock_job()))
        locker.start()
        wait_for(gate.waiting, what="the walk to wait at the first job")
        gate.release()
        locker.join(30)
        [locked] = got
        assert locked is not None and locked.job.job_class == "next"
        held = [lock for lock in advisory_locks(conn) if lock.pid == locked.backend_pid]
        assert held == [(locked.backend_pid, 0, locked.job.job_id, 1)]
        locked.release()


def test_out_of_range_run_at_still_matches_its_row(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    conn.execute("INSERT INTO que_jobs (job_class, run_at) VALUES ('inf', '-infinity')")
    locked = client.lock_job()
    assert locked is not None
    assert locked.job.run_at == datetime.min.replace(tzinfo=UTC)
    locked.error("seen")
    locked.release()
    [row] = rows(conn)
    assert row["error_count"] == 1


def test_stats_and_worker_states(client: que.Client, conn: psycopg.Connection[Any]) -> None:
    conn.execute("SELECT setval('que_jobs_job_id_seq', %s, false)", [2**33])
    client.enqueue("A")
    client.enqueue("A")
    client.enqueue("B", queue="q")
    conn.execute("UPDATE que_jobs SET error_count = 2 WHERE job_class = 'B'")
    locked = client.lock_job()
    assert locked is not None
    stats = client.job_stats()
    assert list(stats[0]) == [
        "queue",
        "job_class",
        "count",
        "count_working",
        "count_errored",
        "highest_error_count",
        "oldest_run_at",
    ]
    by_class = {s["job_class"]: s for s in stats}
    assert (by_class["A"]["count"], by_class["A"]["count_working"], by_class["A"]["count_errored"]) == (2, 1, 0)
    assert (by_class["B"]["count_errored"], by_class["B"]["highest_error_count"]) == (1, 2)
    [state] = client.worker_states()
    assert state["job_id"] == locked.job.job_id
    assert state["pg_backend_pid"] == locked.backend_pid
    locked.release()
    assert client.worker_states() == []


def test_retry_delay_is_rubys_until_it_no_longer_fits_a_bigint() -> None:
    assert que.retry_delay(237) == 237**4 + 3
    assert que.retry_delay(1742) == 1742**4 + 3
    assert que.retry_delay(55108) == 55108**4 + 3 < 2**63
    assert que.retry_delay(55109) == 2**63 - 1 < 55109**4 + 3
