"""Ruby Que 1.x/2.x's migrations 4..7 (the Que 2 dialect's schema), up and down.

These build the catalogue Ruby Que 2.4.1's `Que.migrate!(version: 7)` builds: the same
tables, columns in the same order, constraints, indexes, triggers and their names, so a
database migrated here can be handed to a Rails app on Que 2.x and the reverse. The
trigger functions are written here, not copied: they pick the same locker and send the
same payloads, byte for byte (row_to_json, which writes no spaces), as Ruby's.

Migration 4 also rewrites the rows a Que 0.x table holds, as Ruby's does: queue '' becomes
'default', args that are not an array are wrapped in one, and last_error is split at its
first newline into last_error_message (500 characters at most) and last_error_backtrace
(10,000). Going down joins them again and deletes the finished and expired rows, which the
0.x schema has no way to hold.
"""

from typing import Final

# Both triggers write timestamps as Ruby's listener expects them: UTC, microseconds, "Z".
_UTC = """to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""

# One slot per worker of every listening locker that works the job's queue (and, from
# version 5, its job schema version), shuffled by md5 of (locker pid, slot number); the
# job's id modulo the number of slots picks one. So wake-ups spread over the lockers in
# proportion to their workers, and each job wakes exactly one locker.
_JOB_NOTIFY = """\
CREATE FUNCTION que_job_notify() RETURNS trigger AS $$
  DECLARE
    chosen integer;
    payload json;
  BEGIN
    IF NEW.run_at IS NOT NULL AND NEW.run_at > now() THEN
      RETURN null;  -- due later: found by a poll, not announced
    END IF;

    SELECT slot.pid INTO chosen
    FROM (
      SELECT
        locker.pid,
        row_number() OVER (ORDER BY md5(locker.pid::text || n::text)) - 1 AS position,
        count(*) OVER () AS total
      FROM public.que_lockers AS locker, generate_series(1, locker.worker_count) AS n
      WHERE locker.listening
        AND locker.queues @> ARRAY[NEW.queue]{version_match}
    ) AS slot
    WHERE slot.position = NEW.id % slot.total;

    IF chosen IS NULL THEN
      RETURN null;
    END IF;

    -- Only what a locker needs to sort and lock the job: a NOTIFY payload has a size
    -- limit, and the locker reads the row itself once it holds the lock.
    SELECT row_to_json(announced) INTO payload
    FROM (
      SELECT
        'job_available' AS message_type,
        NEW.queue AS queue,
        NEW.priority AS priority,
        NEW.id AS id,
        {run_at} AS run_at
    ) AS announced;

    PERFORM pg_notify('que_listener_' || chosen::text, payload::text);
    RETURN null;
  END
$$
LANGUAGE plpgsql"""

_JOB_NOTIFY_TRIGGER = """\
CREATE TRIGGER que_job_notify
  AFTER INSERT ON que_jobs
  FOR EACH ROW{when}
  EXECUTE PROCEDURE public.que_job_notify()"""

_STATE_NOTIFY_TRIGGER = """\
CREATE TRIGGER que_state_notify
  AFTER INSERT OR UPDATE OR DELETE ON que_jobs
  FOR EACH ROW{when}
  EXECUTE PROCEDURE public.que_state_notify()"""

_VERSION_MATCH = "\n        AND locker.job_schema_version = NEW.job_schema_version"

_SKIP_NOTIFY = "\n  WHEN (NOT coalesce(current_setting('que.skip_notify', true), '') = 'true')"

# ActiveJob's wrapper names the real class in its first argument.
_WRAPPER = "'ActiveJob::QueueAdapters::QueAdapter::JobWrapper'"

_UP_4 = f"""\
ALTER TABLE que_jobs SET (fillfactor = 90);
ALTER TABLE que_jobs RENAME COLUMN last_error TO last_error_message;
ALTER TABLE que_jobs RENAME COLUMN job_id TO id;
ALTER TABLE que_jobs RENAME COLUMN args TO old_args;
ALTER SEQUENCE que_jobs_job_id_seq RENAME TO que_jobs_id_seq;

ALTER TABLE que_jobs
  ADD COLUMN last_error_backtrace text,
  ADD COLUMN finished_at timestamptz,
  ADD COLUMN expired_at timestamptz,
  ADD COLUMN args jsonb,
  ADD COLUMN data jsonb;

ALTER TABLE que_jobs DROP CONSTRAINT que_jobs_pkey;

-- The rows of a 0.x table, in the 2.x shape.
UPDATE que_jobs SET
  queue = CASE WHEN queue = '' THEN 'default' ELSE queue END,
  last_error_backtrace = CASE
    WHEN last_error_message ~ '\\n' THEN left(regexp_replace(last_error_message, '^[^\\n]+\\n', ''), 10000)
  END,
  last_error_message = left(substring(last_error_message FROM '^[^\\n]+'), 500),
  args = CASE
    WHEN json_typeof(old_args) = 'array' THEN old_args::jsonb
    ELSE jsonb_build_array(old_args)
  END,
  data = '{{}}'::jsonb;

CREATE FUNCTION que_validate_tags(tags_array jsonb) RETURNS boolean AS $$
  SELECT bool_and(jsonb_typeof(value) = 'string' AND char_length(value::text) <= 100)
  FROM jsonb_array_elements(tags_array)
$$
LANGUAGE SQL;

CREATE INDEX que_poll_idx ON que_jobs (queue, priority, run_at, id)
  WHERE (finished_at IS NULL AND expired_at IS NULL);
CREATE INDEX que_jobs_data_gin_idx ON que_jobs USING gin (data jsonb_path_ops);
CREATE INDEX que_jobs_args_gin_idx ON que_jobs USING gin (args jsonb_path_ops);

ALTER TABLE que_jobs
  ADD PRIMARY KEY (id),
  DROP COLUMN old_args,
  ALTER COLUMN queue SET DEFAULT 'default',
  ALTER COLUMN args SET DEFAULT '[]',
  ALTER COLUMN args SET NOT NULL,
  ALTER COLUMN data SET DEFAULT '{{}}',
  ALTER COLUMN data SET NOT NULL,
  ADD CONSTRAINT queue_length CHECK (char_length(queue) <= 100),
  ADD CONSTRAINT job_class_length CHECK (
    char_length(CASE job_class WHEN {_WRAPPER} THEN args->0->>'job_class' ELSE job_class END) <= 200
  ),
  ADD CONSTRAINT valid_args CHECK ((jsonb_typeof(args) = 'array')),
  ADD CONSTRAINT valid_data CHECK (
    (jsonb_typeof(data) = 'object')
    AND (
      (NOT data ? 'tags')
      OR (
        (jsonb_typeof(data->'tags') = 'array')
        AND (jsonb_array_length(data->'tags') <= 5)
        AND (public.que_validate_tags(data->'tags'))
      )
    )
  ),
  ADD CONSTRAINT error_length CHECK (
    (char_length(last_error_message) <= 500) AND (char_length(last_error_backtrace) <= 10000)
  );

-- Room for settings that should not need a migration each (Ruby's words, not used by it yet).
CREATE TABLE que_values (
  key text PRIMARY KEY,
  value jsonb NOT NULL DEFAULT '{{}}',
  CONSTRAINT valid_value CHECK (jsonb_typeof(value) = 'object')
)
WITH (FILLFACTOR=90);

-- One row per running locker, keyed by its session's backend pid; unlogged, since a
-- crash ends every session it lists.
CREATE UNLOGGED TABLE que_lockers (
  pid               integer NOT NULL CONSTRAINT que_lockers_pkey PRIMARY KEY,
  worker_count      integer NOT NULL,
  worker_priorities integer[] NOT NULL,
  ruby_pid          integer NOT NULL,
  ruby_hostname     text    NOT NULL,
  queues            text[]  NOT NULL,
  listening         boolean NOT NULL,
  CONSTRAINT valid_worker_priorities CHECK (
    (array_ndims(worker_priorities) = 1) AND (array_length(worker_priorities, 1) IS NOT NULL)
  ),
  CONSTRAINT valid_queues CHECK ((array_ndims(queues) = 1) AND (array_length(queues, 1) IS NOT NULL))
);

{_JOB_NOTIFY.format(version_match="", run_at=_UTC.format("NEW.run_at"))};

{_JOB_NOTIFY_TRIGGER.format(when="")};

CREATE FUNCTION que_determine_job_state(job public.que_jobs) RETURNS text AS $$
  SELECT CASE
    WHEN job.expired_at IS NOT NULL THEN 'expired'
    WHEN job.finished_at IS NOT NULL THEN 'finished'
    WHEN job.error_count > 0 THEN 'errored'
    WHEN job.run_at > CURRENT_TIMESTAMP THEN 'scheduled'
    ELSE 'ready'
  END
$$
LANGUAGE SQL;

CREATE FUNCTION que_state_notify() RETURNS trigger AS $$
  DECLARE
    changed record;
    before_state text;
    after_state text;
    payload json;
  BEGIN
    IF TG_OP = 'INSERT' THEN
      before_state := 'nonexistent';
      after_state := public.que_determine_job_state(NEW);
      changed := NEW;
    ELSIF TG_OP = 'DELETE' THEN
      before_state := public.que_determine_job_state(OLD);
      after_state := 'nonexistent';
      changed := OLD;
    ELSIF TG_OP = 'UPDATE' THEN
      before_state := public.que_determine_job_state(OLD);
      after_state := public.que_determine_job_state(NEW);
      IF before_state = after_state THEN
        RETURN null;  -- an update within one state is not news
      END IF;
      changed := NEW;
    ELSE
      RAISE EXCEPTION 'Unrecognized TG_OP: %', TG_OP;
    END IF;

    SELECT row_to_json(announced) INTO payload
    FROM (
      SELECT
        'job_change' AS message_type,
        changed.id AS id,
        changed.queue AS queue,
        coalesce(changed.data->'tags', '[]'::jsonb) AS tags,
        {_UTC.format("changed.run_at")} AS run_at,
        {_UTC.format("now()")} AS time,
        CASE changed.job_class
          WHEN {_WRAPPER} THEN coalesce(changed.args->0->>'job_class', {_WRAPPER})
          ELSE changed.job_class
        END AS job_class,
        before_state AS previous_state,
        after_state AS current_state
    ) AS announced;

    PERFORM pg_notify('que_state', payload::text);
    RETURN null;
  END
$$
LANGUAGE plpgsql;

{_STATE_NOTIFY_TRIGGER.format(when="")}"""

_DOWN_4 = """\
ALTER TABLE que_jobs RESET (fillfactor);

ALTER TABLE que_jobs DROP CONSTRAINT que_jobs_pkey;
DROP INDEX que_poll_idx;
DROP INDEX que_jobs_data_gin_idx;

DROP TRIGGER que_job_notify ON que_jobs;
DROP FUNCTION que_job_notify();
DROP TRIGGER que_state_notify ON que_jobs;
DROP FUNCTION que_state_notify();
DROP FUNCTION que_determine_job_state(que_jobs);
DROP TABLE que_lockers;

DROP TABLE que_values;
DROP INDEX que_jobs_args_gin_idx;

ALTER TABLE que_jobs RENAME COLUMN id TO job_id;
ALTER SEQUENCE que_jobs_id_seq RENAME TO que_jobs_job_id_seq;
ALTER TABLE que_jobs RENAME COLUMN last_error_message TO last_error;

-- The 0.x schema cannot hold a finished or expired job.
DELETE FROM que_jobs WHERE finished_at IS NOT NULL OR expired_at IS NOT NULL;

ALTER TABLE que_jobs
  DROP CONSTRAINT error_length,
  DROP CONSTRAINT queue_length,
  DROP CONSTRAINT job_class_length,
  DROP CONSTRAINT valid_args,
  DROP COLUMN finished_at,
  DROP COLUMN expired_at,
  ALTER args TYPE json USING args::json;

UPDATE que_jobs SET
  queue = CASE WHEN queue = 'default' THEN '' ELSE queue END,
  last_error = last_error || coalesce(E'\\n' || last_error_backtrace, '');

ALTER TABLE que_jobs
  DROP COLUMN data,
  DROP COLUMN last_error_backtrace,
  ALTER COLUMN args SET NOT NULL,
  ALTER COLUMN args SET DEFAULT '[]',
  ALTER COLUMN queue SET DEFAULT '';

ALTER TABLE que_jobs ADD PRIMARY KEY (queue, priority, run_at, job_id);

DROP FUNCTION que_validate_tags(jsonb)"""

_UP_5 = f"""\
DROP TRIGGER que_job_notify ON que_jobs;
DROP FUNCTION que_job_notify();

ALTER TABLE que_jobs ADD COLUMN job_schema_version integer DEFAULT 1;
ALTER TABLE que_lockers ADD COLUMN job_schema_version integer DEFAULT 1;

CREATE INDEX que_poll_idx_with_job_schema_version ON que_jobs (job_schema_version, queue, priority, run_at, id)
  WHERE (finished_at IS NULL AND expired_at IS NULL);

{_JOB_NOTIFY.format(version_match=_VERSION_MATCH, run_at=_UTC.format("NEW.run_at"))};

{_JOB_NOTIFY_TRIGGER.format(when="")}"""

_DOWN_5 = f"""\
DROP TRIGGER que_job_notify ON que_jobs;
DROP FUNCTION que_job_notify();

DROP INDEX que_poll_idx_with_job_schema_version;

ALTER TABLE que_jobs DROP COLUMN job_schema_version;
ALTER TABLE que_lockers DROP COLUMN job_schema_version;

{_JOB_NOTIFY.format(version_match="", run_at=_UTC.format("NEW.run_at"))};

{_JOB_NOTIFY_TRIGGER.format(when="")}"""

_UP_6 = """\
DROP INDEX que_poll_idx;
ALTER INDEX que_poll_idx_with_job_schema_version RENAME TO que_poll_idx;

ALTER TABLE que_jobs ALTER COLUMN job_schema_version DROP DEFAULT;
ALTER TABLE que_jobs ALTER COLUMN job_schema_version SET NOT NULL;

ALTER TABLE que_jobs ADD COLUMN kwargs jsonb NOT NULL DEFAULT '{}';
CREATE INDEX que_jobs_kwargs_gin_idx ON que_jobs USING gin (kwargs jsonb_path_ops)"""

_DOWN_6 = """\
DROP INDEX que_jobs_kwargs_gin_idx;
ALTER TABLE que_jobs DROP COLUMN kwargs;

ALTER INDEX que_poll_idx RENAME TO que_poll_idx_with_job_schema_version;
CREATE INDEX que_poll_idx ON que_jobs (queue, priority, run_at, id)
  WHERE (finished_at IS NULL AND expired_at IS NULL);

ALTER TABLE que_jobs ALTER COLUMN job_schema_version SET DEFAULT 1;
ALTER TABLE que_jobs ALTER COLUMN job_schema_version DROP NOT NULL"""

# Version 7: a transaction that sets que.skip_notify (a bulk enqueue) wakes nobody.
_UP_7 = f"""\
DROP TRIGGER que_job_notify ON que_jobs;
{_JOB_NOTIFY_TRIGGER.format(when=_SKIP_NOTIFY)};

DROP TRIGGER que_state_notify ON que_jobs;
{_STATE_NOTIFY_TRIGGER.format(when=_SKIP_NOTIFY)}"""

_DOWN_7 = f"""\
DROP TRIGGER que_job_notify ON que_jobs;
{_JOB_NOTIFY_TRIGGER.format(when="")};

DROP TRIGGER que_state_notify ON que_jobs;
{_STATE_NOTIFY_TRIGGER.format(when="")}"""

UP: Final[dict[int, str]] = {4: _UP_4, 5: _UP_5, 6: _UP_6, 7: _UP_7}
DOWN: Final[dict[int, str]] = {4: _DOWN_4, 5: _DOWN_5, 6: _DOWN_6, 7: _DOWN_7}
