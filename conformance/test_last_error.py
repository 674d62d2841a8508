"""Area last_error: the text a failure records, case by case (fixtures/last_error.json): a
plain message, one longer than Ruby's 500-character cut, several lines, an empty one,
non-ASCII, and the backtrace lines that follow. Every implementation is held to Ruby's
shape: a port whose text differs fails these cells, whatever `last_error_format` it
declares, unless conformance/expectations lists them with the reason."""

import json
import re
from typing import Any

import psycopg
import pytest

from conformance.checks import check
from conformance.fleet import Fleet
from conformance.support import FAIL, fixture, insert, jobs

DATA = fixture("last_error.json")
CASES = {case["name"]: str(case["message"]) * int(case.get("repeat", 1)) for case in DATA["cases"]}


@pytest.mark.covers(
    "last_error.class",
    "last_error.blank",
    "last_error.join",
    "last_error.cut",
    "last_error.backtrace",
    "set_error.last_error",
)
@pytest.mark.parametrize("case", list(CASES))
def test_last_error_shape(impl: str, case: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    message = CASES[case]
    job_id = insert(db, FAIL, json.dumps([message], ensure_ascii=False))
    check(fleet.get(impl).work_one()["worked"] is True, "last-error", impl=impl, job=job_id, detail="work_one")
    [job] = jobs(db)
    text = job["last_error"]
    check(text is not None, "last-error", impl=impl, job=job_id, detail="last_error is NULL after a failure")
    # Ruby's shape is the rule for every port. The shape a port declares only makes the
    # message clearer: a port that writes another shape fails here, and only an entry in
    # conformance/expectations (with the reason) lets it past.
    pattern = DATA["formats"]["ruby"]["failures"][case]
    shape = fleet.info(impl).last_error_format
    declared = DATA["formats"][shape]["failures"][case]
    detail = f"case {case!r} in Ruby's shape ({DATA['formats']['ruby']['source']})"
    if shape != "ruby" and re.fullmatch(declared, text):
        detail += f"; the text follows the {shape} shape the testee declares, which is not Ruby's"
    check(
        re.fullmatch(pattern, text) is not None,
        "last-error",
        impl=impl,
        job=job_id,
        detail=detail,
        expected=pattern,
        seen=text,
    )
