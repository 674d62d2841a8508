"""PROTOCOL.md, the schema and the testees say the same thing.

The minimal testee printed in PROTOCOL.md is run as an outside testee, the capability
table is the schema's closed set, and the job-class table is what every built-in testee
registers. Documentation that drifts from the code fails here.
"""

import json
import re
import sys
from pathlib import Path

import jsonschema

from harness import protocol
from que.activejob import WRAPPER
from testees.python.aio import AsyncTestee
from testees.python.common import ACTIVE_JOB_CLASSES, JOB_CLASSES
from testees.python.threads import Testee as PythonTestee
from tests.harness.test_broken_testees import outcomes, run_suite

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "conformance" / "PROTOCOL.md").read_text()


def section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end > 0 else None]


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(protocol.schema())


def test_the_capability_table_is_the_schemas_closed_set() -> None:
    documented = re.findall(r"^\| `([a-z_]+)` \| (?:bool|string|int) \|", DOC, flags=re.M)
    assert documented == protocol.capabilities()


def test_every_testee_registers_exactly_the_documented_job_classes() -> None:
    rows = re.findall(r"^\| `(QueConformance::\w+)` \|[^|]*\| (.*)$", section("Job classes"), flags=re.M)
    documented = {name for name, _ in rows}
    que2_only = {name for name, text in rows if text.startswith("(Que 1.x/2.x dialects)")}
    assert documented - que2_only == {f"QueConformance::{n}" for n in ("Echo", "Fail", "Sleep", "Noop", "Flaky")}
    assert que2_only == {"QueConformance::Finish", "QueConformance::Expire"}
    assert set(JOB_CLASSES) == documented, f"the Python testees register {sorted(JOB_CLASSES)}"
    for testee in (PythonTestee(), AsyncTestee()):
        assert sorted(testee.handlers) == sorted({*documented, WRAPPER})  # ActiveJob's jobs come through one wrapper
    go = set(re.findall(r'"(QueConformance::\w+)"', (ROOT / "testees" / "go" / "testee" / "testee.go").read_text()))
    assert go == documented - que2_only, f"go registers {sorted(go)}"
    classes = r"^\s+class (\w+) < Que::Job"
    ruby = set(re.findall(classes, (ROOT / "testees" / "ruby" / "testee.rb").read_text(), flags=re.M))
    assert {f"QueConformance::{n}" for n in ruby} == documented - que2_only, f"ruby registers {sorted(ruby)}"
    ruby2 = set(re.findall(classes, (ROOT / "testees" / "ruby2" / "testee.rb").read_text(), flags=re.M))
    assert que2_only <= {f"QueConformance::{n}" for n in ruby2}, f"ruby2 registers {sorted(ruby2)}"


def test_the_activejob_job_classes_are_the_documented_ones() -> None:
    rows = re.findall(r"^\| `(QueConformance::\w+)` \|", section("ActiveJob"), flags=re.M)
    assert set(rows) == set(ACTIVE_JOB_CLASSES), rows
    rails = (ROOT / "testees" / "rails" / "testee.rb").read_text()
    defined = set(re.findall(r"const_set\(:(Aj\w+), Class.new\(ActiveJob::Base\)", rails))
    assert {f"QueConformance::{name}" for name in defined} == set(rows), defined


def test_every_declared_capability_of_the_builtin_testees_is_in_the_schema() -> None:
    closed = set(protocol.capabilities())
    go = set()
    for main in (ROOT / "testees" / "go" / "cmd").glob("*/main.go"):
        block = main.read_text().split("Capabilities()", 1)[1].split("\n}\n", 1)[0]
        go |= set(re.findall(r'"([a-z_]+)":', block))
    ruby_block = (ROOT / "testees" / "ruby" / "testee.rb").read_text().split("capabilities: {", 1)[1].split("}", 1)[0]
    ruby = set(re.findall(r"(\w+):", ruby_block))
    assert go and go <= closed, go - closed
    assert ruby and ruby <= closed, ruby - closed


def minimal_testee(folder: Path) -> Path:
    """The minimal testee of PROTOCOL.md, written out as a script."""
    code = re.search(r"## A minimal testee.*?```python\n(.*?)```", DOC, flags=re.S)
    assert code is not None, "PROTOCOL.md lost its minimal testee"
    script = folder / "minimal_testee.py"
    script.write_text(code.group(1))
    return script


def test_the_minimal_testee_in_protocol_md_passes_its_cells(database_url: str, tmp_path: Path) -> None:
    script = minimal_testee(tmp_path)
    results_dir = tmp_path / "results"
    status, results, output, _ = run_suite(
        [],
        results_dir,
        impls="python",
        select="testee1",
        database_url=database_url,
        testees=[f"{sys.executable} {script}"],
    )
    assert status == 0, output[-3000:]
    found = outcomes(results)
    passed = [cell for cell, (outcome, _) in found.items() if outcome == "passed" and "testee1" in cell]
    failed = {cell: message[:300] for cell, (outcome, message) in found.items() if outcome in ("failed", "stale")}
    assert failed == {}
    # Its whole row ran: both directions with the reference Python row, retries, time zones.
    assert len(passed) >= 40, passed
    assert any("testee1->python" in cell for cell in passed), json.dumps(sorted(found), indent=1)
    assert any("python->testee1" in cell for cell in passed), json.dumps(sorted(found), indent=1)
    assert any("test_retries" in cell for cell in passed), json.dumps(sorted(found), indent=1)
    assert results["implementations"]["testee1"]["version"]
