"""The Que 2 dialect's statements (Ruby Que 2.4.1, schema version 7), one place each.

que.dialects.que0.sql holds the 0.14 dialect's. Placeholders are named (%(name)s); every statement names
`public.que_jobs` as Ruby's do.
"""

from typing import Final

# The job schema version Ruby Que 2.x writes and polls; rows of any other version (1: rows
# carried over from Que 0.x by migration 4) are never worked by it (que-rb/que#429).
JOB_SCHEMA_VERSION: Final = 2

# The columns que reads back, in this order (Ruby returns `*`; the values are the same).
JOB_COLUMNS: Final = (
    "id, queue, priority, run_at, job_class, args::text, kwargs::text, data::text, error_count, "
    "last_error_message, last_error_backtrace, finished_at, expired_at, job_schema_version"
)

# Ruby's insert_job: defaults are resolved before the insert (queue 'default', priority
# 100), run_at defaults to the transaction's now(), as in Ruby's coalesce.
INSERT_JOB: Final = f"""\
INSERT INTO public.que_jobs (queue, priority, run_at, job_class, args, kwargs, data, job_schema_version)
VALUES (
  %(queue)s::text,
  %(priority)s::smallint,
  coalesce(%(run_at)s::timestamptz, now()),
  %(job_class)s::text,
  %(args)s::jsonb,
  %(kwargs)s::jsonb,
  %(data)s::jsonb,
  {JOB_SCHEMA_VERSION}
)
RETURNING {JOB_COLUMNS}"""

# Ruby's bulk enqueue runs its insert with this set in the same transaction, unless it was
# asked to notify: the triggers of version 7 then skip both NOTIFYs.
SKIP_NOTIFY: Final = "SET LOCAL que.skip_notify TO true"

# Many jobs in one statement: each element of %(jobs)s is one job's fields.
INSERT_JOBS: Final = f"""\
INSERT INTO public.que_jobs (queue, priority, run_at, job_class, args, kwargs, data, job_schema_version)
SELECT
  j.queue, j.priority, coalesce(j.run_at, now()), j.job_class, j.args, j.kwargs, j.data, {JOB_SCHEMA_VERSION}
FROM jsonb_to_recordset(%(jobs)s::jsonb) AS j(
  queue text, priority smallint, run_at timestamptz, job_class text, args jsonb, kwargs jsonb, data jsonb
)
RETURNING {JOB_COLUMNS}"""

# -- the locker -------------------------------------------------------------------------

# A locker first removes its own row (a session pid reused) and those of lockers whose
# sessions are gone (a crash), then registers; it deletes its row again as it stops.
CLEAN_LOCKERS: Final = """\
DELETE FROM public.que_lockers
WHERE pid = pg_backend_pid()
   OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = public.que_lockers.pid)"""

REGISTER_LOCKER: Final = """\
INSERT INTO public.que_lockers
  (pid, worker_count, worker_priorities, ruby_pid, ruby_hostname, listening, queues, job_schema_version)
VALUES (
  pg_backend_pid(), %(worker_count)s::integer, %(worker_priorities)s::integer[], %(process_id)s::integer,
  %(hostname)s::text, %(listening)s::boolean, %(queues)s::text[], %(job_schema_version)s::integer
)"""

# Where a listening locker is told of jobs due now (que_job_notify picks one locker).
LISTEN_CHANNEL: Final = "que_listener_{pid}"

# The poll: jobs of one queue, in (priority, run_at, id) order, tried one by one with
# pg_try_advisory_lock(id), skipping the ones this locker holds. %(thresholds)s are the
# free workers' priorities, ascending (32767 for a worker that takes any job), and
# %(counts)s how many jobs each may still take. A locked job uses up the lowest threshold
# at or above its priority that has room; the walk only looks at jobs whose priority a
# threshold with room still allows, and ends when none has room or no job is left. The lock
# of each step is taken once, in the step's select list; the next step reads whether it
# was taken.
POLL_JOBS: Final = f"""\
WITH RECURSIVE walk AS (
  SELECT first.id, first.priority, first.run_at, pg_try_advisory_lock(first.id) AS locked,
         %(counts)s::integer[] AS counts
  FROM (
    SELECT j.id, j.priority, j.run_at
    FROM public.que_jobs AS j
    WHERE j.queue = %(queue)s::text
      AND j.job_schema_version = {JOB_SCHEMA_VERSION}
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
    WHERE j.queue = %(queue)s::text
      AND j.job_schema_version = {JOB_SCHEMA_VERSION}
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
)
SELECT {JOB_COLUMNS}
FROM public.que_jobs
WHERE id IN (SELECT id FROM walk WHERE locked)
ORDER BY priority, run_at, id"""

# Jobs a notification named: locked by id, as Ruby's locker does (the ids are read first,
# materialized, so no lock is taken on a row another condition would drop).
LOCK_NOTIFIED: Final = f"""\
WITH named AS MATERIALIZED (
  SELECT id FROM public.que_jobs WHERE id = ANY(%(ids)s::bigint[]) AND NOT id = ANY(%(held)s::bigint[])
)
SELECT {JOB_COLUMNS}
FROM named JOIN public.que_jobs USING (id)
WHERE pg_try_advisory_lock(named.id)"""

# After locking, in a new snapshot: which of the locked jobs are still there, unfinished
# and unexpired (advisory locks do not follow MVCC: a job may have been worked meanwhile).
VERIFY_JOBS: Final = """\
SELECT id FROM public.que_jobs
WHERE finished_at IS NULL AND expired_at IS NULL AND id = ANY(%(ids)s::bigint[])"""

# One result per id: whether this session held its lock.
UNLOCK_JOBS: Final = "SELECT pg_advisory_unlock(v.id) FROM unnest(%(ids)s::bigint[]) AS v(id)"

# -- a worker, on a connection of its own -------------------------------------------------

CHECK_JOB: Final = "SELECT 1 AS one FROM public.que_jobs WHERE id = %(id)s::bigint"
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
