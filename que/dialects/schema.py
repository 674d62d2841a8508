"""Ruby Que's schema migrations, up and down, and its way of reading the version.

Versions 1..3 are Que 0.x's (the 0.14 dialect); 4..7 are Que 1.x/2.x's (the Que 2 dialect,
que.dialects.que2.schema), which Ruby Que 2.4.1 runs. Version 8 (Que's master: hashtext instead of md5
in a trigger) is read as the Que 2 dialect too, but not migrated from.

The version lives in the table comment (`COMMENT ON TABLE que_jobs IS '3'`), not in a
table of its own, because that is where Ruby Que and que-go look for it. A database
migrated by this module can be handed to a Ruby `Que.migrate!` or a que-go deployment
and the reverse.
"""

import re
from typing import Any, Final

import psycopg

from que.dialects.que0 import sql
from que.dialects.que2 import schema as _schema2

# The newest version of the 0.14 dialect, and migrate()'s default.
CURRENT_VERSION: Final = 3
# The newest version this module migrates to or from (Ruby Que 2.4.1's).
LATEST_VERSION: Final = 7
# The newest version whose table que reads and works (Que 2.x's statements are the same).
NEWEST_READ: Final = 8

# Keyed by the version each script arrives at (up) or leaves (down), as Ruby's
# migrations/<n>/{up,down}.sql.
_UP: Final[dict[int, str]] = {
    1: """\
CREATE TABLE que_jobs
(
  priority    integer     NOT NULL DEFAULT 1,
  run_at      timestamptz NOT NULL DEFAULT now(),
  job_id      bigserial   NOT NULL,
  job_class   text        NOT NULL,
  args        json        NOT NULL DEFAULT '[]'::json,
  error_count integer     NOT NULL DEFAULT 0,
  last_error  text,

  CONSTRAINT que_jobs_pkey PRIMARY KEY (priority, run_at, job_id)
)""",
    2: "ALTER TABLE que_jobs ALTER COLUMN priority SET DEFAULT 100",
    3: """\
ALTER TABLE que_jobs
  DROP CONSTRAINT que_jobs_pkey,
  ALTER COLUMN priority TYPE smallint,
  ADD COLUMN queue TEXT NOT NULL DEFAULT '',
  ADD CONSTRAINT que_jobs_pkey PRIMARY KEY (queue, priority, run_at, job_id)""",
    **_schema2.UP,
}

_DOWN: Final[dict[int, str]] = {
    1: "DROP TABLE que_jobs",
    2: "ALTER TABLE que_jobs ALTER COLUMN priority SET DEFAULT 1",
    3: """\
ALTER TABLE que_jobs
  DROP CONSTRAINT que_jobs_pkey,
  DROP COLUMN queue,
  ALTER COLUMN priority TYPE integer,
  ADD CONSTRAINT que_jobs_pkey PRIMARY KEY (priority, run_at, job_id)""",
    **_schema2.DOWN,
}

_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


def _ruby_to_i(text: str) -> int:
    """Ruby's String#to_i: the leading integer, or 0 when there is none."""
    match = _LEADING_INT.match(text)
    return int(match.group(1)) if match else 0


def version_of(row: tuple[object, ...] | None) -> int:
    """Ruby's reading of the DB_VERSION row: no relation gives 0, no comment 1."""
    if row is None:
        return 0
    description = row[1]
    if description is None:
        return 1
    return _ruby_to_i(str(description))


def db_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version exactly as Ruby Que 0.14.3 reads it.

    No `que_jobs` relation gives 0; a table without a comment predates versioning and
    gives 1. Like Ruby, the first row wins when several relations share the name.
    """
    return version_of(conn.execute(sql.DB_VERSION).fetchone())


async def db_version_async(conn: psycopg.AsyncConnection[Any]) -> int:
    return version_of(await (await conn.execute(sql.DB_VERSION)).fetchone())


def _check(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int):
        raise TypeError(f"version must be an int, got {version!r}")
    if not 0 <= version <= LATEST_VERSION:
        raise ValueError(f"version must be between 0 and {LATEST_VERSION} (3: Que 0.x, 7: Que 1.x/2.x), got {version}")
    return version


def steps(current: int, version: int) -> list[str]:
    """The statements that move the schema from `current` to `version`, with Ruby's
    comment at the end (intermediate versions get none; version 0 drops the table)."""
    if current == version:
        return []
    if current and current not in _DOWN:  # no script leaves it: a version newer than this module's
        raise ValueError(
            f"que_jobs is at version {current}, newer than this library migrates ({LATEST_VERSION}); "
            "refusing to migrate it"
        )
    if current < version:
        found = [_UP[step] for step in range(current + 1, version + 1)]
    else:
        found = [_DOWN[step] for step in range(current, version, -1)]
    if version > 0:
        # COMMENT takes no parameters; version is a checked int.
        found.append(f"COMMENT ON TABLE que_jobs IS '{int(version)}'")
    return found


def migrate(conn: psycopg.Connection[Any], version: int = CURRENT_VERSION) -> None:
    """Move the schema to `version` (0..7) in one transaction, recording it as Ruby does.

    Inside a caller's open transaction this runs in a savepoint and commits with the caller.
    """
    target = _check(version)
    with conn.transaction():
        for statement in steps(db_version(conn), target):
            conn.execute(statement)


async def migrate_async(conn: psycopg.AsyncConnection[Any], version: int = CURRENT_VERSION) -> None:
    target = _check(version)
    async with conn.transaction():
        for statement in steps(await db_version_async(conn), target):
            await conn.execute(statement)
