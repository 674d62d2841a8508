"""Known divergences, one JSON file per implementation, protobuf-conformance style.

conformance/expectations/<impl>.json lists the cells where an implementation is known to
differ from the protocol rule the cell checks, each with the reason and a link to the
upstream code or issue. A listed cell runs as a strict expected failure: if it passes,
the run fails (the entry is stale); an unlisted failure fails the run. `--fix` rewrites
the files from the run's outcomes (new failures get a placeholder reason to edit).
"""

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DIRECTORY = Path(__file__).resolve().parent / "expectations"


@dataclass
class Divergence:
    impl: str
    cell: str
    reason: str
    link: str


def load(directory: Path = DIRECTORY, extra: Sequence[Path] = ()) -> dict[str, Divergence]:
    """Every listed cell id -> its entry: the built-in rows' files, named after their row,
    and `extra` files (an outside port's, `--expectations`), named as their author likes."""
    found: dict[str, Divergence] = {}
    for path in [*sorted(directory.glob("*.json")), *extra]:
        data = json.loads(path.read_text(encoding="utf-8"))
        impl = data.get("implementation")
        if not isinstance(impl, str) or not impl:
            raise ValueError(f"{path}: 'implementation' must name the row the divergences belong to")
        if path.parent == directory and impl != path.stem:
            raise ValueError(f"{path}: implementation {impl!r} does not match the file name")
        for entry in data.get("divergences", []):
            cell = entry.get("cell", "")
            if not entry.get("reason", "").strip():
                raise ValueError(f"{path}: cell {cell or '?'} has no reason; every divergence states why")
            if cell in found:
                raise ValueError(f"{path}: cell {cell} is listed twice")
            found[cell] = Divergence(impl, cell, entry["reason"], entry.get("link", ""))
    return found


def extra_files() -> list[Path]:
    """The outside ports' files the CLI passed on (QUE_CONFORMANCE_EXPECTATIONS, a JSON list)."""
    return [Path(p) for p in json.loads(os.environ.get("QUE_CONFORMANCE_EXPECTATIONS") or "[]")]


def write(impl: str, entries: list[Divergence], directory: Path = DIRECTORY) -> Path:
    path = directory / f"{impl}.json"
    data: dict[str, Any] = {
        "implementation": impl,
        "divergences": [
            {"cell": e.cell, "reason": e.reason, "link": e.link} for e in sorted(entries, key=lambda e: e.cell)
        ],
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def fix(
    current: dict[str, Divergence],
    unexpected_failures: dict[str, tuple[str, str]],
    stale: set[str],
    directory: Path = DIRECTORY,
) -> list[Path]:
    """Rewrite the files: drop stale cells, add unexpected failures (cell -> (impl, message))."""
    by_impl: dict[str, list[Divergence]] = {}
    for cell, entry in current.items():
        if cell not in stale:
            by_impl.setdefault(entry.impl, []).append(entry)
    for cell, (impl, message) in unexpected_failures.items():
        by_impl.setdefault(impl, []).append(Divergence(impl, cell, f"TODO explain: {message}", ""))
    touched = {e.impl for e in current.values() if e.cell in stale} | {i for i, _ in unexpected_failures.values()}
    return [write(impl, by_impl.get(impl, []), directory) for impl in sorted(touched)]
