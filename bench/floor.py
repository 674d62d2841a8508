"""The floor: what the server itself can do for the Que protocol, per job, at a concurrency.

A Que worker must, for every job, run lock_job (the recursive CTE), check_job, destroy_job
and unlock, with the unlock after the delete has committed, and it needs at least one round
trip per job. The floor does exactly that with no client at all: pgbench (prepared mode,
one pgbench thread per client so pgbench never limits it) calls a PL/pgSQL function once
per job. The call releases the job the session locked in its previous call (whose delete
committed with that call), then runs que's own lock_job, check_job and destroy_job texts
from que.dialects.que0.sql. So each job costs one round trip and the server's work, nothing else.

The batched floor does the same with que's claim (CLAIM_JOBS, CHECK_CLAIMED, a delete per
job) and K jobs per call: what the server can do for a session claiming K jobs at a time,
a worker of WorkerPool(batch=K), or a locker (one session for all the pool's threads).

An implementation above its floor means the floor is wrong (it is not measuring what it
says), and the report warns about it.
"""

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

import que.dialects.que0.sql

HELD = "que_bench.held"  # the session setting naming the job(s) locked by the previous call


def _plpgsql(statement: str, names: dict[str, str]) -> str:
    """A que.dialects.que0.sql statement with its %(name)s parameters bound to PL/pgSQL expressions."""
    for name, expression in names.items():
        statement = statement.replace(f"%({name})s", expression)
    if "%(" in statement:
        raise ValueError(f"unbound parameter left in {statement!r}")
    return statement


def function_sql() -> str:
    """CREATE FUNCTION que_bench_floor(): one job, the que way, in one call."""
    key = {name: f"claimed.{name}" for name in ("queue", "priority", "run_at", "job_id")}
    lock = _plpgsql(que.dialects.que0.sql.LOCK_JOB, {"queue": "''"})
    check = _plpgsql(que.dialects.que0.sql.CHECK_JOB, key)
    destroy = _plpgsql(que.dialects.que0.sql.DESTROY_JOB, key)
    return f"""
CREATE OR REPLACE FUNCTION que_bench_floor() RETURNS int LANGUAGE plpgsql AS $floor$
DECLARE
  claimed record;
  held text := nullif(current_setting('{HELD}', true), '');
BEGIN
  IF held IS NOT NULL THEN
    PERFORM pg_advisory_unlock(held::bigint);
    PERFORM set_config('{HELD}', '', false);
  END IF;
  SELECT l.queue, l.priority, l.run_at, l.job_id INTO claimed FROM ({lock}) AS l;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;
  PERFORM set_config('{HELD}', claimed.job_id::text, false);
  PERFORM 1 FROM ({check}) AS c;
  IF NOT FOUND THEN
    RETURN 0;
  END IF;
  {destroy};
  RETURN 1;
END
$floor$"""


def batch_function_sql() -> str:
    """CREATE FUNCTION que_bench_floor_batch(k): up to k jobs, claimed as que's claim does
    (sql.CLAIM_JOBS, then CHECK_CLAIMED) and deleted on their whole keys, in one statement
    (the floor's bound: one delete per job costs the server more). The previous call's
    jobs, deleted when that call committed, are released by this call's claim."""
    keys = {"queues": "qs", "priorities": "ps", "run_ats": "rs", "job_ids": "ids"}
    claim = _plpgsql(que.dialects.que0.sql.CLAIM_JOBS, {**keys, "queue": "''", "count": "k", "skip": "'{}'::bigint[]"})
    check = que.dialects.que0.sql.CHECK_CLAIMED
    return f"""
CREATE OR REPLACE FUNCTION que_bench_floor_batch(k int) RETURNS int LANGUAGE plpgsql AS $floor$
DECLARE
  held json := coalesce(nullif(current_setting('{HELD}', true), ''), '[]')::json;
  qs text[]; ps smallint[]; rs timestamptz[]; ids bigint[];
  done int;
BEGIN
  SELECT coalesce(array_agg(e->>0), '{{}}'), coalesce(array_agg((e->>1)::smallint), '{{}}'),
         coalesce(array_agg((e->>2)::timestamptz), '{{}}'), coalesce(array_agg((e->>3)::bigint), '{{}}')
    INTO qs, ps, rs, ids FROM json_array_elements(held) AS e;
  PERFORM 1 FROM ({claim}) AS l;
  PERFORM set_config('{HELD}', current_setting('que_interop.claimed'), false);
  DELETE FROM que_jobs AS j
  USING json_array_elements(current_setting('que_interop.claimed')::json) AS e
  WHERE (j.queue, j.priority, j.run_at, j.job_id)
      = (e->>0, (e->>1)::smallint, (e->>2)::timestamptz, (e->>3)::bigint)
  AND j.job_id IN ({check});
  GET DIAGNOSTICS done = ROW_COUNT;
  RETURN done;
END
$floor$"""


def install(conn: psycopg.Connection[object]) -> None:
    conn.execute(function_sql().encode())
    conn.execute(batch_function_sql().encode())


def find_pgbench(bindir: str | None) -> str | None:
    import shutil

    candidates = [str(Path(bindir, "pgbench")) if bindir else None, shutil.which("pgbench")]
    candidates += [str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)]
    return next((c for c in candidates if c and Path(c).exists()), None)


def run(pgbench: str, url: str, jobs: int, clients: int, batch: int = 1) -> tuple[int, float]:
    """Run the floor over `jobs` queued jobs: (jobs done, seconds). pgbench runs enough calls
    for every job; a call that finds nothing (every due job locked by others) does none."""
    call = "SELECT que_bench_floor();" if batch == 1 else f"SELECT que_bench_floor_batch({batch});"
    per_client = -(-jobs // (clients * batch))
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(call + "\n")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            before = _count(conn)
            started = time.perf_counter()
            out = subprocess.run(
                [
                    pgbench,
                    "-n",
                    "-M",
                    "prepared",
                    "-c",
                    str(clients),
                    "-j",
                    str(clients),
                    "-t",
                    str(per_client),
                    "-f",
                    script.name,
                    url,
                ],
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - started
            after = _count(conn)
    finally:
        os.unlink(script.name)
    if out.returncode != 0:
        raise RuntimeError(f"pgbench failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out.stdout)
    if match:  # pgbench's own clock, connection set-up excluded
        elapsed = per_client * clients / float(match.group(1))
    return before - after, elapsed


def _count(conn: psycopg.Connection[object]) -> int:
    row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    return int(row[0]) if row else 0
