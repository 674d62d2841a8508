"""Every SQL statement of the Que 0.x protocol, once, under the names Ruby Que gives them.

The job statements (lock_job, check_job, set_error, insert_job, destroy_job, unlock_job)
are the protocol itself: Ruby Que 0.14.3 and que-go run the same text against the same
table, so a Python worker must too. Placeholders are psycopg's named form; psycopg sends
them to the server as $1, $2, ... (a name used twice becomes one parameter), so the server
sees the upstream statement. Changing one of them changes which jobs are locked,
in which order, or which row an error is written to. The conformance suite compares
their effects against the other implementations.
"""

from typing import Final

# The recursive CTE walks jobs in (priority, run_at, job_id) order and tries the
# session-level advisory lock on each in turn, stopping at the first it gets. Jobs
# locked by other sessions are skipped. last_error is deliberately not selected.
LOCK_JOB: Final = """\
WITH RECURSIVE jobs AS (
  SELECT (j).*, pg_try_advisory_lock((j).job_id) AS locked
  FROM (
    SELECT j
    FROM que_jobs AS j
    WHERE queue = %(queue)s::text
    AND run_at <= now()
    ORDER BY priority, run_at, job_id
    LIMIT 1
  ) AS t1
  UNION ALL (
    SELECT (j).*, pg_try_advisory_lock((j).job_id) AS locked
    FROM (
      SELECT (
        SELECT j
        FROM que_jobs AS j
        WHERE queue = %(queue)s::text
        AND run_at <= now()
        AND (priority, run_at, job_id) > (jobs.priority, jobs.run_at, jobs.job_id)
        ORDER BY priority, run_at, job_id
        LIMIT 1
      ) AS j
      FROM jobs
      WHERE jobs.job_id IS NOT NULL
      LIMIT 1
    ) AS t1
  )
)
SELECT queue, priority, run_at, job_id, job_class, args, error_count
FROM jobs
WHERE locked
LIMIT 1"""

# The columns lock_job returns, in order.
LOCKED_COLUMNS: Final = ("queue", "priority", "run_at", "job_id", "job_class", "args", "error_count")

# Run in its own statement after lock_job: a job another worker deleted after
# lock_job's snapshot was taken still looks present to lock_job, and this fresh
# snapshot is what tells the two apart.
CHECK_JOB: Final = """\
SELECT 1 AS one
FROM   que_jobs
WHERE  queue    = %(queue)s::text
AND    priority = %(priority)s::smallint
AND    run_at   = %(run_at)s::timestamptz
AND    job_id   = %(job_id)s::bigint"""

# Each key is looked up by itself (a LATERAL subquery with LIMIT is never turned into a
# join), so the primary key's index serves it however big que_jobs is.
_BY_KEY: Final = """\
LATERAL (
  SELECT job_id FROM que_jobs AS j
  WHERE j.queue = k.queue AND j.priority = k.priority AND j.run_at = k.run_at AND j.job_id = k.job_id
  LIMIT 1
) AS present"""

_RELEASE: Final = f"""\
SELECT count(pg_advisory_unlock(k.job_id)) AS released
FROM unnest(%(queues)s::text[], %(priorities)s::smallint[], %(run_ats)s::timestamptz[], %(job_ids)s::bigint[])
     AS k(queue, priority, run_at, job_id)
LEFT JOIN {_BY_KEY} ON true
WHERE present.job_id IS NULL"""

# que-interop's claim, for its own sessions: Ruby's walk (LOCK_JOB) taking up to `count`
# jobs, each its own session advisory lock, in the walk's order. Its rows, its order and its
# lock are LOCK_JOB's; it adds:
# - `released`: the locks of jobs this session finished in earlier transactions (their
#   deletes or errors committed before this statement) are released, but only where the
#   job's whole key is gone: a job whose finish failed keeps its lock until its failure is
#   recorded. (Releasing a lock in the transaction that deletes the job would let another
#   worker run it twice.)
# - the walk skips the job_ids in `skip`, the jobs this session already holds: a session
#   advisory lock is re-entrant, so the walk would take them a second time. Jobs other
#   sessions hold are skipped by pg_try_advisory_lock, as in Ruby's walk; CLAIM_JOBS_AVOIDING
#   also skips, without trying them, the jobs whose locks pg_locks shows held when the
#   statement starts (a job freed meanwhile waits for the next claim). Trying a held job's
#   lock costs one step of the walk each; skipping it in the index scan costs next to nothing.
# - `n` counts the steps of the walk, so the caller sees how many held jobs it walked past
#   (and `avoided`, how many locks pg_locks showed), and can pick the statement to use next.
# - `noted`: the claimed keys are kept in a session setting (JSON, whose timestamptz text
#   does not depend on DateStyle or TimeZone), so that check_job for all of them can be sent
#   in the same round trip, before this result is back.
# The result has one row per claimed job, in the walk's order, or one row of NULLs.
_HELD_ELSEWHERE: Final = """\
  SELECT (classid::bigint << 32) | objid::bigint AS job_id
  FROM pg_locks
  WHERE locktype = 'advisory' AND objsubid = 1 AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""


def _claim(avoiding: bool) -> str:
    skip = "AND job_id <> ALL(%(skip)s::bigint[])"
    if avoiding:
        skip += "\n    AND job_id NOT IN (SELECT job_id FROM held)"
    held = f"held AS MATERIALIZED (\n{_HELD_ELSEWHERE}\n), " if avoiding else ""
    avoided = "(SELECT count(*) FROM held)" if avoiding else "0"
    return f"""\
WITH RECURSIVE {held}released AS MATERIALIZED (
{_RELEASE}
), jobs AS (
  SELECT (j).*, pg_try_advisory_lock((j).job_id) AS locked, 1 AS n
  FROM (
    SELECT j
    FROM que_jobs AS j
    WHERE queue = %(queue)s::text
    AND run_at <= now()
    {skip}
    ORDER BY priority, run_at, job_id
    LIMIT 1
  ) AS t1
  UNION ALL (
    SELECT (j).*, pg_try_advisory_lock((j).job_id) AS locked, t1.n + 1
    FROM (
      SELECT (
        SELECT j
        FROM que_jobs AS j
        WHERE queue = %(queue)s::text
        AND run_at <= now()
        {skip}
        AND (priority, run_at, job_id) > (jobs.priority, jobs.run_at, jobs.job_id)
        ORDER BY priority, run_at, job_id
        LIMIT 1
      ) AS j, jobs.n
      FROM jobs
      WHERE jobs.job_id IS NOT NULL
      LIMIT 1
    ) AS t1
  )
), claimed AS MATERIALIZED (
  SELECT queue, priority, run_at, job_id, job_class, args, error_count, n
  FROM jobs
  WHERE locked
  LIMIT %(count)s::int
), noted AS MATERIALIZED (
  SELECT set_config('que_interop.claimed',
                    coalesce(json_agg(json_build_array(queue, priority, run_at, job_id))::text, '[]'), false)
  FROM claimed
)
SELECT claimed.*, {avoided} AS avoided FROM released CROSS JOIN noted LEFT JOIN claimed ON true
ORDER BY claimed.priority, claimed.run_at, claimed.job_id"""


CLAIM_JOBS: Final = _claim(avoiding=False)
CLAIM_JOBS_AVOIDING: Final = _claim(avoiding=True)

# check_job for every job CLAIM_JOBS claimed, by its whole key, in the statement after it: a
# new snapshot (que's sessions run READ COMMITTED, where each statement takes one), so a job
# another worker finished after the claim's snapshot was taken is not there.
CHECK_CLAIMED: Final = f"""\
SELECT present.job_id
FROM (
  SELECT e->>0 AS queue, (e->>1)::smallint AS priority, (e->>2)::timestamptz AS run_at, (e->>3)::bigint AS job_id
  FROM json_array_elements(current_setting('que_interop.claimed', true)::json) AS e
) AS k
CROSS JOIN {_BY_KEY}"""

# A locker's check of the jobs waiting in its buffer, by their whole key, in a new snapshot:
# the ids of those still there; the others (deleted, or rescheduled, while they waited) are
# released at once, unrun, as check_job after lock_job would find them gone.
CHECK_HELD: Final = f"""\
WITH checked AS MATERIALIZED (
  SELECT k.job_id, present.job_id IS NOT NULL AS there
  FROM unnest(%(queues)s::text[], %(priorities)s::smallint[], %(run_ats)s::timestamptz[], %(job_ids)s::bigint[])
       AS k(queue, priority, run_at, job_id)
  LEFT JOIN {_BY_KEY} ON true
), released AS MATERIALIZED (
  SELECT pg_advisory_unlock(job_id) FROM checked WHERE NOT there
)
SELECT job_id FROM checked CROSS JOIN (SELECT count(*) FROM released) AS r
WHERE there"""

# The release of CLAIM_JOBS on its own: unlock the finished jobs whose whole key is gone.
RELEASE_JOBS: Final = _RELEASE

UNLOCK_JOBS: Final = "SELECT count(pg_advisory_unlock(id)) FROM unnest(%(job_ids)s::bigint[]) AS t(id)"

# A locker whose session died lost its jobs' locks with it; a job one of its workers was
# still running is written only if its lock can be taken again (else another worker has it).
RETAKE_JOBS: Final = "SELECT t.id FROM unnest(%(job_ids)s::bigint[]) AS t(id) WHERE pg_try_advisory_lock(t.id)"

# Ruby 0.14.3's six-parameter form: the count is incremented in SQL, the delay in
# whole seconds is computed by the caller from the new count.
SET_ERROR: Final = """\
UPDATE que_jobs
SET error_count = error_count + 1,
    run_at      = now() + %(delay)s::bigint * '1 second'::interval,
    last_error  = %(message)s::text
WHERE queue    = %(queue)s::text
AND   priority = %(priority)s::smallint
AND   run_at   = %(run_at)s::timestamptz
AND   job_id   = %(job_id)s::bigint"""

# que-interop's retry limit (opt in): a job whose retries ran out is kept for manual
# intervention with this run_at. Every Que worker's lock_job asks for run_at <= now(), so
# Ruby, Go and Python workers all leave it alone; and unlike 'infinity' (que-interop 0.2's
# marker) every Que 0.x reader can parse it: Ruby's Time.parse in job_stats and
# worker_states, que-go's and gue's drivers, que-web. Midnight UTC on the last day of year
# 9999 is in year 9999 in every time zone (offsets stay under 16 hours), so no reader
# meets a five-digit year. Every run_at from here on counts as set aside.
DEAD_RUN_AT: Final = "9999-12-31 00:00:00+00"
# A job set aside by the retry limit (run_at at the marker, or past it: que-interop 0.2's infinity).
IS_DEAD: Final = f"run_at >= '{DEAD_RUN_AT}'::timestamptz"

SET_ERROR_DEAD: Final = f"""\
UPDATE que_jobs
SET error_count = error_count + 1,
    run_at      = '{DEAD_RUN_AT}',
    last_error  = %(message)s::text
WHERE queue    = %(queue)s::text
AND   priority = %(priority)s::smallint
AND   run_at   = %(run_at)s::timestamptz
AND   job_id   = %(job_id)s::bigint"""

# que-interop's fallback when SET_ERROR itself fails on a row's data: an error_count at
# the integer maximum, or a delay that takes run_at past PostgreSQL's last timestamp (about
# 1,743 failures). Ruby's set_error fails there too and leaves the job due at once, so it
# runs again and again ahead of the jobs behind it; que parks it at PARKED_RUN_AT instead,
# the latest run_at every Que reader parses (see DEAD_RUN_AT), counted as not set aside,
# with its error recorded and error_count as it was.
PARKED_RUN_AT: Final = "9999-12-30 00:00:00+00"

SET_ERROR_UNCOUNTED: Final = f"""\
UPDATE que_jobs
SET run_at     = CASE WHEN %(dead)s::bool THEN '{DEAD_RUN_AT}'::timestamptz
                      ELSE '{PARKED_RUN_AT}'::timestamptz END,
    last_error = %(message)s::text
WHERE queue    = %(queue)s::text
AND   priority = %(priority)s::smallint
AND   run_at   = %(run_at)s::timestamptz
AND   job_id   = %(job_id)s::bigint"""

INSERT_JOB: Final = """\
INSERT INTO que_jobs
(queue, priority, run_at, job_class, args)
VALUES
(coalesce(%(queue)s, '')::text, coalesce(%(priority)s, 100)::smallint,
 coalesce(%(run_at)s, now())::timestamptz, %(job_class)s::text, coalesce(%(args)s, '[]')::json)
RETURNING *"""

# LISTEN/NOTIFY wake-up (que-interop's addition; Ruby Que 0.x and que-go only poll and
# ignore it). The payload is the job's queue; the notification is sent when the insert
# commits, so a woken worker always finds the job.
NOTIFY_CHANNEL: Final = "que_interop_jobs"

INSERT_JOB_NOTIFY: Final = f"""\
WITH job AS (
{INSERT_JOB}
)
SELECT job.* FROM job, LATERAL (SELECT pg_notify('{NOTIFY_CHANNEL}', job.queue)) AS notified"""

LISTEN: Final = f"LISTEN {NOTIFY_CHANNEL}"

# The batch form of INSERT_JOB: the same defaults applied element by element, in one
# statement and one round trip. WITH ORDINALITY keeps the caller's order, and job_ids are
# drawn in that order, so the result (job_id and the stored run_at of each job, by job_id)
# lines up with the jobs as given; everything else was sent by the caller and is not sent back.
_INSERT_JOBS_ROWS: Final = """\
INSERT INTO que_jobs
(queue, priority, run_at, job_class, args)
SELECT coalesce(q, '')::text, coalesce(p, 100)::smallint, coalesce(r, now())::timestamptz,
       c::text, coalesce(a, '[]')::json
FROM unnest(%(queues)s::text[], %(priorities)s::smallint[], %(run_ats)s::timestamptz[],
            %(job_classes)s::text[], %(args)s::text[])
     WITH ORDINALITY AS t(q, p, r, c, a, n)
ORDER BY n
RETURNING job_id, run_at, queue"""

INSERT_JOBS: Final = f"""\
WITH jobs AS (
{_INSERT_JOBS_ROWS}
)
SELECT job_id, run_at FROM jobs ORDER BY job_id"""

# One statement, so that on a caller's autocommit connection the jobs and their
# notifications commit together, and no transaction block is needed. The notifying CTE
# runs only if the result needs it: a plain join with its one-row count does (a LEFT JOIN
# whose columns go unused is removed by the planner, and then nobody is notified).
INSERT_JOBS_NOTIFY: Final = f"""\
WITH jobs AS (
{_INSERT_JOBS_ROWS}
), notified AS (
  SELECT pg_notify('{NOTIFY_CHANNEL}', q) FROM (SELECT DISTINCT queue FROM jobs) AS t(q)
)
SELECT jobs.job_id, jobs.run_at FROM jobs, (SELECT count(*) FROM notified) AS n
ORDER BY jobs.job_id"""

# Big batches go by COPY, which the server writes several times faster than INSERT ...
# SELECT. COPY cannot return job_ids or fill defaults row by row, so the ids are drawn
# first, in order, from the table's own sequence, with the transaction's now() for the
# jobs given no run_at (what the column default would have written). The sequence is
# looked up once (the scalar subquery), not once per row.
RESERVE_JOB_IDS: Final = """\
SELECT nextval((SELECT pg_get_serial_sequence('que_jobs', 'job_id'))), now()
FROM generate_series(1, %(count)s::int)"""

COPY_JOBS: Final = "COPY que_jobs (queue, priority, run_at, job_id, job_class, args) FROM STDIN (FORMAT BINARY)"

NOTIFY_QUEUES: Final = f"SELECT pg_notify('{NOTIFY_CHANNEL}', q) FROM unnest(%(queues)s::text[]) AS t(q)"

DESTROY_JOB: Final = """\
DELETE FROM que_jobs
WHERE queue    = %(queue)s::text
AND   priority = %(priority)s::smallint
AND   run_at   = %(run_at)s::timestamptz
AND   job_id   = %(job_id)s::bigint"""

UNLOCK_JOB: Final = "SELECT pg_advisory_unlock(%(job_id)s::bigint)"

JOB_STATS: Final = """\
SELECT queue, job_class, count(*) AS count,
       count(locks.job_id) AS count_working,
       sum((error_count > 0)::int) AS count_errored,
       max(error_count) AS highest_error_count,
       min(run_at) AS oldest_run_at
FROM que_jobs
LEFT JOIN (
  SELECT (classid::bigint << 32) + objid::bigint AS job_id
  FROM pg_locks
  WHERE locktype = 'advisory'
) locks USING (job_id)
GROUP BY queue, job_class
ORDER BY count(*) DESC"""

# How many jobs each queue has in each state: set aside by the retry limit (dead), failed
# and to be retried (errored), due later (scheduled) or due now (ready); the states of Que
# 2's que_determine_job_state, for a table that keeps no finished or expired rows.
JOB_STATES: Final = f"""\
SELECT queue,
       CASE WHEN {IS_DEAD} THEN 'dead'
            WHEN error_count > 0 THEN 'errored'
            WHEN run_at > now() THEN 'scheduled'
            ELSE 'ready' END AS state,
       count(*) AS count
FROM que_jobs
GROUP BY 1, 2
ORDER BY 1, 2"""

# The PostgreSQL >= 9.6 form (Ruby's worker_states_96).
WORKER_STATES: Final = """\
SELECT que_jobs.*,
       pg.pid AS pg_backend_pid,
       pg.state AS pg_state,
       pg.state_change AS pg_state_changed_at,
       pg.query AS pg_last_query,
       pg.query_start AS pg_last_query_started_at,
       pg.xact_start AS pg_transaction_started_at,
       pg.wait_event_type IS NOT NULL AS pg_waiting_on_lock
FROM que_jobs
JOIN (
  SELECT (classid::bigint << 32) + objid::bigint AS job_id, pg_stat_activity.*
  FROM pg_locks
  JOIN pg_stat_activity USING (pid)
  WHERE locktype = 'advisory'
) pg USING (job_id)"""

DB_VERSION: Final = """\
SELECT relname, description
FROM pg_class
LEFT JOIN pg_description ON pg_description.objoid = pg_class.oid
WHERE relname = 'que_jobs'"""

CLEAR: Final = "DELETE FROM que_jobs"

# The jobs set aside by the retry limit, and making them due again (error_count kept).
DEAD_JOBS: Final = f"""\
SELECT * FROM que_jobs
WHERE {IS_DEAD}
AND   (%(queue)s::text IS NULL OR queue = %(queue)s::text)
ORDER BY job_id"""

RETRY_DEAD: Final = f"""\
UPDATE que_jobs SET run_at = now()
WHERE {IS_DEAD}
AND   (%(job_id)s::bigint IS NULL OR job_id = %(job_id)s::bigint)
AND   (%(queue)s::text IS NULL OR queue = %(queue)s::text)"""

# Jobs set aside by que-interop 0.2 have run_at 'infinity', which Ruby's readers cannot
# parse: give them the marker every reader can.
REPAIR_DEAD: Final = f"UPDATE que_jobs SET run_at = '{DEAD_RUN_AT}' WHERE run_at = 'infinity'"
