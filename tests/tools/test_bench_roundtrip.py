"""bench/roundtrip.py against a real PostgreSQL: every driver que waits with is measured
through que's own session code, and the report says which loops it ran on."""

from typing import Any

import psycopg

from bench import charts, roundtrip
from que import aio


def test_each_driver_runs_its_round_trips(conn: psycopg.Connection[Any], database_url: str) -> None:
    cells = roundtrip.measure(database_url, 200, 2)
    assert list(cells) == ["select() in a thread", "asyncio loop", f"{aio.loop_name('uvloop')} loop"]
    for cell in cells.values():
        assert cell["runs"] == 2
        # One thread's CPU time cannot exceed the wall time it took.
        assert 0 < cell["cpu_us"] <= cell["wall_us"] * 1.05 + 1, cell
    table = charts._roundtrip({"roundtrip": cells})
    assert "| asyncio loop |" in "\n".join(table)
