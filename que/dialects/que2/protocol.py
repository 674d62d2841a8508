"""The Que 2 dialect's protocol, without I/O: what a locker registers, what its poll asks
for, how a job ends, which notification is well formed, and the locker's books. Both
lockers, threads (que.locker2) and asyncio (que.aio._locker2), run these on psycopg's
sync and async connections with the statements of que.dialects.que2.sql.

Ruby Que 2.x's protocol: one connection per process (the locker's) registers in
que_lockers, LISTENs on que_listener_<its backend pid>, and takes jobs: the ones a
notification names, and the ones its poll finds (sql2.POLL_JOBS: Que 2's order and
priority thresholds). It holds their advisory locks while the workers run them, each on a
connection of its own: the worker checks the row is still there, runs the handler with the
job's args and kwargs, and destroys the job or records its error (or expires it past the
retry limit) on its own connection, which commits before the locker unlocks the job.
Unlocks go in batches, and every one must report that the lock was held, as Ruby asserts.
Rows of another job_schema_version (1: rows carried over from Que 0.x) are never polled.
"""

import json
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final

from que.core import handlers as _handlers
from que.core.errors import error_parts, storable
from que.core.job import Job
from que.core.retry import retry_delay
from que.dialects.que2 import sql as sql2

# Ruby's Que::MAXIMUM_PRIORITY: the threshold of a worker that takes any job.
ANY_PRIORITY: Final = 32767
# Que 2.x's defaults: maximum_retry_count, and the jobs buffered beyond the idle workers.
MAX_RETRIES: Final = 15
BUFFER: Final = 8
# The keys and types of a job_available message; Ruby's listener drops any other shape.
_ANNOUNCED: Final = {"message_type": str, "queue": str, "priority": int, "id": int, "run_at": str}


def announced_id(payload: str) -> int | None:
    """The job id of a well-formed job_available message, else None."""
    try:
        message = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(message, dict) or set(message) != set(_ANNOUNCED):
        return None
    if any(type(message[key]) is not kind for key, kind in _ANNOUNCED.items()):
        return None
    if message["message_type"] != "job_available":
        return None
    job_id: int = message["id"]
    return job_id


def register_params(priorities: Sequence[int | None], listening: bool, queue: str) -> dict[str, Any]:
    return {
        "worker_count": len(priorities),
        "worker_priorities": list(priorities),
        "process_id": os.getpid(),
        "hostname": socket.gethostname(),
        "listening": listening,
        "queues": [queue],
        "job_schema_version": sql2.JOB_SCHEMA_VERSION,
    }


def poll_params(queue: str, wanted: Mapping[int, int], held: Sequence[int]) -> dict[str, Any]:
    """sql2.POLL_JOBS's parameters for the places `wanted` (threshold -> count)."""
    thresholds = sorted(wanted)
    return {
        "queue": queue,
        "held": list(held),
        "ceiling": max(thresholds),
        "thresholds": thresholds,
        "counts": [wanted[t] for t in thresholds],
    }


def outcome(
    job: Job, failure: BaseException | None, max_retries: int, asked: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The statement that ends a job as Ruby Que 2.x does: destroyed when it succeeded
    (finished or expired if its handler `asked` so); expired past `max_retries`, the error
    columns left as they are; else retried after count**4 + 3 seconds with the message and
    backtrace cut to the columns' limits."""
    if failure is None:
        if asked == _handlers.FINISH:
            return sql2.FINISH_JOB, {"id": job.job_id}
        if asked == _handlers.EXPIRE:
            return sql2.EXPIRE_JOB, {"id": job.job_id}
        return sql2.DESTROY_JOB, {"id": job.job_id}
    count = job.error_count + 1
    if count > max_retries:
        return sql2.EXPIRE_JOB, {"id": job.job_id}
    message, backtrace = error_parts(failure)
    params = {
        "delay": retry_delay(count),
        "message": storable(message),
        "backtrace": storable("\n".join(backtrace)),
        "id": job.job_id,
    }
    return sql2.SET_ERROR, params


class Books:
    """A locker's books: the jobs it holds (`held`), the ones waiting for a worker
    (`ready`, sorted as Que sorts them), the idle workers by priority, the finished jobs it
    owes an unlock, and the notifications not read yet. A worker of priority p takes the
    first ready job whose priority is at most p (any, for None). The thread and the asyncio
    lockers keep these books the same way; only their waiting and their I/O differ."""

    def __init__(self, priorities: Sequence[int | None], size: int) -> None:
        self.priorities = list(priorities)
        self.size = size
        self.ready: list[Job] = []
        self.idle: dict[int | None, int] = {}
        for priority in self.priorities:
            self.idle[priority] = self.idle.get(priority, 0) + 1
        self.held: set[int] = set()
        self.done: list[int] = []
        self.announced: list[str] = []

    def push(self, jobs: Sequence[Job]) -> None:
        self.ready.extend(jobs)
        self.ready.sort(key=lambda job: (job.priority, job.run_at, job.job_id))

    def take(self, priority: int | None) -> Job | None:
        """The next ready job a worker of `priority` may run; that worker is busy then."""
        limit = ANY_PRIORITY if priority is None else priority
        for index, job in enumerate(self.ready):
            if job.priority <= limit:
                self.idle[priority] -= 1
                return self.ready.pop(index)
        return None

    def finish(self, job: Job, priority: int | None) -> None:
        """A worker ended `job` (its outcome committed, or not written): unlock it next."""
        self.done.append(job.job_id)
        self.idle[priority] += 1

    def running(self) -> int:
        return len(self.priorities) - sum(self.idle.values())

    def settled(self, stopping: bool) -> bool:
        """Stopping, with no job running and no unlock owed: the locker may end."""
        return stopping and self.running() == 0 and not self.done

    def owed(self) -> list[int]:
        """The finished jobs to unlock now; a job whose lock died with an earlier session of
        the locker needs none."""
        owed = [job_id for job_id in self.done if job_id in self.held]
        self.done = []
        return owed

    def unstarted(self) -> list[int]:
        """The ready jobs no worker took, given back at a stop."""
        ids = [job.job_id for job in self.ready]
        self.ready.clear()
        return ids

    def locked(self, jobs: Sequence[Job]) -> None:
        self.held.update(job.job_id for job in jobs)

    def verified(self, jobs: Sequence[Job], present: set[int]) -> list[int]:
        """The locked jobs still there (unfinished, unexpired) become ready; the ids of the
        others, to unlock."""
        self.push([job for job in jobs if job.job_id in present])
        return [job.job_id for job in jobs if job.job_id not in present]

    def unlocked(self, ids: Sequence[int], results: Sequence[bool]) -> None:
        """Every unlock must report the lock was held, as Ruby asserts."""
        if not all(results):
            raise AssertionError(f"tried to unlock jobs this locker had not locked: {list(ids)} gave {list(results)}")
        self.held.difference_update(ids)

    def notified(self) -> list[int]:
        """The jobs the notifications read so far name, as many as there is room for."""
        ids = [job_id for payload in self.announced if (job_id := announced_id(payload)) is not None]
        self.announced.clear()
        return ids[: sum(self.wanted().values())]

    def session_lost(self) -> None:
        """The locker's session died, and every lock with it: the ready jobs are no longer
        its own; running ones finish on their own connections."""
        self.ready.clear()
        self.held.clear()
        self.done.clear()

    def wanted(self) -> dict[int, int]:
        """Ruby's available_priorities: the idle workers by threshold, and the buffer's free
        space added to the most permissive threshold. A ready job an idle worker may take
        counts as taken (Ruby's worker would have popped it already): it leaves that
        worker's place and the buffer."""
        wanted: dict[int, int] = {}
        for priority, count in self.idle.items():
            threshold = ANY_PRIORITY if priority is None else priority
            wanted[threshold] = wanted.get(threshold, 0) + count
        waiting = len(self.ready)
        for job in self.ready:
            for threshold in sorted(wanted):
                if threshold >= job.priority and wanted[threshold] > 0:
                    wanted[threshold] -= 1
                    waiting -= 1
                    break
        top = max(ANY_PRIORITY if priority is None else priority for priority in self.priorities)
        wanted[top] = wanted.get(top, 0) + max(0, self.size - waiting)
        return {t: c for t, c in wanted.items() if c > 0}
