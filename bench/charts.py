"""The benchmark's Markdown report and PNG chart, from results/bench/latest.json data."""

import re
import statistics
from pathlib import Path
from typing import Any

from bench import que2, targets
from bench.cells import fmt, median


def _cell(cell: Any) -> str:
    if not isinstance(cell, dict) or "median" not in cell:
        return "-"
    return f"{fmt(cell['median'])} ({fmt(cell['min'])}-{fmt(cell['max'])})"


def _ratio(a: Any, b: Any) -> str:
    """The ratio of the medians; for interleaved cells (the drain's), also the range of the
    ratios of paired runs (run i of one against run i of the other, taken in one round),
    which shows how far the machine's noise moves it."""
    x, y = median(a), median(b)
    if not x or not y:
        return "-"
    if a.get("group") is None or a.get("group") != b.get("group"):
        return f"{x / y:.2f}"
    paired = [p / q for p, q in zip(a["samples"], b["samples"], strict=True) if q]
    if len(paired) < 2:
        return f"{x / y:.2f}"
    return f"{x / y:.2f} ({min(paired):.2f}-{max(paired):.2f})"


def _floor_rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Floor series by label: the one-job floor and each batched floor."""
    floors = report.get("floor", {})
    return {
        ("floor" if key == "1" else f"floor, {key} per call"): cells
        for key, cells in floors.items()
        if isinstance(cells, dict)
    }


def _peer_rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{name} (peer)": data["drain_jobs_per_s"]
        for name, data in report.get("peers", {}).items()
        if "drain_jobs_per_s" in data
    }


def noise(report: dict[str, Any]) -> str:
    spreads = [
        cell["spread"]
        for data in report["implementations"].values()
        for cell in data["drain_jobs_per_s"].values()
        if isinstance(cell, dict) and cell.get("spread") is not None
    ]
    if not spreads:
        return "no repeated cells"
    return (
        f"spread (max-min)/median of the drain cells: median {statistics.median(spreads):.0%}, "
        f"worst {max(spreads):.0%}; load average {report.get('load_average_before')} before, "
        f"{report.get('load_average_after')} after"
    )


def markdown(report: dict[str, Any]) -> str:
    """The report; a part that did not run (--skip) leaves no section."""
    impls = report["implementations"]
    lines = [
        f"Benchmark {report['date']}: PostgreSQL {report.get('postgres', '?')}, {report['cpu_count']} CPUs, "
        f"{report['jobs_per_drain']:,} jobs per drain, median of {report['runs']} runs (min-max).",
        "",
        f"Noise: {noise(report)}.",
        "",
    ]
    rows = [
        f"{name} {data.get('version', '?')}" + (f" ({data['language']})" if data.get("language") else "")
        for name, data in impls.items()
    ]
    lines += [f"Rows: {'; '.join(rows)}.", ""]
    for warning in report.get("warnings", []):
        lines.append(f"**Warning**: {warning}")
    lines += _drain(report)
    lines += _enqueue(report)
    lines += _latency(report)
    lines += _roundtrip(report)
    lines += _growth(report)
    lines += _memory(report)
    lines += _kills(report)
    lines += que2.section(report)
    lines += targets.table(report)
    for name, data in report.get("peers", {}).items():
        if "unavailable" in data:
            lines.append(f"\n{name} (peer): unavailable: {data['unavailable']}")
        elif "version" in data:
            lines.append(f"\n{name} (peer): {data['version']}, {data['jobs_per_drain']:,} jobs per drain.")
    for name, reason in report.get("unavailable", {}).items():
        lines.append(f"\n{name}: unavailable: {reason}")
    # Sections open with a blank line; with the ones before them left out, two could meet.
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


def _drain(report: dict[str, Any]) -> list[str]:
    impls = report["implementations"]
    counts = sorted({int(w) for data in impls.values() for w in data["drain_jobs_per_s"]})
    if not counts:
        return []
    lines = [
        "### Drain, jobs/s by workers",
        "",
        "| | " + " | ".join(f"{w} workers" for w in counts) + " |",
        "|---" * (len(counts) + 1) + "|",
    ]
    series = {name: data["drain_jobs_per_s"] for name, data in impls.items()}
    series |= _floor_rows(report)
    series |= _peer_rows(report)
    for name, cells in series.items():
        lines.append(f"| {name} | " + " | ".join(_cell(cells.get(str(w))) for w in counts) + " |")
    ratios = [
        ("python / go", "python", "go"),
        ("python / python-sessions", "python", "python-sessions"),
        ("python-sessions / go", "python-sessions", "go"),
        ("python-async / go", "python-async", "go"),
        ("python-async / python", "python-async", "python"),
        ("python-batch / go", "python-batch", "go"),
        ("python / its floor (one session)", "python", "floor, locker per call"),
        ("python-sessions / floor", "python-sessions", "floor"),
        (
            "python-batch / its floor",
            "python-batch",
            f"floor, batch {impls.get('python-batch', {}).get('batch')} per call",
        ),
        ("python / pgqueuer", "python", "pgqueuer (peer)"),
        ("python-batch / pgqueuer", "python-batch", "pgqueuer (peer)"),
    ]
    for label, top, bottom in ratios:
        if top in series and bottom in series:
            lines.append(
                f"| {label} | "
                + " | ".join(_ratio(series[top].get(str(w)), series[bottom].get(str(w))) for w in counts)
                + " |"
            )
    for name, data in impls.items():
        for workers, cell in data.get("drain_jobs_per_s_listen", {}).items():
            plain = data["drain_jobs_per_s"].get(workers)
            lines.append(
                f"\n{name} with LISTEN/NOTIFY on, {workers} workers: {_cell(cell)} jobs/s, "
                f"{_ratio(cell, plain)}x of polling"
            )
    return lines


def _enqueue(report: dict[str, Any]) -> list[str]:
    rows = [(name, data["enqueue_jobs_per_s"]) for name, data in report["implementations"].items()]
    rows += [(f"{name} (peer)", data.get("enqueue_jobs_per_s", {})) for name, data in report.get("peers", {}).items()]
    rows = [(name, rates) for name, rates in rows if rates]
    if not rows:
        return []
    lines = ["", "### Enqueue, jobs/s", "", "| | one at a time | batch |", "|---|---|---|"]
    for name, rates in rows:
        lines.append(f"| {name} | {_cell(rates.get('single'))} | {_cell(rates.get('batch'))} |")
    return lines


def _latency(report: dict[str, Any]) -> list[str]:
    impls = report["implementations"]
    if not any(data["pickup_latency_ms"] for data in impls.values()):
        return []
    lines = [
        "",
        "### Pickup latency, enqueue to handler start, ms (p50 / p99)",
        "",
        "| | poll 0.1 s | poll default | LISTEN/NOTIFY |",
        "|---|---|---|---|",
    ]
    for name, data in impls.items():
        cells = []
        for mode in ("poll_100ms", "poll_default", "listen_notify"):
            cell = data["pickup_latency_ms"].get(mode)
            cells.append(f"{cell['p50']:.1f} / {cell['p99']:.1f}" if cell else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _roundtrip(report: dict[str, Any]) -> list[str]:
    cells = report.get("roundtrip")
    if not cells:
        return []
    lines = [
        "",
        "### One round trip (a prepared SELECT 1 through que's session code), µs",
        "",
        "| waiting with | wall | CPU of the waiting thread |",
        "|---|---|---|",
    ]
    for driver, cell in cells.items():
        lines.append(f"| {driver} | {cell['wall_us']:.1f} | {cell['cpu_us']:.1f} |")
    return lines


def _growth(report: dict[str, Any]) -> list[str]:
    growth = report.get("growth")
    if not growth:
        return []
    lines = []
    for key, title, unit in (
        ("backlog", "Rate against the backlog queued", "jobs queued"),
        ("held", f"Rate against jobs held locked at the head ({growth['held_backlog']:,} due behind them)", "held"),
    ):
        curves = growth[key]
        points = sorted({int(x) for cells in curves.values() for x in cells})
        lines += [
            "",
            f"### {title}, jobs/s ({growth['workers']} workers, {growth['window_s']:g} s windows)",
            "",
            "| | " + " | ".join(f"{p:,} {unit}" for p in points) + " |",
            "|---" * (len(points) + 1) + "|",
        ]
        for name, cells in curves.items():
            lines.append(f"| {name} | " + " | ".join(_cell(cells.get(str(p))) for p in points) + " |")
        for name in [n for n in curves if n.startswith("python")]:
            if "go" in curves:
                lines.append(
                    f"| {name} / go | "
                    + " | ".join(_ratio(curves[name].get(str(p)), curves["go"].get(str(p))) for p in points)
                    + " |"
                )
    return lines


def _memory(report: dict[str, Any]) -> list[str]:
    rows = {name: data["memory"] for name, data in report["implementations"].items() if data.get("memory")}
    if not rows:
        return []
    pools = sorted({int(w) for cells in rows.values() for w in cells})
    lines = [
        "",
        "### Worker pool memory and sessions (peak RSS MiB; server sessions per worker)",
        "",
        *([f"Measured in a separate run: {report['memory_run']}.", ""] if report.get("memory_run") else []),
        "| | idle | " + " | ".join(f"{w} workers" for w in pools) + " |",
        "|---" * (len(pools) + 2) + "|",
    ]
    for name, cells in rows.items():
        measured = [c for c in cells.values() if "error" not in c]
        idle = f"{measured[0]['idle_rss_mib']:.0f} MiB" if measured else "-"
        row = []
        for w in pools:
            cell = cells.get(str(w))
            if cell and "error" in cell:
                row.append(f"failed: {cell['error'][:80]}")
            else:
                row.append(f"{cell['rss_mib']:.0f} MiB; {cell['sessions_per_worker']:.2f}" if cell else "-")
        lines.append(f"| {name} | {idle} | " + " | ".join(row) + " |")
    return lines


def _kills(report: dict[str, Any]) -> list[str]:
    kills = report.get("kills")
    if not kills:
        return []
    if "unavailable" in kills:
        return ["", f"Jobs run twice per lost session: {kills['unavailable']}."]
    lines = [
        "",
        f"### Jobs run twice when the server ends a pool's sessions mid-drain (make chaos, {kills['date']})",
        "",
        "| pool | jobs | sessions ended | extra runs | per ended session | lost |",
        "|---|---|---|---|---|---|",
    ]
    for pool, row in kills["rows"].items():
        per = f"{row['duplicates'] / row['kills']:.2f}" if row.get("kills") else "-"
        lines.append(f"| {pool} | {row['jobs']:,} | {row['kills']} | {row['duplicates']} | {per} | {row['lost']} |")
    return lines


def _plot(ax: Any, cells: dict[str, Any], label: str, style: str) -> None:
    points = sorted((int(x), c) for x, c in cells.items() if isinstance(c, dict) and "median" in c)
    if not points:
        return
    xs = [x for x, _ in points]
    ys = [c["median"] for _, c in points]
    low = [c["median"] - c["min"] for _, c in points]
    high = [c["max"] - c["median"] for _, c in points]
    ax.errorbar(xs, ys, yerr=[low, high], label=label, marker="o", linestyle=style, capsize=3)


def png(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9), dpi=100)
    drain, backlog, held, mem = axes[0][0], axes[0][1], axes[1][0], axes[1][1]
    for name, data in report["implementations"].items():
        _plot(drain, data["drain_jobs_per_s"], name, "-")
    for name, cells in _floor_rows(report).items():
        _plot(drain, cells, name, "--")
    for name, cells in _peer_rows(report).items():
        _plot(drain, cells, name, ":")
    drain.set_xscale("log", base=2)
    drain.set_xlabel("workers")
    drain.set_ylabel("jobs/s (median, min-max)")
    drain.set_title("Drain throughput")
    growth = report.get("growth") or {}
    for name, cells in growth.get("backlog", {}).items():
        _plot(backlog, cells, name, "-")
    backlog.set_xscale("log")
    backlog.set_xlabel("jobs queued")
    backlog.set_title("Rate against backlog")
    for name, cells in growth.get("held", {}).items():
        shifted = {str(int(x) + 1): c for x, c in cells.items()}  # 0 held shown at 1 on a log axis
        _plot(held, shifted, name, "-")
    held.set_xscale("log")
    held.set_xlabel("jobs held locked at the head + 1")
    held.set_ylabel("jobs/s")
    held.set_title("Rate against jobs held locked")
    for name, data in report["implementations"].items():
        cells = data.get("memory") or {}
        points = sorted((int(w), c["rss_mib"]) for w, c in cells.items() if "error" not in c)
        if points:
            mem.plot([w for w, _ in points], [r for _, r in points], marker="o", label=name)
    mem.set_xscale("log", base=2)
    mem.set_xlabel("workers")
    mem.set_ylabel("peak RSS, MiB")
    mem.set_title("Worker pool memory")
    for ax in (drain, backlog, held, mem):
        ax.grid(True, alpha=0.3)
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    version = str(report.get("postgres", "")).split()[0] if report.get("postgres") else ""
    fig.suptitle(f"que-interop benchmark, {report['cpu_count']} CPUs, PostgreSQL {version}, {report['date']}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
