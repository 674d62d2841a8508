"""The benchmark's Markdown table and PNG chart, from bench/results/latest.json data."""

from pathlib import Path
from typing import Any


def _median(cell: Any) -> float | None:
    return float(cell["median"]) if isinstance(cell, dict) and "median" in cell else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def markdown(report: dict[str, Any]) -> str:
    impls = report["implementations"]
    floor = report.get("pgbench_floor_jobs_per_s", {})
    counts = sorted(
        {int(w) for data in impls.values() for w in data["drain_jobs_per_s"]} | {int(w) for w in floor if w.isdigit()}
    )
    lines = [
        f"Benchmark {report['date']}: PostgreSQL {report.get('postgres', '?')}, {report['cpu_count']} CPUs, "
        f"{report['jobs_per_drain']:,} jobs per drain, median of {report['runs']} runs (min-max).",
        "",
        "### Drain, jobs/s by workers",
        "",
        "| implementation | " + " | ".join(f"{w} workers" for w in counts) + " |",
        "|---" * (len(counts) + 1) + "|",
    ]
    for name, data in impls.items():
        row = []
        for w in counts:
            cell = data["drain_jobs_per_s"].get(str(w))
            row.append(f"{_fmt(_median(cell))} ({_fmt(cell['min'])}-{_fmt(cell['max'])})" if cell else "-")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    if floor and "unavailable" not in floor:
        lines.append("| pgbench floor | " + " | ".join(_fmt(_median(floor.get(str(w)))) for w in counts) + " |")
    if "python" in impls and floor and "unavailable" not in floor:
        python = impls["python"]["drain_jobs_per_s"]
        ratios = []
        for w in counts:
            p, f = _median(python.get(str(w))), _median(floor.get(str(w)))
            ratios.append(f"{p / f:.2f}" if p and f else "-")
        lines.append("| python / floor | " + " | ".join(ratios) + " |")
        if "go" in impls:
            go = impls["go"]["drain_jobs_per_s"]
            ratios = []
            for w in counts:
                p, g = _median(python.get(str(w))), _median(go.get(str(w)))
                ratios.append(f"{p / g:.2f}" if p and g else "-")
            lines.append("| python / go | " + " | ".join(ratios) + " |")
    for name, data in impls.items():
        for workers, cell in data.get("drain_jobs_per_s_listen", {}).items():
            plain = _median(data["drain_jobs_per_s"].get(workers))
            ratio = f", {cell['median'] / plain:.2f}x of polling" if plain else ""
            lines.append(f"\n{name} with LISTEN/NOTIFY on, {workers} workers: {_fmt(_median(cell))} jobs/s{ratio}")
    lines += ["", "### Enqueue, jobs/s", "", "| implementation | one at a time | batch |", "|---|---|---|"]
    for name, data in impls.items():
        rates = data["enqueue_jobs_per_s"]
        lines.append(f"| {name} | {_fmt(_median(rates.get('single')))} | {_fmt(_median(rates.get('batch')))} |")
    modes = ["poll_100ms", "poll_default", "listen_notify"]
    lines += [
        "",
        "### Pickup latency, enqueue to handler start, ms (p50 / p99)",
        "",
        "| implementation | poll 0.1 s | poll default (5 s) | LISTEN/NOTIFY |",
        "|---|---|---|---|",
    ]
    for name, data in impls.items():
        cells = []
        for mode in modes:
            cell = data["pickup_latency_ms"].get(mode)
            cells.append(f"{cell['p50']:.1f} / {cell['p99']:.1f}" if cell else "-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, reason in report.get("unavailable", {}).items():
        lines.append(f"\n{name}: unavailable: {reason}")
    return "\n".join(lines) + "\n"


def png(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    series = {name: data["drain_jobs_per_s"] for name, data in report["implementations"].items()}
    floor = report.get("pgbench_floor_jobs_per_s", {})
    if floor and "unavailable" not in floor:
        series["pgbench floor"] = floor
    for name, cells in series.items():
        points = sorted((int(w), c) for w, c in cells.items() if isinstance(c, dict))
        if not points:
            continue
        xs = [w for w, _ in points]
        ys = [c["median"] for _, c in points]
        low = [c["median"] - c["min"] for _, c in points]
        high = [c["max"] - c["median"] for _, c in points]
        style = "--" if name == "pgbench floor" else "-"
        ax.errorbar(xs, ys, yerr=[low, high], label=name, marker="o", linestyle=style, capsize=3)
    ax.set_xscale("log", base=2)
    ax.set_xticks([1, 2, 4, 8])
    ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.set_xlabel("workers")
    ax.set_ylabel("jobs/s (median, min-max)")
    ax.set_title(
        f"Que 0.x drain throughput, {report['cpu_count']} CPUs, PostgreSQL {str(report.get('postgres', '')).split()[0]}"
    )
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
