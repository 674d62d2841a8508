"""Which Que protocol a `que_jobs` table speaks, read from its schema version: one object
per dialect (que.dialects.base says what each provides).

| schema version | dialect | spoken by |
|---|---|---|
| 1..3 (0: no table yet) | QUE_0, "0.14" | Ruby Que 0.x (0.14.3), que-go, gue |
| 4, 5 | QUE_1_V4, QUE_1, "1" | Ruby Que 1.0-1.2 (v4) and 1.3-1.4 (v5) |
| 6..8 | QUE_2, "2" | Ruby Que 2.x (2.4.1: v7; v8 is Que's master) |

Que 0.x keys a row by (queue, priority, run_at, job_id) and locks it from the worker's own
session; Que 1.x/2.x key it by id, keep args, kwargs and data in jsonb, and work it through
a locker registered in que_lockers. A table is moved from one to another by migrating it
(que.dialects.schema); two dialects cannot share one table.
"""

from typing import Final

from que.dialects.base import Copy, Dialect, Query
from que.dialects.que0 import Que0
from que.dialects.que2 import Que1, Que2

QUE_0: Final = Que0()
QUE_1_V4: Final = Que1(4)
QUE_1: Final = Que1(5)
QUE_2: Final = Que2()
DIALECTS: Final = (QUE_0, QUE_1_V4, QUE_1, QUE_2)

# The newest schema version que reads (Que's master: version 8, whose statements are 2.x's).
NEWEST_VERSION: Final = 8


def of_version(version: int) -> Dialect:
    """The dialect of a table at schema `version` (0, no table yet, counts as Que 0.x: the
    default)."""
    if version > NEWEST_VERSION:
        raise ValueError(
            f"que_jobs is at schema version {version}, newer than any Que this library knows "
            f"(it reads versions up to {NEWEST_VERSION})"
        )
    if version < 0:
        raise ValueError(f"que_jobs is at schema version {version}: no Que writes a negative version")
    for dialect in DIALECTS:
        if version in dialect.versions:
            return dialect
    raise AssertionError(f"no dialect for version {version}")


def named(name: str) -> Dialect:
    """The newest table variant of the dialect called `name` ("0.14", "1" or "2")."""
    found = [dialect for dialect in DIALECTS if dialect.name == name]
    if not found:
        raise ValueError(f"no dialect {name!r}: que speaks {', '.join(sorted({d.name for d in DIALECTS}))}")
    return found[-1]


__all__ = [
    "DIALECTS",
    "NEWEST_VERSION",
    "QUE_0",
    "QUE_1",
    "QUE_1_V4",
    "QUE_2",
    "Copy",
    "Dialect",
    "Query",
    "of_version",
]
