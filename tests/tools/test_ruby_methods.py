"""fixtures/ruby_methods.json against the real Ruby: every edge case of a Ruby core method a
catalogue term depends on is what Debian's Ruby 3.1 says it is, and the suite's model
(conformance/model.py) agrees where it has that rule. make rules checks that each edge
names cells or tests that exist; this checks the facts themselves."""

import json
import shutil
import subprocess

import pytest

from conformance import methods, model

RUBY = shutil.which("ruby")
EDGES = methods.edges()


@pytest.fixture(scope="module")
def ruby_says() -> dict[str, object]:
    """Each edge's Ruby expression, evaluated by the real Ruby, by edge id."""
    if RUBY is None:
        pytest.fail("ruby is not installed: make test installs Debian's ruby (harness/bootstrap.sh --test)")
    script = "require 'json'; $stdin.each_line { |l| puts JSON.generate([eval(JSON.parse(l))]) }"
    lines = "".join(json.dumps(edge.ruby) + "\n" for edge in EDGES)
    done = subprocess.run([RUBY, "-e", script], input=lines, capture_output=True, text=True, check=True)
    answers = [json.loads(line)[0] for line in done.stdout.split("\n")[:-1]]
    return {edge.id: answer for edge, answer in zip(EDGES, answers, strict=True)}


@pytest.mark.parametrize("edge", EDGES, ids=[edge.id for edge in EDGES])
def test_each_edge_case_is_what_ruby_says(edge: methods.Edge, ruby_says: dict[str, object]) -> None:
    assert ruby_says[edge.id] == edge.expected, f"{edge.method}: {edge.says}"


@pytest.mark.parametrize("edge", [e for e in EDGES if e.model], ids=[e.id for e in EDGES if e.model])
def test_the_model_agrees_on_each_edge_case(edge: methods.Edge) -> None:
    assert edge.model is not None
    assert eval(edge.model, {"model": model}) == edge.for_model, f"{edge.method}: {edge.says}"


def test_every_term_lists_its_methods_and_every_edge_names_what_checks_it() -> None:
    from conformance.catalogue import collected_cells, terms

    assert methods.problems([term["id"] for term in terms()], collected_cells()) == []
