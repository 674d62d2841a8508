"""The helpers every runner shares: a clean que_jobs, a backlog of jobs, the advisory locks
held, waiting on a condition, a started testee. Used by the conformance suite, chaos, bench
and the tests, so each fact about the test database is written once."""

import itertools
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import psycopg

from harness import implementations, results
from harness.implementations import Implementation
from harness.testee import Testee

T = TypeVar("T")
POLL_SECONDS = 0.01  # how often wait_until re-checks its condition


def drop_que(conn: psycopg.Connection[Any]) -> None:
    """Remove que_jobs and, if a Que 2 schema was there, its other tables and functions."""
    kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('que_jobs')").fetchone()
    if kind is not None and kind[0] == "v":  # a test's stand-in
        conn.execute("DROP VIEW que_jobs")
    conn.execute("DROP TABLE IF EXISTS que_jobs, que_lockers, que_values CASCADE")
    conn.execute("DROP FUNCTION IF EXISTS que_validate_tags(jsonb), que_job_notify(), que_state_notify() CASCADE")


# The schema version each dialect's cells start from.
VERSIONS = {"0.14": 3, "1": 5, "2": 7}

# Who builds the tables the cells start from: a testee row, asked to `migrate` (the harness
# runs programs; it knows no library's migrations). QUE_SCHEMA_FROM names a built-in row, or
# QUE_SCHEMA_FROM_COMMAND gives an outside testee's command line (que-conformance
# --schema-from); python (que's migrations) by default, which the schema cells hold to Ruby's
# own catalogues (fixtures/schema_v3.json, fixtures/schema_v7.json). So every cell can run on
# the tables, functions and triggers a port's own migrations built.
SCHEMA_FROM_VARIABLE = "QUE_SCHEMA_FROM"
SCHEMA_FROM_COMMAND_VARIABLE = "QUE_SCHEMA_FROM_COMMAND"
# Who built the tables this process reset, by (database, version): a table found at the
# right version is taken as it is only if the row asked for built it (python is assumed).
_BUILT: dict[tuple[str, int], str] = {}


def db_version(conn: psycopg.Connection[Any]) -> int:
    """The schema version as Ruby Que reads it: no que_jobs gives 0, no comment 1, else the
    comment's leading integer."""
    row = conn.execute(
        "SELECT description FROM pg_class LEFT JOIN pg_description ON objoid = pg_class.oid WHERE relname = 'que_jobs'"
    ).fetchone()
    if row is None:
        return 0
    if row[0] is None:
        return 1
    digits = "".join(itertools.takewhile(str.isdigit, str(row[0]).strip()))
    return int(digits or 0)


def conninfo(conn: psycopg.Connection[Any]) -> str:
    """The connection string of `conn`, password included (for a testee to connect with)."""
    options = {o.keyword.decode(): o.val.decode() for o in conn.pgconn.info if o.val is not None and o.val != b""}
    wanted = ("host", "hostaddr", "port", "dbname", "user", "password", "sslmode")
    return psycopg.conninfo.make_conninfo(**{key: options[key] for key in wanted if key in options})


def migrate(conn: psycopg.Connection[Any], version: int) -> None:
    """que_jobs at `version`, built by the testee QUE_SCHEMA_FROM names (python by default),
    started in the dialect of that version (a port of one dialect builds its own tables)."""
    command = os.environ.get(SCHEMA_FROM_COMMAND_VARIABLE)
    if command:
        impl = implementations.outside_impl(command, 0)
    else:
        impl = implementations.builtin(os.environ.get(SCHEMA_FROM_VARIABLE) or "python", build=False)
    if impl.unavailable:
        raise RuntimeError(f"{impl.name} cannot build the schema: {impl.unavailable}")
    results.create(conn)
    dialect = next((name for name, built in VERSIONS.items() if built == version), "0.14")
    testee = start_testee(impl, conninfo(conn), label=f"{impl.name} (the schema)", dialect=dialect)
    try:
        testee.request("migrate", timeout=120, version=version)
    finally:
        testee.stop()


def reset(conn: psycopg.Connection[Any], dialect: str = "0.14") -> None:
    """An empty que_jobs at the dialect's version (3; Que 1: 5; Que 2: 7), job ids from 1, no
    registered locker, and an empty results table."""
    version = VERSIONS[dialect]
    # Built again when another row's migrations are asked for than built the table here.
    builder = os.environ.get(SCHEMA_FROM_COMMAND_VARIABLE) or os.environ.get(SCHEMA_FROM_VARIABLE) or "python"
    key = (conninfo(conn), version)
    if db_version(conn) != version or _BUILT.get(key, "python") != builder:
        drop_que(conn)
        migrate(conn, version)
        _BUILT[key] = builder
    conn.execute("DELETE FROM que_jobs")  # not TRUNCATE: it would wait behind any open reader
    if version >= 4:  # Que 1.x/2.x
        conn.execute("DELETE FROM que_lockers")
        conn.execute("ALTER SEQUENCE que_jobs_id_seq RESTART WITH 1")
    else:
        conn.execute("ALTER SEQUENCE que_jobs_job_id_seq RESTART WITH 1")
    results.create(conn)
    results.clear(conn)


def fill(conn: psycopg.Connection[Any], count: int, job_class: str, args_sql: str = "json_build_array(i)") -> None:
    """`count` due jobs of `job_class` written straight into que_jobs; `args_sql` may use i."""
    conn.execute(
        f"INSERT INTO que_jobs (job_class, args) SELECT %s, {args_sql} FROM generate_series(1, %s) AS i",
        [job_class, count],
    )


# pg_locks rows of the connection's own database (advisory locks belong to a database).
THIS_DATABASE = "database = (SELECT oid FROM pg_database WHERE datname = current_database())"


class Lock(NamedTuple):
    """A granted single-bigint advisory lock, as pg_locks shows it."""

    pid: int
    classid: int
    objid: int
    objsubid: int

    @property
    def key(self) -> int:
        return (self.classid << 32) + self.objid


def advisory_locks(conn: psycopg.Connection[Any]) -> list[Lock]:
    """Every granted advisory lock held in `conn`'s database by another session than
    `conn`'s. pg_locks shows the whole server: locks in other databases (another suite
    run, another application) are theirs, and the harness must neither judge nor end them."""
    found = conn.execute(
        f"SELECT pid, classid::bigint, objid::bigint, objsubid FROM pg_locks WHERE {THIS_DATABASE} "
        "AND locktype = 'advisory' AND granted AND pid <> pg_backend_pid() ORDER BY pid, classid, objid"
    ).fetchall()
    return [Lock(*row) for row in found]


def wait_until(condition: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Wait for `condition` to hold (never on the clock alone); its value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_SECONDS)


def start_testee(impl: Implementation, url: str, label: str | None = None, dialect: str = "0.14") -> Testee:
    """A started testee of `impl` on `url`; killed again if its start fails."""
    testee = Testee(impl.command, cwd=impl.cwd, env=impl.env, label=label or impl.name)
    try:
        testee.start(url, results.TABLE, dialect=dialect)
    except BaseException:
        testee.kill()
        raise
    return testee
