"""Handlers for CLI tests: a job that announces itself in the database, then waits."""

import os
import time

import psycopg


def _mark(label: str) -> None:
    with psycopg.connect(os.environ["QUE_DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS cli_marks (label text)")
        conn.execute("INSERT INTO cli_marks VALUES (%s)", [label])


def sleepy(seconds: float) -> None:
    _mark("started")
    time.sleep(seconds)  # the job's own work, interrupted by nothing
    _mark("finished")


handlers = {"Sleepy": sleepy}
not_a_mapping = 5
