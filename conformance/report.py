"""Turn the run's outcomes into the summary line, a JSON result and Markdown matrices.

Outcomes per cell: passed, failed, unavailable (the implementation cannot run here),
not applicable (it does not declare the capability), expected (a listed divergence that
still diverges) and stale (a listed divergence that now passes: counted as failed).
"""

import json
import platform
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

AREAS = {
    "test_schema": "schema",
    "test_enqueue": "enqueue",
    "test_cross_language": "cross-language",
    "test_arguments": "arguments",
    "test_ordering": "ordering",
    "test_locking": "locking",
    "test_job_key": "job key",
    "test_retries": "retries",
    "test_last_error": "last_error",
    "test_exactly_once": "exactly-once",
    "test_pool": "pool",
    "test_clock": "clock",
    "test_timezones": "time zones",
    "test_delivery": "delivery",
    "test_stats": "stats",
    "test_oracle": "oracle",
    # The Que 2 dialect's cells (conformance/que2/).
    "test_que2_schema": "2.x schema",
    "test_que2_enqueue": "2.x enqueue",
    "test_que2_arguments": "2.x arguments",
    "test_que2_locker": "2.x locker",
    "test_que2_poll": "2.x poll",
    "test_que2_retries": "2.x retries",
    "test_que2_exactly_once": "2.x exactly-once",
    # Every dialect: a Rails app on the queue (conformance/activejob/).
    "test_activejob": "activejob",
}
OUTCOMES = ("passed", "failed", "unavailable", "not_applicable", "expected", "stale")


@dataclass
class Cell:
    cell: str
    area: str
    impls: list[str]
    outcome: str
    enqueuer: str | None = None
    worker: str | None = None
    message: str = ""
    duration_s: float = 0.0
    # The rules the cell checked: [{"rule": id, "held": bool, "times": n}], in order.
    checks: list[dict[str, Any]] = field(default_factory=list)
    # For an expected divergence: where the upstream behaviour is documented.
    link: str = ""
    # What a cell says about how it judged (the differential cells: which oracle).
    notes: dict[str, str] = field(default_factory=dict)


def tally(recorded: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    """Checks in first-seen order; a rule broken once counts as broken."""
    out: dict[str, dict[str, Any]] = {}
    for rule, held in recorded:
        entry = out.setdefault(rule, {"rule": rule, "held": True, "times": 0})
        entry["held"] = entry["held"] and held
        entry["times"] += 1
    return list(out.values())


@dataclass
class Run:
    cells: list[Cell] = field(default_factory=list)
    implementations: dict[str, Any] = field(default_factory=dict)
    postgres: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> Counter[str]:
        return Counter(c.outcome for c in self.cells)

    def summary_line(self) -> str:
        n = self.counts()
        failed = n["failed"] + n["stale"]
        return (
            f"{n['passed']} passed, {failed} failed, {n['unavailable']} unavailable, "
            f"{n['expected']} expected divergences, {n['not_applicable']} not applicable"
        )

    def names(self) -> list[str]:
        return list(self.implementations) or sorted({i for c in self.cells for i in c.impls})

    def areas(self) -> list[str]:
        return [a for a in AREAS.values() if any(c.area == a for c in self.cells)]

    def area_counts(self) -> dict[tuple[str, str], Counter[str]]:
        """(implementation, area) -> outcome counts."""
        table: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for c in self.cells:
            for impl in set(c.impls):
                table[impl, c.area][c.outcome] += 1
        return table

    def pair_counts(self) -> dict[tuple[str, str], Counter[str]]:
        """(enqueuer, worker) -> outcome counts of the cross-language and argument cells."""
        table: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        for c in self.cells:
            if c.enqueuer and c.worker:
                table[c.enqueuer, c.worker][c.outcome] += 1
        return table

    def impl_area_matrix(self) -> str:
        names, areas, table = self.names(), self.areas(), self.area_counts()
        lines = ["| implementation | " + " | ".join(areas) + " |", "|---" * (len(areas) + 1) + "|"]
        for name in names:
            lines.append(f"| {name} | " + " | ".join(cell_text(table[name, a]) for a in areas) + " |")
        return "\n".join(lines)

    def pair_matrix(self) -> str:
        names, table = self.names(), self.pair_counts()
        lines = ["| enqueuer \\ worker | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for e in names:
            lines.append(f"| {e} | " + " | ".join(cell_text(table[e, w]) for w in names) + " |")
        return "\n".join(lines)

    def markdown(self) -> str:
        impls = "\n".join(f"- **{name}**: {row_line(info)}" for name, info in self.implementations.items())
        failures = [c for c in self.cells if c.outcome in ("failed", "stale")]
        oracles = self.oracle_lines()
        oracle_text = "\n## Oracle of the differential cells\n\n" + "\n".join(f"- {line}" for line in oracles) + "\n"
        failure_text = "\n".join(f"- `{c.cell}`: {c.message.splitlines()[0] if c.message else ''}" for c in failures)
        return (
            "# Conformance results\n\n"
            f"{self.summary_line()}\n\n"
            f"{server_line(self.postgres)}\n\n"
            f"{impls}\n\n"
            "## Implementation x area\n\n"
            "Cells: passed/applicable; `~N` known divergences (conformance/expectations), `xN` failures, "
            "`unavailable` cannot run here, `n/a` capability not declared.\n\n"
            f"{self.impl_area_matrix()}\n\n"
            "## Enqueuer x worker (cross-language and argument cells)\n\n"
            f"{self.pair_matrix()}\n"
            + (oracle_text if oracles else "")
            + (f"\n## Failures\n\n{failure_text}\n" if failures else "")
        )

    def oracle_lines(self) -> list[str]:
        """Per row, what the differential cell compared it with (Ruby Que or the model)."""
        return [f"{', '.join(c.impls)}: {c.notes['oracle']} ({c.outcome})" for c in self.cells if c.notes.get("oracle")]

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary_line(),
            "counts": {k: self.counts()[k] for k in OUTCOMES},
            "postgres": self.postgres,
            "implementations": self.implementations,
            "host": {"python": platform.python_version(), "machine": platform.machine()},
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cells": [asdict(c) for c in self.cells],
        }

    @classmethod
    def load(cls, path: Path) -> "Run":
        """A run back from the results.json it wrote."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            cells=[Cell(**cell) for cell in data["cells"]],
            implementations=data["implementations"],
            postgres=data["postgres"],
        )

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "results.json").write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        (directory / "matrix.md").write_text(self.markdown(), encoding="utf-8")


def row_line(info: dict[str, Any]) -> str:
    """What a row ran: its version and language, how (a process, or a container and its
    image), or why it could not run."""
    if info.get("not_spoken"):
        return f"not applicable: {info['not_spoken']}"
    if not info.get("available"):
        return f"unavailable: {info.get('unavailable_reason')}"
    how = info.get("backend") or "process"
    if how == "container":
        how = f"container {info.get('image')}" + (f"; {info['image_note']}" if info.get("image_note") else "")
    return f"{info.get('version')} ({info.get('language')}), {how}"


def server_line(postgres: dict[str, Any]) -> str:
    line = f"PostgreSQL {postgres.get('version', '?')} ({postgres.get('backend', '?')} backend"
    if postgres.get("image"):
        line += f", image {postgres['image']}, images from {postgres.get('images_from')}"
    line += ")"
    if postgres.get("dialect") == "2":
        line = f"Que 2 dialect (Ruby Que 2.x's protocol, schema version 7), {line}"
    return line


def cell_text(counts: Counter[str]) -> str:
    if not counts:
        return ""
    applicable = counts["passed"] + counts["failed"] + counts["expected"] + counts["stale"]
    if applicable == 0:
        return "unavailable" if counts["unavailable"] else "n/a"
    parts = [f"{counts['passed']}/{applicable}"]
    if counts["expected"]:
        parts.append(f"~{counts['expected']}")
    if counts["failed"] + counts["stale"]:
        parts.append(f"x{counts['failed'] + counts['stale']}")
    return " ".join(parts)
