"""How the bench reads and writes one cell's figures (a median of runs)."""

from typing import Any


def median(cell: Any) -> float | None:
    return float(cell["median"]) if isinstance(cell, dict) and "median" in cell else None


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"
