"""Jobs set aside by the retry limit, read by Ruby Que 0.14.3: its job_stats and
worker_states parse every row's run_at (Time.parse), and its worker walks past them. A run_at
of 'infinity' (que-interop 0.2's marker) broke all three; the marker now is a date every Que
0.x reader parses. Needs the real Ruby Que (the gem, or QUE_RUBY_LIB)."""

import json
import os
import subprocess

import psycopg

import que
from chaos.lab import Lab, Row

READERS = """
require 'json'
require 'pg'
require 'que'
Que.connection = PG::Connection.new(ENV.fetch('QUE_CHAOS_DATABASE_URL'))
stats = Que.job_stats.map { |row| [row['job_class'], row['count'], row['oldest_run_at'].year] }
states = Que.worker_states.map { |row| [row['job_id'], row['run_at'].year] }
puts JSON.generate({stats: stats, states: states, event: Que::Job.work[:event]})
"""


def ruby_command() -> list[str]:
    lib = os.environ.get("QUE_RUBY_LIB", "")
    return ["ruby", *(["-I", lib] if lib else []), "-e", READERS]


def run(lab: Lab) -> Row:
    row = Row("dead jobs read by Ruby Que", ["python", "ruby"])
    lab.reset()

    def broken(*args: object) -> None:
        raise RuntimeError("still broken")

    with que.Client(lab.url) as client:
        for n in range(5):
            client.enqueue("Broken", n)
        worker = que.Worker(client, {"Broken": broken}, max_retries=0)
        while worker.work_one():
            pass
        dead = client.dead_jobs()
    with psycopg.connect(lab.url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", [dead[0].job_id])  # so worker_states lists a dead row
        done = subprocess.run(
            ruby_command(), capture_output=True, text=True, env={**os.environ, "QUE_CHAOS_DATABASE_URL": lab.url}
        )
        holder.execute("SELECT pg_advisory_unlock_all()")
    row.jobs = 5
    row.completed = 5 if len(dead) == 5 else len(dead)
    row.lost = 5 - len(dead)
    row.locks_left = lab.locks()
    if done.returncode != 0:
        row.notes.append(f"Ruby Que failed on the dead rows: {done.stderr.strip().splitlines()[:1]}")
        return row
    seen = json.loads(done.stdout)
    row.notes.append(
        f"5 jobs set aside after 0 retries; Ruby's job_stats {seen['stats']}, worker_states {seen['states']}, "
        f"Job.work {seen['event']}"
    )
    row.ok = (
        seen["stats"] == [["Broken", 5, 9999]]
        and seen["states"] == [[dead[0].job_id, 9999]]
        and seen["event"] == "job_unavailable"
        and row.lost == 0
        and row.locks_left == 0
    )
    return row
