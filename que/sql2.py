"""The Que 2 dialect's statements (Ruby Que 2.4.1, schema version 7), one place each.

que.sql holds the 0.14 dialect's. Placeholders are named (%(name)s); every statement names
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
