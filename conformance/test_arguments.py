"""Area 4, argument fidelity: the bytes each writer stores and the values each worker receives.

Curated vectors live in fixtures/args_vectors.json with the stored text per writer rule;
Hypothesis adds generated JSON values. The rules (conformance/rules.py, fixtures/README.md)
say what a float64 reader or a Go writer makes of a value, so a lossy outcome passes only
where a recorded rule predicts it exactly.
"""

import json
from typing import Any

import psycopg
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from conformance import rules
from conformance.checks import check
from conformance.fleet import Fleet
from conformance.support import ECHO, executions, fixture, jobs

VECTORS = fixture("args_vectors.json")["vectors"]


@pytest.mark.covers("args.json_dump", "insert_job.args")
def test_stored_text_follows_the_writer_rule(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """For every vector, the args column holds exactly the bytes Ruby's JSON.dump writes.
    The rule a port declares (`args_encoding`) does not change that: it only says in the
    message whether the port at least does what it declares. A port whose bytes differ
    fails here unless conformance/expectations lists this cell with the reason."""
    testee = fleet.get(impl)
    encoding = fleet.info(impl).args_encoding
    for vector in VECTORS:
        testee.enqueue(ECHO, vector["args_json"])
    stored = [j["args"] for j in jobs(db)]
    problems = []
    for vector, text in zip(VECTORS, stored, strict=True):
        expected = vector["stored"][rules.RUBY_ENCODING]
        if text != expected:
            declared = vector["stored"][encoding]
            follows = f" (as the {encoding} rule it declares writes)" if text == declared else ""
            problems.append(f"{vector['name']}: stored {text[:120]!r}{follows}, Ruby writes {expected[:120]!r}")
    check(not problems, "args-stored", impl=impl, detail="\n  ".join(problems))


@pytest.mark.covers("args.json_dump")
def test_vectors_reach_the_worker(enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Each vector enqueued by X is received by Y as Y's number model reads the stored text."""
    writer, reader = fleet.get(enqueuer), fleet.get(worker)
    model = fleet.info(worker).number_model
    for vector in VECTORS:
        writer.enqueue(ECHO, vector["args_json"])
    stored = {j["job_id"]: (vector, j["args"]) for vector, j in zip(VECTORS, jobs(db), strict=True)}
    while reader.work_one()["worked"]:
        pass
    problems = []
    runs: dict[int, list[dict[str, Any]]] = {}
    for run in executions(db):
        runs.setdefault(run["job_id"], []).append(run)
    for job_id, (vector, text) in stored.items():
        got = runs.get(job_id, [])
        if len(got) != 1:
            problems.append(f"{vector['name']}: ran {len(got)} times")
        elif not rules.received_matches(model, got[0]["received"], text):
            problems.append(
                f"{vector['name']}: {worker} received {got[0]['received'][:120]!r} for stored {text[:120]!r}"
            )
    leftover = [j["job_class"] + f" (last_error {str(j['last_error'])[:80]!r})" for j in jobs(db)]
    problems += [f"left in que_jobs: {x}" for x in leftover]
    check(not problems, "args-received", impl=f"{enqueuer} -> {worker}", detail="\n  ".join(problems))


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.covers("args.json_dump")
@given(args=st.lists(json_values, max_size=5))
def test_generated_values_cross_over(
    enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any], args: list[Any]
) -> None:
    """Generated JSON arguments: stored by X per X's rule, received by Y per Y's model."""
    writer, reader = fleet.get(enqueuer), fleet.get(worker)
    db.execute("DELETE FROM que_jobs; DELETE FROM que_conformance_results")
    args_json = json.dumps(args, ensure_ascii=False)
    note(
        "as a fixture vector: "
        + json.dumps(
            {"name": "hypothesis_case", "description": "found by Hypothesis", "args_json": args_json},
            ensure_ascii=False,
        )
    )
    writer.enqueue(ECHO, args_json)
    [job] = jobs(db)
    pair = f"{enqueuer} -> {worker}"
    encoding = fleet.info(enqueuer).args_encoding
    expected = rules.stored_text(args_json, encoding)
    check(
        job["args"] == expected,
        "args-stored",
        impl=enqueuer,
        job=job["job_id"],
        detail=f"given {args_json}, the {encoding} rule",
        expected=expected,
        seen=job["args"],
    )
    check(reader.work_one()["worked"] is True, "args-received", impl=pair, job=job["job_id"], detail="not worked")
    [run] = executions(db)
    model = fleet.info(worker).number_model
    check(
        rules.received_matches(model, run["received"], job["args"]),
        "args-received",
        impl=pair,
        job=job["job_id"],
        detail=f"numbers read as {model}",
        expected=job["args"],
        seen=run["received"],
    )


@pytest.mark.covers("args.json_dump")
def test_arguments_arrive_unchanged(enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """The protocol's promise to users: the worker's handler gets exactly the values the
    enqueuer was given (same types, integers exact, key order kept). Implementations that
    cannot keep it list this cell in conformance/expectations with the reason."""
    writer, reader = fleet.get(enqueuer), fleet.get(worker)
    for vector in VECTORS:
        writer.enqueue(ECHO, vector["args_json"])
    names = {j["job_id"]: vector["name"] for vector, j in zip(VECTORS, jobs(db), strict=True)}
    inputs = {vector["name"]: vector["args_json"] for vector in VECTORS}
    while reader.work_one()["worked"]:
        pass
    changed = [
        f"{names[run['job_id']]}: given {inputs[names[run['job_id']]][:80]} received {run['received'][:80]}"
        for run in executions(db)
        if not rules.same_json(rules.parse_exact(run["received"]), rules.parse_exact(inputs[names[run["job_id"]]]))
    ]
    check(not changed, "args-unchanged", impl=f"{enqueuer} -> {worker}", detail="\n  ".join(changed))
