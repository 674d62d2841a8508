"""report.html: the run's matrices and every cell's checks on one self-contained page.

One section per PostgreSQL version: the implementation x area matrix, the enqueuer x worker
matrix, then each cell with the rules it checked and, on failure, what was expected and what
was seen; an expected divergence shows its reason and link. No script, no external file:
the page opens from a CI artifact as it is.
"""

import html
import os
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from conformance.checks import RULES
from conformance.report import Cell, Run, cell_text, row_line, server_line

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d2430; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 6px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
table.matrix { border-collapse: collapse; margin: 6px 0 14px; }
.matrix th, .matrix td { border: 1px solid #c9d0da; padding: 5px 9px; text-align: center; white-space: nowrap; }
.matrix th { background: #eef1f5; }
.matrix th.impl { text-align: left; }
td.pass { background: #c8ecd0; } td.expected { background: #fbe7b5; } td.fail { background: #f7c1c1; font-weight: 600; }
td.none { background: #f2f2f2; color: #777; }
.summary { font-weight: 600; }
details { border: 1px solid #dde2ea; border-radius: 4px; margin: 3px 0; padding: 3px 8px; }
details.failed, details.stale { border-color: #d55; background: #fff5f5; }
details.expected { border-color: #d9a93a; background: #fffbf0; }
summary { cursor: pointer; }
.badge { display: inline-block; min-width: 92px; font-size: 12px; font-weight: 600; }
.passed .badge { color: #1a7f37; } .failed .badge, .stale .badge { color: #b42318; }
.expected .badge { color: #9a6700; } .not_applicable .badge, .unavailable .badge { color: #666; }
ul.checks { margin: 4px 0; padding-left: 20px; } li.broken { color: #b42318; }
pre { white-space: pre-wrap; background: #f6f8fa; padding: 6px; margin: 4px 0; font-size: 12.5px; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; border: 1px solid #c9d0da; }
"""

BADGES = {
    "passed": "passed",
    "failed": "FAILED",
    "stale": "STALE",
    "expected": "divergence",
    "not_applicable": "n/a",
    "unavailable": "unavailable",
}


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _shade(counts: Counter[str]) -> str:
    if counts["failed"] + counts["stale"]:
        return "fail"
    if counts["expected"]:
        return "expected"
    if counts["passed"]:
        return "pass"
    return "none"


def _matrix(corner: str, rows: list[str], columns: list[str], table: dict[tuple[str, str], Counter[str]]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{_shade(table[row, c])}">{_e(cell_text(table[row, c]))}</td>'
            if table.get((row, c))
            else "<td></td>"
            for c in columns
        )
        body.append(f'<tr><th class="impl">{_e(row)}</th>{cells}</tr>')
    return f'<table class="matrix"><tr><th>{_e(corner)}</th>{head}</tr>{"".join(body)}</table>'


def _cell(cell: Cell) -> str:
    checks = []
    for entry in cell.checks:
        rule = RULES.get(entry["rule"], {}).get("rule", "")
        times = f" (x{entry['times']})" if entry["times"] > 1 else ""
        state = "held" if entry["held"] else "BROKEN"
        klass = "" if entry["held"] else ' class="broken"'
        checks.append(f"<li{klass}><b>{_e(entry['rule'])}</b> {state}{times}: {_e(rule)}</li>")
    parts = [f'<ul class="checks">{"".join(checks)}</ul>' if checks else ""]
    if cell.outcome in ("failed", "stale") and cell.message:
        parts.append(f"<pre>{_e(cell.message)}</pre>")
    elif cell.outcome == "expected":
        link = f' <a href="{_e(cell.link)}">{_e(cell.link)}</a>' if cell.link else ""
        parts.append(f"<p>{_e(cell.message)}{link}</p>")
    elif cell.outcome in ("not_applicable", "unavailable") and cell.message:
        parts.append(f"<p>{_e(cell.message)}</p>")
    return (
        f'<details class="{_e(cell.outcome)}"><summary><span class="badge">{BADGES.get(cell.outcome, cell.outcome)}'
        f"</span> <code>{_e(cell.cell)}</code> <small>{cell.duration_s:.2f}s</small></summary>"
        f"{''.join(parts)}</details>"
    )


def _section(run: Run) -> str:
    title = server_line(run.postgres)
    names = run.names()
    impls = "".join(f"<li><b>{_e(name)}</b>: {_e(row_line(info))}</li>" for name, info in run.implementations.items())
    by_area: dict[str, list[Cell]] = {}
    for cell in run.cells:
        by_area.setdefault(cell.area, []).append(cell)
    order = {"failed": 0, "stale": 0, "expected": 1, "passed": 2, "not_applicable": 3, "unavailable": 4}
    details = "".join(
        f"<h3>{_e(area)}</h3>"
        + "".join(_cell(c) for c in sorted(cells, key=lambda c: (order.get(c.outcome, 5), c.cell)))
        for area, cells in by_area.items()
    )
    pairs = _matrix("enqueuer \\ worker", names, names, run.pair_counts())
    return (
        f'<section class="pg"><h2>{_e(title)}</h2><p class="summary">{_e(run.summary_line())}</p><ul>{impls}</ul>'
        f"<h3>Implementation x area</h3>{_matrix('implementation', names, run.areas(), run.area_counts())}"
        f"<h3>Enqueuer x worker</h3>{pairs}"
        f"<h3>Cells</h3>{details}</section>"
    )


def render(runs: list[Run]) -> str:
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    legend = (
        '<p class="legend"><span style="background:#c8ecd0">passed/applicable</span>'
        '<span style="background:#fbe7b5">~N known divergences</span>'
        '<span style="background:#f7c1c1">xN failures</span>'
        '<span style="background:#f2f2f2">n/a or unavailable</span></p>'
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Que conformance report</title>'
        f"<style>{STYLE}</style></head><body><h1>Que conformance report</h1><p>{_e(stamp)}</p>{legend}"
        + "".join(_section(run) for run in runs)
        + "</body></html>\n"
    )


def write(results: list[Path], out: Path) -> Path:
    """The report of one or more runs (one per PostgreSQL version), from their results.json."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render([Run.load(path) for path in results]), encoding="utf-8")
    return out


def chromium() -> str | None:
    """Debian's chromium (or Chrome), for the PNG of the matrix; None when not installed."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_command(page: Path, *action: str) -> list[str]:
    """A headless browser call on `page` (root needs --no-sandbox; no GPU on a server)."""
    browser = chromium()
    if browser is None:
        raise FileNotFoundError("chromium is not installed (Debian package chromium)")
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    return [browser, "--headless", *sandbox, "--disable-gpu", "--hide-scrollbars", *action, page.resolve().as_uri()]


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 900) -> Path:
    """The top of the rendered report (the matrices) as a PNG."""
    command = browser_command(page, f"--window-size={width},{height}", f"--screenshot={png.resolve()}")
    subprocess.run(command, capture_output=True, timeout=120, check=True)
    if not png.is_file():
        raise RuntimeError(f"chromium wrote no {png}")
    return png
