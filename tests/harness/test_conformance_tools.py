"""The suite's own machinery: fixtures check, rules, expectations --fix, the report."""

import json
from pathlib import Path

from conformance import expectations, fixtures_check, rules
from conformance.report import Cell, Run


def test_fixtures_are_well_formed_and_agree_with_their_rules() -> None:
    assert fixtures_check.check() == []


def test_fixture_check_catches_a_wrong_stored_text() -> None:
    data = fixtures_check.load("args_vectors.json")
    data["vectors"][1]["stored"]["ruby-json-dump"] = '[1, "two"]'
    problems = fixtures_check.check_args_vectors(data)
    assert any("basic: stored['ruby-json-dump']" in p for p in problems)


def test_go_rule_examples() -> None:
    assert rules.stored_text('[1.0, 1e21, 1e-7, 9007199254740993, "<&>"]', "go-encoding-json") == (
        '[1,1e+21,1e-7,9007199254740992,"\\u003c\\u0026\\u003e"]'
    )
    assert rules.stored_text('[{"b":1,"a":2}]', "go-encoding-json") == '[{"a":2,"b":1}]'
    assert rules.received_matches("float64", "[1]", "[1.0]")
    assert not rules.received_matches("exact", "[1]", "[1.0]")


def test_expectations_fix_drops_stale_and_adds_new(tmp_path: Path) -> None:
    current = {
        "a.py::t[go]": expectations.Divergence("go", "a.py::t[go]", "old", "https://x"),
        "a.py::u[go]": expectations.Divergence("go", "a.py::u[go]", "kept", ""),
    }
    written = expectations.fix(current, {"b.py::v[ruby]": ("ruby", "boom")}, {"a.py::t[go]"}, tmp_path)
    assert sorted(p.name for p in written) == ["go.json", "ruby.json"]
    go = json.loads((tmp_path / "go.json").read_text())
    assert [e["cell"] for e in go["divergences"]] == ["a.py::u[go]"]
    ruby = json.loads((tmp_path / "ruby.json").read_text())
    assert ruby["divergences"][0]["reason"] == "TODO explain: boom"
    assert set(expectations.load(tmp_path)) == {"a.py::u[go]", "b.py::v[ruby]"}


def test_report_counts_and_matrices(tmp_path: Path) -> None:
    run = Run(
        cells=[
            Cell("x::a[python->go]", "arguments", ["python", "go"], "passed", "python", "go"),
            Cell("x::a[go->python]", "arguments", ["go", "python"], "expected", "go", "python"),
            Cell("x::b[ruby]", "ordering", ["ruby"], "unavailable"),
            Cell("x::c[go]", "schema", ["go"], "not_applicable"),
            Cell("x::d[python]", "ordering", ["python"], "failed", message="boom"),
            Cell("x::e[python]", "ordering", ["python"], "stale"),
        ],
        implementations={"python": {"available": True}, "go": {"available": True}, "ruby": {"available": False}},
    )
    assert run.summary_line() == "1 passed, 2 failed, 1 unavailable, 1 expected divergences, 1 not applicable"
    matrix = run.impl_area_matrix()
    assert matrix.splitlines() == [
        "| implementation | schema | arguments | ordering |",
        "|---|---|---|---|",
        "| python |  | 1/2 ~1 | 0/2 x2 |",
        "| go | n/a | 1/2 ~1 |  |",
        "| ruby |  |  | unavailable |",
    ]
    assert "| python |  | 1/1 |" in run.pair_matrix()
    run.write(tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["counts"]["failed"] == 1 and data["counts"]["stale"] == 1
    assert "x::d[python]" in (tmp_path / "matrix.md").read_text()
