"""`make bench`'s kills part: jobs run twice per session ended mid-drain, read from the
latest `make chaos` run (its sessions-killed rows)."""

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHAOS_RESULTS = ROOT / "results" / "chaos" / "latest.json"


def chaos_kills(path: Path) -> dict[str, Any]:
    """The sessions-killed rows of a chaos run: pool -> kills, extra runs, the bound."""
    if not path.is_file():
        return {"unavailable": f"no {path}: run make chaos first"}
    run = json.loads(path.read_text())
    rows = {}
    for row in run.get("rows", []):
        if not row["scenario"].startswith("sessions killed"):
            continue
        note = row["notes"][0] if row["notes"] else ""
        kills = int(note.split(" sessions ended")[0]) if " sessions ended" in note else None
        rows[row["scenario"].removeprefix("sessions killed (").removesuffix(")")] = {
            "jobs": row["jobs"],
            "kills": kills,
            "duplicates": row["duplicates"],
            "lost": row["lost"],
            "ok": row["ok"],
            "note": note,
        }
    return {"date": run.get("date"), "rows": rows}
