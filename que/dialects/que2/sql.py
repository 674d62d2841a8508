"""The Que 1.x/2.x dialect's statements (Ruby Que 2.4.1, schema version 7), one place each.

que.dialects.que0.sql holds the 0.14 dialect's. Placeholders are named (%(name)s); every
statement names `public.que_jobs` as Ruby's do. The module's constants are Que 2.x's (v7);
the functions build the same statements for Ruby Que 1.x's tables (v5: job schema version
1 and no kwargs column; v4: no job_schema_version column either), so the two differ only
where Ruby's do.
"""

from typing import Final

# The job schema version Ruby Que 2.x writes and polls; rows of any other version (1: Ruby
# Que 1.x's, and rows carried over from Que 0.x by migration 4) are never worked by it
# (que-rb/que#429).
JOB_SCHEMA_VERSION: Final = 2


def job_columns(kwargs: bool = True, version: bool = True) -> str:
    """The columns que reads back, in this order (Ruby returns `*`; the values are the same).
    Without a kwargs column (Que 1.x) kwargs read as {}; without job_schema_version (v4) as
    NULL."""
    return (
        "id, queue, priority, run_at, job_class, args::text, "
        + ("kwargs::text" if kwargs else "'{}'::text AS kwargs")
        + ", data::text, error_count, last_error_message, last_error_backtrace, finished_at, expired_at, "
        + ("job_schema_version" if version else "NULL::integer AS job_schema_version")
    )


JOB_COLUMNS: Final = job_columns()


def insert_job(job_schema_version: int | None = JOB_SCHEMA_VERSION, kwargs: bool = True) -> str:
    """Ruby's insert_job: defaults are resolved before the insert (queue 'default', priority
    100), run_at defaults to the transaction's now(), as in Ruby's coalesce."""
    columns = "queue, priority, run_at, job_class, args" + (", kwargs" if kwargs else "") + ", data"
    values = [
        "%(queue)s::text",
        "%(priority)s::smallint",
        "coalesce(%(run_at)s::timestamptz, now())",
        "%(job_class)s::text",
        "%(args)s::jsonb",
        *(["%(kwargs)s::jsonb"] if kwargs else []),
        "%(data)s::jsonb",
    ]
    if job_schema_version is not None:
        columns += ", job_schema_version"
        values.append(str(job_schema_version))
    listed = ",\n  ".join(values)
    returned = job_columns(kwargs, job_schema_version is not None)
    return f"INSERT INTO public.que_jobs ({columns})\nVALUES (\n  {listed}\n)\nRETURNING {returned}"


INSERT_JOB: Final = insert_job()


# Ruby's bulk enqueue runs its insert with this set in the same transaction, unless it was
# asked to notify: the triggers of version 7 then skip both NOTIFYs.
SKIP_NOTIFY: Final = "SET LOCAL que.skip_notify TO true"


def insert_jobs(job_schema_version: int | None = JOB_SCHEMA_VERSION, kwargs: bool = True) -> str:
    """Many jobs in one statement: each element of %(jobs)s (a JSON array) is one job."""
    columns = "queue, priority, run_at, job_class, args" + (", kwargs" if kwargs else "") + ", data"
    selected = "j.queue, j.priority, coalesce(j.run_at, now()), j.job_class, j.args" + (", j.kwargs" if kwargs else "")
    selected += ", j.data"
    if job_schema_version is not None:
        columns += ", job_schema_version"
        selected += f", {job_schema_version}"
    record = "queue text, priority smallint, run_at timestamptz, job_class text, args jsonb" + (
        ", kwargs jsonb" if kwargs else ""
    )
    returned = job_columns(kwargs, job_schema_version is not None)
    return (
        f"INSERT INTO public.que_jobs ({columns})\nSELECT\n  {selected}\n"
        f"FROM jsonb_to_recordset(%(jobs)s::jsonb) AS j(\n  {record}, data jsonb\n)\nRETURNING {returned}"
    )


INSERT_JOBS: Final = insert_jobs()

# -- the locker -------------------------------------------------------------------------

# A locker first removes its own row (a session pid reused) and those of lockers whose
# sessions are gone (a crash), then registers; it deletes its row again as it stops.
CLEAN_LOCKERS: Final = """\
DELETE FROM public.que_lockers
WHERE pid = pg_backend_pid()
   OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = public.que_lockers.pid)"""


def register_locker(version: bool = True) -> str:
    columns = "pid, worker_count, worker_priorities, ruby_pid, ruby_hostname, listening, queues"
    values = (
        "pg_backend_pid(), %(worker_count)s::integer, %(worker_priorities)s::integer[], %(process_id)s::integer,\n"
        "  %(hostname)s::text, %(listening)s::boolean, %(queues)s::text[]"
    )
    if version:
        columns += ", job_schema_version"
        values += ", %(job_schema_version)s::integer"
    return f"INSERT INTO public.que_lockers\n  ({columns})\nVALUES (\n  {values}\n)"


REGISTER_LOCKER: Final = register_locker()

# Where a listening locker is told of jobs due now (que_job_notify picks one locker).
LISTEN_CHANNEL: Final = "que_listener_{pid}"


def poll_jobs(job_schema_version: int | None = JOB_SCHEMA_VERSION) -> str:
    """The poll: jobs of one queue, in (priority, run_at, id) order, tried one by one with
    pg_try_advisory_lock(id), skipping the ones this locker holds. %(thresholds)s are the
    free places' priorities, ascending (32767 for a worker that takes any job), and
    %(counts)s how many jobs each may still take. A locked job uses up the lowest threshold
    at or above its priority that has room; the walk only looks at jobs whose priority a
    threshold with room still allows, and ends when none has room or no job is left. The
    lock of each step is taken once, in the step's select list; the next step reads whether
    it was taken. The rows locked are read by id through the primary key (an IN over the
    walk let the planner join it to a scan of the whole table). The ids locked are noted in
    a session setting, so that the check in a new snapshot (VERIFY_JOBS) can go in the
    same round trip; the result has one row per job locked, or one row of NULLs."""
    version = "" if job_schema_version is None else f"\n      AND j.job_schema_version = {job_schema_version}"
    return f"""\
WITH RECURSIVE walk AS (
  SELECT first.id, first.priority, first.run_at, pg_try_advisory_lock(first.id) AS locked,
         %(counts)s::integer[] AS counts
  FROM (
    SELECT j.id, j.priority, j.run_at
    FROM public.que_jobs AS j
    WHERE j.queue = %(queue)s::text{version}
      AND NOT j.id = ANY(%(held)s::bigint[])
      AND j.priority <= %(ceiling)s::integer
      AND j.run_at <= now()
      AND j.finished_at IS NULL AND j.expired_at IS NULL
    ORDER BY j.priority, j.run_at, j.id
    LIMIT 1
  ) AS first
  UNION ALL
  SELECT following.id, following.priority, following.run_at, pg_try_advisory_lock(following.id), room.counts
  FROM walk
  CROSS JOIN LATERAL (
    SELECT CASE WHEN NOT walk.locked THEN walk.counts ELSE (
      SELECT array_agg(CASE WHEN n = slot.n THEN c - 1 ELSE c END ORDER BY n)
      FROM unnest(walk.counts) WITH ORDINALITY AS x(c, n)
    ) END AS counts
    FROM (
      SELECT min(n) AS n
      FROM unnest(%(thresholds)s::integer[], walk.counts) WITH ORDINALITY AS t(threshold, c, n)
      WHERE threshold >= walk.priority AND c > 0
    ) AS slot
  ) AS room
  CROSS JOIN LATERAL (
    SELECT j.id, j.priority, j.run_at
    FROM public.que_jobs AS j
    WHERE j.queue = %(queue)s::text{version}
      AND NOT j.id = ANY(%(held)s::bigint[])
      AND j.priority <= (
        SELECT max(threshold) FROM unnest(%(thresholds)s::integer[], room.counts) AS t(threshold, c) WHERE c > 0
      )
      AND j.run_at <= now()
      AND j.finished_at IS NULL AND j.expired_at IS NULL
      AND (j.priority, j.run_at, j.id) > (walk.priority, walk.run_at, walk.id)
    ORDER BY j.priority, j.run_at, j.id
    LIMIT 1
  ) AS following
), locked AS MATERIALIZED (
  SELECT {{columns}}
  FROM public.que_jobs
  WHERE id = ANY(ARRAY(SELECT id FROM walk WHERE locked))
), noted AS MATERIALIZED (
  SELECT set_config('que_interop.polled', coalesce(array_agg(id)::text, '{{{{}}}}'), false) FROM locked
)
SELECT locked.* FROM noted LEFT JOIN locked ON true
ORDER BY locked.priority, locked.run_at, locked.id"""


POLL_JOBS: Final = poll_jobs().format(columns=JOB_COLUMNS)

# Jobs a notification named: locked by id, as Ruby's locker does (the ids are read first,
# materialized, so no lock is taken on a row another condition would drop). The ids locked
# are noted for VERIFY_JOBS, as the poll's are.
LOCK_NOTIFIED: Final = f"""\
WITH named AS MATERIALIZED (
  SELECT id FROM public.que_jobs WHERE id = ANY(%(ids)s::bigint[]) AND NOT id = ANY(%(held)s::bigint[])
), locked AS MATERIALIZED (
  SELECT {JOB_COLUMNS}
  FROM named JOIN public.que_jobs USING (id)
  WHERE pg_try_advisory_lock(named.id)
), noted AS MATERIALIZED (
  SELECT set_config('que_interop.notified', coalesce(array_agg(id)::text, '{{}}'), false) FROM locked
)
SELECT locked.* FROM noted LEFT JOIN locked ON true"""

# After locking, in a new snapshot: which of the jobs just locked (by the poll and by the
# notifications, as noted) are still there, unfinished and unexpired (advisory locks do not
# follow MVCC: a job may have been worked meanwhile).
VERIFY_JOBS: Final = """\
SELECT id FROM public.que_jobs
WHERE finished_at IS NULL AND expired_at IS NULL
  AND id = ANY(
    coalesce(nullif(current_setting('que_interop.polled', true), '')::bigint[], '{}')
    || coalesce(nullif(current_setting('que_interop.notified', true), '')::bigint[], '{}')
  )"""

# One result per id: whether this session held its lock.
UNLOCK_JOBS: Final = "SELECT pg_advisory_unlock(v.id) FROM unnest(%(ids)s::bigint[]) AS v(id)"

# Ruby's worker's check_job, for the jobs waiting in the locker's buffer, just before a
# worker may take them: the ids of those still there, unfinished and unexpired; the others
# are released at once, unrun.
CHECK_JOB: Final = """\
WITH checked AS MATERIALIZED (
  SELECT v.id, EXISTS (
    SELECT 1 AS one FROM public.que_jobs WHERE id = v.id AND finished_at IS NULL AND expired_at IS NULL
  ) AS there
  FROM unnest(%(ids)s::bigint[]) AS v(id)
), released AS MATERIALIZED (
  SELECT pg_advisory_unlock(id) FROM checked WHERE NOT there
)
SELECT id FROM checked CROSS JOIN (SELECT count(*) FROM released) AS r
WHERE there"""

# After the outcomes were written (and committed, together or each alone): release
# the jobs whose row is no longer as it was locked (destroyed, finished, expired, or its
# error recorded). A job whose outcome failed is unchanged and keeps its lock until that
# failure is recorded (as Ruby's rescue records a failed destroy).
RELEASE_JOBS: Final = """\
SELECT count(pg_advisory_unlock(k.id)) AS released
FROM unnest(%(ids)s::bigint[], %(error_counts)s::integer[]) AS k(id, error_count)
WHERE NOT EXISTS (
  SELECT 1 FROM public.que_jobs AS j
  WHERE j.id = k.id AND j.error_count = k.error_count AND j.finished_at IS NULL AND j.expired_at IS NULL
)"""

# -- how a job ends: Ruby's statements, each run by the locker's session while it holds the
# job's lock ---------------------------------------------------------------------------------

DESTROY_JOB: Final = "DELETE FROM public.que_jobs WHERE id = %(id)s::bigint"
FINISH_JOB: Final = "UPDATE public.que_jobs SET finished_at = now() WHERE id = %(id)s::bigint"
SET_ERROR: Final = """\
UPDATE public.que_jobs
SET error_count = error_count + 1,
    run_at = now() + %(delay)s::float * '1 second'::interval,
    last_error_message = left(%(message)s::text, 500),
    last_error_backtrace = left(%(backtrace)s::text, 10000)
WHERE id = %(id)s::bigint"""
# Past the retry limit: the error columns are left as the previous failure wrote them.
EXPIRE_JOB: Final = """\
UPDATE public.que_jobs SET error_count = error_count + 1, expired_at = now() WHERE id = %(id)s::bigint"""
# que-interop's fallback when SET_ERROR itself fails on the row's data (an error_count at
# the integer maximum, or a delay past PostgreSQL's last timestamp): Ruby's set_error fails
# too and leaves the job due, so it spins; que records the error without counting and parks
# the job at the latest run_at every Que reader parses.
PARKED_RUN_AT: Final = "9999-12-30 00:00:00+00"
SET_ERROR_UNCOUNTED: Final = f"""\
UPDATE public.que_jobs
SET run_at = '{PARKED_RUN_AT}'::timestamptz,
    last_error_message = left(%(message)s::text, 500),
    last_error_backtrace = left(%(backtrace)s::text, 10000)
WHERE id = %(id)s::bigint"""

# -- inspecting -----------------------------------------------------------------------------

# Ruby Que 2's job_stats: per job class, the jobs neither finished nor expired, how many a
# locker holds (the advisory lock's bigint key is the id), errored, the highest error
# count and the oldest run_at; busiest first.
JOB_STATS: Final = """\
SELECT j.job_class,
       count(*) AS count,
       count(held.id) AS count_working,
       count(*) FILTER (WHERE j.error_count > 0) AS count_errored,
       max(j.error_count) AS highest_error_count,
       min(j.run_at) AS oldest_run_at
FROM public.que_jobs AS j
LEFT JOIN (
  SELECT (classid::bigint << 32) + objid::bigint AS id FROM pg_locks WHERE locktype = 'advisory'
) AS held USING (id)
WHERE j.finished_at IS NULL AND j.expired_at IS NULL
GROUP BY j.job_class
ORDER BY count(*) DESC, j.job_class"""

# How many jobs are in each of Que 2's states (que_determine_job_state), per queue.
JOB_STATES: Final = """\
SELECT queue, public.que_determine_job_state(j) AS state, count(*) AS count
FROM public.que_jobs AS j
GROUP BY 1, 2
ORDER BY 1, 2"""

# Each queue at a glance (as que.dialects.que0.sql.OVERVIEW): expired jobs are the dead
# ones, and finished rows are counted too.
OVERVIEW: Final = """\
SELECT j.queue,
       count(*) FILTER (WHERE held.id IS NULL AND public.que_determine_job_state(j) = 'ready') AS ready,
       count(*) FILTER (WHERE held.id IS NULL AND public.que_determine_job_state(j) = 'scheduled') AS scheduled,
       count(*) FILTER (WHERE held.id IS NOT NULL) AS working,
       count(*) FILTER (WHERE held.id IS NULL AND public.que_determine_job_state(j) = 'errored') AS failing,
       count(*) FILTER (WHERE j.expired_at IS NOT NULL) AS dead,
       count(*) FILTER (WHERE j.finished_at IS NOT NULL AND j.expired_at IS NULL) AS finished,
       extract(epoch FROM now() - min(j.run_at) FILTER (
         WHERE j.run_at <= now() AND j.finished_at IS NULL AND j.expired_at IS NULL AND held.id IS NULL
       ))::float8 AS oldest_due_age
FROM public.que_jobs AS j
LEFT JOIN (
  SELECT DISTINCT (classid::bigint << 32) + objid::bigint AS id FROM pg_locks WHERE locktype = 'advisory'
) AS held ON held.id = j.id
GROUP BY j.queue
ORDER BY j.queue"""

# Every job (of a job_class), oldest id first: what a test helper or a dashboard lists.
ALL_JOBS: Final = f"""\
SELECT {JOB_COLUMNS} FROM public.que_jobs
WHERE %(job_class)s::text IS NULL OR job_class = %(job_class)s::text
ORDER BY id"""

# A page of jobs for the dashboard (as que.dialects.que0.sql.JOB_PAGE), newest id first,
# walking the primary key on id.
JOB_PAGE: Final = f"""\
SELECT {JOB_COLUMNS} FROM public.que_jobs AS j
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s::text)
AND   (%(job_class)s::text IS NULL OR job_class = %(job_class)s::text)
AND   (%(text)s::text IS NULL OR strpos(lower(coalesce(last_error_message, '') || ' ' ||
                                             coalesce(last_error_backtrace, '')), lower(%(text)s::text)) > 0)
AND   (%(before)s::bigint IS NULL OR id < %(before)s::bigint)
AND   (%(state)s::text IS NULL OR public.que_determine_job_state(j) = replace(replace(%(state)s::text,
         'failing', 'errored'), 'dead', 'expired'))
ORDER BY id DESC
LIMIT %(limit)s::int"""

# The registered lockers, each with the jobs its session holds now.
LOCKERS: Final = """\
SELECT l.pid, l.ruby_hostname, l.ruby_pid, l.worker_count, l.worker_priorities, l.queues, l.listening,
       l.job_schema_version,
       (SELECT count(*) FROM pg_locks AS p WHERE p.pid = l.pid AND p.locktype = 'advisory') AS jobs
FROM public.que_lockers AS l
ORDER BY l.pid"""

# The dashboard's actions on one job, never on a job a locker holds (a worker runs it).
_NOT_HELD: Final = """NOT EXISTS (
  SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND (classid::bigint << 32) + objid::bigint = que_jobs.id)"""
RETRY_NOW: Final = f"""\
UPDATE public.que_jobs SET run_at = now(), expired_at = NULL
WHERE id = %(job_id)s::bigint AND finished_at IS NULL AND {_NOT_HELD}"""
DELETE_JOB: Final = f"DELETE FROM public.que_jobs WHERE id = %(job_id)s::bigint AND {_NOT_HELD}"
EXPIRE_NOW: Final = f"""\
UPDATE public.que_jobs SET expired_at = now()
WHERE id = %(job_id)s::bigint AND finished_at IS NULL AND expired_at IS NULL AND {_NOT_HELD}"""

# Ruby Que 2's job_states: each job a locker holds, with the locker's host and process.
WORKER_STATES: Final = """\
SELECT que_jobs.*, pg.ruby_hostname, pg.ruby_pid
FROM public.que_jobs
JOIN (
  SELECT (classid::bigint << 32) + objid::bigint AS id, que_lockers.*
  FROM pg_locks
  JOIN public.que_lockers USING (pid)
  WHERE locktype = 'advisory'
) AS pg USING (id)
ORDER BY que_jobs.id"""

# Jobs expired past their retry limit, oldest first; and making them due again, with
# their error_count and last error kept.
EXPIRED_JOBS: Final = f"""\
SELECT {JOB_COLUMNS} FROM public.que_jobs
WHERE expired_at IS NOT NULL AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)
ORDER BY id"""
RETRY_EXPIRED: Final = """\
UPDATE public.que_jobs SET expired_at = NULL, run_at = now()
WHERE expired_at IS NOT NULL
  AND (%(job_id)s::bigint IS NULL OR id = %(job_id)s::bigint)
  AND (%(queue)s::text IS NULL OR queue = %(queue)s::text)"""

# A locker whose session died lost its jobs' locks with it: it takes them again first, before
# writing any of their outcomes (else another locker has the job, and its run writes it).
RETAKE_JOBS: Final = "SELECT t.id FROM unnest(%(ids)s::bigint[]) AS t(id) WHERE pg_try_advisory_lock(t.id)"
