"""`make bench`: throughput, floor, peers, enqueue, latency, cost growth and memory of every
implementation, on one throwaway PostgreSQL in one run.

A benchmark, not a test: figures are comparable as ratios within one run on the same
(noisy) machine. Every implementation runs as its testee process (conformance/PROTOCOL.md)
working the trivial job class QueConformance::Noop with its own library's worker pool.

- drain: N no-op jobs pre-inserted, then w workers (1 to 128) drain them; jobs/s, median of
  `--runs` runs taken in rounds (one per implementation), so drift touches all alike.
- floor: the server's own limit for the protocol at each w (bench/floor.py): pgbench calls
  a function that does lock_job, check_job, destroy_job and the unlock for one job per round
  trip, and its batched form does K jobs per call. An implementation above its floor means
  the floor is wrong, and the report says so.
- peers: PgQueuer and procrastinate (bench/peers/) drain the same no-op jobs on the same
  server through their own fast paths: the price of Que interoperability.
- enqueue: jobs/s with each library's single enqueue, and batch enqueue where there is one.
- latency: enqueue-to-handler-start p50/p99 polling at 0.1 s, at the default interval, and
  with LISTEN/NOTIFY where the library has it.
- growth: the rate against the backlog queued (1e4, 1e5, 1e6) and against jobs held locked
  at the head of the queue (0, 10, 100, 1000, 10000) (bench/growth.py).
- memory: peak RSS and server sessions per worker of each pool at 8, 32 and 128 workers,
  every worker busy (bench/memory.py).
- kills: jobs run twice per lost session, from the latest `make chaos`.
- targets: issues 23's and 28's ratios, checked on this run's figures (bench/targets.py).

Results: results/bench/latest.{json,md,png}; `make publish` copies them to bench/results/.
"""

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from bench import charts, floor, growth, kills, latency, memory, peers, que2, roundtrip
from bench.drain import drain_once, interleaved, reset, summarize, top_up
from harness import implementations, manifests, results, signals
from harness.postgres import Database, database
from harness.testee import Testee, TesteeFailure, Unavailable
from que.dialects import QUE_0

DEFAULT_BUFFER = QUE_0.default_buffer

ROOT = Path(__file__).resolve().parent.parent
# Run outputs go to the ignored results/ folder; `make publish` copies them where the README links.
OUT = ROOT / "results" / "bench"
# prepared SELECT 1 round trips per driver and run (bench/roundtrip.py)
ROUNDTRIPS = 5_000
PARTS = ("drain", "floor", "peers", "enqueue", "latency", "roundtrip", "growth", "memory", "kills", "que2")


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def start_testees(db: Database, names: list[str]) -> tuple[dict[str, Testee], dict[str, str]]:
    started, unavailable = {}, {}
    for impl in implementations.resolve(names, build=True):
        if impl.unavailable:
            unavailable[impl.name] = impl.unavailable
            continue
        testee = Testee(impl.command, cwd=impl.cwd, env=impl.env, label=impl.name)
        try:
            testee.start(db.url, results.TABLE)
        except Unavailable as error:
            unavailable[impl.name] = str(error)
            continue
        started[impl.name] = testee
    return started, unavailable


def repeat(runs: int, once: Callable[[], float]) -> dict[str, Any]:
    return summarize([once() for _ in range(runs)])


# The rows whose pools claim through one locker session (que.locker).
LOCKER_ROWS = ("python", "python-async")


def batch_size(name: str) -> int:
    """Jobs per claim of an implementation's pool: 1, or K for a batched row (a locker's
    claims vary with the number of idle workers: see floor_key)."""
    return 10 if name == "python-batch" else 1  # testees/python/manifest.json: --batch 10


def floor_key(name: str) -> str:
    """The floor an implementation's drain is bounded by."""
    if name in LOCKER_ROWS:
        return "locker"
    size = batch_size(name)
    return "1" if size == 1 else f"batch {size}"


class Bench:
    def __init__(self, options: argparse.Namespace, db: Database, testees: dict[str, Testee]) -> None:
        self.options = options
        self.db = db
        self.url = db.url
        self.testees = testees
        self.counts = [int(w) for w in options.workers.split(",")]
        self.report: dict[str, Any] = {}

    def restart(self, name: str) -> Testee:
        """A fresh testee for `name`, after one that failed a request (killed by then)."""
        self.testees[name].kill()
        [impl] = implementations.resolve([name], build=False)
        testee = Testee(impl.command, cwd=impl.cwd, env=impl.env, label=impl.name)
        testee.start(self.url, results.TABLE)
        return testee

    def impl(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = self.report["implementations"][name]
        return entry

    def drain(self) -> None:
        jobs = self.options.jobs
        for workers in self.counts:
            cells = interleaved(
                self.options.runs,
                {
                    name: lambda t=testee, w=workers: drain_once(t, self.url, jobs, w)
                    for name, testee in self.testees.items()
                },
                group=f"drain x{workers}",
            )
            for name, cell in cells.items():
                self.impl(name)["drain_jobs_per_s"][str(workers)] = cell
                log(
                    f"drain {name} x{workers}: {cell['median']:.0f} jobs/s "
                    f"(min {cell['min']:.0f}, max {cell['max']:.0f})"
                )
        top = max(self.counts)
        listening = {name: t for name, t in self.testees.items() if t.info and t.info.can("listen")}
        cells = interleaved(
            self.options.runs,
            {
                name: lambda t=testee: drain_once(t, self.url, jobs, top, listen=True)
                for name, testee in listening.items()
            },
            group=f"drain x{top} listening",
        )
        for name, cell in cells.items():
            self.impl(name)["drain_jobs_per_s_listen"] = {str(top): cell}
            log(f"drain {name} x{top} with LISTEN/NOTIFY on: {cell['median']:.0f} jobs/s")

    def floor(self) -> None:
        pgbench = floor.find_pgbench(self.db.bindir)
        if pgbench is None:
            self.report["floor"] = {"unavailable": "pgbench not found"}
            return
        with psycopg.connect(self.url, autocommit=True) as conn:
            floor.install(conn)
        batches = sorted({1} | {batch_size(name) for name in self.testees})
        for batch in batches:
            key = "1" if batch == 1 else f"batch {batch}"
            cells = self.report["floor"].setdefault(key, {})
            for workers in self.counts:

                def once(w: int = workers, k: int = batch) -> float:
                    reset(self.url)
                    top_up(self.url, self.options.jobs)
                    done, seconds = floor.run(pgbench, self.url, self.options.jobs, w, k)
                    return done / seconds

                cells[str(workers)] = repeat(self.options.runs, once)
                log(f"floor ({key} per call) x{workers}: {cells[str(workers)]['median']:.0f} jobs/s")
        if set(LOCKER_ROWS) & set(self.testees):
            # One session claiming for w workers: up to w + the buffer jobs per round trip.
            cells = self.report["floor"].setdefault("locker", {})
            for workers in self.counts:

                def locker_once(w: int = workers) -> float:
                    reset(self.url)
                    top_up(self.url, self.options.jobs)
                    done, seconds = floor.run(pgbench, self.url, self.options.jobs, 1, w + DEFAULT_BUFFER)
                    return done / seconds

                cells[str(workers)] = repeat(self.options.runs, locker_once)
                log(f"floor (one session, {workers} + {DEFAULT_BUFFER} per call): {cells[str(workers)]['median']:.0f}")

    def peers(self) -> None:
        for name, jobs in (("pgqueuer", self.options.jobs), ("procrastinate", self.options.procrastinate_jobs)):
            entry: dict[str, Any] = {"jobs_per_drain": jobs, "drain_jobs_per_s": {}}
            try:
                entry["version"] = peers.version(name)
            except peers.PeerUnavailable as error:
                self.report["peers"][name] = {"unavailable": str(error)}
                log(f"peer {name}: unavailable: {error}")
                continue
            for workers in self.counts:
                reports = [peers.run(name, self.url, jobs, workers) for _ in range(self.options.runs)]
                entry["drain_jobs_per_s"][str(workers)] = summarize([r["drain_per_s"] for r in reports])
                log(f"peer {name} x{workers}: {entry['drain_jobs_per_s'][str(workers)]['median']:.0f} jobs/s")
            enqueues = [
                peers.run(name, self.url, jobs, 1, enqueue=self.options.enqueue_jobs) for _ in range(self.options.runs)
            ]
            entry["enqueue_jobs_per_s"] = {
                "single": summarize([r["enqueue_single_per_s"] for r in enqueues]),
                "batch": summarize([r["enqueue_batch_per_s"] for r in enqueues]),
            }
            log(f"peer {name} enqueue: {entry['enqueue_jobs_per_s']}")
            self.report["peers"][name] = entry
        reset(self.url)

    def enqueue(self) -> None:
        for name, testee in self.testees.items():
            rates = self.impl(name)["enqueue_jobs_per_s"]

            def once(t: Testee = testee, n: int = self.options.enqueue_jobs, batch: bool = False) -> float:
                reset(self.url)
                result = t.request("bench_enqueue", timeout=600, count=n, job_class="QueConformance::Noop", batch=batch)
                return n / (float(result["elapsed_ms"]) / 1000)

            rates["single"] = repeat(self.options.runs, once)
            log(f"enqueue {name} single: {rates['single']['median']:.0f} jobs/s")
            if testee.info and testee.info.can("enqueue_batch"):
                rates["batch"] = repeat(self.options.runs, lambda t=testee: once(t, self.options.jobs, True))
                log(f"enqueue {name} batch of {self.options.jobs}: {rates['batch']['median']:.0f} jobs/s")

    def latency(self) -> None:
        samples = self.options.latency_samples
        for name, testee in self.testees.items():
            modes = self.impl(name)["pickup_latency_ms"]
            default_ms = int(testee.info.capabilities.get("default_wake_interval_ms", 5000)) if testee.info else 5000
            modes["poll_100ms"] = latency.latency(testee, self.url, samples, 100, False, 4.0)
            log(f"latency {name} poll 0.1s: {modes['poll_100ms']}")
            modes["poll_default"] = latency.latency(testee, self.url, samples, default_ms, False, 12.0)
            log(f"latency {name} poll default ({default_ms} ms): {modes['poll_default']}")
            if testee.info and testee.info.can("listen"):
                modes["listen_notify"] = latency.latency(testee, self.url, samples, default_ms, True, 4.0)
                log(f"latency {name} LISTEN/NOTIFY: {modes['listen_notify']}")

    def roundtrip(self) -> None:
        reset(self.url)
        cells = self.report["roundtrip"] = roundtrip.measure(self.url, ROUNDTRIPS, self.options.runs)
        for driver, cell in cells.items():
            log(f"round trip, {driver}: {cell['wall_us']} us wall, {cell['cpu_us']} us CPU")

    def growth(self) -> None:
        backlogs = tuple(int(b) for b in self.options.backlogs.split(","))
        self.report["growth"] = {
            "workers": growth.WORKERS,
            "window_s": growth.WINDOW_S,
            "held_backlog": growth.HELD_BACKLOG,
            "backlog": growth.backlog_curve(self.testees, self.url, self.options.runs, log, backlogs),
            "held": growth.held_curve(self.testees, self.url, self.options.runs, log),
        }

    def memory(self) -> None:
        for name, testee in self.testees.items():
            cells = self.impl(name)["memory"] = {}
            for workers in memory.POOLS:
                try:
                    cells[str(workers)] = memory.measure(testee, self.url, workers)
                except (RuntimeError, TesteeFailure) as error:
                    # A pool this size does not run here: say so in its cell, and go on.
                    cells[str(workers)] = {"workers": workers, "error": str(error).splitlines()[0]}
                    testee = self.testees[name] = self.restart(name)
                log(f"memory {name} x{workers}: {cells[str(workers)]}")
        reset(self.url)

    def que2(self) -> None:
        """The Que 2 dialect's lockers (python, python-async, Ruby Que 2.4.1) on a v7 table."""
        self.report["que2"] = que2.run(self.url, self.options.jobs, self.options.runs, log)

    def kills(self) -> None:
        """Jobs run twice per lost session, from the latest `make chaos` run (its sessions
        killed rows), when there is one."""
        self.report["kills"] = kills.chaos_kills(kills.CHAOS_RESULTS)


def warnings(report: dict[str, Any]) -> list[str]:
    """An implementation above its floor: the floor is not measuring what it claims."""
    found = []
    floors = report.get("floor", {})
    for name, data in report["implementations"].items():
        cells = floors.get(floor_key(name), {})
        for workers, cell in data["drain_jobs_per_s"].items():
            limit = cells.get(workers)
            if limit and cell["median"] > limit["median"]:
                found.append(
                    f"{name} at {workers} workers ({cell['median']:.0f} jobs/s) beats its floor "
                    f"({limit['median']:.0f} jobs/s): the floor is wrong, not the implementation fast"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=(__doc__ or "").split("\n")[0])
    rows = manifests.rows()
    ports = [name for name in implementations.BUILTINS if rows[name].joins("conformance")]
    parser.add_argument("--impl", default=",".join(ports), help="implementations (default: every built-in port)")
    parser.add_argument("--jobs", type=int, default=20_000, help="jobs per drain run (default: 20000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per cell, at least 3 for a median (default: 3)")
    parser.add_argument("--workers", default="1,2,4,8,32,128", help="worker counts (default: 1,2,4,8,32,128)")
    parser.add_argument("--enqueue-jobs", type=int, default=5_000, help="jobs per single-enqueue run (default: 5000)")
    parser.add_argument(
        "--procrastinate-jobs",
        type=int,
        default=2_000,
        help="jobs per procrastinate drain, a slow peer (default: 2000)",
    )
    parser.add_argument("--latency-samples", type=int, default=40, help="jobs per latency measurement (default: 40)")
    parser.add_argument(
        "--backlogs", default=",".join(str(b) for b in growth.BACKLOGS), help="backlogs for the growth curve"
    )
    parser.add_argument("--skip", default="", help=f"comma list of parts to skip: {','.join(PARTS)}")
    parser.add_argument("--out", default=str(OUT), help="results folder (default: results/bench)")
    options = parser.parse_args(argv)
    # A timeout's SIGTERM unwinds like Ctrl-C, so the throwaway cluster is always removed.
    signals.unwind_on_signals()
    names = [n for n in options.impl.split(",") if n]
    skip = {s for s in options.skip.split(",") if s}
    unknown = skip - set(PARTS)
    if unknown:
        parser.error(f"--skip takes {', '.join(PARTS)}; got {', '.join(sorted(unknown))}")
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "jobs_per_drain": options.jobs,
        "runs": options.runs,
        "load_average_before": load_average(),
        "implementations": {},
        "unavailable": {},
        "floor": {},
        "peers": {},
    }
    with database() as db:
        report["postgres"] = db.version
        log(f"PostgreSQL {db.version} ({db.backend}) at {db.url}; load average {report['load_average_before']}")
        reset(db.url)
        testees, report["unavailable"] = start_testees(db, names)
        for name, reason in report["unavailable"].items():
            log(f"{name}: unavailable: {reason}")
        bench = Bench(options, db, testees)
        bench.report = report
        try:
            for name, testee in testees.items():
                report["implementations"][name] = {
                    "version": testee.info.version if testee.info else "?",
                    "language": testee.info.language if testee.info else "?",
                    "batch": batch_size(name),
                    "drain_jobs_per_s": {},
                    "enqueue_jobs_per_s": {},
                    "pickup_latency_ms": {},
                }
            for part in PARTS:
                if part not in skip:
                    log(f"-- {part}")
                    getattr(bench, part)()
        finally:
            for testee in testees.values():
                testee.stop()
    report["load_average_after"] = load_average()
    report["warnings"] = warnings(report)
    for warning in report["warnings"]:
        log(f"WARNING: {warning}")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "latest.md").write_text(charts.markdown(report))
    charts.png(report, out / "latest.png")
    print(charts.markdown(report))
    log(f"wrote {out}/latest.json, latest.md, latest.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
