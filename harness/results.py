"""The results table the harness owns: one row per job execution, written by testees.

A duplicate execution is two rows for one job_id; what a handler received is in
`received` (re-serialized by the implementation's own JSON library) and `raw` (the
args text as the implementation read it, where it exposes it).
"""

from typing import Any

import psycopg

TABLE = "que_conformance_results"

DDL = f"""\
CREATE TABLE IF NOT EXISTS {TABLE} (
  id        bigserial PRIMARY KEY,
  impl      text NOT NULL,
  pid       integer NOT NULL,
  job_id    bigint NOT NULL,
  job_class text NOT NULL,
  received  text,
  raw       text,
  at        timestamptz NOT NULL DEFAULT clock_timestamp()
)"""


def create(conn: psycopg.Connection[Any]) -> None:
    conn.execute(DDL)


def clear(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"DELETE FROM {TABLE}")
