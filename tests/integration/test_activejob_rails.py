"""que.activejob against a real Rails: Debian's ActiveJob 6.1 on the real Ruby Que 0.14.3
(QUE_RUBY_LIB) and 2.4.1 (QUE2_RUBY_LIB), driven through testees/rails/probe.rb. Python
enqueues and Rails runs, Rails enqueues and Python runs; Hypothesis draws the argument
trees over every serializer, and each side describes what it received with its own types
(a Ruby Symbol, a TimeWithZone's zone, a time's nanoseconds) for the other to compare.
Where ActiveJob or Que cannot load, each test is unavailable, with the reason."""

import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import que
from harness.lab import wait_until
from que import activejob
from que.activejob import Duration, GlobalID, IndifferentDict, RubyModule, RubyTime, Symbol
from tests.conftest import fresh_database

PROBE = Path(__file__).resolve().parents[2] / "testees" / "rails" / "probe.rb"
RESULTS = "que_rails_results"
# Rails' side: the Ruby Que major and the table version it works.
SIDES = {"que-0.14.3": ("0", 3), "que-2.4.1": ("2", 7)}


def probe(major: str, request: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        ["ruby", str(PROBE), major], input=json.dumps(request), capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0 or not done.stdout:
        raise AssertionError(f"the Rails probe failed ({done.returncode}): {done.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@pytest.fixture(params=list(SIDES), scope="module")
def side(request: Any, database_url: str) -> Iterator[tuple[str, str]]:
    """(the probe's Que major, a database migrated for it), or unavailable with the reason."""
    major, version = SIDES[request.param]
    url = fresh_database(database_url, f"activejob_rails_{major}")
    with que.Client(url) as client:
        client.migrate(version)
    answer = probe(major, {"op": "enqueue", "database_url": url, "jobs": []})
    if "unavailable" in answer:
        pytest.skip(f"unavailable: {answer['unavailable']}")
    yield major, url


def reset(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM que_jobs")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {RESULTS} (job_id text, received text, executions int, "
            "queue_name text, priority int)"
        )
        conn.execute(f"DELETE FROM {RESULTS}")


# -- what each side should see ---------------------------------------------------------------


def key_spec(key: str) -> list[str]:
    return ["sym" if isinstance(key, Symbol) else "str", str(key)]


def _utc_text(moment: datetime, nanosecond: int) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanosecond:09d}Z"


def rails_sees(value: Any) -> list[Any]:
    """The SPEC (testees/rails/probe.rb) of what Rails 6.1 receives for a Python value."""
    if value is None:
        return ["nil"]
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, Symbol):
        return ["sym", str(value)]
    if isinstance(value, str):
        return ["str", value]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, float):
        return ["float", value]
    if isinstance(value, Decimal):
        return ["str", activejob.serialize([value], {}, "6.1")[0]]  # BigDecimal's text, read as a String
    if isinstance(value, (list, tuple)):
        return ["array", [rails_sees(item) for item in value]]
    if isinstance(value, IndifferentDict):
        return ["hash", "indifferent", [[["str", k], rails_sees(v)] for k, v in value.items()]]
    if isinstance(value, dict):
        return ["hash", "plain", [[key_spec(k), rails_sees(v)] for k, v in value.items()]]
    if isinstance(value, datetime):
        ruby = value if isinstance(value, RubyTime) else RubyTime(value)
        text = _utc_text(ruby, ruby.nanosecond)
        offset = int(ruby.utcoffset().total_seconds())  # type: ignore[union-attr]
        if ruby.ruby_class == "ActiveSupport::TimeWithZone":
            return ["time", ruby.ruby_class, text, 0, "Etc/UTC"]  # 6.1: in the app's zone (UTC)
        if ruby.ruby_class == "DateTime":
            return ["time", "DateTime", text, offset, None]
        return ["time", "Time", text, offset, "UTC" if ruby.utc_text and offset == 0 else None]
    if isinstance(value, date):
        return ["date", value.isoformat()]
    if isinstance(value, timedelta):
        duration = value if isinstance(value, Duration) else Duration(int(value.total_seconds()))
        parts = [[["sym", k], rails_sees(v)] for k, v in duration.parts.items()]
        return ["duration", rails_sees(duration.value), ["hash", "plain", parts]]
    if isinstance(value, GlobalID):
        return ["gid", value.uri]
    if isinstance(value, RubyModule):
        return ["module", value.name]
    raise AssertionError(f"no SPEC for {value!r}")


def python_sees(spec: list[Any]) -> list[Any]:
    """The SPEC of what Python reads for a value Rails 6.1 sent as `spec`: the same, but a
    TimeWithZone arrives with its offset and without its zone's name (6.1 writes none), and
    a Time at UTC as the "Z" it was written with."""
    kind = spec[0]
    if kind == "array":
        return ["array", [python_sees(item) for item in spec[1]]]
    if kind == "hash":
        return ["hash", spec[1], [[key, python_sees(v)] for key, v in spec[2]]]
    if kind == "time" and spec[1] == "ActiveSupport::TimeWithZone":
        return [*spec[:4], None]
    if kind == "duration":
        return ["duration", python_sees(spec[1]), python_sees(spec[2])]
    return spec


def describe(value: Any) -> list[Any]:
    """The SPEC of a value as que.activejob read it."""
    if value is None or isinstance(value, (bool, Symbol, int, float)) or type(value) is str:
        return rails_sees(value)
    if isinstance(value, Decimal):
        return ["decimal", format(value, "f")]
    if isinstance(value, list):
        return ["array", [describe(item) for item in value]]
    if isinstance(value, IndifferentDict):
        return ["hash", "indifferent", [[["str", k], describe(v)] for k, v in value.items()]]
    if isinstance(value, dict):
        return ["hash", "plain", [[key_spec(k), describe(v)] for k, v in value.items()]]
    if isinstance(value, RubyTime):
        offset = int(value.utcoffset().total_seconds())  # type: ignore[union-attr]
        zone = value.zone_name if value.ruby_class == "ActiveSupport::TimeWithZone" else None
        if value.ruby_class == "Time" and value.utc_text:
            zone = "UTC"
        return ["time", value.ruby_class, _utc_text(value, value.nanosecond), offset, zone]
    if isinstance(value, Duration):
        parts = [[["sym", k], describe(v)] for k, v in value.parts.items()]
        return ["duration", describe(value.value), ["hash", "plain", parts]]
    return rails_sees(value)


def unordered(spec: Any) -> Any:
    """A SPEC with each hash's pairs sorted: jsonb (a Que 2 table) stores an object's keys in
    its own order, so a Rails app on Que 2 gets them in that order too."""
    if not isinstance(spec, list) or not spec:
        return spec
    if spec[0] == "hash":
        return ["hash", spec[1], sorted(([key, unordered(v)] for key, v in spec[2]), key=json.dumps)]
    return [unordered(item) if isinstance(item, list) else item for item in spec]


def call(args: list[Any], kwargs: dict[str, Any], see: Any) -> list[Any]:
    items = [see(arg) for arg in args]
    if kwargs:
        items.append(["hash", "kwargs", [[["sym", k], see(v)] for k, v in kwargs.items()]])
    return ["array", items]


# -- the trees Hypothesis draws ----------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12)
KEYS = TEXT.filter(lambda key: not key.startswith("_aj_"))
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
MOMENTS = st.datetimes(datetime(1970, 1, 2), datetime(2100, 1, 1)).map(lambda d: d.replace(tzinfo=UTC))


@st.composite
def times(draw: Any) -> Any:
    moment = draw(MOMENTS).astimezone(draw(ZONES))
    kind = draw(st.sampled_from(["plain", "Time", "ActiveSupport::TimeWithZone", "DateTime"]))
    if kind == "plain":
        return moment
    nanosecond = moment.microsecond * 1000 + draw(st.integers(0, 999))
    if kind == "ActiveSupport::TimeWithZone":
        moment = moment.astimezone(draw(st.sampled_from([ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Tokyo"), UTC])))
    return RubyTime(moment, kind, nanosecond)


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**80), 2**80),
    # Below 1e15: Ruby writes larger floats with an exponent, which jsonb (a Que 2 table)
    # turns into an integer's text (the suite's JSON cells cover that).
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e14, max_value=1e14).filter(
        lambda f: (f == 0.0 and str(f) == "0.0") or abs(f) >= 1e-4
    ),
    TEXT,
    TEXT.filter(bool).map(Symbol),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6),
    times(),
    st.dates(date(1, 1, 1), date(9999, 12, 31)),
    st.integers(0, 10**7).map(lambda s: timedelta(seconds=s)),
    st.integers(1, 40).map(lambda m: Duration(m * 2629746, {"months": m})),
    st.integers(1, 10**6).map(lambda n: GlobalID(f"gid://que-interop/QueRails::Thing/{n}")),
    st.just(RubyModule("QueRails::Thing")),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(KEYS, KEYS.filter(bool).map(Symbol)), inner, max_size=4),
        # Scalars only: with_indifferent_access makes nested hashes indifferent too.
        st.dictionaries(KEYS, SCALARS, max_size=3).map(IndifferentDict),
    ),
    max_leaves=8,
)
CALLS = st.tuples(
    st.lists(VALUES, max_size=4),
    st.dictionaries(st.from_regex(r"\A[a-z][a-z0-9_]{0,8}\Z"), VALUES, max_size=3),
)
BATCH = 12


def _unique_keys(call_: tuple[list[Any], dict[str, Any]]) -> bool:
    """A hash whose str key and Symbol key share a name is two keys in Ruby, one in Python."""

    def ok(value: Any) -> bool:
        if isinstance(value, dict):
            names = [str(k) for k in value]
            return len(names) == len(set(names)) and all(ok(v) for v in value.values())
        if isinstance(value, list):
            return all(ok(v) for v in value)
        return True

    return ok(call_[0]) and ok(call_[1])


SETTINGS = settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@SETTINGS
@given(calls=st.lists(CALLS.filter(_unique_keys), min_size=BATCH, max_size=BATCH))
def test_python_enqueues_and_rails_receives_exactly_that(side: tuple[str, str], calls: list[Any]) -> None:
    major, url = side
    reset(url)
    with que.Client(url) as client:
        jobs = [activejob.enqueue(client, "QueRails::Probe", *args, job_kwargs=kwargs) for args, kwargs in calls]
    envelopes = [job.args[0] for job in jobs]
    probe(major, {"op": "work", "database_url": url, "queue": "default", "results_table": RESULTS, "deadline_s": 60})
    with psycopg.connect(url) as conn:
        got = {r[0]: json.loads(r[1]) for r in conn.execute(f"SELECT job_id, received FROM {RESULTS}")}
        left = conn.execute("SELECT count(*) FROM que_jobs").fetchone()
    assert left == (0,), "every job ran and was destroyed"
    for envelope, (args, kwargs) in zip(envelopes, calls, strict=True):
        same = (lambda spec: spec) if major == "0" else unordered
        assert same(got[envelope["job_id"]]) == same(call(args, kwargs, rails_sees)), (args, kwargs)


@SETTINGS
@given(calls=st.lists(CALLS.filter(_unique_keys), min_size=BATCH, max_size=BATCH))
def test_rails_enqueues_and_python_receives_exactly_that(side: tuple[str, str], calls: list[Any]) -> None:
    major, url = side
    reset(url)
    specs = [call(args, kwargs, rails_sees) for args, kwargs in calls]
    answer = probe(major, {"op": "enqueue", "database_url": url, "jobs": [{"spec": spec} for spec in specs]})
    received: dict[str, list[Any]] = {}
    lock = threading.Lock()

    def record(*args: Any, **kwargs: Any) -> None:
        current = activejob.current()
        assert current is not None
        with lock:
            received[current["job_id"]] = call(list(args), kwargs, describe)

    with que.Client(url) as client:
        pool = que.WorkerPool(client, activejob.handlers({"QueRails::Probe": record}), queue="default", count=2)
        pool.start()
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                wait_until(lambda: conn.execute("SELECT count(*) FROM que_jobs").fetchone() == (0,), 60, "the jobs")
        finally:
            assert pool.shutdown(10)
    for job_id, spec in zip(answer["job_ids"], specs, strict=True):
        same = (lambda spec: spec) if major == "0" else unordered
        assert same(received[job_id]) == same(python_sees(spec))


@pytest.mark.parametrize("direction", ["python->rails", "rails->python"])
def test_queue_priority_schedule_and_a_failure_cross(side: tuple[str, str], direction: str) -> None:
    """The job's queue, priority and scheduled time land on the row either way; a job that
    raises (Rails' with no retry_on, or a Python handler) is retried the Que way."""
    major, url = side
    reset(url)
    if direction == "python->rails":
        with que.Client(url) as client:
            activejob.enqueue(client, "QueRails::Probe", 1, queue="mail", priority=10, wait=60)
            activejob.enqueue(client, "QueRails::Boom", queue="default")
        work = {"op": "work", "database_url": url, "queue": "default", "results_table": RESULTS, "deadline_s": 30}
        probe(major, work)
    else:
        spec = ["array", [["int", "1"]]]
        probe(
            major,
            {
                "op": "enqueue",
                "database_url": url,
                "jobs": [
                    {"spec": spec, "queue": "mail", "priority": 10, "wait": 60},
                    {"spec": ["array", []], "job_class": "Boom"},
                ],
            },
        )

        def boom() -> None:
            raise ValueError("boom from Python")

        with que.Client(url) as client:
            pool = que.WorkerPool(client, activejob.handlers({"QueRails::Boom": boom}), queue="default", count=1)
            pool.start()
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    failed = "SELECT count(*) FROM que_jobs WHERE error_count = 1"
                    wait_until(lambda: conn.execute(failed).fetchone() == (1,), 30, "the failure")
            finally:
                assert pool.shutdown(10)
    error = "last_error" if major == "0" else "last_error_message"
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            f"SELECT queue, priority, run_at - now(), error_count, {error}, args::text FROM que_jobs ORDER BY queue"
        ).fetchall()
    [(queue, _, due, errors, message, args), (mail, ten, later, _, _, _)] = rows
    assert (mail, ten) == ("mail", 10) and timedelta(seconds=50) < later <= timedelta(seconds=60)
    assert queue == "default" and errors == 1 and "boom from" in message
    assert timedelta(seconds=0) < due <= timedelta(seconds=4)  # Que's backoff: 1**4 + 3 s
    assert json.loads(args)[0]["executions"] == 0  # Que keeps the envelope as written
