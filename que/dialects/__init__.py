"""Which Que protocol a `que_jobs` table speaks, read from its schema version.

Ruby Que 0.x (and que-go) use schema versions 1..3: the 0.14 dialect, a row keyed by
(queue, priority, run_at, job_id), locked by a worker's own session. Ruby Que 1.x and 2.x use
versions 4..7 (8 on Que's master): the Que 2 dialect, a row keyed by id with args, kwargs and
data in jsonb, worked through a locker registered in que_lockers. The two cannot share a
table; a table is moved from one to the other by migrating it (que.dialects.schema).
"""

from typing import Final

QUE_0: Final = "0.14"
QUE_2: Final = "2"
DIALECTS: Final = (QUE_0, QUE_2)

# The first schema version of the Que 2 dialect, and the newest one que reads.
FIRST_QUE_2_VERSION: Final = 4
NEWEST_VERSION: Final = 8


# What a Que 2 table refuses of the 0.x API.
ONE_AT_A_TIME_IS_QUE_0: Final = (
    "que_jobs is a Que 2 table: working or locking one job at a time (que.Worker, lock_job) is Que 0.x's "
    "API, which Ruby Que 2 does not have; use WorkerPool or AsyncWorkerPool, which speak Que 2's locker protocol"
)


def of_version(version: int) -> str:
    """The dialect of a table at `version` (0, no table yet, counts as Que 0.x: the default)."""
    if version > NEWEST_VERSION:
        raise ValueError(
            f"que_jobs is at schema version {version}, newer than any Que this library knows "
            f"(it reads versions up to {NEWEST_VERSION})"
        )
    return QUE_2 if version >= FIRST_QUE_2_VERSION else QUE_0
