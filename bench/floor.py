"""The floor: what the server itself can do for the Que protocol, per job, at a concurrency.

A Que worker must, for every job, run lock_job (the recursive CTE), check_job, destroy_job
and unlock, with the unlock after the delete has committed, and it needs at least one round
trip per job. The floor does exactly that with no client at all: pgbench (prepared mode,
one pgbench thread per client so pgbench never limits it) calls a PL/pgSQL function once
per job. The call releases the job the session locked in its previous call (whose delete
committed with that call), then runs que's own lock_job, check_job and destroy_job texts
from que.sql. So each job costs one round trip and the server's work, nothing else.

The batched floor does the same with the batched statements (LOCK_JOBS, CHECK_JOBS,
DESTROY_JOBS) and K jobs per call: what the server can do for WorkerPool(batch=K).

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

import que.sql

HELD = "que_bench.held"  # the session setting naming the job(s) locked by the previous call


def _plpgsql(statement: str, names: dict[str, str]) -> str:
    """A que.sql statement with its %(name)s parameters bound to PL/pgSQL expressions."""
    for name, expression in names.items():
        statement = statement.replace(f"%({name})s", expression)
    if "%(" in statement:
        raise ValueError(f"unbound parameter left in {statement!r}")
    return statement


def function_sql() -> str:
    """CREATE FUNCTION que_bench_floor(): one job, the que way, in one call."""
    key = {name: f"claimed.{name}" for name in ("queue", "priority", "run_at", "job_id")}
    lock = _plpgsql(que.sql.LOCK_JOB, {"queue": "''"})
    check = _plpgsql(que.sql.CHECK_JOB, key)
    destroy = _plpgsql(que.sql.DESTROY_JOB, key)
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
    """CREATE FUNCTION que_bench_floor_batch(k): up to k jobs, as WorkerPool(batch=k) claims them."""
    arrays = {"queues": "qs", "priorities": "ps", "run_ats": "rs", "job_ids": "ids"}
    lock = _plpgsql(que.sql.LOCK_JOBS, {"unlock": "held", "queue": "''", "count": "k"})
    check = _plpgsql(que.sql.CHECK_JOBS, arrays)
    destroy = _plpgsql(que.sql.DESTROY_JOBS, arrays)
    return f"""
CREATE OR REPLACE FUNCTION que_bench_floor_batch(k int) RETURNS int LANGUAGE plpgsql AS $floor$
DECLARE
  held bigint[] := coalesce(nullif(current_setting('{HELD}', true), '')::bigint[], '{{}}');
  qs text[]; ps smallint[]; rs timestamptz[]; ids bigint[];
  n int;
BEGIN
  SELECT array_agg(l.queue), array_agg(l.priority), array_agg(l.run_at), array_agg(l.job_id)
    INTO qs, ps, rs, ids FROM ({lock}) AS l;
  PERFORM set_config('{HELD}', coalesce(ids, '{{}}')::text, false);
  IF ids IS NULL THEN
    RETURN 0;
  END IF;
  SELECT count(*) INTO n FROM ({check}) AS c;
  {destroy};
  RETURN n;
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
