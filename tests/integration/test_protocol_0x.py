"""The protocol engine (que.dialects.que0.protocol): the protocol's guarantees with fewer round trips."""

import asyncio
import threading
from typing import Any

import psycopg
import pytest

import que
import que.aio
from harness.lab import advisory_locks
from harness.lab import wait_until as wait_for
from que.dialects.que0 import protocol as _protocol
from que.dialects.que0.protocol import Finish, Locked
from que.dialects.que0.statements import catalog as que0_catalog
from que.drivers.connecting import connection_options
from que.drivers.threads import run as wait
from que.engine.session import Session, statement
from tests.conftest import rows
from tests.relay import Relay


class Engine:
    """The engine's generators on one que-owned connection, driven synchronously."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, **connection_options("que test"))
        self.session = Session(self.conn.pgconn, que0_catalog())

    def _run(self, gen: Any) -> Any:
        return wait(gen, self.conn.pgconn.socket)

    def lock(self, queue: str = "", after: Locked | None = None) -> Locked | None:
        """The next job, with `after`'s delete in the same round trip (as a worker claims)."""
        done = [] if after is None else [Finish(after)]
        held = self._run(_protocol.claim(self.session, queue, 1, done=done))
        return held[0] if held else None

    def finish(self, finish: Finish) -> None:
        self._run(_protocol.finish(self.session, finish))

    def release(self, locked: Locked) -> None:
        self._run(_protocol.unlock(self.session, locked))


def session(database_url: str) -> Engine:
    return Engine(database_url)


def test_positional_placeholders() -> None:
    made = statement("", "a = %(x)s AND b = %(y)s OR c = %(x)s", [("x", 25), ("y", 23)])
    assert made.text == b"a = $1 AND b = $2 OR c = $1" and made.types == (25, 23)
    with pytest.raises(ValueError, match="unnamed"):
        statement("", "a = %(x)s AND b = %(z)s", [("x", 25)])


def test_finish_with_next_lock_deletes_releases_and_locks_in_order(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    first = client.enqueue("A", priority=1)
    second = client.enqueue("B", priority=2)
    s = session(database_url)
    held = s.lock("")
    assert held is not None and held.job.job_id == first.job_id
    following = s.lock("", after=held)
    assert following is not None and following.job.job_id == second.job_id
    assert [r["job_id"] for r in rows(conn)] == [second.job_id]
    pid = s.conn.info.backend_pid
    assert advisory_locks(conn) == [(pid, 0, second.job_id, 1)]
    s.finish(Finish(following, "boom", 4))
    [row] = rows(conn)
    assert row["error_count"] == 1 and row["last_error"] == "boom"
    assert advisory_locks(conn) == []


def test_the_delete_commits_before_the_unlock(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    """Another session that gets the lock the moment it is released must not see the row."""
    job = client.enqueue("A")
    s = session(database_url)
    held = s.lock("")
    assert held is not None
    seen: list[Any] = []

    def contender() -> None:
        with psycopg.connect(database_url, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", [job.job_id])  # waits for the release
            seen.append(other.execute("SELECT count(*) FROM que_jobs WHERE job_id = %s", [job.job_id]).fetchone())
            other.execute("SELECT pg_advisory_unlock(%s)", [job.job_id])

    thread = threading.Thread(target=contender)
    thread.start()
    wait_for(
        lambda: (
            conn.execute("SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND NOT granted").fetchone() == (1,)
        ),
        what="the contender to wait on the job lock",
    )
    s.lock("", after=held)
    thread.join(10)
    assert seen == [(0,)]


def test_a_failed_finish_is_recorded_and_leaves_no_lock(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    """When the server refuses the destroy, the refusal is recorded as the job's failure
    (Ruby rescues a failed destroy like a failed run), the job is released, the next job is
    locked in the same claim, and the session keeps working."""
    client.enqueue("A", priority=1)
    client.enqueue("B", priority=2)
    conn.execute(
        "CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'deletes refused'; END $$"
    )
    conn.execute("CREATE TRIGGER refuse BEFORE DELETE ON que_jobs FOR EACH ROW EXECUTE FUNCTION refuse_delete()")
    s = session(database_url)
    held = s.lock("")
    assert held is not None and held.job.job_class == "A"
    following = s.lock("", after=held)
    assert following is not None and following.job.job_class == "B"
    assert [lock.key for lock in advisory_locks(conn)] == [following.job.job_id]
    a = next(r for r in rows(conn) if r["job_class"] == "A")
    assert a["error_count"] == 1 and a["last_error"].startswith("psycopg.errors.RaiseException: deletes refused")
    s.release(following)
    assert advisory_locks(conn) == []


@pytest.mark.parametrize("error_count", [2147483647, 1742], ids=["integer-max", "timestamp-overflow"])
def test_an_error_that_cannot_be_counted_parks_the_job(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str, error_count: int
) -> None:
    """set_error on error_count = integer max overflows the count; 1,743 failures push run_at
    past PostgreSQL's timestamps. Ruby's set_error fails there and leaves the job due at
    once; que parks it uncounted (far in the future, its error recorded), so it does not
    stay first in line, and no lock is left."""
    client.enqueue("A", priority=1)
    client.enqueue("B", priority=2)
    conn.execute("UPDATE que_jobs SET error_count = %s WHERE job_class = 'A'", [error_count])
    s = session(database_url)
    held = s.lock("")
    assert held is not None and held.job.job_class == "A"
    s.finish(Finish.failure(held, "boom"))
    following = s.lock("")
    assert following is not None and following.job.job_class == "B"
    a = next(r for r in rows(conn) if r["job_class"] == "A")
    assert a["error_count"] == error_count and a["last_error"] == "boom"
    parked = conn.execute(
        "SELECT run_at = %s::timestamptz FROM que_jobs WHERE job_class = 'A'", [que.dialects.que0.sql.PARKED_RUN_AT]
    )
    assert parked.fetchone() == (True,)
    s.release(following)
    assert advisory_locks(conn) == []


def test_listen_notify_wakes_an_idle_worker(client: que.Client, database_url: str) -> None:
    done = threading.Event()
    with que.Client(database_url, notify=True) as notifying:
        worker = que.Worker(notifying, {"J": lambda: done.set()}, wake_interval=60, listen=True).start()
        try:
            wait_for(lambda: worker.backend_pid is not None, what="the worker to connect")
            wait_for(lambda: advisory_locks_free(database_url), what="idle")
            notifying.enqueue("J")
            assert done.wait(10), "a notification must wake the worker long before its 60 s poll"
        finally:
            assert worker.shutdown(10)


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_a_notification_read_with_a_claim_wakes_the_worker(client: que.Client, database_url: str, kind: str) -> None:
    """A notification that reaches the worker together with its claim's result is parsed and
    queued by libpq while the result is read: the socket does not announce it again, and a
    worker that then waited on the socket slept through it until its next poll. A relay
    holds the server's replies so that the claim's result (no job: the claim ran before the
    enqueue) and the enqueue's notification arrive in one read."""
    done = threading.Event()
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    with Relay(str(info.get("host") or "127.0.0.1"), int(info.get("port") or 5432)) as relay:
        relayed = psycopg.conninfo.make_conninfo(database_url, host="127.0.0.1", port=relay.port)

        def body(worker: Any) -> None:
            wait_for(lambda: worker.backend_pid is not None, what="the worker to connect")
            pid = worker.backend_pid
            with psycopg.connect(database_url, autocommit=True) as watcher:

                def state() -> tuple[Any, ...]:
                    query = (
                        "SELECT state, state_change, query LIKE '%%que_interop.claimed%%'"
                        " FROM pg_stat_activity WHERE pid = %s"
                    )
                    return tuple(watcher.execute(query, [pid]).fetchone() or ())

                # Its first claim must be over: a wake() during it would bring a second claim,
                # after the enqueue.
                wait_for(lambda: state()[::2] == ("idle", True), what="the worker's first claim to end")
                before = state()[1]
                relay.hold()
                worker.wake()  # a claim now: it finds nothing, and its result is kept
                wait_for(lambda: state()[0] == "idle" and state()[1] > before, what="the held claim to end")
                with que.Client(database_url, notify=True) as notifying:
                    notifying.enqueue("J")
                wait_for(lambda: b"que_interop_jobs" in relay.kept(), what="the notification to be kept")
                relay.release()
                assert done.wait(15), "the job notified with the claim's result ran long before the 600 s poll"

        if kind == "threads":
            with que.Client(relayed) as relayed_client:
                worker = que.Worker(relayed_client, {"J": lambda: done.set()}, wake_interval=600, listen=True).start()
                try:
                    body(worker)
                finally:
                    assert worker.shutdown(10)
            return

        async def main() -> None:
            async with que.aio.AsyncClient(relayed) as aclient:
                worker = que.aio.AsyncWorker(aclient, {"J": lambda: done.set()}, wake_interval=600, listen=True).start()
                try:
                    await asyncio.to_thread(body, worker)
                finally:
                    assert await worker.shutdown(10)

        asyncio.run(main())


def advisory_locks_free(url: str) -> bool:
    with psycopg.connect(url) as c:
        return c.execute("SELECT count(*) FROM pg_locks WHERE locktype='advisory'").fetchone() == (0,)


def test_notify_from_a_rolled_back_transaction_wakes_nobody(database_url: str, conn: psycopg.Connection[Any]) -> None:
    with que.Client(database_url, notify=True) as notifying, psycopg.connect(database_url, autocommit=True) as listener:
        listener.execute("LISTEN que_interop_jobs")
        with pytest.raises(RuntimeError), conn.transaction():
            notifying.enqueue("J", conn=conn)
            raise RuntimeError("roll back")
        assert list(listener.notifies(timeout=0.3)) == []
        notifying.enqueue("J", queue="q")
        assert [n.payload for n in listener.notifies(timeout=5, stop_after=1)] == ["q"]


def test_statements_removed_by_deallocate_all_are_prepared_again(
    client: que.Client, conn: psycopg.Connection[Any], database_url: str
) -> None:
    """DEALLOCATE ALL (or DISCARD ALL) removes every prepared statement of a session; the
    engine prepares them again and, as nothing took effect, sends the statements again."""
    first = client.enqueue("A", priority=1)
    second = client.enqueue("B", priority=2)
    s = session(database_url)
    held = s.lock("")
    assert held is not None and held.job.job_id == first.job_id
    s.conn.execute("DEALLOCATE ALL")
    following = s.lock("", after=held)
    assert following is not None and following.job.job_id == second.job_id
    s.conn.execute("DEALLOCATE ALL")
    s.finish(Finish(following))
    assert rows(conn) == [] and advisory_locks(conn) == []
