"""`make bench`'s Que 2 part: each Que 2 row's locker draining no-op jobs from a v7 table,
on a database of its own on the bench's server (a Que 0.x and a Que 2 table cannot share
one). The rows are harness.implementations.BUILTINS2: que's thread and asyncio pools and
the real Ruby Que 2.4.1's Locker (rows that join the Que 2 cells: not the Rails row, an
application that runs ActiveJob jobs only)."""

import re
from collections.abc import Callable
from typing import Any

import psycopg

from bench.cells import fmt, median
from bench.drain import NOOP, interleaved
from harness import implementations, lab, manifests, results
from harness.testee import Testee, Unavailable
from que.dialects import schema

DATABASE = "que_bench_que2"
WORKERS = (1, 4, 8)
QUEUE = "default"


def database(url: str) -> str:
    """A fresh database for the part on the server of `url`, at schema version 7."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    found = re.sub(r"/[^/?]*(\?|$)", rf"/{DATABASE}\1", url, count=1)
    with psycopg.connect(found, autocommit=True) as conn:
        schema.migrate(conn, 7)
        results.create(conn)
    return found


def fill(url: str, count: int) -> None:
    """Exactly `count` due no-op jobs of job schema version 2, the table vacuumed."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM que_jobs")
        conn.execute("DELETE FROM que_lockers")
        conn.execute(
            "INSERT INTO que_jobs (job_class, args, job_schema_version) "
            "SELECT %s, jsonb_build_array(i), 2 FROM generate_series(1, %s) AS i",
            [NOOP, count],
        )
        conn.execute("VACUUM ANALYZE que_jobs")


def drain_once(testee: Testee, url: str, count: int, workers: int) -> float:
    fill(url, count)
    result = testee.request("work", timeout=660, queue=QUEUE, workers=workers, deadline_ms=600_000)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    left = int(row[0]) if row else -1
    if not result.get("drained") or left:
        raise RuntimeError(f"{testee.label}: drain did not finish: {result}, {left} jobs left")
    return count / (float(result["elapsed_ms"]) / 1000)


def run(server_url: str, count: int, runs: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The part's report: drain cells per row and worker count, and unavailable rows."""
    url = database(server_url)
    testees: dict[str, Testee] = {}
    report: dict[str, Any] = {"jobs_per_drain": count, "rows": {}, "unavailable": {}}
    try:
        rows = manifests.rows()
        names = [name for name in implementations.BUILTINS2 if rows[name].joins("que2")]
        for impl in implementations.resolve(names, build=False):
            if impl.unavailable:
                report["unavailable"][impl.name] = impl.unavailable
                continue
            try:
                testee = lab.start_testee(impl, url, dialect="2")
            except Unavailable as error:
                report["unavailable"][impl.name] = str(error)
                continue
            testees[impl.name] = testee
            info = testee.info
            report["rows"][impl.name] = {"version": info.version if info else "?", "drain_jobs_per_s": {}}
        for name, reason in report["unavailable"].items():
            log(f"que2 {name}: unavailable: {reason}")
        for workers in WORKERS:
            cells = interleaved(
                runs,
                {name: lambda t=t, w=workers: drain_once(t, url, count, w) for name, t in testees.items()},
                group=f"que2 drain x{workers}",
            )
            for name, cell in cells.items():
                report["rows"][name]["drain_jobs_per_s"][str(workers)] = cell
                log(f"que2 drain {name} x{workers}: {cell['median']:.0f} jobs/s")
    finally:
        for testee in testees.values():
            testee.stop()
    return report


def section(report: dict[str, Any]) -> list[str]:
    """The Markdown of the part, when it ran."""
    part = report.get("que2")
    if not part or not part.get("rows"):
        return []
    lines = [
        "### The Que 2 dialect: a locker draining a v7 table, jobs/s",
        "",
        f"{part['jobs_per_drain']:,} no-op jobs; each row's own pool through `work` (Ruby: Que::Locker, "
        "workers of any priority).",
        "",
        "| | " + " | ".join(f"{w} workers" for w in WORKERS) + " |",
        "|---|" + "---|" * len(WORKERS),
    ]
    rows = part["rows"]
    for name, data in rows.items():
        cells = [data["drain_jobs_per_s"].get(str(w)) for w in WORKERS]
        lines.append(f"| {name} | " + " | ".join(fmt(median(c)) for c in cells) + " |")
    if "ruby-2.4.1" in rows:
        for name in (n for n in rows if n != "ruby-2.4.1"):
            ratios = []
            for w in WORKERS:
                ours, theirs = (median(rows[n]["drain_jobs_per_s"].get(str(w))) for n in (name, "ruby-2.4.1"))
                ratios.append(f"{ours / theirs:.2f}" if ours and theirs else "-")
            lines.append(f"| {name} / ruby-2.4.1 | " + " | ".join(ratios) + " |")
    lines.append("")
    lines += [f"que2 {name}: unavailable: {reason}" for name, reason in part.get("unavailable", {}).items()]
    return [*lines, ""]
