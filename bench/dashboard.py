"""How fast the dashboard answers on a big table: 1,000,000 jobs on a Que 0.x (v3) and a Que 2
(v7) table of a throwaway server, each page rendered through que.web.Dashboard (the SQL and
the HTML, no network), median of 5. `python -m bench.dashboard [--rows N]`; writes
bench/results/dashboard.json and .md."""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

import que
from harness.postgres import database
from que.web import Dashboard, Request

OUT = Path(__file__).resolve().parent / "results"

FILL = {
    3: """INSERT INTO que_jobs (queue, priority, run_at, job_class, args, error_count, last_error)
SELECT 'q' || (n %% 10), n %% 200,
       now() - (n %% 1000) * interval '1 second' + CASE WHEN n %% 4 = 0 THEN interval '1 day' ELSE interval '0' END,
       'Job' || (n %% 50), json_build_array(n, 'x'),
       CASE WHEN n %% 100 = 0 THEN 3 ELSE 0 END,
       CASE WHEN n %% 100 = 0 THEN 'RuntimeError: failure ' || n ELSE NULL END
FROM generate_series(1, %(rows)s) AS n""",
    7: """INSERT INTO que_jobs (queue, priority, run_at, job_class, args, error_count, last_error_message,
                          expired_at, job_schema_version)
SELECT 'q' || (n %% 10), n %% 200,
       now() - (n %% 1000) * interval '1 second' + CASE WHEN n %% 4 = 0 THEN interval '1 day' ELSE interval '0' END,
       'Job' || (n %% 50), jsonb_build_array(n, 'x'),
       CASE WHEN n %% 100 = 0 THEN 3 ELSE 0 END,
       CASE WHEN n %% 100 = 0 THEN 'RuntimeError: failure ' || n ELSE NULL END,
       CASE WHEN n %% 1000 = 0 THEN now() ELSE NULL END, 2
FROM generate_series(1, %(rows)s) AS n""",
}


def pages(first_id: int, last_id: int) -> dict[str, str]:
    return {
        "overview": "/",
        "jobs, first page": "/jobs",
        "failing, first page": "/jobs?state=failing",
        "one queue, failing": "/jobs?state=failing&queue=q3",
        "error text search": "/jobs?q=failure%2099900",
        "a page 900,000 jobs deep": f"/jobs?before={first_id + (last_id - first_id) // 10}",
        "one job": f"/jobs/{last_id // 2}",
        "lockers": "/lockers",
    }


def timed(dashboard: Dashboard, path: str) -> float:
    target, _, query = path.partition("?")
    request = Request("GET", target, dict(p.split("=", 1) for p in query.split("&") if p), {}, prefix="")
    started = time.perf_counter()
    response = dashboard.handle(request)
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {response.body[:200]!r}")
    return elapsed


def run(rows: int) -> dict[str, Any]:
    found: dict[str, Any] = {"rows": rows, "tables": {}}
    with database(backend="local") as db:
        for version in (3, 7):
            with psycopg.connect(db.url, autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS que_jobs CASCADE")
            with que.Client(db.url) as client:
                client.migrate(0)
                client.migrate(version)
                print(f"v{version}: inserting {rows:,} jobs ...", file=sys.stderr, flush=True)
                with psycopg.connect(db.url, autocommit=True) as conn:
                    conn.execute("ALTER TABLE que_jobs DISABLE TRIGGER USER")
                    conn.execute(FILL[version], {"rows": rows})  # type: ignore[arg-type]
                    conn.execute("ALTER TABLE que_jobs ENABLE TRIGGER USER")
                    conn.execute("ANALYZE que_jobs")
                    key = "id" if version == 7 else "job_id"
                    first, last = conn.execute(f"SELECT min({key}), max({key}) FROM que_jobs").fetchone()  # type: ignore[misc]
                dashboard = Dashboard(client)
                table = {}
                for name, path in pages(first, last).items():
                    times = [timed(dashboard, path) for _ in range(5)]
                    table[name] = round(statistics.median(times) * 1000, 1)
                    print(f"v{version} {name}: {table[name]} ms", file=sys.stderr, flush=True)
                found["tables"][f"v{version}"] = table
    return found


def markdown(found: dict[str, Any]) -> str:
    names = list(next(iter(found["tables"].values())))
    lines = [
        f"# Dashboard on {found['rows']:,} jobs",
        "",
        "Median of 5 renders through que.web.Dashboard (its statement and its HTML), milliseconds.",
        "",
        "| page | " + " | ".join(found["tables"]) + " |",
        "|---" * (len(found["tables"]) + 1) + "|",
    ]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(str(t[name]) for t in found["tables"].values()) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench.dashboard", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    found = run(parser.parse_args().rows)
    OUT.mkdir(exist_ok=True)
    (OUT / "dashboard.json").write_text(json.dumps(found, indent=1) + "\n")
    (OUT / "dashboard.md").write_text(markdown(found))
    print(markdown(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
