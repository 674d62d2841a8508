"""Area activejob: a Rails app and the other rows share one queue through ActiveJob's Que
adapter, in every dialect. The `rails` row is the real ActiveJob 6.1 on the real Ruby Que of
the run; every cell runs for each row (or pair) that declares the capability active_job.

What Rails writes and receives is known twice: from the Rails row when it runs, and from
fixtures/activejob_6_1.json (recorded from the real ActiveJob) always, so a row is held to
Rails' envelope even in a run without Rails."""

import json
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance import support
from conformance.activejob.model import (
    AJ_ECHO,
    AJ_FAIL,
    AJ_MISSING,
    CALLS,
    ENVELOPE_KEYS,
    JSONB,
    QUEUE,
    WRAPPER,
    cases,
    comparable,
    crossed,
    drain,
    unordered,
)
from conformance.checks import check, check_equal
from conformance.fleet import Fleet, require
from conformance.que2 import witness
from conformance.support import executions, server_now
from harness.results import TABLE
from harness.testee import Testee

ERROR_COLUMN = "last_error_message" if JSONB else "last_error"


def _rows(db: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    columns = f"queue, priority, run_at, job_class, error_count, {ERROR_COLUMN} AS error, args::text AS args"
    with db.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(f"SELECT {columns}, run_at - now() AS due_in FROM que_jobs ORDER BY run_at")
        return cur.fetchall()


def _aj_row(fleet: Fleet, name: str) -> Testee:
    require(fleet.info(name), "active_job", "the cell enqueues or works ActiveJob jobs")
    return fleet.get(name)


def _received(db: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """ActiveJob job_id -> what QueConformance::AjEcho recorded."""
    found = {}
    for row in executions(db):
        if row["job_class"] == AJ_ECHO and row["received"]:
            data = json.loads(row["received"])
            found[data["job_id"]] = {**data, "impl": row["impl"]}
    return found


def _insert_envelope(db: psycopg.Connection[Any], envelope: dict[str, Any]) -> None:
    """A row exactly as Rails' adapter writes it, for the reading cells."""
    args = json.dumps([envelope], ensure_ascii=False, separators=(",", ":"))
    priority = 100 if envelope["priority"] is None else envelope["priority"]
    if JSONB:
        witness.insert(db, WRAPPER, args, queue=envelope["queue_name"], priority=priority)
    else:
        support.insert(db, WRAPPER, args, queue=envelope["queue_name"], priority=priority)


def _envelope(job_class: str, arguments: list[Any], job_id: str | None = None) -> dict[str, Any]:
    return {
        "job_class": job_class,
        "job_id": job_id or str(uuid.uuid4()),
        "provider_job_id": None,
        "queue_name": QUEUE,
        "priority": None,
        "arguments": arguments,
        "executions": 0,
        "exception_executions": {},
        "locale": "en",
        "timezone": "UTC",
        "enqueued_at": "2026-01-02T03:04:05Z",
    }


@pytest.mark.covers(
    "activejob.row.class",
    "activejob.row.queue",
    "activejob.row.priority",
    "activejob.envelope.keys",
    "activejob.envelope.job_id",
    "activejob.envelope.counters",
    "activejob.envelope.enqueued_at",
    "activejob.envelope.locale",
    "activejob.arguments.scalars",
    "activejob.arguments.symbol_keys",
    "activejob.arguments.kwargs",
    "activejob.arguments.indifferent",
    "activejob.arguments.globalid",
    "activejob.serializers.symbol",
    "activejob.serializers.time",
    "activejob.serializers.time_with_zone",
    "activejob.serializers.date_time",
    "activejob.serializers.date",
    "activejob.serializers.duration",
    "activejob.serializers.module",
)
def test_the_row_and_envelope_are_the_ones_rails_writes(impl: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """Each recorded argument list, enqueued by the row, is stored as Rails 6.1 stores it."""
    testee = _aj_row(fleet, impl)
    recorded = cases()
    before = server_now(db)
    ids = [testee.request("aj_enqueue", job_class=AJ_ECHO, arguments=case["arguments"])["job_id"] for case in recorded]
    after = server_now(db)
    rows = _rows(db)
    check_equal(len(rows), len(recorded), "activejob-envelope", impl=impl, detail="one row per job")
    by_id = {json.loads(row["args"])[0].get("job_id"): row for row in rows}
    for job_id, case in zip(ids, recorded, strict=True):
        row = by_id.get(job_id)
        case_ = {"impl": impl, "detail": f"arguments {json.dumps(case['arguments'])[:200]}"}
        check(row is not None, "activejob-envelope", **case_, seen=sorted(by_id, key=str))
        assert row is not None
        check_equal(
            (row["job_class"], row["queue"], row["priority"]), (WRAPPER, QUEUE, 100), "activejob-envelope", **case_
        )
        [envelope] = json.loads(row["args"])
        if not JSONB:  # a json column keeps the writer's key order
            check_equal(list(envelope), list(ENVELOPE_KEYS), "activejob-envelope", **case_)
        check_equal(sorted(envelope), sorted(ENVELOPE_KEYS), "activejob-envelope", **case_)
        fixed = {k: envelope[k] for k in ("job_class", "provider_job_id", "queue_name", "priority", "executions")}
        fixed.update(exception_executions=envelope["exception_executions"], locale=envelope["locale"])
        expected = {"job_class": AJ_ECHO, "provider_job_id": None, "queue_name": QUEUE, "priority": None}
        expected.update(executions=0, exception_executions={}, locale="en")
        check_equal(fixed, expected, "activejob-envelope", **case_)
        check(
            re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", job_id) is not None,
            "activejob-envelope",
            **case_,
            expected="a version-4 UUID",
            seen=job_id,
        )
        stamp = envelope["enqueued_at"]
        ok = isinstance(stamp, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", stamp) is not None
        check(ok, "activejob-envelope", **case_, expected="UTC to the second, as 2026-01-02T03:04:05Z", seen=stamp)
        floor, ceiling = before.replace(microsecond=0), after
        at = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if ok else None
        check(
            at is not None and floor - timedelta(seconds=2) <= at <= ceiling + timedelta(seconds=2),
            "activejob-envelope",
            **case_,
            expected=f"between {floor} and {ceiling}",
            seen=stamp,
        )
        written = envelope["arguments"]
        same = unordered if JSONB else (lambda value: value)
        check_equal(same(written), same(case["written"]), "activejob-arguments", **case_)


@pytest.mark.covers("activejob.perform.arguments", "activejob.perform.executions")
def test_rails_envelopes_are_received_as_rails_receives_them(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """Rows exactly as Rails writes them (recorded), worked by the row: its job receives what
    Rails' job received, and runs with executions counting this run."""
    testee = _aj_row(fleet, impl)
    recorded = cases()
    ids = [str(uuid.uuid4()) for _ in recorded]
    for job_id, case in zip(ids, recorded, strict=True):
        _insert_envelope(db, _envelope(AJ_ECHO, case["written"], job_id))
    # A job Rails' retry_on enqueued again: its envelope counts the runs before this one.
    again = {**_envelope(AJ_ECHO, [1]), "executions": 2, "exception_executions": {"[ArgumentError]": 2}}
    _insert_envelope(db, again)
    drain(testee, fleet.info(impl))
    got = _received(db)
    seen = got.get(again["job_id"], {})
    check_equal(
        (seen.get("executions"), seen.get("exception_executions")),
        (3, {"[ArgumentError]": 2}),
        "activejob-attributes",
        impl=impl,
        detail="a job enqueued again by retry_on after two runs",
    )
    for job_id, case in zip(ids, recorded, strict=True):
        case_ = {"impl": impl, "detail": f"Rails wrote {json.dumps(case['written'])[:200]}"}
        check(job_id in got, "activejob-received", **case_, seen=sorted(got))
        check_equal(comparable(got[job_id]["arguments"]), comparable(case["received"]), "activejob-received", **case_)
        attributes = {
            k: got[job_id][k] for k in ("executions", "exception_executions", "queue_name", "priority", "locale")
        }
        expected = {"executions": 1, "exception_executions": {}, "queue_name": QUEUE, "priority": None, "locale": "en"}
        check_equal(attributes, expected, "activejob-attributes", **case_)


# Each example is a batch of jobs: one drain per example keeps a Que 1.x/2.x pool's start and
# stop from dominating the cell.
BATCH = 6


@pytest.mark.covers("activejob.perform.arguments", "activejob.arguments.kwargs", "activejob.arguments.symbol_keys")
@settings(max_examples=8)
@given(calls=st.lists(CALLS, min_size=BATCH, max_size=BATCH))
def test_arguments_cross_from_enqueuer_to_worker(
    enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any], calls: list[list[Any]]
) -> None:
    """Hypothesis draws argument trees over every serializer; what the worker's job receives
    is what Rails' ActiveJob makes of what the enqueuer was given."""
    writer, reader = _aj_row(fleet, enqueuer), _aj_row(fleet, worker)
    db.execute("DELETE FROM que_jobs")
    db.execute(f"DELETE FROM {TABLE}")  # the cell's database is fresh per cell, not per example
    ids = [writer.request("aj_enqueue", job_class=AJ_ECHO, arguments=call)["job_id"] for call in calls]
    drain(reader, fleet.info(worker))
    got = _received(db)
    pair = f"{enqueuer} -> {worker}"
    for job_id, call in zip(ids, calls, strict=True):
        check(job_id in got, "activejob-received", impl=pair, detail=f"the job {job_id} ran", seen=sorted(got))
        check_equal(
            comparable(got[job_id]["arguments"]),
            comparable(crossed(call)),
            "activejob-received",
            impl=pair,
            detail=f"{enqueuer} was given {json.dumps(call)[:300]}",
        )
    check_equal(_rows(db), [], "activejob-received", impl=pair, detail="every job ran and was destroyed")


@pytest.mark.covers("activejob.row.queue", "activejob.row.priority", "activejob.row.run_at")
def test_queue_priority_and_wait_cross(enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any]) -> None:
    """set(queue:, priority:, wait:) lands on the row; the worker's job sees its queue_name
    and priority once the job is due."""
    writer, reader = _aj_row(fleet, enqueuer), _aj_row(fleet, worker)
    pair = f"{enqueuer} -> {worker}"
    before = server_now(db)
    job_id = writer.request(
        "aj_enqueue", job_class=AJ_ECHO, arguments=["array", [["int", "1"]]], queue="mail", priority=10, wait_s=600
    )["job_id"]
    [row] = _rows(db)
    check_equal((row["queue"], row["priority"]), ("mail", 10), "activejob-schedule", impl=pair)
    due = row["run_at"] - before
    check(
        timedelta(seconds=598) <= due <= timedelta(seconds=602),
        "activejob-schedule",
        impl=pair,
        detail="run_at is the enqueue time plus 600 s",
        seen=due,
    )
    drain(reader, fleet.info(worker), queue="mail")
    check_equal(len(_rows(db)), 1, "activejob-schedule", impl=pair, detail="a job not yet due is not worked")
    db.execute("UPDATE que_jobs SET run_at = now()")
    drain(reader, fleet.info(worker), queue="mail")
    got = _received(db).get(job_id)
    seen = got and (got["queue_name"], got["priority"], got["executions"])
    check_equal(seen, ("mail", 10, 1), "activejob-attributes", impl=pair, detail="the job ran once it was due")


@pytest.mark.covers("activejob.retry.que")
def test_a_failure_is_retried_the_que_way_on_either_side(
    enqueuer: str, worker: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    """A job that raises with no retry_on is Que's to retry: the worker books the failure,
    and the envelope is left as written for whichever side takes it next; the enqueuer's own
    worker then fails it a second time the same way."""
    writer, reader = _aj_row(fleet, enqueuer), _aj_row(fleet, worker)
    pair = f"{enqueuer} -> {worker}"
    writer.request("aj_enqueue", job_class=AJ_FAIL, arguments=["array", [["str", "boom"]]])
    [before] = _rows(db)
    for count, side in ((1, reader), (2, writer)):
        drain(side, fleet.info(worker if side is reader else enqueuer))
        [row] = _rows(db)
        check_equal(row["error_count"], count, "activejob-retry", impl=pair)
        backoff = count**4 + 3
        check(
            timedelta(seconds=backoff - 1.5) <= row["due_in"] <= timedelta(seconds=backoff),
            "activejob-retry",
            impl=pair,
            detail=f"run_at now() + {count}**4 + 3 s",
            seen=row["due_in"],
        )
        check(
            "boom" in (row["error"] or ""),
            "activejob-retry",
            impl=pair,
            detail="the error is recorded",
            seen=row["error"],
        )
        check_equal(row["args"], before["args"], "activejob-retry", impl=pair, detail="the envelope is left as written")
        db.execute("UPDATE que_jobs SET run_at = now()")


@pytest.mark.covers("activejob.perform.class")
def test_an_unknown_activejob_class_fails_like_an_unknown_que_class(
    impl: str, fleet: Fleet, db: psycopg.Connection[Any]
) -> None:
    testee = _aj_row(fleet, impl)
    _insert_envelope(db, _envelope(AJ_MISSING, [1]))
    drain(testee, fleet.info(impl))
    rows = _rows(db)
    check_equal(len(rows), 1, "activejob-unknown", impl=impl, detail="the row stays")
    check_equal(rows[0]["error_count"], 1, "activejob-unknown", impl=impl)
    check(
        AJ_MISSING.rsplit("::", 1)[-1] in (rows[0]["error"] or ""),
        "activejob-unknown",
        impl=impl,
        seen=rows[0]["error"],
    )
