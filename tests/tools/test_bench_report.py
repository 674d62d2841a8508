"""bench.charts.markdown for a run that skipped parts (`make bench ARGS="--skip ..."`): the
report shows the parts that ran and no empty or malformed table for the others."""

from typing import Any

from bench import charts


def report(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "date": "2026-11-29T23:06:04+00:00",
        "cpu_count": 2,
        "jobs_per_drain": 20000,
        "runs": 3,
        "postgres": "15.18",
        "implementations": {
            "python": {
                "version": "0.2.0",
                "language": "Python 3.11.7",
                "batch": 1,
                "drain_jobs_per_s": {},
                "enqueue_jobs_per_s": {},
                "pickup_latency_ms": {},
            }
        },
        "unavailable": {},
        "floor": {},
        "peers": {},
        "warnings": [],
    }
    return base | parts


def test_a_roundtrip_only_run_shows_the_roundtrip_table_alone() -> None:
    cells = {"select() in a thread": {"wall_us": 77.6, "cpu_us": 44.1}}
    text = charts.markdown(report(roundtrip=cells))
    assert "| select() in a thread | 77.6 | 44.1 |" in text
    assert "### Drain" not in text
    assert "### Enqueue" not in text
    assert "### Pickup latency" not in text
    assert "| |  |" not in text
    assert "\n\n\n" not in text


def test_a_drain_only_run_shows_the_drain_table_alone() -> None:
    data = report()
    cell = {"median": 2000.0, "min": 1900.0, "max": 2100.0, "runs": 3, "spread": 0.1}
    data["implementations"]["python"]["drain_jobs_per_s"] = {"1": cell}
    text = charts.markdown(data)
    assert "| python | 2,000 (1,900-2,100) |" in text
    assert "### Enqueue" not in text
    assert "### Pickup latency" not in text
