"""The Ruby core methods each catalogue term depends on, and their edge cases
(fixtures/ruby_methods.json), for `make rules`.

A term's behaviour in Ruby Que comes from Ruby's own methods as much as from its statements:
String#strip decides a blank message, String#slice counts characters, JSON.generate writes
the args, Que.constantize finds a class. A port reimplements those with its own language's
methods, which differ at the edges (what is whitespace, what a character is, how a float or
a big integer is written). Each edge case here is checked against the real Ruby (and the
suite's model, where it has one) by tests/tools/test_ruby_methods.py, and names the cells
that send it through every port (or, where no cell can carry it, the tests that check it).
"""

import fnmatch
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.support import fixture

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Edge:
    id: str
    method: str
    says: str
    ruby: str
    expected: Any
    checked_by: tuple[str, ...]
    model: str | None = None
    model_expected: Any = None

    @property
    def for_model(self) -> Any:
        return self.expected if self.model_expected is None else self.model_expected


def data() -> dict[str, Any]:
    loaded: dict[str, Any] = fixture("ruby_methods.json")
    return loaded


def edges() -> list[Edge]:
    found = []
    for method, spec in data()["methods"].items():
        for edge in spec["edges"]:
            found.append(
                Edge(
                    edge["id"],
                    method,
                    edge["says"],
                    edge["ruby"],
                    edge["expected"],
                    tuple(edge["checked_by"]),
                    edge.get("model"),
                    edge.get("model_expected"),
                )
            )
    return found


def _exists(reference: str, cells: set[str]) -> bool:
    """Whether a checked_by entry names a cell of the suite (conformance/..., with an
    optional [pattern] over its collected ids) or a test function (tests/...)."""
    path, _, name = reference.partition("::")
    function, _, params = name.partition("[")
    if path.startswith("tests/"):
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        return callable(getattr(module, function, None))
    module = importlib.import_module("conformance." + path.removesuffix(".py").replace("/", "."))
    if not callable(getattr(module, function, None)):
        return False
    if not params or path.startswith("que2/") or path.startswith("activejob/"):
        return True  # cells of the other dialects are not collected in the 0.14 run
    pattern = f"{path}::{function}[[]{params}"  # fnmatch's [[] is a literal [
    return any(fnmatch.fnmatchcase(cell, pattern) for cell in cells)


def problems(term_ids: list[str], cells: set[str]) -> list[str]:
    """What is missing: a term without an entry, an unknown method, an edge no cell or test
    checks, a checked_by that names nothing."""
    found = []
    spec = data()
    listed = spec["terms"]
    for term in term_ids:
        if term not in listed:
            found.append(f"fixtures/ruby_methods.json: term {term} lists no methods (an empty list if none)")
    for term, methods in listed.items():
        if term not in term_ids:
            found.append(f"fixtures/ruby_methods.json: {term} is no catalogue term")
        unknown = [method for method in methods if method not in spec["methods"]]
        found += [f"fixtures/ruby_methods.json: {term} names unknown method {method}" for method in unknown]
    for edge in edges():
        if not edge.checked_by:
            found.append(f"fixtures/ruby_methods.json: edge {edge.id} ({edge.method}) names nothing that checks it")
        for reference in edge.checked_by:
            if not _exists(reference, cells):
                found.append(f"fixtures/ruby_methods.json: edge {edge.id} names {reference}, which does not exist")
    return found


def lines(term: str) -> list[str]:
    """`make rules`' lines for a term: its methods, their edges and what checks each."""
    out = []
    spec = data()
    for method in spec["terms"].get(term, []):
        out.append(f"    method {method}")
        for edge in edges():
            if edge.method == method:
                out.append(f"      edge {edge.id}: {edge.says}")
                out += [f"        checked by {reference}" for reference in edge.checked_by]
    return out
