"""Where each catalogue term of Ruby Que 0.14.3 lives in que, and how a port author could
get it wrong there: the sites mutation.mutants makes its mutants from."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Site:
    """Where a catalogue term lives in que, and how to change it.

    `where` is one of: `statement:NAME[,NAME...]` (statements of que.dialects.que0's protocol or
    inserts, rebuilt from their que.dialects.que0.sql source), `sql:NAME` (a que.dialects.que0.sql
    string read at call time), `schema:up:N` or `schema:down:N` (que.dialects.schema's migrations),
    `function:module.qualname` (AST operators), `constant:module.NAME` (an integer constant shifted
    by one), `sql2:NAME` (a que.dialects.que2.sql statement, read at call time)."""

    term: str
    where: str
    fragment: str = ""
    operators: tuple[str, ...] = ()
    replacements: tuple[str, ...] = ()
    # "2": a term of Ruby Que 2.4.1's protocol (sql2:NAME, que.dialects.que2.protocol and .finishes), judged by the
    # cells of the Que 2 dialect (conformance/que2/).
    dialect: str = "0.14"


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
    Site("backoff.formula", "function:que.core.retry.retry_delay", operators=("ast",)),
    Site("backoff.count", "function:que.dialects.que0.finishes.failure", operators=("ast",)),
    Site("last_error.cut", "constant:que.core.errors.MESSAGE_LIMIT", operators=("const",)),
    Site("last_error.class", "function:que.core.errors._class_name", operators=("ast",)),
    Site("last_error.join", "function:que.core.errors.last_error_text", operators=("ast",)),
    Site("last_error.blank", "function:que.core.errors.error_parts", operators=("ast",)),
    Site("args.json_dump", "function:que.core.encoding._float_text", operators=("ast",)),
    Site("args.json_dump", "function:que.core.encoding._encode", operators=("ast",)),
    Site("args.json_dump", "function:que.core.encoding._flat", operators=("ast",)),
    Site("args.json_dump", "function:que.core.encoding.encode_args", operators=("ast",)),
    Site(
        "args.json_dump",
        "attribute:que.core.encoding._escape_str",
        replacements=("json.encoder.encode_basestring_ascii",),
    ),
    Site("args.time", "function:que.engine.wire.timestamp_us", operators=("ast",)),
    # que.activejob: the Rails 6.1 envelope's writer and reader (fixtures/catalogue_activejob.json),
    # judged by the ActiveJob cells (conformance/activejob/). The Rails 7.1 format's own code
    # (_decimal's serializer text, _zone_name) no 6.1 cell reaches: the unit tests check it.
    Site("activejob.envelope.keys", "function:que.activejob.envelope.build", operators=("ast",)),
    Site("activejob.envelope.enqueued_at", "function:que.activejob.envelope._stamp", operators=("ast",)),
    Site("activejob.row.priority", "function:que.activejob._row", operators=("ast",)),
    Site("activejob.perform.executions", "function:que.activejob._prepare", operators=("ast",)),
    Site("activejob.perform.arguments", "function:que.activejob.envelope.read", operators=("ast",)),
    Site("activejob.arguments.kwargs", "function:que.activejob.arguments.serialize", operators=("ast",)),
    Site("activejob.arguments.kwargs", "function:que.activejob.arguments.deserialize", operators=("ast",)),
    Site("activejob.arguments.scalars", "function:que.activejob.arguments._value", operators=("ast",)),
    Site("activejob.arguments.scalars", "function:que.activejob.arguments._ruby_decimal_text", operators=("ast",)),
    Site("activejob.arguments.symbol_keys", "function:que.activejob.arguments._hash", operators=("ast",)),
    Site("activejob.serializers.symbol", "function:que.activejob.arguments._object", operators=("ast",)),
    Site("activejob.serializers.time", "function:que.activejob.arguments._time", operators=("ast",)),
    Site("activejob.serializers.duration", "function:que.activejob.arguments._duration", operators=("ast",)),
    Site("activejob.perform.arguments", "function:que.activejob.arguments._read", operators=("ast",)),
    Site("activejob.perform.arguments", "function:que.activejob.arguments._read_object", operators=("ast",)),
    Site("activejob.serializers.time", "function:que.activejob.arguments._read_time", operators=("ast",)),
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
    Site("migration.version", "function:que.dialects.schema.steps", operators=("ast",)),
    Site("db_version.read", "function:que.dialects.schema.version_of", operators=("ast",)),
    # -- the Que 2 dialect (Ruby Que 2.4.1): its locker's poll, lock, check and finish
    *(
        Site(term, where, fragment, operators, replacements, dialect="2")
        for term, where, fragment, operators, replacements in (
            ("que2.poll_jobs.queue", "sql2:POLL_JOBS", "j.queue = %(queue)s::text", ("drop", "case", "trim"), ()),
            ("que2.poll_jobs.version", "sql2:POLL_JOBS", "j.job_schema_version = 2", ("drop", "flip"), ()),
            ("que2.poll_jobs.held", "sql2:POLL_JOBS", "NOT j.id = ANY(%(held)s::bigint[])", ("drop",), ()),
            ("que2.poll_jobs.ceiling", "sql2:POLL_JOBS", "j.priority <= %(ceiling)s::integer", ("drop", "flip"), ()),
            ("que2.poll_jobs.due", "sql2:POLL_JOBS", "j.run_at <= now()", ("drop", "flip", "shift_now"), ()),
            (
                "que2.poll_jobs.unfinished",
                "sql2:POLL_JOBS",
                "j.finished_at IS NULL AND j.expired_at IS NULL",
                (),
                ("j.finished_at IS NULL", "j.expired_at IS NULL"),
            ),
            ("que2.poll_jobs.order", "sql2:POLL_JOBS", "ORDER BY j.priority, j.run_at, j.id", ("order",), ()),
            ("que2.poll_jobs.slot", "sql2:POLL_JOBS", "threshold >= walk.priority", ("flip",), ()),
            ("que2.poll_jobs.room", "sql2:POLL_JOBS", "CASE WHEN n = slot.n THEN c - 1 ELSE c END", (), ("c",)),
            (
                "que2.poll_jobs.lock",
                "sql2:POLL_JOBS",
                "pg_try_advisory_lock(first.id)",
                (),
                ("pg_try_advisory_lock(first.id + 1)", "pg_try_advisory_xact_lock(first.id)"),
            ),
            ("que2.lock_jobs.held", "sql2:LOCK_NOTIFIED", "NOT id = ANY(%(held)s::bigint[])", ("drop",), ()),
            ("que2.lock_jobs.lock", "sql2:LOCK_NOTIFIED", "WHERE pg_try_advisory_lock(named.id)", (), ("WHERE true",)),
            (
                "que2.push_jobs.unfinished",
                "sql2:VERIFY_JOBS",
                "finished_at IS NULL AND expired_at IS NULL\n  AND ",
                (),
                ("finished_at IS NULL\n  AND ", "expired_at IS NULL\n  AND ", ""),
            ),
            (
                "que2.unlock_jobs.key",
                "sql2:UNLOCK_JOBS",
                "pg_advisory_unlock(v.id)",
                (),
                ("pg_advisory_unlock(v.id + 1)",),
            ),
            (
                "que2.check_job.row",
                "sql2:CHECK_JOB",
                "FROM public.que_jobs WHERE id = v.id",
                (),
                ("FROM public.que_jobs WHERE id <> v.id",),
            ),
            (
                "que2.destroy_job.delete",
                "sql2:DESTROY_JOB",
                "DELETE FROM public.que_jobs",
                (),
                ("UPDATE public.que_jobs SET finished_at = now()",),
            ),
            ("que2.finish_job.columns", "sql2:FINISH_JOB", "SET finished_at = now()", (), ("SET expired_at = now()",)),
            ("que2.set_error.count", "sql2:SET_ERROR", "error_count = error_count + 1", ("const",), ()),
            (
                "que2.set_error.run_at",
                "sql2:SET_ERROR",
                "run_at = now() + %(delay)s::float * '1 second'::interval",
                ("shift_now",),
                ("run_at = run_at + %(delay)s::float * '1 second'::interval",),
            ),
            ("que2.set_error.message", "sql2:SET_ERROR", "left(%(message)s::text, 500)", ("const",), ()),
            # set_error.backtrace (left(..., 10000)) has no mutant: no job class of the testee
            # protocol fails with a backtrace that long, so no cell could tell 9,999 from it.
            (
                "que2.expire_job.columns",
                "sql2:EXPIRE_JOB",
                "SET error_count = error_count + 1, expired_at = now()",
                (),
                ("SET expired_at = now()", "SET error_count = error_count + 1, finished_at = now()"),
            ),
            ("que2.insert_job.version", "sql2:INSERT_JOB", "  2\n)\nRETURNING", ("const",), ()),
            (
                "que2.insert_job.run_at",
                "sql2:INSERT_JOB",
                "coalesce(%(run_at)s::timestamptz, now())",
                ("shift_now",),
                (),
            ),
            (
                "que2.register_locker.row",
                "sql2:REGISTER_LOCKER",
                "pg_backend_pid(), %(worker_count)s",
                (),
                ("pg_backend_pid() + 1, %(worker_count)s",),
            ),
            (
                "que2.clean_lockers.dead",
                "sql2:CLEAN_LOCKERS",
                "\n   OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = public.que_lockers.pid)",
                (),
                ("",),
            ),
            ("que2.retry.limit", "function:que.dialects.que2.finishes.outcome", "", ("ast",), ()),
            ("que2.listener.format", "function:que.dialects.que2.protocol.announced", "", ("ast",), ()),
            ("que2.job_buffer.take", "function:que.engine.books.Books.take", "", ("ast",), ()),
            ("que2.job_buffer.take", "function:que.engine.books.Books.at_risk", "", ("ast",), ()),
            ("que2.job_buffer.available", "function:que.engine.books.Books.wanted", "", ("ast",), ()),
            ("que2.job_buffer.available", "function:que.engine.books.Books._waiting", "", ("ast",), ()),
            ("que2.job_buffer.push", "function:que.engine.books.Books._hand_out", "", ("ast",), ()),
            ("que2.job_buffer.push", "function:que.engine.books.Books._push", "", ("ast",), ()),
            ("que2.job_buffer.available", "function:que.engine.books.Books._accept", "", ("ast",), ()),
            ("que2.poll_jobs.ceiling", "function:que.dialects.que2.protocol.poll_params", "", ("ast",), ()),
            ("que2.register_locker.row", "function:que.dialects.que2.protocol.register_params", "", ("ast",), ()),
        )
    ),
)
