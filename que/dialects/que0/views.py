"""What a dashboard, metrics and the test helpers read and change in a Que 0.x que_jobs
beside Ruby's own statements (que.dialects.que0.sql): each queue at a glance, pages of jobs,
the sessions at work, and the dashboard's actions on one job. Ruby Que 0.14 sends none of
these, so no catalogue term names them."""

from typing import Final

from que.dialects.que0.sql import IS_DEAD

# Each queue at a glance, for dashboards, metrics and health probes: its jobs by state (a
# job whose lock a session holds is working, whatever else it is), and how long its oldest
# due job has waited (seconds, NULL when none is due). Que 0.x keeps no finished rows.
OVERVIEW: Final = f"""\
SELECT j.queue,
       count(*) FILTER (WHERE held.id IS NULL AND NOT ({IS_DEAD}) AND error_count = 0 AND run_at <= now()) AS ready,
       count(*) FILTER (WHERE held.id IS NULL AND NOT ({IS_DEAD}) AND error_count = 0 AND run_at > now()) AS scheduled,
       count(*) FILTER (WHERE held.id IS NOT NULL) AS working,
       count(*) FILTER (WHERE held.id IS NULL AND NOT ({IS_DEAD}) AND error_count > 0) AS failing,
       count(*) FILTER (WHERE held.id IS NULL AND {IS_DEAD}) AS dead,
       0::bigint AS finished,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now() AND held.id IS NULL))::float8
         AS oldest_due_age
FROM que_jobs AS j
LEFT JOIN (
  SELECT DISTINCT (classid::bigint << 32) + objid::bigint AS id FROM pg_locks WHERE locktype = 'advisory'
) AS held ON held.id = j.job_id
GROUP BY j.queue
ORDER BY j.queue"""

# Every job (of a job_class), oldest id first: what a test helper or a dashboard lists.
ALL_JOBS: Final = """\
SELECT * FROM que_jobs
WHERE %(job_class)s::text IS NULL OR job_class = %(job_class)s::text
ORDER BY job_id"""

# A page of jobs for the dashboard: filtered by state, queue, job_class and error text,
# newest first, after the job_id the previous page ended at (keyset pagination: each page
# costs the same however deep; a Que 0.x table's only index leads with queue, so the walk
# is cheap with a queue filter and a scan of the rows before the page without one).
_STATE: Final = f"""CASE %(state)s::text
  WHEN 'ready' THEN error_count = 0 AND run_at <= now()
  WHEN 'scheduled' THEN error_count = 0 AND run_at > now()
  WHEN 'failing' THEN error_count > 0 AND NOT ({IS_DEAD})
  WHEN 'dead' THEN {IS_DEAD}
  ELSE true END"""
JOB_PAGE: Final = f"""\
SELECT * FROM que_jobs
WHERE (%(queue)s::text IS NULL OR queue = %(queue)s::text)
AND   (%(job_class)s::text IS NULL OR job_class = %(job_class)s::text)
AND   (%(text)s::text IS NULL OR strpos(lower(last_error), lower(%(text)s::text)) > 0)
AND   (%(before)s::bigint IS NULL OR job_id < %(before)s::bigint)
AND   {_STATE}
ORDER BY job_id DESC
LIMIT %(limit)s::int"""

# The sessions working jobs: Que 0.x has no registry of workers, so each session holding a
# job's advisory lock, with how many and what it is.
LOCKERS: Final = """\
SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, a.backend_start, a.state,
       count(*) AS jobs
FROM pg_locks AS l JOIN pg_stat_activity AS a USING (pid)
WHERE l.locktype = 'advisory'
GROUP BY a.pid, a.application_name, a.client_addr, a.backend_start, a.state
ORDER BY a.pid"""

# The dashboard's actions on one job, never on a job a session holds (a worker runs it).
_NOT_HELD: Final = """NOT EXISTS (
  SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND (classid::bigint << 32) + objid::bigint = que_jobs.job_id)"""
RETRY_NOW: Final = f"UPDATE que_jobs SET run_at = now() WHERE job_id = %(job_id)s::bigint AND {_NOT_HELD}"
DELETE_JOB: Final = f"DELETE FROM que_jobs WHERE job_id = %(job_id)s::bigint AND {_NOT_HELD}"
