# This file is generated from que/shells/admin_async.py by tools/async_to_sync.py: do not edit it.
# Edit the asyncio source and run `make generate` (make lint checks that the two agree).
"""Admin: what a Client reads and repairs in a queue (Ruby Que's job_stats and
worker_states, the states, dead jobs and their retry), on every dialect: each statement
is the dialect's (que.dialects), run on one of the client's pooled connections.

Generated from que.shells.admin_async (AsyncAdmin).
"""

import contextlib
from typing import Any

import psycopg
from psycopg.rows import dict_row

from que.core.job import Job
from que.core.validate import queue as check_queue
from que.dialects import Dialect, Query
from que.engine.session import Session


class Admin:
    """The client's reads and repairs; Client gives the connections and the dialect."""

    def dialect(self) -> Dialect:
        raise NotImplementedError

    def _borrow(self) -> contextlib.AbstractContextManager[tuple[psycopg.Connection[Any], Session]]:
        raise NotImplementedError

    # -- introspection and repairs ---------------------------------------------------------

    def _query(self, query: Query) -> Any:
        with self._borrow() as (conn, _), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query.text, query.params, binary=True)
            if query.rowcount:
                return cur.rowcount
            found = cur.fetchall()
            return found if query.read_rows is None else query.read_rows(found)

    def job_stats(self) -> list[dict[str, Any]]:
        """Ruby Que's job_stats. Que 0.x: per (queue, job_class), count, count_working,
        count_errored, highest_error_count and oldest_run_at, busiest first. Que 1.x/2.x: the
        same per job_class, over the jobs neither finished nor expired."""
        return self._query((self.dialect()).job_stats())  # type: ignore[no-any-return]

    def job_states(self) -> list[dict[str, Any]]:
        """How many jobs each queue has in each state: ready, scheduled, errored, and dead
        (Que 0.x: set aside by a retry limit) or finished and expired (Que 1.x/2.x)."""
        return self._query((self.dialect()).job_states())  # type: ignore[no-any-return]

    def overview(self) -> list[dict[str, Any]]:
        """Each queue at a glance: ready, scheduled, working (locked by a session), failing
        (errored, due again later or now), dead (Que 0.x: set aside by a retry limit; Que
        1.x/2.x: expired), finished (Que 1.x/2.x), and oldest_due_age: seconds the oldest
        due, unlocked job has waited (None when none is due). For dashboards, metrics and
        health probes."""
        return self._query((self.dialect()).overview())  # type: ignore[no-any-return]

    def worker_states(self) -> list[dict[str, Any]]:
        """Each locked job, as Ruby Que reports it: with the state of the backend holding its
        lock (Que 0.x's worker_states), or with the locker's host and process (Que 2's
        job_states)."""
        return self._query((self.dialect()).worker_states())  # type: ignore[no-any-return]

    def jobs(self, job_class: str | None = None) -> list[Job]:
        """Every job in que_jobs (of `job_class`), oldest first, whatever its state."""
        return self._query((self.dialect()).jobs(job_class))  # type: ignore[no-any-return]

    def lockers(self) -> list[dict[str, Any]]:
        """Who works jobs now: on Que 1.x/2.x the lockers in que_lockers (host, process,
        workers, queues) with the jobs each holds; on Que 0.x, which keeps no registry, each
        session holding job locks (pid, application_name, client address, jobs)."""
        return self._query((self.dialect()).lockers())  # type: ignore[no-any-return]

    def job_page(
        self,
        *,
        state: str | None = None,
        queue: str | None = None,
        job_class: str | None = None,
        text: str | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> list[Job]:
        """A page of jobs, newest first, for a dashboard: of a state (ready, scheduled,
        failing, dead; None: any), a queue, a job_class, whose last error holds `text`, and
        older than job id `before` (the last id of the previous page)."""
        if state not in (None, "ready", "scheduled", "failing", "dead", "finished"):
            raise ValueError(f"state {state!r}: one of ready, scheduled, failing, dead, finished, or None")
        if not 1 <= limit <= 1000:
            raise ValueError(f"limit {limit}: 1 to 1000 jobs a page")
        filters = {"state": state, "queue": queue, "job_class": job_class, "text": text or None}
        query = (self.dialect()).job_page({**filters, "before": before, "limit": limit})
        return self._query(query)  # type: ignore[no-any-return]

    def job_action(self, action: str, job_id: int) -> bool:
        """Do `action` to one job: retry (due now; an expired one too), delete, or expire (Que
        1.x/2.x). False when no such job, or a worker holds it now (it is left alone)."""
        from que.core.validate import job_id as check_job_id

        check_job_id(job_id)
        if action not in ("retry", "delete", "expire"):
            raise ValueError(f"action {action!r}: retry, delete or expire")
        return bool(self._query((self.dialect()).job_action(action, job_id)))

    def dead_jobs(self, queue: str | None = None) -> list[Job]:
        """Jobs past their retry limit, oldest first: on Que 0.x set aside (run_at
        9999-12-31, or 'infinity' from que-interop 0.2); on Que 1.x/2.x expired."""
        if queue is not None:
            check_queue(queue)
        return self._query((self.dialect()).dead_jobs(queue))  # type: ignore[no-any-return]

    def retry_dead(self, job_id: int | None = None, *, queue: str | None = None) -> int:
        """Make jobs past their retry limit due again now, keeping their error_count and last
        error: one job by id, or every one (of `queue`). Returns how many."""
        from que.core.validate import job_id as check_job_id

        if job_id is not None:
            check_job_id(job_id)
        if queue is not None:
            check_queue(queue)
        return self._query((self.dialect()).retry_dead(job_id, queue))  # type: ignore[no-any-return]

    def repair_dead(self) -> int:
        """Give jobs set aside by que-interop 0.2 (run_at 'infinity', which Ruby Que's
        job_stats and worker_states cannot parse) today's marker; how many were changed.
        Que 0.x only."""
        return self._query((self.dialect()).repair_dead())  # type: ignore[no-any-return]

    def clear(self) -> None:
        """Delete every job (Ruby's `Que.clear!`)."""
        self._query((self.dialect()).clear())
