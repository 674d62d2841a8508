"""que.activejob against a real PostgreSQL, on Que 0.x (v3) and Que 2 (v7) tables: the row
Rails' Que adapter writes, the value mapping both ways, the refusals (nothing written), and
Python running the jobs. The same checks against a real Rails are the ActiveJob cells of the conformance suite
(conformance/activejob/, the `rails` row)."""

import asyncio
import json
import threading
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

import que
from harness.lab import wait_until
from que import activejob
from que.activejob import Duration, GlobalID, IndifferentDict, RubyModule, RubyTime, Symbol
from que.aio import AsyncClient, AsyncWorkerPool

WRAPPER = "ActiveJob::QueueAdapters::QueAdapter::JobWrapper"


@pytest.fixture
def url(table_url: str) -> str:
    return table_url


def stored(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT queue, priority, run_at, job_class, args::text FROM que_jobs ORDER BY 1").fetchall()


def test_the_row_is_the_one_rails_writes(url: str) -> None:
    """Rails 6.1's perform_later through the Que adapter: JobWrapper, the job's queue and
    priority on the row, and one envelope argument with ActiveJob's keys in its order."""
    with que.Client(url) as client:
        before = datetime.now(UTC).replace(microsecond=0)
        activejob.enqueue(
            client, "SendEmailJob", "ann@example.com", {"n": 1.5}, queue="mail", priority=10, sym=Symbol("ok")
        )
    [(queue, priority, _, job_class, args)] = stored(url)
    assert (queue, priority, job_class) == ("mail", 10, WRAPPER)
    [envelope] = json.loads(args)
    # jsonb (a Que 2 table) keeps its own key order; json (Que 0.x) keeps the writer's.
    order = list if keeps_key_order(url) else sorted
    assert order(envelope) == order(
        [
            "job_class",
            "job_id",
            "provider_job_id",
            "queue_name",
            "priority",
            "arguments",
            "executions",
            "exception_executions",
            "locale",
            "timezone",
            "enqueued_at",
        ]
    )
    assert envelope["job_class"] == "SendEmailJob" and uuid.UUID(envelope["job_id"]).version == 4
    assert (envelope["provider_job_id"], envelope["queue_name"], envelope["priority"]) == (None, "mail", 10)
    assert (envelope["executions"], envelope["exception_executions"]) == (0, {})
    assert (envelope["locale"], envelope["timezone"]) == ("en", "UTC")
    assert envelope["arguments"] == [
        "ann@example.com",
        {"n": 1.5, "_aj_symbol_keys": []},
        {
            "sym": {"_aj_serialized": "ActiveJob::Serializers::SymbolSerializer", "value": "ok"},
            "_aj_ruby2_keywords": ["sym"],
        },
    ]
    stamp = datetime.strptime(envelope["enqueued_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= stamp <= datetime.now(UTC)


def test_no_priority_is_ques_default_and_the_envelope_keeps_null(url: str) -> None:
    with que.Client(url) as client:
        activejob.enqueue(client, "SendEmailJob")
    [(queue, priority, _, _, args)] = stored(url)
    assert (queue, priority) == ("default", 100)
    assert json.loads(args)[0]["priority"] is None


def test_wait_and_wait_until_set_run_at(url: str) -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with que.Client(url) as client:
        activejob.enqueue(client, "A", wait_until=at)
        started = datetime.now(UTC)
        activejob.enqueue(client, "B", wait=timedelta(minutes=5), queue="later")
    rows = {json.loads(r[4])[0]["job_class"]: r for r in stored(url)}
    assert rows["A"][2] == at
    assert timedelta(minutes=5) <= rows["B"][2] - started < timedelta(minutes=5, seconds=5)


def test_the_rails_7_1_envelope_stamps_nanoseconds_and_the_scheduled_time(url: str) -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    with que.Client(url) as client:
        activejob.enqueue(client, "A", Decimal("1.50"), wait_until=at, rails="7.1")
    [envelope] = json.loads(stored(url)[0][4])
    assert {"enqueued_at", "scheduled_at"} <= set(envelope)
    assert envelope["scheduled_at"] == "2030-01-02T03:04:05.123456000Z"
    assert len(envelope["enqueued_at"]) == len("2030-01-02T03:04:05.123456789Z")
    assert envelope["arguments"] == [{"_aj_serialized": "ActiveJob::Serializers::BigDecimalSerializer", "value": "1.5"}]


def test_inside_the_callers_transaction(url: str) -> None:
    with que.Client(url) as client, psycopg.connect(url) as conn:
        activejob.enqueue(client, "A", 1, conn=conn)
        conn.rollback()
        assert stored(url) == []
        activejob.enqueue(client, "A", 2, conn=conn)
        conn.commit()
    assert len(stored(url)) == 1


def test_async_enqueue(url: str) -> None:
    async def main() -> None:
        async with AsyncClient(url) as client:
            await activejob.aenqueue(client, "A", Symbol("x"), priority=5)

    asyncio.run(main())
    [(_, priority, _, job_class, args)] = stored(url)
    assert (priority, job_class) == (5, WRAPPER)
    assert json.loads(args)[0]["arguments"][0]["value"] == "x"


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ({1, 2}, "cannot serialize set"),
        (b"raw", "cannot serialize bytes"),
        (datetime(2026, 1, 2), "is naive"),
        (float("nan"), "has no JSON text"),
        (Decimal("Infinity"), "has no JSON text"),
        ({1: "a"}, "only string and symbol hash keys"),
        ({"_aj_globalid": "x"}, "reserved key '_aj_globalid'"),
        ([{"ok": [object()]}], "cannot serialize object"),
    ],
)
def test_what_activejob_cannot_carry_is_refused_and_nothing_is_written(url: str, value: Any, rule: str) -> None:
    with que.Client(url) as client, pytest.raises(ValueError, match=rule):
        activejob.enqueue(client, "A", "fine", value)
    assert stored(url) == []


@pytest.mark.parametrize(
    ("job_class", "options", "rule"),
    [
        ("send_email", {}, "not a Ruby class name"),
        ("A", {"queue": ""}, "non-empty string"),
        ("A", {"priority": "high"}, "an integer"),
        ("A", {"wait": 5, "wait_until": datetime.now(UTC)}, "not both"),
        ("A", {"wait_until": datetime(2030, 1, 1)}, "aware datetime"),
        ("A", {"rails": "5.2"}, "que.activejob writes the envelopes of Rails"),
    ],
)
def test_bad_options_are_refused(url: str, job_class: str, options: dict[str, Any], rule: str) -> None:
    with que.Client(url) as client, pytest.raises(ValueError, match=rule):
        activejob.enqueue(client, job_class, **options)
    assert stored(url) == []


VALUES: list[Any] = [
    None,
    True,
    -(2**70),
    1.5,
    "é\n\u2028",
    Symbol("ok"),
    Decimal("1.50"),
    [1, [2, {"a": None}]],
    {"plain": 1, Symbol("sym"): 2},
    IndifferentDict({"k": [1]}),
    datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
    datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    RubyTime(datetime(2026, 6, 1, 12, tzinfo=ZoneInfo("Europe/Berlin")), "ActiveSupport::TimeWithZone", 987654321),
    RubyTime(datetime(2026, 6, 1, 12, tzinfo=timezone(timedelta(hours=2))), "DateTime"),
    date(2026, 1, 2),
    timedelta(seconds=90),
    Duration(2629746, {"months": 1}),
    GlobalID("gid://app/User/1"),
    RubyModule("Mail::Sender"),
]


@pytest.mark.parametrize("rails", ["6.1", "7.1"])
@pytest.mark.parametrize("value", VALUES, ids=[type(v).__name__ + str(i) for i, v in enumerate(VALUES)])
def test_values_round_trip_through_the_table(url: str, value: Any, rails: str) -> None:
    """What Python writes, Python reads back as the same value of the same type (Symbol
    stays Symbol, a time keeps its Ruby class, zone and nanoseconds); under Rails 6.1 a
    Decimal is written as BigDecimal#to_s and read back as that text, as Rails reads it."""
    with que.Client(url) as client:
        activejob.enqueue(client, "A", value, rails=rails, kw=value)
    [envelope] = json.loads(stored(url)[0][4])
    args, kwargs = activejob.deserialize(envelope["arguments"])
    expected = "0.15e1" if rails == "6.1" and isinstance(value, Decimal) else value
    assert args == [expected] and kwargs == {"kw": expected}
    # The type read back: the same, but a time is a RubyTime and a timedelta a Duration.
    read_as = {datetime: RubyTime, timedelta: Duration}.get(type(expected), type(expected))
    assert type(args[0]) is read_as and type(kwargs["kw"]) is read_as
    if isinstance(expected, timedelta):
        assert args[0].parts == (expected.parts if isinstance(expected, Duration) else {"seconds": 90})
    if isinstance(expected, RubyTime):
        assert (args[0].ruby_class, args[0].nanosecond) == (expected.ruby_class, expected.nanosecond)
        assert args[0].utcoffset() == expected.utcoffset()
    if isinstance(expected, dict):
        assert {(k, type(k)) for k in args[0]} == {(k, type(k)) for k in expected}


@pytest.mark.parametrize("kind", ["threads", "asyncio"])
def test_python_runs_the_jobs_and_an_unknown_class_fails_like_an_unknown_que_class(url: str, kind: str) -> None:
    received: list[tuple[Any, ...]] = []
    done = threading.Event()

    def send_email(to: str, options: dict[str, Any], *, at: date) -> None:
        current = activejob.current()
        assert current is not None
        received.append((to, options, at, current["job_class"], current["executions"]))
        done.set()

    with que.Client(url) as client:
        activejob.enqueue(client, "SendEmailJob", "ann@example.com", {Symbol("n"): 1}, at=date(2026, 1, 2))
        activejob.enqueue(client, "NoSuchJob", 1)
    handlers = activejob.handlers({"SendEmailJob": send_email})

    def both_ran() -> bool:
        errored = "SELECT count(*) FROM que_jobs WHERE error_count = 1"
        with psycopg.connect(url) as conn:
            wait_until(lambda: conn.execute(errored).fetchone() == (1,), 15, "the unknown class's failure")
        return done.wait(15)

    queue = "default"
    if kind == "threads":
        with que.Client(url) as client:
            pool = que.WorkerPool(client, handlers, queue=queue, count=1, wake_interval=0.05).start()
            assert both_ran()
            assert pool.shutdown(10)
    else:

        async def main() -> None:
            async with AsyncClient(url) as client:
                pool = await AsyncWorkerPool(client, handlers, queue=queue, count=1, wake_interval=0.05).start()
                assert await asyncio.to_thread(both_ran)
                assert await pool.shutdown(10)

        asyncio.run(main())
    # executions: the envelope's count plus this run, as ActiveJob's perform_now counts it (a
    # Rails job sees 1 on its first run, and on every Que retry, as Que keeps the envelope).
    assert received == [("ann@example.com", {"n": 1}, date(2026, 1, 2), "SendEmailJob", 1)]
    assert isinstance(next(iter(received[0][1])), Symbol)
    with psycopg.connect(url) as conn:
        column = "last_error" if "last_error" in _columns(conn) else "last_error_message"
        rows = conn.execute(f"SELECT error_count, {column}, args::text FROM que_jobs").fetchall()
    [(error_count, message, args)] = rows
    assert error_count == 1 and "NoSuchJob" in message and "UnknownJobClass" in message
    assert json.loads(args)[0]["executions"] == 0  # the envelope as Rails wrote it, for Rails to take back


def keeps_key_order(url: str) -> bool:
    """Whether que_jobs.args is json (Que 0.x: the text as written) rather than jsonb."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'que_jobs' AND column_name = 'args'"
        ).fetchone()
    return row == ("json",)


def _columns(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'que_jobs'")
    return {row[0] for row in rows}


def test_a_ruby_time_does_datetime_arithmetic() -> None:
    """datetime's own methods build their result with the subclass's constructor and
    datetime's arguments: astimezone, replace and adding a timedelta must work, and give
    plain Ruby Times of the new instant."""
    moment = RubyTime(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "ActiveSupport::TimeWithZone", 5_000_123)
    moved = moment.astimezone(ZoneInfo("Asia/Tokyo"))
    assert moved == moment and moved.utcoffset() == timedelta(hours=9)
    assert (moment + timedelta(seconds=1)) - moment == timedelta(seconds=1)
    assert moment.replace(year=2027).year == 2027
