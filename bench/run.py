"""`make bench`: jobs/s and pickup latency of every implementation, and the server's floor.

A benchmark, not a test: it measures on one throwaway PostgreSQL in one run, so figures
are comparable as ratios on the same (noisy, 2-core) machine. Every implementation runs
as its testee process (conformance/PROTOCOL.md), working the trivial job class
QueConformance::Noop with its own library's worker pool.

- drain: N jobs pre-inserted, then w workers drain them; jobs/s, median of `--runs`
  runs with min and max, for w in 1, 2, 4, 8.
- floor: pgbench runs the same per-job statements (lock_job, check_job, destroy_job,
  unlock) at the same concurrency: what the server can do for this protocol.
- enqueue: jobs/s enqueuing one at a time with each library's single enqueue, and
  Python's batch enqueue_many.
- latency: enqueue-to-handler-start p50/p99 with polling at 0.1 s and the default
  interval, and with the Python worker's LISTEN/NOTIFY wake-up.
Results: bench/results/latest.json, latest.md and latest.png.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

import que
from harness import implementations, lab, results
from harness.postgres import Database, database
from harness.testee import Testee, TesteeFailure, Unavailable

ROOT = Path(__file__).resolve().parent.parent
# Run outputs go to the ignored results/ folder; `make publish` copies them where the README links.
OUT = ROOT / "results" / "bench"
NOOP = "QueConformance::Noop"
ECHO = "QueConformance::Echo"


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        lab.reset(conn)


def fill(url: str, n: int, job_class: str = NOOP) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        lab.fill(conn, n, job_class)
        conn.execute("VACUUM ANALYZE que_jobs")


def remaining(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
        return int(row[0]) if row else -1


# -- drain ------------------------------------------------------------------------------


def drain_once(testee: Testee, url: str, n: int, workers: int, listen: bool = False) -> float:
    reset(url)
    fill(url, n)
    result = testee.request("work", timeout=660, queue="", workers=workers, deadline_ms=600_000, listen=listen)
    left = remaining(url)
    if not result.get("drained") or left:
        raise RuntimeError(f"drain did not finish: {result}, {left} jobs left")
    return n / (float(result["elapsed_ms"]) / 1000)


def summarize(samples: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(samples), 1),
        "min": round(min(samples), 1),
        "max": round(max(samples), 1),
        "runs": len(samples),
    }


# -- the pgbench floor ------------------------------------------------------------------

PGBENCH_SCRIPT = """\
SELECT queue, priority, run_at::text AS run_at, job_id FROM ({lock}) AS locked \\gset
{check}
{destroy}
SELECT pg_advisory_unlock(:job_id::bigint);
"""


def pgbench_script() -> str:
    def plain(statement: str) -> str:
        return (
            statement.replace("%(queue)s", ":queue")
            .replace("%(priority)s", ":priority")
            .replace("%(run_at)s", ":run_at")
            .replace("%(job_id)s", ":job_id")
        )

    lock = que.sql.LOCK_JOB.replace("%(queue)s::text", "''::text")
    return PGBENCH_SCRIPT.format(
        lock=" ".join(lock.split()),
        check=" ".join(plain(que.sql.CHECK_JOB).split()) + ";",
        destroy=" ".join(plain(que.sql.DESTROY_JOB).split()) + ";",
    )


def find_pgbench(db: Database) -> str | None:
    candidates = [shutil.which("pgbench")]
    if db.bindir:
        candidates.append(str(Path(db.bindir, "pgbench")))
    candidates += [str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True)]
    return next((c for c in candidates if c and Path(c).exists()), None)


def pgbench_once(pgbench: str, url: str, n: int, clients: int) -> float:
    reset(url)
    fill(url, n)
    per_client = n // clients
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(pgbench_script())
    try:
        out = subprocess.run(
            [
                pgbench,
                "-n",
                "-M",
                "prepared",
                "-c",
                str(clients),
                "-j",
                str(min(clients, 2)),
                "-t",
                str(per_client),
                "-f",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if not match:
        raise RuntimeError(f"pgbench printed no tps:\n{out}")
    return float(match.group(1))


# -- enqueue ----------------------------------------------------------------------------


def enqueue_rate(testee: Testee, url: str, n: int, batch: bool = False) -> float:
    reset(url)
    result = testee.request("bench_enqueue", timeout=600, count=n, job_class=NOOP, batch=batch)
    return n / (float(result["elapsed_ms"]) / 1000)


# -- pickup latency ---------------------------------------------------------------------


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def latency(testee: Testee, url: str, samples: int, wake_ms: int, listen: bool, spread_s: float) -> dict[str, float]:
    """Enqueue `samples` jobs at random moments over `spread_s` seconds while one worker
    runs; latency = handler start (its results row) - run_at (the enqueue's now())."""
    import random

    reset(url)
    rng = random.Random(7)
    duration_ms = int((spread_s + wake_ms / 1000 + 1) * 1000)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = testee.request(
                "work",
                timeout=duration_ms / 1000 + 60,
                queue="",
                workers=1,
                deadline_ms=duration_ms + 30_000,
                min_duration_ms=duration_ms,
                wake_interval_ms=wake_ms,
                listen=listen,
            )
        except TesteeFailure as error:
            box["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    time.sleep(0.5)  # benchmark pacing: let the pool start before the first job
    enqueued = {}
    with que.Client(url, notify=listen) as client:
        for _ in range(samples):
            time.sleep(rng.uniform(0, 2 * spread_s / samples))
            job = client.enqueue(ECHO)
            enqueued[job.job_id] = job.run_at
    thread.join()
    if "error" in box:
        raise box["error"]
    with psycopg.connect(url) as conn:
        ran = dict(conn.execute(f"SELECT job_id, at FROM {results.TABLE}").fetchall())
    missing = set(enqueued) - set(ran)
    if missing:
        raise RuntimeError(f"{len(missing)} latency jobs never ran")
    values = [(ran[i] - at).total_seconds() * 1000 for i, at in enqueued.items()]
    return {
        "p50": round(percentile(values, 0.5), 2),
        "p99": round(percentile(values, 0.99), 2),
        "samples": len(values),
    }


# -- the run ----------------------------------------------------------------------------


def start_testees(db: Database, names: list[str]) -> tuple[dict[str, Testee], dict[str, str]]:
    started, unavailable = {}, {}
    for impl in implementations.resolve(names, build=True):
        if impl.unavailable:
            unavailable[impl.name] = impl.unavailable
            continue
        testee = Testee(impl.command, cwd=impl.cwd, env=impl.env)
        try:
            testee.start(db.url, results.TABLE)
        except Unavailable as error:
            unavailable[impl.name] = str(error)
            continue
        started[impl.name] = testee
    return started, unavailable


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--impl", default=",".join(implementations.BUILTINS), help="implementations (default: all built-ins)"
    )
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per drain run (default: 20000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per drain cell (default: 3)")
    parser.add_argument("--workers", default="1,2,4,8", help="worker counts (default: 1,2,4,8)")
    parser.add_argument("--enqueue-jobs", type=int, default=5_000, help="jobs per enqueue measurement")
    parser.add_argument("--latency-samples", type=int, default=40, help="jobs per latency measurement")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: drain,floor,enqueue,latency")
    parser.add_argument("--out", default=str(OUT), help="results folder (default: bench/results)")
    options = parser.parse_args(argv)
    names = [n for n in options.impl.split(",") if n]
    counts = [int(w) for w in options.workers.split(",")]
    skip = set(options.skip.split(","))
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "jobs_per_drain": options.jobs,
        "runs": options.runs,
        "implementations": {},
        "unavailable": {},
        "pgbench_floor_jobs_per_s": {},
    }
    with database() as db:
        report["postgres"] = db.version
        log(f"PostgreSQL {db.version} ({db.backend}) at {db.url}")
        reset(db.url)
        testees, unavailable = start_testees(db, names)
        report["unavailable"] = unavailable
        for name, reason in unavailable.items():
            log(f"{name}: unavailable: {reason}")
        try:
            for name, testee in testees.items():
                assert testee.info is not None
                report["implementations"][name] = {
                    "version": testee.info.version,
                    "drain_jobs_per_s": {},
                    "enqueue_jobs_per_s": {},
                    "pickup_latency_ms": {},
                }
            if "drain" not in skip:
                for workers in counts:
                    for name, testee in testees.items():
                        samples = [drain_once(testee, db.url, options.jobs, workers) for _ in range(options.runs)]
                        cell = summarize(samples)
                        report["implementations"][name]["drain_jobs_per_s"][str(workers)] = cell
                        log(
                            f"drain {name} x{workers}: {cell['median']:.0f} jobs/s "
                            f"(min {cell['min']:.0f}, max {cell['max']:.0f})"
                        )
                top = max(counts)
                for name, testee in testees.items():
                    if testee.info and testee.info.can("listen"):
                        samples = [
                            drain_once(testee, db.url, options.jobs, top, listen=True) for _ in range(options.runs)
                        ]
                        cell = summarize(samples)
                        report["implementations"][name]["drain_jobs_per_s_listen"] = {str(top): cell}
                        log(f"drain {name} x{top} with LISTEN/NOTIFY on: {cell['median']:.0f} jobs/s")
            if "floor" not in skip:
                pgbench = find_pgbench(db)
                if pgbench is None:
                    report["pgbench_floor_jobs_per_s"] = {"unavailable": "pgbench not found"}
                else:
                    for workers in counts:
                        samples = [pgbench_once(pgbench, db.url, options.jobs, workers) for _ in range(options.runs)]
                        cell = summarize(samples)
                        report["pgbench_floor_jobs_per_s"][str(workers)] = cell
                        log(f"floor pgbench x{workers}: {cell['median']:.0f} jobs/s")
            if "enqueue" not in skip:
                for name, testee in testees.items():
                    rates = report["implementations"][name]["enqueue_jobs_per_s"]
                    rates["single"] = summarize([enqueue_rate(testee, db.url, options.enqueue_jobs) for _ in range(3)])
                    log(f"enqueue {name} single: {rates['single']['median']:.0f} jobs/s")
                    if testee.info and testee.info.can("enqueue_batch"):
                        batch = [enqueue_rate(testee, db.url, options.jobs, batch=True) for _ in range(3)]
                        rates["batch"] = summarize(batch)
                        log(f"enqueue {name} batch: {rates['batch']['median']:.0f} jobs/s")
            if "latency" not in skip:
                for name, testee in testees.items():
                    modes = report["implementations"][name]["pickup_latency_ms"]
                    default_ms = (
                        int(testee.info.capabilities.get("default_wake_interval_ms", 5000)) if testee.info else 5000
                    )
                    modes["poll_100ms"] = latency(testee, db.url, options.latency_samples, 100, False, 4.0)
                    log(f"latency {name} poll 0.1s: {modes['poll_100ms']}")
                    modes["poll_default"] = latency(testee, db.url, options.latency_samples, default_ms, False, 12.0)
                    log(f"latency {name} poll default ({default_ms} ms): {modes['poll_default']}")
                    if testee.info and testee.info.can("listen"):
                        modes["listen_notify"] = latency(testee, db.url, options.latency_samples, default_ms, True, 4.0)
                        log(f"latency {name} LISTEN/NOTIFY: {modes['listen_notify']}")
        finally:
            for testee in testees.values():
                testee.stop()
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    from bench import charts

    (out / "latest.md").write_text(charts.markdown(report))
    charts.png(report, out / "latest.png")
    print(charts.markdown(report))
    log(f"wrote {out}/latest.json, latest.md, latest.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
