"""The import graph keeps the layers docs/architecture.md draws: no circle, and no import
from a lower layer up into a higher one, in que/ and in the suite.

que/, bottom up: core (the vocabulary: jobs, errors, JSON, backoff, handlers) -> engine
(sans-I/O sessions, wire format, a locker's books) -> dialects | drivers (the two seams:
what a protocol says, how to wait) -> shells (Client, Worker, WorkerPool ..., asyncio source
and generated sync twin) -> the public facades, the cli and contrib. The suite: harness (runs
things) -> conformance (the judge) -> mutation, bench, chaos, tools; the judge imports
nothing from que.
"""

import pytest

from tools.layers import QUE_LAYERS, ROOT, SIBLINGS, SUITE_LAYERS, cycles, graph, imports, layer_of, modules


def test_que_has_no_import_circle() -> None:
    assert cycles(graph(["que"])) == []


def test_que_imports_only_down_its_layers() -> None:
    wrong = []
    for name, targets in graph(["que"]).items():
        source = layer_of(name, QUE_LAYERS)
        assert source is not None, f"{name} is in no layer of QUE_LAYERS"
        for target in targets:
            found = layer_of(target, QUE_LAYERS)
            assert found is not None
            if found[1] > source[1] or (source[0], found[0]) in SIBLINGS:
                wrong.append(f"{name} ({source[0]}) imports {target} ({found[0]})")
    assert wrong == []


@pytest.mark.parametrize("package", ["harness", "conformance", "testees", "mutation"])
def test_the_suite_has_no_import_circle(package: str) -> None:
    if not (ROOT / package).is_dir():
        pytest.fail(f"{package}/ is missing")
    assert cycles(graph([package])) == []


def test_the_suite_imports_only_down_its_layers() -> None:
    wrong = []
    packages = [prefix for prefix, _ in SUITE_LAYERS]
    for name, targets in graph(packages).items():
        source = layer_of(name, SUITE_LAYERS)
        assert source is not None
        for target in targets:
            found = layer_of(target, SUITE_LAYERS)
            if found is not None and found[1] > source[1]:
                wrong.append(f"{name} imports {target}, a layer above it")
    assert wrong == []


def test_the_judge_imports_nothing_from_que() -> None:
    """conformance/ is the judge; que is a contestant (through the python testees, which
    live in testees/). The harness runs things and builds nothing of que's either."""
    wrong = [
        f"{name} imports {target}"
        for package in ("conformance", "harness")
        for name, path in modules(package)
        for target in imports(path, name)
        if target == "que" or target.startswith("que.")
    ]
    assert wrong == []
