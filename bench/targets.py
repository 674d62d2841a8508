"""Issues 23's and 28's targets, checked on one bench run's figures."""

from typing import Any

from bench.cells import fmt, median


def _at(report: dict[str, Any], name: str, part: str, key: str) -> float | None:
    data = report["implementations"].get(name) or report.get("peers", {}).get(name) or {}
    return median((data.get(part) or {}).get(key))


def targets(report: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Issue 23's targets, each (what, the figures, met): met is None where this run lacks
    the figures."""
    found: list[tuple[str, str, bool | None]] = []
    held = (report.get("growth") or {}).get("held", {})
    for count, factor in (("1000", 20.0), ("100", 5.0)):
        ours, theirs = median(held.get("python", {}).get(count)), median(held.get("go", {}).get(count))
        ratio = ours / theirs if ours and theirs else None
        found.append(
            (
                f"{count} jobs held at the head: python >= {factor:g}x que-go",
                "-" if ratio is None else f"{fmt(ours)} / {fmt(theirs)} = {ratio:.1f}x",
                None if ratio is None else ratio >= factor,
            )
        )
    ours, before = median(held.get("python", {}).get("0")), median(held.get("python-sessions", {}).get("0"))
    found.append(
        (
            "0 held: no slower than the per-worker pool of round 2 (python-sessions), within noise (10%)",
            "-" if not (ours and before) else f"{fmt(ours)} / {fmt(before)} = {ours / before:.2f}x",
            None if not (ours and before) else ours >= 0.9 * before,
        )
    )
    memory = report["implementations"].get("python", {}).get("memory") or {}
    for workers in ("32", "128"):
        cell = memory.get(workers)
        cell = None if cell and "error" in cell else cell
        found.append(
            (
                f"sessions per worker at {workers} workers, every one busy: <= 0.1",
                "-" if not cell else f"{cell['sessions_per_worker']:.3f}",
                None if not cell else cell["sessions_per_worker"] <= 0.1,
            )
        )
    for workers in ("1", "2", "4", "8"):
        ours = _at(report, "python", "drain_jobs_per_s", workers)
        theirs = _at(report, "go", "drain_jobs_per_s", workers)
        peer = _at(report, "pgqueuer", "drain_jobs_per_s", workers)
        met = None if not (ours and theirs) else ours >= 1.5 * theirs and (peer is None or ours > peer)
        figures = "-" if not (ours and theirs) else f"{ours / theirs:.2f}x que-go"
        if ours and peer:
            figures += f", {ours / peer:.2f}x PgQueuer"
        found.append((f"default pool at {workers} workers: >= 1.5x que-go and ahead of PgQueuer", figures, met))
    found += que2_targets(report)
    kills = (report.get("kills") or {}).get("rows", {})
    if kills:
        met = all(row["ok"] for row in kills.values())
        found.append(("a killed session re-runs only the jobs in flight (make chaos)", f"{len(kills)} pools", met))
    return found


def que2_targets(report: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """Issue 28's: each Que 2 pool (the que2 part's python and python-async rows) at 1, 4
    and 8 workers drains at least 0.7x as fast as the same pool on a Que 0.x table (the drain
    part's row of that name), and at least 20x as fast as Ruby Que 2.4.1's locker."""
    rows = (report.get("que2") or {}).get("rows", {})
    found: list[tuple[str, str, bool | None]] = []
    ruby = rows.get("ruby-2.4.1", {}).get("drain_jobs_per_s", {})
    for name in ("python", "python-async"):
        ours_by = rows.get(name, {}).get("drain_jobs_per_s", {})
        for workers in ("1", "4", "8"):
            ours = median(ours_by.get(workers))
            zero = _at(report, name, "drain_jobs_per_s", workers)
            theirs = median(ruby.get(workers))
            vs_zero = None if not (ours and zero) else ours / zero
            vs_ruby = None if not (ours and theirs) else ours / theirs
            figures = ", ".join(
                part
                for part in (
                    None if vs_zero is None else f"{vs_zero:.2f}x Que 0.x",
                    None if vs_ruby is None else f"{vs_ruby:.1f}x ruby-2.4.1",
                )
                if part
            )
            met = None if vs_zero is None else vs_zero >= 0.7 and (vs_ruby is None or vs_ruby >= 20)
            found.append(
                (f"Que 2 {name} at {workers} workers: >= 0.7x Que 0.x, >= 20x Ruby Que 2.4.1", figures or "-", met)
            )
    return found


def table(report: dict[str, Any]) -> list[str]:
    rows = targets(report)
    if not any(met is not None for _, _, met in rows):
        return []
    lines = ["", "### Targets (issues 23 and 28), from this run", "", "| target | figures | met |", "|---|---|---|"]
    for what, figures, met in rows:
        lines.append(f"| {what} | {figures} | {'-' if met is None else 'yes' if met else '**no**'} |")
    return lines
