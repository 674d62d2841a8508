"""`make mutate`: every mutant of que (mutation/mutants.py) through the conformance suite.

Each mutant runs as the outside testee `python -m mutation.testee ID` (the python testee over
the mutant), alone,
against a throwaway server of its own, two at a time. First the cells that
cover the mutated term (`@pytest.mark.covers`), stopping at the first failure; a mutant they
do not kill then meets every cell of the suite. A mutant of the Que 2 dialect's terms
(que.dialects.que2) meets the cells of that dialect (conformance/que2/). A mutant is killed when a cell fails; it
survives otherwise, which fails the run unless mutation/equivalent_mutants.json lists it
with the reason no observer can tell it from que. A listed mutant that a cell kills fails
the run too (the list is wrong), as does a mutant killed later than KILL_LIMIT_S.

Results: results/mutation/latest.json and latest.md (per mutant: the term, what changed,
the outcome, the cell that killed it and the seconds it took), and the score.
"""

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from conformance.catalogue import covering
from harness import signals, suite
from harness.postgres import LocalCluster
from mutation import mutants as mutation

OUT = Path("results") / "mutation"
KILL_LIMIT_S = 180.0
PARALLEL = 2


@dataclass
class Outcome:
    id: str
    term: str
    description: str
    outcome: str  # killed, survived, equivalent, wrongly-equivalent, error
    cell: str = ""
    message: str = ""
    seconds: float = 0.0
    stage: str = ""  # covering cells, or the whole suite


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def _selection(cells: list[str]) -> str:
    """A pytest -k expression for the covering cells (test function names)."""
    names = sorted({cell.split("::", 1)[1] for cell in cells})
    return " or ".join(names)


def _first_failure(junit: Path) -> tuple[str, str]:
    if not junit.is_file():
        return "", ""
    for case in ET.parse(junit).getroot().iter("testcase"):
        for tag in ("failure", "error"):
            found = case.find(tag)
            if found is not None:
                message = (found.get("message") or found.text or "").strip().splitlines()
                return f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}", (message or [""])[0][:300]
    return "", ""


def run_suite(mutant_id: str | None, url: str, select: str | None, dialect: str = "0.14") -> tuple[int, str, str]:
    """pytest over the suite's cells of `dialect` with the mutant (que itself for None) as
    the only row: (status, failed cell, message)."""
    with tempfile.TemporaryDirectory(prefix="que-mutant-") as folder:
        testee = f"{shlex.quote(sys.executable)} -m testees.python.threads"
        if mutant_id is not None:
            testee = f"{shlex.quote(sys.executable)} -m mutation.testee {shlex.quote(mutant_id)}"
        env = {
            **os.environ,
            "QUE_CONFORMANCE_IMPLS": "",
            "QUE_CONFORMANCE_DIALECT": dialect,
            "QUE_CONFORMANCE_TESTEES": json.dumps([testee]),
            "QUE_CONFORMANCE_RESULTS": folder,
            "QUE_CONFORMANCE_NO_BUILD": "1",
            "QUE_PG_BACKEND": "url",
            "QUE_DATABASE_URL": url,
            "HYPOTHESIS_PROFILE": "mutate",
        }
        command = suite.command(Path(folder) / "junit.xml", "-x", "-q", *(["-k", select] if select else []))
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=KILL_LIMIT_S * 3)
        cell, message = _first_failure(Path(folder) / "junit.xml")
        if done.returncode not in (0, 1) and not cell:
            message = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
            return done.returncode, "", message[0][:300]
        return done.returncode, cell, message


def judge(
    mutant: mutation.Mutant, url: str, covering: dict[str, list[str]], equivalent: dict[str, mutation.Listed]
) -> Outcome:
    started = time.monotonic()
    cells = covering.get(mutant.term, [])
    stages = [("covering cells", _selection(cells))] if cells else []
    stages.append(("the whole suite", None))
    outcome = Outcome(mutant.id, mutant.term, mutant.description, "survived")
    for stage, select in stages:
        status, cell, message = run_suite(mutant.id, url, select, mutant.dialect)
        outcome.seconds = round(time.monotonic() - started, 1)
        outcome.stage = stage
        if status == 1 or cell:
            outcome.outcome, outcome.cell, outcome.message = "killed", cell, message
            break
        if status not in (0, 5):
            outcome.outcome, outcome.message = "error", f"pytest exited with status {status}: {message}"
            break
    if mutant.id in equivalent:
        listed = equivalent[mutant.id]
        if outcome.outcome == "killed" and listed.kind == "transient":
            # A cell may catch a transient mutant by winning a race with the locker; that
            # is welcome, not relied on: the run neither fails on it nor counts it killed.
            outcome.outcome, outcome.message = "transient", f"{listed.reason} (this run caught it: {outcome.cell})"
        elif outcome.outcome == "killed":
            outcome.outcome = "wrongly-equivalent"
            outcome.message = f"listed as {listed.kind} ({listed.reason}) but killed: {outcome.message}"
        elif outcome.outcome == "survived":
            outcome.outcome, outcome.message = listed.kind, listed.reason
    return outcome


def markdown(outcomes: list[Outcome], meta: dict[str, Any]) -> str:
    counts = Counter(o.outcome for o in outcomes)
    lines = [
        f"# Mutation testing {meta['date']}",
        "",
        f"{meta['mutants']} mutants (mutation/mutants.py: {meta['families']}), PostgreSQL {meta['postgres']}: "
        f"{counts['killed']} killed, {counts['equivalent']} equivalent, {counts['transient']} transient (listed: "
        f"different from que only until the next round trip), {counts['survived']} survived, "
        f"{counts['wrongly-equivalent']} listed but killed, {counts['error']} errors. "
        f"Score {meta['score']:.1%} (killed / not equivalent; a transient one counts as not killed). "
        f"Time to kill: median {meta['median_kill_s']} s, "
        f"slowest {meta['slowest_kill_s']} s (limit {KILL_LIMIT_S:.0f} s). Wall time {meta['wall_s']:.0f} s.",
        "",
        "| mutant | family | term | change | outcome | killed by | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        change = o.description.replace("|", "\\|").replace("\n", "\\n")[:140]
        detail = o.cell if o.outcome == "killed" else o.message.replace("|", "\\|")[:160]
        family = "porting" if o.id.startswith("porting.") else "que"
        lines.append(f"| `{o.id}` | {family} | {o.term} | {change} | {o.outcome} | {detail} | {o.seconds:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mutate", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--only", default="", help="a regular expression: only the mutants whose id matches")
    parser.add_argument("--parallel", type=int, default=PARALLEL, help=f"mutants at once (default: {PARALLEL})")
    parser.add_argument("--out", default=str(OUT), help="results folder (default: results/mutation)")
    parser.add_argument(
        "--skip-equivalent",
        action="store_true",
        help="leave out the mutants listed in mutation/equivalent_mutants.json, equivalent or transient (each "
        "goes through the whole suite, about 25 s; a run without this option checks that no cell kills them)",
    )
    options = parser.parse_args(argv)
    listed = mutation.equivalents() if options.skip_equivalent else {}
    chosen = [m for m in mutation.mutants() if re.search(options.only, m.id) and m.id not in listed]
    if options.list:
        for mutant in chosen:
            print(f"{mutant.id}  {mutant.description}")
        print(f"{len(chosen)} mutants")
        return 0

    signals.unwind_on_signals()
    covers = covering()
    equivalent = mutation.equivalents()
    unknown = mutation.equivalent_problems()
    started = time.monotonic()
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    with contextlib.ExitStack() as stack:
        # A server per mutant at a time: some of Ruby's statements (job_stats,
        # worker_states) read pg_locks for the whole server, so two suites on one server
        # would see each other's locks.
        clusters = [stack.enter_context(LocalCluster()) for _ in range(options.parallel)]
        urls = [cluster.url for cluster in clusters]
        with psycopg.connect(urls[0], autocommit=True) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        free = list(urls)
        # A mutant is killed when a cell fails; that means something only if que itself
        # fails none, in each dialect the chosen mutants are judged in.
        for dialect in sorted({mutant.dialect for mutant in chosen}):
            status, cell, message = run_suite(None, urls[0], None, dialect)
            if status != 0:
                failure = cell or f"pytest status {status}"
                log(f"PROBLEM: the dialect {dialect} suite fails que itself ({failure}: {message}); no mutant judged")
                return 1
            log(f"que itself passes the whole suite of the dialect {dialect}")
        log(f"{len(chosen)} mutants, {options.parallel} at a time, PostgreSQL {version}")

        def one(mutant: mutation.Mutant) -> Outcome:
            with lock:
                url = free.pop()
            try:
                result = judge(mutant, url, covers, equivalent)
            finally:
                with lock:
                    free.append(url)
            with lock:
                outcomes.append(result)
                log(
                    f"{len(outcomes)}/{len(chosen)} {result.outcome:<10} {result.seconds:>5.0f} s  {result.id}"
                    + (f"  by {result.cell}" if result.cell else f"  {result.message[:120]}" if result.message else "")
                )
            return result

        with concurrent.futures.ThreadPoolExecutor(options.parallel) as pool:
            list(pool.map(one, chosen))
    order = {m.id: i for i, m in enumerate(chosen)}
    outcomes.sort(key=lambda o: order[o.id])
    kills = sorted(o.seconds for o in outcomes if o.outcome == "killed")
    counts = Counter(o.outcome for o in outcomes)
    judged = len(outcomes) - counts["equivalent"]
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "postgres": version,
        "mutants": len(outcomes),
        "score": counts["killed"] / judged if judged else 1.0,
        "median_kill_s": kills[len(kills) // 2] if kills else None,
        "slowest_kill_s": kills[-1] if kills else None,
        "wall_s": round(time.monotonic() - started, 1),
        "counts": dict(counts),
        "families": ", ".join(
            f"{family} {len(of)} ({sum(o.outcome == 'killed' for o in of)} killed)"
            for family, of in (
                ("que", [o for o in outcomes if not o.id.startswith("porting.")]),
                ("porting", [o for o in outcomes if o.id.startswith("porting.")]),
            )
        ),
    }
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps({**meta, "mutants": [asdict(o) for o in outcomes]}, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(outcomes, meta))
    slow = [o for o in outcomes if o.outcome == "killed" and o.seconds > KILL_LIMIT_S]
    problems = [o for o in outcomes if o.outcome in ("survived", "wrongly-equivalent", "error")] + slow
    for o in problems:
        log(f"PROBLEM {o.outcome} {o.id}: {o.description} {o.message}" + (" (too slow)" if o in slow else ""))
    for problem in unknown:
        log(f"PROBLEM {problem}")
    log(
        f"{counts['killed']} killed, {counts['equivalent']} equivalent, {counts['transient']} transient, "
        f"{counts['survived']} survived, {counts['wrongly-equivalent']} wrongly listed, {counts['error']} errors; "
        f"score {meta['score']:.1%}; "
        f"wrote {out}/latest.json and latest.md"
    )
    return 1 if problems or unknown else 0


if __name__ == "__main__":
    sys.exit(main())
