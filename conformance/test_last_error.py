"""Area last_error: the text a failure records, case by case (fixtures/last_error.json): a
plain message, one longer than Ruby's 500-character cut, several lines, an empty one,
non-ASCII, and the backtrace lines that follow. Each implementation is held to the shape it
declares (`last_error_format`); a shape the fixture does not know must still be recorded."""

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


@pytest.mark.parametrize("case", list(CASES))
def test_last_error_shape(impl: str, case: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    message = CASES[case]
    job_id = insert(db, FAIL, json.dumps([message], ensure_ascii=False))
    check(fleet.get(impl).work_one()["worked"] is True, "last-error", impl=impl, job=job_id, detail="work_one")
    [job] = jobs(db)
    text = job["last_error"]
    check(text is not None, "last-error", impl=impl, job=job_id, detail="last_error is NULL after a failure")
    shape = fleet.info(impl).capabilities.get("last_error_format")
    if shape not in DATA["formats"]:
        check(bool(text) or not message, "last-error", impl=impl, job=job_id, detail="empty last_error", seen=text)
        return
    pattern = DATA["formats"][shape]["failures"][case]
    check(
        re.fullmatch(pattern, text) is not None,
        "last-error",
        impl=impl,
        job=job_id,
        detail=f"case {case!r} in the {shape} shape ({DATA['formats'][shape]['source']})",
        expected=pattern,
        seen=text,
    )
