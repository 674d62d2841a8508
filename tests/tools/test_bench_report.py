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


def test_issue_28s_targets_compare_each_que_2_pool_with_its_que_0x_self_and_ruby() -> None:
    def cell(value: float) -> dict[str, Any]:
        return {"median": value, "min": value, "max": value, "runs": 3, "spread": 0.0}

    data = report()
    data["implementations"]["python"]["drain_jobs_per_s"] = {w: cell(10_000.0) for w in ("1", "4", "8")}
    data["que2"] = {
        "jobs_per_drain": 10_000,
        "rows": {
            "python": {"drain_jobs_per_s": {"1": cell(8_000.0), "4": cell(6_000.0), "8": cell(7_500.0)}},
            "ruby-2.4.1": {"drain_jobs_per_s": {w: cell(300.0) for w in ("1", "4", "8")}},
        },
    }
    text = charts.markdown(data)
    assert (
        "| Que 2 python at 1 workers: >= 0.7x Que 0.x, >= 20x Ruby Que 2.4.1 | 0.80x Que 0.x, 26.7x ruby-2.4.1 | yes |"
        in text
    )
    assert (
        "| Que 2 python at 4 workers: >= 0.7x Que 0.x, >= 20x Ruby Que 2.4.1 | 0.60x Que 0.x, 20.0x ruby-2.4.1 "
        "| **no** |" in text
    )
