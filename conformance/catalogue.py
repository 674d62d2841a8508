"""`make rules`: every term of Ruby Que 0.14.3's statements and computed values
(fixtures/catalogue.json) and of Ruby Que 2.4.1's (fixtures/catalogue2.json, checked by the
cells of conformance/que2/), each with the conformance cells that check it.

A cell names the terms it checks with `@pytest.mark.covers(...)`. This lists term -> cells
(and, after `make mutate`, the cells that killed the term's mutants and how fast) and
exits non-zero when a term has no cell, a cell names a term the catalogue lacks, or a
listed divergence (conformance/expectations) names a cell the suite does not have. Under
each term: the Ruby core methods it depends on, their edge cases and the cells that check
each (fixtures/ruby_methods.json, conformance.methods).
"""

import argparse
import importlib
import inspect
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from conformance import expectations, methods
from conformance.support import fixture
from harness import implementations

HERE = Path(__file__).resolve().parent
MUTATION_RESULTS = Path("results") / "mutation" / "latest.json"


def terms() -> list[dict[str, Any]]:
    return [
        *fixture("catalogue.json")["terms"],
        *fixture("catalogue2.json")["terms"],
        *fixture("catalogue_activejob.json")["terms"],
    ]


def test_modules() -> list[str]:
    """Dotted module names under conformance/: the 0.14 dialect's, the Que 2 dialect's and
    the ActiveJob cells (every dialect's)."""
    paths = [*HERE.glob("test_*.py"), *HERE.glob("que2/test_*.py"), *HERE.glob("activejob/test_*.py")]
    found = [path.relative_to(HERE).with_suffix("") for path in paths]
    return sorted(".".join(path.parts) for path in found)


def covering() -> dict[str, list[str]]:
    """term id -> the cells (test_file.py::test_name) marked as covering it."""
    found: dict[str, list[str]] = {}
    for module_name in test_modules():
        module = importlib.import_module(f"conformance.{module_name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if not name.startswith("test_") or function.__module__ != module.__name__:
                continue
            for mark in getattr(function, "pytestmark", []):
                if mark.name == "covers":
                    for term in mark.args:
                        found.setdefault(term, []).append(f"{module_name.replace('.', '/')}.py::{name}")
    return found


class _Collector:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        self.ids = {item.nodeid.split("conformance/", 1)[-1] for item in items}


def collected_cells() -> set[str]:
    """Every cell id of a default run (all built-in rows), without running any."""
    collector = _Collector()
    os.environ.setdefault("QUE_CONFORMANCE_IMPLS", ",".join(implementations.BUILTINS))
    code = pytest.main(
        [
            str(HERE),
            "-c",
            str(HERE / "pytest.ini"),
            "--rootdir",
            str(HERE),
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:warnings",
        ],
        plugins=[collector],
    )
    if code not in (0, 5):
        raise RuntimeError(f"collecting the conformance cells failed (pytest status {code})")
    return collector.ids


def problems(catalogue: Iterable[dict[str, Any]], covered: dict[str, list[str]], cells: set[str]) -> list[str]:
    known = {term["id"] for term in catalogue}
    found = [f"term {term['id']} ({term['source']}) has no cell" for term in catalogue if not covered.get(term["id"])]
    found += [
        f"cells {sorted(where)} cover {term!r}, which fixtures/catalogue.json lacks"
        for term, where in covered.items()
        if term not in known
    ]
    for cell, divergence in sorted(expectations.load().items()):
        if cell not in cells:
            found.append(f"conformance/expectations/{divergence.impl}.json lists {cell}, which is no cell of the suite")
    return found


def killed_by(path: Path) -> dict[str, list[str]]:
    """term id -> 'mutant: cell (seconds)' from the latest make mutate, if any."""
    if not path.is_file():
        return {}
    run = json.loads(path.read_text())
    found: dict[str, list[str]] = {}
    for mutant in run.get("mutants", []):
        if mutant["outcome"] == "killed":
            found.setdefault(mutant["term"], []).append(f"{mutant['id']}: {mutant['cell']} ({mutant['seconds']:.0f} s)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rules", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--mutation", default=str(MUTATION_RESULTS), help="a make mutate result to show kills from")
    options = parser.parse_args(argv)
    catalogue = terms()
    covered = covering()
    kills = killed_by(Path(options.mutation))
    for term in catalogue:
        cells = covered.get(term["id"], [])
        print(f"{term['id']}  [{term['rule']}]  {term['source']}: {term['term']}")
        for cell in cells:
            print(f"    cell  {cell}")
        for kill in kills.get(term["id"], []):
            print(f"    killed {kill}")
        for line in methods.lines(term["id"]):
            print(line)
        if not cells:
            print("    NO CELL")
    cells = collected_cells()
    found = problems(catalogue, covered, cells) + methods.problems([term["id"] for term in catalogue], cells)
    for problem in found:
        print(f"rules: {problem}", file=sys.stderr)
    with_cells = sum(1 for term in catalogue if covered.get(term["id"]))
    edges = methods.edges()
    with_methods = sum(1 for term in catalogue if methods.data()["terms"].get(term["id"]))
    print(
        f"rules: {with_cells} of {len(catalogue)} terms have a cell; {with_methods} depend on Ruby core methods, "
        f"whose {len(edges)} edge cases each name what checks them; {len(found)} problems"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
