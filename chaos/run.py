"""`make chaos`: faults, hostile rows and mixed fleets, with nothing lost.

Each scenario (one module each in chaos/scenarios/) runs against one throwaway PostgreSQL
cluster with every available implementation and writes a row: scenario, implementations,
jobs, completed, duplicates, lost, locks left, recovery time, and whether its checks held.
The database is the witness: `que_jobs`, `pg_locks` and the results table the testees
write to. Results go to results/chaos/latest.json and latest.md (make publish copies them to
chaos/results/); the run exits non-zero when any row fails.
"""

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos import pools
from chaos.lab import Lab, Row
from chaos.scenarios import (
    cut_short,
    dead_rows,
    delivery,
    hostile,
    hygiene,
    killed,
    listen_restart,
    locker_faults,
    poison,
    pooling,
    que2,
    restart,
    soak,
    terminated,
)
from harness import gobuild, implementations, signals
from harness.postgres import LocalCluster

ROOT = Path(__file__).resolve().parent.parent
# Run outputs go to the ignored results/ folder; `make publish` copies them where the README links.
OUT = ROOT / "results" / "chaos"


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        f"# Reliability report {meta['date']}",
        "",
        f"PostgreSQL {meta['postgres']}; implementations: {', '.join(meta['implementations'])}"
        + (f"; unavailable: {meta['unavailable']}" if meta["unavailable"] else ""),
        "",
        "| scenario | implementations | jobs | completed | duplicates | lost | locks left | recovery (s) | ok |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        recovery = "-" if r.recovery_s is None else f"{r.recovery_s:.2f}"
        lines.append(
            f"| {r.scenario} | {', '.join(r.implementations)} | {r.jobs} | {r.completed} | {r.duplicates} | "
            f"{r.lost} | {r.locks_left} | {recovery} | {'yes' if r.ok else '**NO**'} |"
        )
    lines.append("")
    for r in rows:
        lines.append(f"**{r.scenario}**: " + "; ".join(r.notes))
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chaos", description="Fault scenarios across implementations.")
    parser.add_argument("--impl", default=",".join(implementations.BUILTINS))
    parser.add_argument("--soak-jobs", type=int, default=20_000)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument(
        "--only", default="", help="run only the scenarios whose label contains one of these comma-separated texts"
    )
    options = parser.parse_args(argv)
    # A timeout's SIGTERM unwinds like Ctrl-C, so the throwaway cluster is always removed.
    signals.unwind_on_signals()
    names = [n for n in options.impl.split(",") if n]
    if "go" in names:
        reason = gobuild.build()
        if reason:
            log(f"go: unavailable: {reason}")
    rows: list[Row] = []
    with LocalCluster() as cluster:
        lab = Lab(cluster, names)
        available = lab.available()
        version = lab.sql("SHOW server_version")[0][0]
        log(f"PostgreSQL {version}; available: {available}; unavailable: {lab.unavailable}")
        scenarios: list[tuple[str, Callable[[], Row]]] = []
        for name in available:
            scenarios.append((f"killed {name}", lambda n=name: killed.run(lab, n, "python")))
        for kind in pools.KINDS:
            scenarios += [
                (f"terminated ({kind})", lambda k=kind: terminated.run(lab, k)),
                (f"listen restart ({kind})", lambda k=kind: listen_restart.run(lab, k)),
                (f"poison ({kind})", lambda k=kind: poison.run(lab, k)),
                (f"hostile ({kind})", lambda k=kind: hostile.run(lab, k)),
            ]
        for label, kind, pool in delivery.POOLS:
            scenarios.append(
                (f"sessions killed ({label})", lambda n=label, k=kind, p=pool: delivery.sessions_killed(lab, n, k, p))
            )
            scenarios.append(
                (f"failing delete ({label})", lambda n=label, k=kind, p=pool: delivery.failing_delete(lab, n, k, p))
            )
        scenarios += [(f"cut short (locker={on})", lambda on=on: cut_short.run(lab, on)) for on in (True, False)]
        if "ruby" in available:
            scenarios.append(("dead jobs read by Ruby Que", lambda: dead_rows.run(lab)))
        scenarios += [
            ("restart", lambda: restart.run(lab, available)),
            ("soak", lambda: soak.run(lab, available, options.soak_jobs)),
            ("hygiene", lambda: hygiene.run(lab, available)),
            ("pooling", lambda: pooling.run(lab)),
        ]
        scenarios += locker_faults.scenarios(cluster)
        que2_lab = que2.Que2Lab(cluster)
        que2_rows = que2_lab.available()
        log(f"Que 2 dialect: available: {que2_rows}; unavailable: {que2_lab.unavailable}")
        if "python" in que2_rows:
            scenarios += [
                (f"Que 2: killed {name}", lambda n=name: que2.killed(que2_lab, n, "python")) for name in que2_rows
            ]
            scenarios.append(("Que 2: restart", lambda: que2.restart(que2_lab, que2_rows)))
        wanted = [text for text in options.only.split(",") if text] or [""]
        scenarios = [(label, run) for label, run in scenarios if any(text in label for text in wanted)]
        for label, scenario in scenarios:
            log(f"scenario: {label} ...")
            try:
                row = scenario()
            except Exception as error:
                row = Row(label, available, notes=[f"scenario crashed: {error!r}", traceback.format_exc()[-800:]])
            finally:
                lab.stop_all()
                que2_lab.stop_all()
            rows.append(row)
            log(
                f"  {'ok' if row.ok else 'FAILED'}: jobs {row.jobs}, completed {row.completed}, duplicates "
                f"{row.duplicates}, lost {row.lost}, locks left {row.locks_left}, recovery {row.recovery_s}"
            )
        meta = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "postgres": version,
            "implementations": available,
            "unavailable": {**lab.unavailable, **que2_lab.unavailable},
            "cpu_count": os.cpu_count(),
        }
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps({**meta, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    text = markdown(rows, meta)
    (out / "latest.md").write_text(text)
    print(text)
    failed = [r.scenario for r in rows if not r.ok]
    print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
