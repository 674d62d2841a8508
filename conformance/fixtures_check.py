"""`make fixtures-check`: every fixture is well formed and agrees with its stated rule.

Well formed: it validates against its JSON Schema in fixtures/schema/. Agrees: stored
texts equal what the named encoding rule writes, orderings equal what the ordering rule
gives, the retry table equals n**4 + 3, patterns compile. A fixture that contradicts
its own rule would make the suite test the wrong thing, so this runs in CI.
"""

import json
import re
import sys
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from conformance import rules
from conformance.model import last_error, retry_delay

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # a link to fixtures/ in a checkout

SCHEMAS = {
    "args_vectors.json": "args-vectors.schema.json",
    "schema_v1.json": "schema.schema.json",
    "schema_v2.json": "schema.schema.json",
    "schema_v3.json": "schema.schema.json",
    "schema_v5.json": "pg-catalogue.schema.json",
    "schema_v7.json": "pg-catalogue.schema.json",
    "retry.json": "retry.schema.json",
    "last_error.json": "last-error.schema.json",
    "ordering.json": "ordering.schema.json",
    "rules.json": "rules.schema.json",
    "catalogue.json": "catalogue.schema.json",
    "catalogue2.json": "catalogue.schema.json",
    "catalogue_activejob.json": "catalogue.schema.json",
    "activejob_6_1.json": "activejob.schema.json",
    "ruby_methods.json": "ruby-methods.schema.json",
}


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def exact_for(args_json: str, stored: dict[str, str]) -> list[str]:
    """The writer/reader pairs whose reader gets the value the input itself gives."""
    found = []
    for encoding, text in stored.items():
        for model, parse in rules.MODELS.items():
            if rules.same_json(parse(text), parse(args_json), rules.ORDERED[model]):
                found.append(f"{encoding}/{model}")
    return found


def check_args_vectors(data: Any) -> list[str]:
    problems = []
    names = [v["name"] for v in data["vectors"]]
    if len(names) != len(set(names)):
        problems.append("args_vectors.json: vector names are not unique")
    for vector in data["vectors"]:
        where = f"args_vectors.json: {vector['name']}"
        try:
            value = rules.parse_exact(vector["args_json"])
        except ValueError as error:
            problems.append(f"{where}: args_json is not JSON: {error}")
            continue
        if not isinstance(value, list):
            problems.append(f"{where}: args_json must be a JSON array")
        for encoding, text in vector["stored"].items():
            expected = rules.stored_text(vector["args_json"], encoding)
            if expected is None:
                problems.append(f"{where}: unknown args_encoding {encoding!r}")
            elif expected != text:
                problems.append(f"{where}: stored[{encoding!r}] is {text!r}, the rule writes {expected!r}")
        computed = exact_for(vector["args_json"], vector["stored"])
        if sorted(computed) != sorted(vector["exact_for"]):
            problems.append(f"{where}: exact_for is {vector['exact_for']}, the rules give {computed}")
    return problems


def check_ordering(data: Any) -> list[str]:
    problems = []
    for scenario in data["scenarios"]:
        labels = [j["label"] for j in scenario["jobs"]]
        if len(labels) != len(set(labels)):
            problems.append(f"ordering.json: {scenario['name']}: labels are not unique")
        due = [
            (j["priority"], j["run_at_offset_s"], index, j["label"])
            for index, j in enumerate(scenario["jobs"])
            if j.get("queue", scenario["queue"]) == scenario["queue"] and j["run_at_offset_s"] <= 0
        ]
        computed = [label for *_, label in sorted(due)]
        if computed != scenario["expected"]:
            problems.append(
                f"ordering.json: {scenario['name']}: expected {scenario['expected']}, the rule gives {computed}"
            )
    return problems


def check_retry(data: Any) -> list[str]:
    return [
        f"retry.json: error_count {row['error_count']} has delay {row['delay_seconds']}, n**4 + 3 is "
        f"{retry_delay(row['error_count'])}"
        for row in data["schedule"]
        if row["delay_seconds"] != retry_delay(row["error_count"])
    ]


def case_message(case: dict[str, Any]) -> str:
    """The message a last_error case fails with."""
    return str(case["message"]) * int(case.get("repeat", 1))


def _python_failure(message: str) -> str:
    """What a Python testee writes for RuntimeError(message), by the suite's model (one
    backtrace frame, in the python format's shape)."""
    return last_error("RuntimeError", message, ["testee.py:1:in 'fail'"])


def check_last_error(data: Any) -> list[str]:
    """Every pattern compiles and covers every case; the python and go formats are also
    matched against what Python writes and against the bare message (go's rule)."""
    problems = []
    names = [c["name"] for c in data["cases"]]
    for name, spec in data["formats"].items():
        if sorted(spec["failures"]) != sorted(names):
            problems.append(f"last_error.json: {name}.failures covers {sorted(spec['failures'])}, cases are {names}")
        for case, pattern in [*spec["failures"].items(), ("unknown_class", spec["unknown_class"])]:
            try:
                re.compile(pattern)
            except re.error as error:
                problems.append(f"last_error.json: {name}.{case} does not compile: {error}")
    for case in data["cases"]:
        message = case_message(case)
        examples = {"python": _python_failure(message), "go": message, "gue": message}
        for name, text in examples.items():
            pattern = data["formats"].get(name, {}).get("failures", {}).get(case["name"])
            if pattern is not None and re.fullmatch(pattern, text) is None:
                problems.append(f"last_error.json: {name}.failures.{case['name']} does not match {text[:80]!r}")
    return problems


def check_rules(data: Any) -> list[str]:
    from conformance.report import AREAS

    known = set(AREAS.values()) | {"isolation"}
    return [
        f"rules.json: {rule_id} names area {spec['area']!r}, which no conformance module reports"
        for rule_id, spec in data["rules"].items()
        if spec["area"] not in known
    ]


def check_schema(data: Any) -> list[str]:
    where = f"schema_v{data['schema_version']}.json"
    names = [c["name"] for c in data["columns"]]
    problems = []
    if len(names) != len(set(names)):
        problems.append(f"{where}: column names are not unique")
    missing = [c for c in data["primary_key"]["columns"] if c not in names]
    if missing:
        problems.append(f"{where}: primary key names unknown columns {missing}")
    if data["comment"] != str(data["schema_version"]):
        problems.append(f"{where}: the comment of version {data['schema_version']} is {data['comment']!r}")
    return problems


def check_catalogue(data: Any, name: str = "catalogue.json") -> list[str]:
    """Term ids are unique and each names a rule of rules.json."""
    problems = []
    rules_known = set(load("rules.json")["rules"])
    ids = [term["id"] for term in data["terms"]]
    problems += [f"{name}: term {i} is listed twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for term in data["terms"]:
        if term["rule"] not in rules_known:
            problems.append(f"{name}: {term['id']} names rule {term['rule']!r}, which rules.json lacks")
    return problems


def check_catalogue2(data: Any) -> list[str]:
    """As check_catalogue, for Ruby Que 2.4.1's terms; no id shared with Que 0.14.3's."""
    shared = {t["id"] for t in data["terms"]} & {t["id"] for t in load("catalogue.json")["terms"]}
    return check_catalogue(data, "catalogue2.json") + [
        f"catalogue2.json: {i} is a term of catalogue.json too" for i in sorted(shared)
    ]


def check_catalogue_activejob(data: Any) -> list[str]:
    """As check_catalogue, for ActiveJob's terms: each an activejob- rule, no id shared."""
    others = {t["id"] for name in ("catalogue.json", "catalogue2.json") for t in load(name)["terms"]}
    name = "catalogue_activejob.json"
    return (
        check_catalogue(data, name)
        + [f"{name}: {t['id']} is a term of another catalogue too" for t in data["terms"] if t["id"] in others]
        + [
            f"{name}: {t['id']} names {t['rule']}, not an activejob- rule"
            for t in data["terms"]
            if not t["rule"].startswith("activejob-")
        ]
    )


def check_activejob_cases(data: Any) -> list[str]:
    """Every case's arguments are one array SPEC, and what Rails wrote is one item per argument."""
    problems = []
    for index, case in enumerate(data["cases"]):
        arguments = case["arguments"]
        if arguments[0] != "array" or len(arguments) != 2:
            problems.append(f"activejob_6_1.json: case {index}: arguments are not an array SPEC")
        elif len(arguments[1]) != len(case["written"]):
            problems.append(
                f"activejob_6_1.json: case {index}: {len(arguments[1])} arguments, {len(case['written'])} written"
            )
    return problems


def check_pg_catalogue(data: Any) -> list[str]:
    """A catalogue dump names the table of its schema version and its trigger functions."""
    tables = {row[0] for row in data["catalogue"].get("tables", [])}
    name = f"schema_v{data.get('schema_version')}.json"
    problems = [] if "que_jobs" in tables else [f"{name}: no que_jobs among its tables"]
    functions = {row[0] for row in data["catalogue"].get("functions", [])}
    for needed in ("que_job_notify", "que_state_notify", "que_determine_job_state"):
        if needed not in functions:
            problems.append(f"{name}: no function {needed}")
    return problems


def check_ruby_methods(data: dict[str, Any]) -> list[str]:
    """Each edge case the suite's model has a rule for is what the model says (the real
    Ruby's side is checked by tests/tools/test_ruby_methods.py, where Ruby is installed)."""
    from conformance import model

    problems = []
    for method, spec in data["methods"].items():
        for edge in spec["edges"]:
            if "model" not in edge:
                continue
            wanted = edge.get("model_expected", edge["expected"])
            seen = eval(edge["model"], {"model": model})  # an expression of the fixture's own
            if seen != wanted:
                edge_name = f"{method} edge {edge['id']}"
                problems.append(f"ruby_methods.json: {edge_name}: the model gives {seen!r}, not {wanted!r}")
    return problems


SEMANTIC = {
    "args_vectors.json": check_args_vectors,
    "ordering.json": check_ordering,
    "retry.json": check_retry,
    "last_error.json": check_last_error,
    "schema_v1.json": check_schema,
    "schema_v2.json": check_schema,
    "schema_v3.json": check_schema,
    "rules.json": check_rules,
    "catalogue.json": check_catalogue,
    "catalogue2.json": check_catalogue2,
    "catalogue_activejob.json": check_catalogue_activejob,
    "activejob_6_1.json": check_activejob_cases,
    "ruby_methods.json": check_ruby_methods,
    "schema_v5.json": check_pg_catalogue,
    "schema_v7.json": check_pg_catalogue,
}


def check_capabilities() -> list[str]:
    """The values a testee may declare (conformance/protocol.schema.json) are exactly the rules
    the fixtures and conformance/rules.py define: no value without a rule to check it by."""
    schema = json.loads((Path(__file__).resolve().parent / "protocol.schema.json").read_text(encoding="utf-8"))
    declared = schema["$defs"]["capabilities"]["properties"]
    problems = []
    for capability, defined in (
        ("args_encoding", set(rules.ENCODINGS)),
        ("number_model", set(rules.MODELS)),
        ("last_error_format", set(load("last_error.json")["formats"])),
    ):
        allowed = set(declared[capability]["enum"])
        if allowed != defined:
            problems.append(
                f"protocol.schema.json: {capability} allows {sorted(allowed)}, the rules define {sorted(defined)}"
            )
    for vector in load("args_vectors.json")["vectors"]:
        if set(vector["stored"]) != set(rules.ENCODINGS):
            problems.append(
                f"args_vectors.json: {vector['name']} stores {sorted(vector['stored'])}, not every encoding"
            )
    return problems


def check() -> list[str]:
    problems: list[str] = []
    for name, schema_name in SCHEMAS.items():
        try:
            data = load(name)
        except (OSError, ValueError) as error:
            problems.append(f"{name}: cannot be read as JSON: {error}")
            continue
        schema = json.loads((FIXTURES / "schema" / schema_name).read_text(encoding="utf-8"))
        validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        problems += [f"{name}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]
        if not errors:
            problems += SEMANTIC[name](data)
    return problems + check_capabilities()


def main() -> int:
    problems = check()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"fixtures-check: {len(SCHEMAS)} fixtures, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
