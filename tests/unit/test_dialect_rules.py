"""The dialects' rules that need no database: which dialect a schema version speaks, how a
job ends (Ruby Que 0.14's and 2.x's outcomes), which job_available message is well formed,
and how a handler receives arguments that are not an array (Ruby's run(*args))."""

import json
from datetime import UTC, datetime

import pytest

import que
from que.core.handlers import arguments
from que.core.job import Job
from que.core.outcome import Outcome
from que.dialects import QUE_0, QUE_1, QUE_1_V4, QUE_2, of_version
from que.dialects.que2 import finishes, protocol


def job(error_count: int = 0, args: str = "[]") -> Job:
    return Job("q", 100, datetime(2026, 1, 1, tzinfo=UTC), 7, "J", args, error_count, job_schema_version=2)


@pytest.mark.parametrize(
    ("version", "dialect"),
    [(0, QUE_0), (1, QUE_0), (3, QUE_0), (4, QUE_1_V4), (5, QUE_1), (6, QUE_2), (7, QUE_2), (8, QUE_2)],
)
def test_a_schema_version_names_its_dialect(version: int, dialect: object) -> None:
    assert of_version(version) is dialect


def test_a_version_no_que_knows_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="schema version 9, newer than any Que"):
        of_version(9)


def test_a_refusal_names_the_dialect_and_what_to_use() -> None:
    refused = QUE_2.refuse("one-at-a-time locking", "use WorkerPool")
    assert isinstance(refused, que.UnsupportedByDialect) and isinstance(refused, ValueError)
    assert str(refused) == (
        "que_jobs speaks dialect 2 (Ruby Que 2.x, schema versions 6..8), which has no one-at-a-time locking: "
        "use WorkerPool"
    )


def failure() -> RuntimeError:
    try:
        raise RuntimeError("boom")
    except RuntimeError as error:
        return error


def test_que_2_outcomes_follow_rubys_job_methods() -> None:
    assert finishes.outcome(job(), None, 15) == Outcome(Outcome.DESTROY)
    assert finishes.outcome(job(), None, 15, "finish").kind == Outcome.FINISH
    retried = finishes.outcome(job(2), failure(), 15)
    assert (retried.kind, retried.delay, retried.message) == (Outcome.RETRY, 84.0, "RuntimeError: boom")
    assert finishes.outcome(job(15), failure(), 15).kind == Outcome.EXPIRE, "the 16th failure expires the job"


def test_a_handler_that_asks_to_finish_then_raises_is_finished_and_its_error_recorded() -> None:
    """Ruby's `finish` runs at once; the raise then goes to handle_error: retry_in
    (set_error) below the limit, expire past it."""
    ended = finishes.outcome(job(0), failure(), 15, "finish")
    assert (ended.kind, ended.after, ended.message) == (Outcome.FINISH, Outcome.RETRY, "RuntimeError: boom")
    assert finishes.outcome(job(15), failure(), 15, "expire").after == Outcome.EXPIRE


def test_que_0_outcomes_follow_ruby_que_0_14() -> None:
    assert QUE_0.outcome(job(), None, None, None) == Outcome(Outcome.DESTROY)
    failed = QUE_0.outcome(job(2), failure(), None, None)
    assert (failed.kind, failed.delay) == (Outcome.RETRY, 84)
    assert QUE_0.outcome(job(2), failure(), None, 2).kind == Outcome.DEAD, "past que-interop's opt-in limit"


GOOD = {
    "message_type": "job_available",
    "queue": "default",
    "priority": 10,
    "id": 42,
    "run_at": "2026-01-02T03:04:05.123456Z",
}


def test_a_well_formed_job_available_message_announces_its_job() -> None:
    found = protocol.announced(json.dumps(GOOD))
    assert found is not None and (found.priority, found.job_id) == (10, 42)


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps({**GOOD, "id": 2**63}),  # past bigint: no row can have it
        json.dumps({**GOOD, "priority": 40000}),
        json.dumps({**GOOD, "id": "42"}),
        json.dumps({**GOOD, "extra": 1}),
        json.dumps({**GOOD, "message_type": "other"}),
        json.dumps({**GOOD, "run_at": "2026-01-02 03:04:05"}),
        "[" * 3000 + "]" * 3000,  # deeper than any JSON parser's limit
        "not json",
        "",
    ],
)
def test_a_malformed_message_is_dropped_not_fatal(payload: str) -> None:
    assert protocol.announced(payload) is None


@pytest.mark.parametrize(
    ("args", "received"),
    [
        ("[1, 2]", (1, 2)),
        ("null", ()),
        ('{"a": 1, "b": [2]}', (["a", 1], ["b", [2]])),
        ("5", (5,)),
        ('"s"', ("s",)),
        ("{}", ()),
    ],
)
def test_non_array_args_are_splatted_as_ruby_splats_them(args: str, received: tuple[object, ...]) -> None:
    assert arguments(job(args=args)) == received
