"""Where each catalogue term of Ruby Que 0.14.3 lives in que, and how a port author could
get it wrong there: the sites harness.mutation makes its mutants from."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    """Where a catalogue term lives in que, and how to change it.

    `where` is one of: `statement:NAME[,NAME...]` (que._protocol or que._inserts statements, rebuilt from
    their que.sql source), `sql:NAME` (a que.sql string read at call time), `schema:up:N` or
    `schema:down:N` (que.schema's migrations), `function:module.qualname` (AST operators),
    `constant:module.NAME` (an integer constant shifted by one)."""

    term: str
    where: str
    fragment: str = ""
    operators: tuple[str, ...] = ()
    replacements: tuple[str, ...] = ()


WALKS = "statement:CLAIM_JOBS,CLAIM_JOBS_AVOIDING"
ORDER = "ORDER BY priority, run_at, job_id"

SITES: tuple[Site, ...] = (
    # lock_job's walk, in que's claim
    Site(
        "lock_job.lock",
        WALKS,
        "pg_try_advisory_lock((j).job_id)",
        replacements=(
            "pg_try_advisory_lock((j).job_id + 1)",
            "pg_try_advisory_lock(0, (j).job_id::int)",
            "pg_try_advisory_xact_lock((j).job_id)",
        ),
    ),
    Site("lock_job.queue", WALKS, "queue = %(queue)s::text", ("drop", "negate", "case", "trim")),
    Site("lock_job.due", WALKS, "run_at <= now()", ("drop", "flip", "shift_now")),
    Site("lock_job.order", WALKS, ORDER, ("order",)),
    Site("lock_job.first", WALKS, "LIMIT 1\n  ) AS t1\n  UNION ALL", ("const",)),
    Site(
        "lock_job.next",
        WALKS,
        "(priority, run_at, job_id) > (jobs.priority, jobs.run_at, jobs.job_id)",
        ("drop", "flip"),
    ),
    Site("lock_job.step", WALKS, "      LIMIT 1\n    ) AS t1\n  )", ("const",)),
    Site("lock_job.end", WALKS, "WHERE jobs.job_id IS NOT NULL", replacements=("WHERE jobs.job_id IS NULL",)),
    Site(
        "lock_job.columns",
        WALKS,
        "SELECT queue, priority, run_at, job_id, job_class, args, error_count, n",
        replacements=("SELECT job_class AS queue, priority, run_at, job_id, queue AS job_class, args, error_count, n",),
    ),
    Site("lock_job.locked", WALKS, "  WHERE locked\n", replacements=("  WHERE NOT locked\n",)),
    Site("lock_job.one", WALKS, "LIMIT %(count)s::int", replacements=("LIMIT %(count)s::int + 1",)),
    # check_job
    Site("check_job.queue", "statement:CHECK_CLAIMED", "j.queue = k.queue", ("drop",)),
    Site("check_job.priority", "statement:CHECK_CLAIMED", "j.priority = k.priority", ("drop",)),
    Site("check_job.run_at", "statement:CHECK_CLAIMED", "j.run_at = k.run_at", ("drop",)),
    Site("check_job.job_id", "statement:CHECK_CLAIMED", "j.job_id = k.job_id", ("drop",)),
    # set_error
    Site(
        "set_error.count",
        "statement:SET_ERROR",
        "error_count = error_count + 1",
        ("const",),
        ("error_count = 1", "error_count = error_count"),
    ),
    Site(
        "set_error.run_at",
        "statement:SET_ERROR",
        "run_at      = now() + %(delay)s::bigint * '1 second'::interval",
        replacements=(
            "run_at      = run_at + %(delay)s::bigint * '1 second'::interval",
            "run_at      = now() + %(delay)s::bigint * '1 minute'::interval",
            "run_at      = now() + (%(delay)s::bigint + 1) * '1 second'::interval",
            "run_at      = now()",
        ),
    ),
    Site(
        "set_error.last_error",
        "statement:SET_ERROR",
        "last_error  = %(message)s::text",
        replacements=(
            "last_error  = NULL",
            "last_error  = left(%(message)s::text, 100)",
            "last_error  = %(message)s::text, args = '[]'",
            "last_error  = %(message)s::text, job_class = 'QueConformance::Echo'",
        ),
    ),
    Site("set_error.queue", "statement:SET_ERROR", "queue    = %(queue)s::text", ("drop",)),
    Site("set_error.priority", "statement:SET_ERROR", "priority = %(priority)s::smallint", ("drop",)),
    Site("set_error.key_run_at", "statement:SET_ERROR", "run_at   = %(run_at)s::timestamptz", ("drop",)),
    Site("set_error.job_id", "statement:SET_ERROR", "job_id   = %(job_id)s::bigint", ("drop",)),
    # destroy_job
    Site("destroy_job.queue", "statement:DESTROY_JOB", "queue    = %(queue)s::text", ("drop",)),
    Site("destroy_job.priority", "statement:DESTROY_JOB", "priority = %(priority)s::smallint", ("drop",)),
    Site("destroy_job.run_at", "statement:DESTROY_JOB", "run_at   = %(run_at)s::timestamptz", ("drop",)),
    Site("destroy_job.job_id", "statement:DESTROY_JOB", "job_id   = %(job_id)s::bigint", ("drop",)),
    # insert_job
    Site(
        "insert_job.queue",
        "statement:INSERT_JOB",
        "coalesce(%(queue)s, '')::text",
        replacements=("coalesce(%(queue)s, 'default')::text", "lower(coalesce(%(queue)s, ''))::text"),
    ),
    Site(
        "insert_job.priority",
        "statement:INSERT_JOB",
        "coalesce(%(priority)s, 100)::smallint",
        ("const",),
        ("(coalesce(%(priority)s, 100) + 1)::smallint",),
    ),
    Site(
        "insert_job.run_at",
        "statement:INSERT_JOB",
        "coalesce(%(run_at)s, now())::timestamptz",
        replacements=(
            "coalesce(%(run_at)s, now() + interval '1 minute')::timestamptz",
            "date_trunc('second', coalesce(%(run_at)s, now()))::timestamptz",
            "(coalesce(%(run_at)s, now()) + interval '1 microsecond')::timestamptz",
        ),
    ),
    Site(
        "insert_job.job_class",
        "statement:INSERT_JOB",
        "%(job_class)s::text",
        replacements=("lower(%(job_class)s)::text",),
    ),
    Site(
        "insert_job.args",
        "statement:INSERT_JOB",
        "coalesce(%(args)s, '[]')::json",
        replacements=("coalesce(%(args)s, '[]')::jsonb::json", "coalesce(%(args)s, '{}')::json"),
    ),
    Site(
        "insert_job.returning",
        "statement:INSERT_JOB",
        "RETURNING *",
        replacements=("RETURNING *, job_id + 1 AS job_id",),
    ),
    # the unlock, wherever que releases a job
    Site(
        "unlock.key",
        "statement:UNLOCK_JOB",
        "pg_advisory_unlock(%(job_id)s::bigint)",
        replacements=("pg_advisory_unlock(%(job_id)s::bigint + 1)",),
    ),
    Site(
        "unlock.key",
        "statement:RELEASE_JOBS,CLAIM_JOBS,CLAIM_JOBS_AVOIDING",
        "pg_advisory_unlock(k.job_id)",
        replacements=("pg_advisory_unlock(k.job_id + 1)", "k.job_id"),
    ),
    Site("unlock.key", "statement:UNLOCK_JOBS", "pg_advisory_unlock(id)", replacements=("pg_advisory_unlock(id + 1)",)),
    # computed values
    Site("backoff.formula", "function:que.retry.retry_delay", operators=("ast",)),
    Site("backoff.count", "function:que._protocol.Finish.failure", operators=("ast",)),
    Site("last_error.cut", "constant:que.errors.MESSAGE_LIMIT", operators=("const",)),
    Site("last_error.class", "function:que.errors._class_name", operators=("ast",)),
    Site("last_error.join", "function:que.errors.last_error_text", operators=("ast",)),
    Site("args.json_dump", "function:que.encoding._float_text", operators=("ast",)),
    Site("args.json_dump", "function:que.encoding._encode", operators=("ast",)),
    Site("args.json_dump", "function:que.encoding._flat", operators=("ast",)),
    Site("args.json_dump", "function:que.encoding.encode_args", operators=("ast",)),
    Site(
        "args.json_dump",
        "attribute:que.encoding._escape_str",
        replacements=("json.encoder.encode_basestring_ascii",),
    ),
    Site("args.time", "function:que._wire.timestamp_us", operators=("ast",)),
    # job_stats and worker_states
    Site(
        "job_stats.counts",
        "sql:JOB_STATS",
        "count(locks.job_id) AS count_working",
        replacements=("count(*) AS count_working",),
    ),
    Site(
        "job_stats.counts",
        "sql:JOB_STATS",
        "sum((error_count > 0)::int) AS count_errored",
        replacements=("sum((error_count >= 0)::int) AS count_errored",),
    ),
    Site(
        "job_stats.counts",
        "sql:JOB_STATS",
        "max(error_count) AS highest_error_count",
        replacements=("min(error_count) AS highest_error_count",),
    ),
    Site(
        "job_stats.counts",
        "sql:JOB_STATS",
        "min(run_at) AS oldest_run_at",
        replacements=("max(run_at) AS oldest_run_at",),
    ),
    Site(
        "job_stats.locks",
        "sql:JOB_STATS",
        "(classid::bigint << 32) + objid::bigint",
        replacements=("objid::bigint + 1",),
    ),
    Site("job_stats.group", "sql:JOB_STATS", "ORDER BY count(*) DESC", replacements=("ORDER BY count(*)",)),
    Site(
        "worker_states.join",
        "sql:WORKER_STATES",
        "(classid::bigint << 32) + objid::bigint",
        replacements=("objid::bigint + 1",),
    ),
    Site(
        "worker_states.join",
        "sql:WORKER_STATES",
        "pg.pid AS pg_backend_pid",
        replacements=("pg_backend_pid() AS pg_backend_pid",),
    ),
    # migrations and the version
    Site("migration.1", "schema:up:1", "priority    integer     NOT NULL DEFAULT 1", ("const",)),
    Site("migration.1", "schema:up:1", "args        json", replacements=("args        jsonb",)),
    Site(
        "migration.1",
        "schema:up:1",
        "PRIMARY KEY (priority, run_at, job_id)",
        replacements=("PRIMARY KEY (priority, job_id, run_at)",),
    ),
    Site("migration.2", "schema:up:2", "SET DEFAULT 100", ("const",)),
    Site(
        "migration.3",
        "schema:up:3",
        "ALTER COLUMN priority TYPE smallint",
        replacements=("ALTER COLUMN priority TYPE integer",),
    ),
    Site(
        "migration.3",
        "schema:up:3",
        "ADD COLUMN queue TEXT NOT NULL DEFAULT ''",
        replacements=("ADD COLUMN queue TEXT NOT NULL DEFAULT 'default'",),
    ),
    Site(
        "migration.3",
        "schema:up:3",
        "PRIMARY KEY (queue, priority, run_at, job_id)",
        replacements=("PRIMARY KEY (priority, queue, run_at, job_id)",),
    ),
    Site("migration.down", "schema:down:2", "SET DEFAULT 1", ("const",)),
    Site(
        "migration.down",
        "schema:down:3",
        "ALTER COLUMN priority TYPE integer",
        replacements=("ALTER COLUMN priority TYPE bigint",),
    ),
    Site("migration.version", "function:que.schema.steps", operators=("ast",)),
    Site("db_version.read", "function:que.schema.version_of", operators=("ast",)),
)
