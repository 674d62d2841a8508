"""The drain cells of `make bench`: their runs are taken in rounds, so that drift in the
machine's load falls on every implementation alike, and the report pairs run i of one
implementation with run i of another to show how far the noise moves their ratio."""

from bench import charts
from bench.drain import interleaved, summarize


def test_runs_go_in_rounds_each_starting_one_implementation_later() -> None:
    order: list[str] = []
    rates = {"python": [10.0, 30.0, 20.0], "python-async": [5.0, 6.0, 7.0], "go": [1.0, 1.0, 4.0]}

    def once(name: str) -> float:
        order.append(name)
        return rates[name][order.count(name) - 1]

    cells = interleaved(3, {name: (lambda n=name: once(n)) for name in rates}, group="drain x2")

    assert order == [
        *("python", "python-async", "go"),
        *("python-async", "go", "python"),
        *("go", "python", "python-async"),
    ]
    assert list(cells) == ["python", "python-async", "go"]
    assert cells["python"] == {
        "median": 20.0,
        "min": 10.0,
        "max": 30.0,
        "runs": 3,
        "spread": 1.0,
        "samples": [10.0, 30.0, 20.0],
        "group": "drain x2",
    }
    assert cells["python-async"]["median"] == 6.0
    assert cells["go"]["median"] == 1.0


def test_no_implementations_give_no_cells() -> None:
    assert interleaved(3, {}, group="drain x1") == {}


def test_the_ratio_of_interleaved_cells_shows_the_range_of_paired_runs() -> None:
    cells = interleaved(3, {"a": iter([110.0, 90.0, 100.0]).__next__, "b": iter([100.0] * 3).__next__}, "drain x1")
    assert charts._ratio(cells["a"], cells["b"]) == "1.00 (0.90-1.10)"


def test_cells_not_taken_together_give_the_ratio_of_medians_alone() -> None:
    drained = interleaved(3, {"python": iter([110.0, 90.0, 100.0]).__next__}, "drain x1")["python"]
    listening = interleaved(3, {"python": iter([50.0, 50.0, 50.0]).__next__}, "drain x8 listening")["python"]
    floor = summarize([200.0, 200.0, 200.0])
    assert charts._ratio(drained, floor) == "0.50"
    assert charts._ratio(listening, drained) == "0.50"
    assert charts._ratio(drained, None) == "-"
