"""Area 2.x retries: the backoff and the last_error_message/backtrace cuts, and expiry past
the retry limit."""

import json
import re
from typing import Any

import psycopg
import pytest

from conformance.checks import check, check_equal
from conformance.fleet import Fleet, require
from conformance.que2.witness import QUEUE, insert, jobs
from conformance.support import FAIL, executions


def error_class(text: str | None, impl: str) -> str:
    """The error class a row's last_error_message names ("<class>: <message>"): whatever the
    port's language calls the error QueConformance::Fail raised (PROTOCOL.md, "The error's
    text"); a constant path (`Foo::Bar`, `pkg.Error`, `*errors.errorString`) of at most 200
    characters, so the rest of the text can be compared byte for byte."""
    name = (text or "").split(": ", 1)[0]
    check(
        name != text and re.fullmatch(r"[*A-Za-z_][\w:.*]{0,199}", name) is not None,
        "que2-retry",
        impl=impl,
        detail="last_error_message is '<error class>: <message>'",
        seen=(text or "")[:120],
    )
    return name


@pytest.mark.covers(
    "que2.set_error.count",
    "que2.set_error.run_at",
    "que2.set_error.message",
    "que2.set_error.backtrace",
    "que2.retry.limit",
)
def test_a_failure_backs_off_and_keeps_the_cut_message(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    require(fleet.info(impl), "work_pool")
    insert(db, FAIL, '["' + "x" * 600 + '"]')
    fleet.get(impl).request("work", queue=QUEUE, workers=1, deadline_ms=10_000)
    [row] = jobs(db)
    check_equal(row["error_count"], 1, "que2-retry", impl=impl)
    check(
        3.0 <= row["due_in_s"] <= 4.0, "que2-retry", impl=impl, detail="run_at now() + 1**4 + 3 s", seen=row["due_in_s"]
    )
    raised = error_class(row["last_error_message"], impl)
    check_equal(row["last_error_message"], (raised + ": " + "x" * 600)[:500], "que2-retry", impl=impl)
    backtrace = row["last_error_backtrace"] or ""
    check(0 < len(backtrace) <= 10_000, "que2-retry", impl=impl, detail="a backtrace of at most 10,000 characters")
    lines = backtrace.split("\n")
    check(
        len(lines) >= 2 and all(lines),
        "que2-retry",
        impl=impl,
        detail="one frame per line, at least two, no empty line and no trailing newline",
        seen=backtrace[-300:],
    )
    check_equal((row["expired_at"], row["finished_at"]), (None, None), "que2-retry", impl=impl)


@pytest.mark.covers("que2.expire_job.columns", "que2.retry.limit")
def test_past_the_retry_limit_the_job_expires(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Que 2's maximum_retry_count is 15: the 15th failure is still retried, the 16th
    expires the job and leaves the error columns as the previous failure wrote them."""
    require(fleet.info(impl), "work_pool")
    last = insert(db, FAIL, '["last"]', error_count=14)
    past = insert(db, FAIL, '["again"]', error_count=15, last_error_message="before", last_error_backtrace="trace")
    fleet.get(impl).request("work", queue=QUEUE, workers=1, deadline_ms=10_000)
    rows = {row["id"]: row for row in jobs(db)}
    retried = (rows[last]["error_count"], rows[last]["expired_at"], rows[last]["last_error_message"])
    raised = error_class(rows[last]["last_error_message"], impl)
    check_equal(retried, (15, None, f"{raised}: last"), "que2-retry", impl=impl, detail="the 15th failure")
    check(rows[past]["expired_at"] is not None, "que2-expire", impl=impl, detail="expired_at is set")
    seen = (rows[past]["error_count"], rows[past]["last_error_message"], rows[past]["last_error_backtrace"])
    check_equal(seen, (16, "before", "trace"), "que2-expire", impl=impl)


# Messages a port's own string handling may change: Que 2 writes "<class>: <message>" as it
# is (no blank check, unlike Que 0.14's last_error), newlines and Unicode spaces kept.
MESSAGES = {
    "empty": "",
    "blank": "   ",
    "unicode_space": "\u00a0\u2003",
    "two_lines": "one\ntwo",
    # 500 characters are cut, not bytes or UTF-16 units: an astral character is one.
    "long_astral": "\U0001f600" * 600,
}


@pytest.mark.covers("que2.set_error.message")
@pytest.mark.parametrize("case", list(MESSAGES))
def test_the_message_is_the_error_class_and_the_message_as_they_are(
    impl: str, case: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    require(fleet.info(impl), "work_pool")
    message = MESSAGES[case]
    insert(db, FAIL, json.dumps([message]))
    fleet.get(impl).request("work", queue=QUEUE, workers=1, deadline_ms=10_000)
    [row] = jobs(db)
    raised = error_class(row["last_error_message"], impl)
    expected = f"{raised}: {message}"[:500]
    check_equal(row["last_error_message"], expected, "que2-retry", impl=impl, detail=f"message {case}")


# Names a forgiving lookup would take for QueConformance::Echo; Ruby Que 2 resolves the
# exact constant path (Que.constantize), so each is an unknown class, a failure like others.
NEAR_NAMES = ["queconformance::echo", "QueConformance::Echo ", " QueConformance::Echo", "Echo", "Other::Echo"]


@pytest.mark.covers("que2.set_error.count")
def test_a_class_name_near_a_registered_one_is_an_unknown_class(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    require(fleet.info(impl), "work_pool")
    named = {insert(db, name, "[1]"): name for name in NEAR_NAMES}
    fleet.get(impl).request("work", queue=QUEUE, workers=1, deadline_ms=10_000)
    rows = {row["id"]: row for row in jobs(db)}
    ran = [e["job_id"] for e in executions(db)]
    check_equal(ran, [], "que2-retry", impl=impl, detail="jobs of classes Ruby cannot find that ran")
    counts = {named[job_id]: rows[job_id]["error_count"] if job_id in rows else None for job_id in named}
    check_equal(counts, dict.fromkeys(NEAR_NAMES, 1), "que2-retry", impl=impl, detail="error_count by job_class")
